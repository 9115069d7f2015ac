"""Indexing throughput and selection latency, side by side with LangChain's semantic selector.

Both sides use the same MiniLM weights and Chroma; the baseline is
`SemanticSimilarityExampleSelector.from_examples(..., vectorstore_cls=Chroma)`, the way LangChain
documents it. The machine is shared and noisy, so the numbers that matter are the ratios measured
in one run.

Without --sizes: the built-in pool (96 examples), index rate and interleaved select median of
icl-retriever's task and semantic indexes and LangChain's selector.

    python -m benchmarks.speed --out benchmarks/results/speed

With --sizes: pools of those sizes from a fixed mix of iclmix rows and IEB training instructions
(`benchmarks.speed_scale`): index examples/s against the raw encoder, select p50/p95, cold start
(process start to first selection) and its peak RSS, embedded and through a `chroma run` server,
with a plot.

    python -m benchmarks.speed --sizes 1000,10000 --out benchmarks/results/speed-scale
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from benchmarks.speed_scale import (
    LANGCHAIN,
    MODES,
    SYSTEMS,
    TASK,
    LangChainEmbeddings,
    PoolTooSmall,
    interleaved_samples_ms,
    limit_threads,
    run_scale,
)
from icl_retriever.bench._report import markdown_table, provenance, provenance_markdown, write_json, write_markdown
from icl_retriever.embedders import EmbedderKind, load_embedder
from icl_retriever.example import Example
from icl_retriever.pool import load_pool
from icl_retriever.selectors import selector_for_store
from icl_retriever.settings import Settings
from icl_retriever.store import ExampleStore

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


# --- the built-in pool ------------------------------------------------------------------------


def run(pool: Path, requests_file: Path, embedder_kind: str, rounds: int) -> dict[str, Any]:
    import torch
    from langchain_chroma import Chroma
    from langchain_core.example_selectors import SemanticSimilarityExampleSelector

    examples: list[Example] = load_pool(pool).examples
    requests = [json.loads(line) for line in requests_file.read_text().splitlines() if line.strip()]
    requests = [{"instruction": r["instruction"], "input": r.get("input", "")} for r in requests]
    semantic = load_embedder("semantic")
    ours = load_embedder(embedder_kind)  # type: ignore[arg-type]
    results: dict[str, dict[str, float]] = {}
    selectors: dict[str, Callable[[dict[str, str]], Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # Untimed warm-up, so that no system pays for the process's first Chroma client, first
        # encoder call or lazy imports (whichever is timed first would).
        ExampleStore(ours, "warm-up", tmp).index(examples[:2])
        semantic.embed_documents([examples[0].instruction])
        for label, embedder in (("icl-retriever " + embedder_kind, ours), ("icl-retriever semantic", semantic)):
            start = time.perf_counter()
            store = ExampleStore(embedder, label.replace(" ", "-"), tmp)
            store.index(examples)
            results[label] = {"index_seconds": time.perf_counter() - start}
            selectors[label] = selector_for_store(store, k=2).select_examples
        start = time.perf_counter()
        baseline = SemanticSimilarityExampleSelector.from_examples(
            [e.to_prompt_dict() | {"task": e.task or ""} for e in examples],
            LangChainEmbeddings(semantic),
            Chroma,
            k=2,
            input_keys=["instruction", "input"],
            persist_directory=str(Path(tmp) / "langchain"),
        )
        results[LANGCHAIN] = {"index_seconds": time.perf_counter() - start}
        selectors[LANGCHAIN] = baseline.select_examples
        for name, samples in interleaved_samples_ms(selectors, requests, rounds).items():
            results[name]["select_median_ms"] = statistics.median(samples)
            results[name]["index_examples_per_s"] = len(examples) / results[name]["index_seconds"]
    reference = results[LANGCHAIN]
    for row in results.values():
        row["index_speed_ratio"] = row["index_examples_per_s"] / reference["index_examples_per_s"]
        row["select_latency_ratio"] = row["select_median_ms"] / reference["select_median_ms"]
    return {"pool": str(pool), "n_examples": len(examples), "n_requests": len(requests), "rounds": rounds,
            "torch_threads": torch.get_num_threads(), "systems": results}


def write_builtin(results: dict[str, Any], out: Path) -> None:
    write_json(out / "results.json", results)
    rows = [
        [name, f"{r['index_examples_per_s']:.1f}", f"{r['index_speed_ratio']:.2f}", f"{r['select_median_ms']:.1f}",
         f"{r['select_latency_ratio']:.2f}"]
        for name, r in results["systems"].items()
    ]
    table = markdown_table(["system", "index examples/s", "× LangChain", "select median ms", "× LangChain"], rows)
    write_markdown(
        out / "results.md",
        f"# Speed on {results['n_examples']} examples, {results['n_requests']} requests × {results['rounds']}\n\n"
        f"{table}\n\n{provenance_markdown(results)}",
    )
    print(table)


# --- pools of several sizes -------------------------------------------------------------------


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated whole numbers, got {text!r}", param_hint="--sizes") from None
    if not sizes or sizes[0] < 1:
        raise typer.BadParameter(f"expected sizes of at least 1, got {text!r}", param_hint="--sizes")
    return sizes


def index_table(run: dict[str, Any]) -> str:
    rows = [
        [name, f"{r['index_examples_per_s']:.1f}", f"{r['raw_encoder_examples_per_s']:.1f}",
         f"{r['index_x_raw_encoder']:.2f}", f"{r['index_x_langchain']:.2f}"]
        for name, r in run["index"].items()
    ]
    return markdown_table(["system", "index examples/s", "raw encoder examples/s", "× raw encoder", "× LangChain"], rows)


def serving_table(run: dict[str, Any], smallest: int) -> str:
    rows = []
    for mode in MODES:
        for name, r in run.get(mode, {}).items():
            server_rss = r.get("server_peak_rss_mib")
            rows.append([
                name, mode, f"{r['select_p50_ms']:.1f}", f"{r['select_p95_ms']:.1f}", f"{r['select_p50_ms_x_langchain']:.2f}",
                f"{r['cold_start_s']:.2f}", f"{r['cold_start_s_x_langchain']:.2f}", f"{r['cold_start_s_x_smallest']:.2f}",
                f"{r['peak_rss_mib']:.0f}", f"{r['peak_rss_mib_x_smallest']:.2f}",
                "—" if server_rss is None else f"{server_rss:.0f}",
            ])
    return markdown_table(
        ["system", "Chroma", "select p50 ms", "p95 ms", "p50 × LangChain", "cold start s", "× LangChain",
         f"× {smallest} pool", "peak RSS MiB", f"× {smallest} pool", "server peak RSS MiB"],
        rows,
    )


def targets_table(targets: Sequence[dict[str, Any]]) -> str:
    rows = [
        [t["target"], t["pool"], f"{t['value']:.2f}", f"{'≤' if t['at_most'] else '≥'} {t['limit']}", "yes" if t["holds"] else "**no**"]
        for t in targets
    ]
    return markdown_table(["target (icl-retriever task)", "pool", "measured", "limit", "holds"], rows)


def scale_markdown(results: dict[str, Any]) -> str:
    smallest = results["sizes"][0]
    parts = [
        f"# Speed at {', '.join(map(str, results['sizes']))} examples",
        f"{results['data']['mix']} (seed {results['data']['seed']}). Raw encoder: the same texts as each index "
        f"embeds (at most {results['raw_sample']} of them, evenly spaced), half encoded just before its build and "
        "half just after. "
        f"{results['n_requests']} held-out requests "
        f"× {results['rounds']} rounds for select (systems timed in turn, in one process), k = {results['k']}; cold "
        f"start = median of {results['cold_runs']} fresh processes, each timed from before its spawn to its first "
        "selection printed, started once every pool is indexed, every pool and system in turn; peak RSS = that "
        "process's own high-water RSS (`VmHWM`), median of the runs; a Chroma server's high-water RSS is shown "
        "apart; the cold starts through servers run with every pool's servers up, each warmed by one pass of the "
        f"requests. torch threads: {results['torch_threads']} (indexing and its raw encoder: "
        f"{results['index_threads']}). Ratios are from this one run.",
    ]
    for size in results["sizes"]:
        run = results["runs"][str(size)]
        mix = run["composition"]
        parts += [
            f"## {size} examples ({mix['iclmix']} iclmix, {mix['ieb']} IEB"
            + (f", {mix['recombined']} recombined)" if mix["recombined"] else ")"),
            index_table(run),
            serving_table(run, smallest),
        ]
    parts += ["## The issue's targets", targets_table(results["targets"]), "![speed at scale](speed-scale.png)",
              provenance_markdown(results)]
    return "\n\n".join(parts)


def scale_plot(results: dict[str, Any], path: Path) -> None:
    """Select p50, cold start and peak RSS against pool size, one line per system and Chroma mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = results["sizes"]
    panels = (("select_p50_ms", "select p50 (ms)"), ("cold_start_s", "cold start (s)"), ("peak_rss_mib", "cold-start peak RSS (MiB)"))
    figure, axes = plt.subplots(1, len(panels), figsize=(13, 3.8))
    for axis, (key, label) in zip(axes, panels):
        for name, colour in zip(SYSTEMS, ("#4C72B0", "#DD8452")):
            for mode, style in zip(MODES, ("-o", "--s")):
                if mode in results["runs"][str(sizes[0])]:
                    values = [results["runs"][str(size)][mode][name][key] for size in sizes]
                    short = "icl-retriever task" if name == TASK else "LangChain semantic"
                    axis.plot(sizes, values, style, color=colour, label=f"{short}, {mode}")
        axis.set_xscale("log")
        axis.set_xticks(sizes, [f"{size:,}" for size in sizes])
        axis.minorticks_off()
        axis.set_xlabel("pool size (examples)")
        axis.set_ylabel(label)
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_scale(results: dict[str, Any], out: Path) -> None:
    write_json(out / "results.json", results)
    markdown = scale_markdown(results)
    write_markdown(out / "results.md", markdown)
    scale_plot(results, out / "speed-scale.png")
    print(markdown)


