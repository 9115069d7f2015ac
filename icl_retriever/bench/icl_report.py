"""The ICL benchmark's result files: results.json, predictions.jsonl, results.md and accuracy.png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from icl_retriever.bench import _report

#: Table columns for the collections of iclmix; other pools show their own collection names.
COLLECTION_LABELS: dict[str, str] = {
    "T0/P3": "T0/P3",
    "NIv1(BIG-bench)": "NI v1",
    "InstructionInduction": "Instr. Induction",
}


def results_markdown(results: dict[str, Any]) -> str:
    """results.md: one row per strategy, then the paired tests and provenance.

    A selection-only run (no generator) has the task-match table alone.
    """
    strategies = results["strategies"]
    collections = sorted(
        {name for metrics in strategies.values() for name in metrics["same_task_by_collection"]},
        key=lambda name: (list(COLLECTION_LABELS).index(name) if name in COLLECTION_LABELS else 99, name),
    )
    labels = [COLLECTION_LABELS.get(c, c) for c in collections]
    generated = results["model"] is not None
    wording = "reworded requests (--requests)" if results.get("requests") else "the pool's own wording"
    same_task_table = _report.markdown_table(
        ["strategy", "same-task", *labels],
        [
            [
                name,
                _report.format_value(metrics["same_task_rate"]),
                *(_report.format_value(metrics["same_task_by_collection"].get(c)) for c in collections),
            ]
            for name, metrics in strategies.items()
        ],
    )
    intro = (
        f"{results['n_queries']} queries (leave-one-out) asked in {wording}, k = {results['k']}. "
        "same-task: share of demonstrations from the query's task."
    )
    if not generated:
        return "\n".join(
            [
                "# Demonstration task match by selection strategy (selection only)",
                "",
                intro,
                "",
                same_task_table,
                "",
                "## Provenance",
                "",
                _report.provenance_markdown(results),
            ]
        )
    headers = ["strategy", "accuracy [95% CI]", "same-task", *labels, "gain captured"]
    table_rows = []
    for name, metrics in strategies.items():
        table_rows.append(
            [
                name,
                _report.format_ci(metrics["accuracy"], metrics["ci95"]),
                _report.format_value(metrics["same_task_rate"]),
                *(_report.format_value(metrics["by_collection"].get(c)) for c in collections),
                _report.format_value(metrics["oracle_gain_captured"]),
            ]
        )
    paired_rows = [
        [
            key.replace("_vs_", " vs "),
            f"{value['delta']:+.3f}",
            f"[{value['ci95'][0]:+.3f}, {value['ci95'][1]:+.3f}]",
            f"{value['a_only_correct']} / {value['b_only_correct']}",
            f"{value['p_value']:.3g}",
        ]
        for key, value in results["paired"].items()
    ]
    timing_rows = [
        [
            name,
            *(_report.format_value(metrics["timings"].get(key), 1) for key in ("index_s", "select_s", "generate_s")),
            _report.format_value(metrics["timings"].get("embedded"), 0),
        ]
        for name, metrics in results["strategies"].items()
    ]
    parts = [
        "# ICL accuracy by demonstration-selection strategy",
        "",
        f"{intro} {results['backend']} `{Path(results['model']).name}`, greedy, "
        f"max_tokens = {results['max_tokens']}, stop at newline. "
        "Accuracy (per collection in the middle columns): normalised exact match (or the row's "
        "`contains` / `exact_set` metric). gain captured: (acc - acc_random) / (acc_oracle - acc_random).",
        "",
        _report.markdown_table(headers, table_rows),
        "",
        "## Same-task rate per collection",
        "",
        same_task_table,
        "",
        "## Paired comparisons (same queries)",
        "",
        "delta = accuracy difference; CI = paired bootstrap; only-correct = queries only the first / "
        "only the second answers correctly; p = exact McNemar.",
        "",
        _report.markdown_table(["comparison", "delta", "95% CI", "only-correct", "p"], paired_rows)
        if paired_rows
        else "(no pair of compared strategies in this run)",
        "",
        "## Time (s)",
        "",
        "index: load the embedder and embed the pool rows missing from the cache (embedded: how many; "
        "0 = cache complete); select: all queries' demonstrations; generate: the one batched call.",
        "",
        _report.markdown_table(["strategy", "index", "select", "generate", "embedded"], timing_rows),
        "",
        f"Generator load: {results['timings']['generator_load_s']:.1f} s; "
        f"total: {results['timings']['total_s']:.1f} s.",
        "",
        "## Provenance",
        "",
        _report.provenance_markdown(results),
    ]
    return "\n".join(parts)


def write_results(results: dict[str, Any], out: str | Path) -> dict[str, Path]:
    """Write results.json (without per-query records), predictions.jsonl, results.md and, when
    answers were generated, accuracy.png."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {key: value for key, value in results.items() if key != "predictions"}
    paths = {"json": _report.write_json(out / "results.json", summary)}
    lines = [json.dumps(record, ensure_ascii=False) for record in results.get("predictions", [])]
    paths["predictions"] = out / "predictions.jsonl"
    paths["predictions"].write_text("\n".join(lines) + "\n", "utf-8")
    paths["markdown"] = _report.write_markdown(out / "results.md", results_markdown(results))
    if results["model"] is not None:
        names = list(results["strategies"])
        paths["plot"] = _report.bar_chart(
            out / "accuracy.png",
            names,
            [results["strategies"][name]["accuracy"] for name in names],
            ci=[results["strategies"][name]["ci95"] for name in names],
            ylabel="accuracy",
            title=f"ICL accuracy, k={results['k']}, n={results['n_queries']} ({Path(results['model']).name})",
        )
    return paths