# --- command line -----------------------------------------------------------------------------


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(help=__doc__.splitlines()[0])
def main(
    pool: Annotated[Path, typer.Option(help="Pool to index (without --sizes).")] = ROOT / "examples" / "pool.jsonl",
    requests: Annotated[Path, typer.Option(help="JSONL requests to select for (without --sizes).")] = ROOT
    / "tests"
    / "data"
    / "retrieval_requests.jsonl",
    embedder: Annotated[EmbedderKind, typer.Option(help="Embedder of icl-retriever's own index (without --sizes).")] = "task",
    rounds: Annotated[int, typer.Option(min=1, help="Passes over the requests for the latency percentiles.")] = 5,
    sizes: Annotated[
        str | None, typer.Option(help="Comma-separated pool sizes, e.g. 1000,10000: the scale benchmark (task index).")
    ] = None,
    n_requests: Annotated[int, typer.Option(min=1, help="Held-out requests for select latency (with --sizes).")] = 40,
    cold_runs: Annotated[int, typer.Option(min=1, help="Cold starts per system and mode; the median is kept.")] = 3,
    raw_sample: Annotated[
        int, typer.Option(min=2, help="Largest number of texts the raw encoder is timed on per pool (evenly spaced).")
    ] = 10_000,
    index_threads: Annotated[
        int | None, typer.Option(min=1, help="torch threads while indexing and its raw encoder (default: --threads).")
    ] = None,
    server: Annotated[bool, typer.Option(help="Also measure through a `chroma run` server on loopback.")] = True,
    iclmix: Annotated[Path | None, typer.Option(help="iclmix pool (default: data_dir/iclmix/pool.jsonl).")] = None,
    ieb: Annotated[Path | None, typer.Option(help="IEB training instructions (default: data_dir/ieb/eft_train_unsup.json).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the iclmix + IEB mix.")] = 0,
    work_dir: Annotated[Path | None, typer.Option(help="Parent of the temporary index folders (default: the system's).")] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="torch threads here and in the cold-start processes (default: torch's).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for the results (default: benchmarks/results/speed, or speed-scale with --sizes).")
    ] = None,
) -> None:
    limit_threads(threads)
    if sizes is None:
        write_builtin({**provenance(), **run(pool, requests, embedder, rounds)}, out or RESULTS / "speed")
        return
    settings = Settings()
    try:
        results = run_scale(
            parse_sizes(sizes),
            iclmix or settings.data_file("iclmix/pool.jsonl", "--iclmix"),
            ieb or settings.data_file("ieb/eft_train_unsup.json", "--ieb"),
            n_requests=n_requests, rounds=rounds, cold_runs=cold_runs, seed=seed, server=server,
            raw_sample=raw_sample, index_threads=index_threads, work_dir=work_dir,
        )
    except PoolTooSmall as exc:
        raise typer.BadParameter(str(exc), param_hint="--sizes") from None
    write_scale({**provenance(seed=seed), **results}, out or RESULTS / "speed-scale")


if __name__ == "__main__":
    app()
