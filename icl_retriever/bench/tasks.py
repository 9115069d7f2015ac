"""Task discovery on a labelled pool: do the tasks `icl-retriever tasks` finds match the pool's own?

The stored examples' `task` labels are read for this report only; discovery never sees them.
Reported: the adjusted Rand index against the labels, tasks found against the true number, how
many of the query tasks (the tasks of the query ids) come out as one cluster (all their examples
together; `pure`: and nothing else with them), the gold-task coverage of task-covering samples
(round-robin, farthest-point) against seeded random samples of the same sizes, and the ARI at
other thresholds (`threshold_sweep`: how `DEFAULT_THRESHOLD` was chosen on the tuning pools, and a
sensitivity check elsewhere).

Example:
    >>> results = evaluate_tasks(ExampleStore.open("iclmix"),
    ...                          read_query_ids("../shared/data/iclmix/dev_ids.txt"))   # doctest: +SKIP
    >>> results["ari"]                                                                  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from icl_retriever.bench import _report
from icl_retriever.errors import IclRetrieverError
from icl_retriever.example import Example
from icl_retriever.tasks import DEFAULT_THRESHOLD, StoredPool, discover_tasks, plot_task_similarity, sample_examples

#: Sample sizes compared, as multiples of the true number of tasks.
SAMPLE_MULTIPLES: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0)
METHODS = ("round-robin", "farthest")
#: A task is mostly in one cluster when this share of its examples is.
MOSTLY = 0.9
#: Thresholds of the sweep (the default is among them).
THRESHOLDS: tuple[float, ...] = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)


def gold_tasks(stored: StoredPool) -> dict[str, str]:
    """Example id -> `task`; every stored example must have one."""
    missing = sum(e.task is None for e in stored.examples)
    if missing:
        raise IclRetrieverError(f"{missing} stored examples have no `task`: this benchmark needs a labelled pool.")
    return {e.key: e.task for e in stored.examples if e.task is not None}


def threshold_sweep(stored: StoredPool, thresholds: Sequence[float] = THRESHOLDS) -> dict[str, dict[str, float]]:
    """ARI against the stored `task` labels and tasks found (clusters of 2+), per threshold."""
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    gold = list(gold_tasks(stored).values())
    out = {}
    for threshold in thresholds:
        labels = stored.clusters(threshold)
        out[f"{threshold:g}"] = {
            "ari": float(adjusted_rand_score(gold, labels)),
            "n_tasks": int((np.bincount(labels) > 1).sum()),
        }
    return out


def evaluate_tasks(
    stored: StoredPool,
    query_ids: Sequence[str] = (),
    *,
    threshold: float = DEFAULT_THRESHOLD,
    seed: int = 0,
    plot: str | Path | None = None,
) -> dict[str, Any]:
    """Discovery and sampling metrics against the stored `task` labels (see the module docstring)."""
    gold = gold_tasks(stored)
    keys = list(gold)
    task_map = discover_tasks(stored, threshold=threshold)
    cluster_of = task_map.assignment()
    members: dict[str, list[str]] = defaultdict(list)
    for key, task in gold.items():
        members[task].append(key)
    sizes: dict[int, int] = defaultdict(int)
    for number in cluster_of.values():
        sizes[number] += 1
    query_tasks = sorted({gold[key] for key in query_ids})
    together = [t for t in query_tasks if len({cluster_of[k] for k in members[t]}) == 1]
    pure = [t for t in together if sizes[cluster_of[members[t][0]]] == len(members[t])]
    mostly = [t for t in query_tasks if _largest_share(members[t], cluster_of) >= MOSTLY]
    samples = {}
    for multiple in SAMPLE_MULTIPLES:
        n = min(round(multiple * len(members)), len(keys))
        reports = {m: sample_examples(stored, n, method=m, task_map=task_map, seed=seed) for m in METHODS}  # type: ignore[arg-type]
        samples[str(n)] = {
            **{m: r.coverage.gold_tasks for m, r in reports.items()},
            "random": reports["round-robin"].random.gold_tasks,
            "discovered": {m: r.coverage.tasks for m, r in reports.items()} | {"random": reports["round-robin"].random.tasks},
        }
    if plot is not None:
        plot_task_similarity(task_map, plot)
    return {
        "threshold": threshold,
        "examples": len(keys),
        "ari": task_map.ari,
        "n_tasks_found": task_map.n_tasks,
        "n_tasks_true": len(members),
        "singletons": len(keys) - sum(t.size for t in task_map.tasks[: task_map.n_tasks]),
        "near_duplicate_groups": len(task_map.duplicates),
        "query_tasks": len(query_tasks),
        "query_tasks_one_cluster": len(together),
        "query_tasks_one_pure_cluster": len(pure),
        "query_tasks_mostly_one_cluster": len(mostly),
        "query_tasks_split": [t for t in query_tasks if t not in together],
        "samples": samples,
        "random_draws": reports["round-robin"].random_draws,
        "threshold_sweep": threshold_sweep(stored),
        "largest_tasks": [{"name": t.name, "size": t.size, "representative": t.representative} for t in task_map.tasks[:15]],
    }


def results_markdown(results: dict[str, Any], command: str) -> str:
    r = results
    rows = [
        ["ARI against the task labels", f"{r['ari']:.3f}"],
        ["tasks found (true)", f"{r['n_tasks_found']} ({r['n_tasks_true']})"],
        ["examples left as singletons", r["singletons"]],
        ["near-duplicate groups", r["near_duplicate_groups"]],
    ]
    if r["query_tasks"]:
        rows[2:2] = [
            ["query tasks whose examples form one cluster", f"{r['query_tasks_one_cluster']} of {r['query_tasks']}"],
            ["... and that cluster holds nothing else", f"{r['query_tasks_one_pure_cluster']} of {r['query_tasks']}"],
            [f"query tasks with {MOSTLY:.0%} of their examples in one cluster",
             f"{r['query_tasks_mostly_one_cluster']} of {r['query_tasks']}"],
        ]
    sample_rows = [[n, s["round-robin"], s["farthest"], f"{s['random']:.1f}"] for n, s in r["samples"].items()]
    parts = [
        f"# Task discovery on {r['examples']} examples (threshold {r['threshold']})",
        _report.markdown_table(["metric", "value"], rows),
        f"Gold tasks covered by a sample of n examples (of {r['n_tasks_true']}; random: mean of "
        f"{r['random_draws']} seeded draws):",
        _report.markdown_table(["n", "round-robin", "farthest-point", "random"], sample_rows),
        "ARI at other thresholds (a sensitivity check, never used to choose the default):",
        sweep_table(r["threshold_sweep"]),
    ]
    if r["query_tasks"]:
        parts.append("Query tasks split over clusters: " + (", ".join(r["query_tasks_split"]) or "none") + ".")
    parts += ["![task similarity](heatmap.png)", f"Reproduce (from the repository root):\n\n```\n{command}\n```"]
    return "\n\n".join(parts)


def _largest_share(keys: Sequence[str], cluster_of: dict[str, int]) -> float:
    return Counter(cluster_of[k] for k in keys).most_common(1)[0][1] / len(keys)


def sweep_table(sweep: dict[str, dict[str, float]]) -> str:
    rows = [[t, f"{v['ari']:.3f}", v["n_tasks"]] for t, v in sweep.items()]
    return _report.markdown_table(["threshold", "ARI", "tasks found"], rows)


def eft_examples(path: str | Path) -> list[Example]:
    """IEB `eft_test.json` as examples labelled with their task key (ids `eft-<n>`)."""
    data = json.loads(Path(path).read_text("utf-8"))
    rows = [(label, sample) for label, block in data.items() for sample in block["samples"]]
    return [
        Example(instruction=s["instruction"], input=s.get("input") or "", output=s.get("output") or "-",
                task=label, id=f"eft-{n}")
        for n, (label, s) in enumerate(rows)
    ]


def tune_threshold(pool: str | Path, eft: str | Path, cache: str | Path) -> dict[str, Any]:
    """The threshold sweep on the tuning pools (`pool`: the built-in pool, `eft`: IEB eft_test), best mean ARI.

    Both are indexed with the task embedder under `cache` (once; later runs reuse the index).
    """
    from icl_retriever.pool import load_pool
    from icl_retriever.store import ExampleStore
    from icl_retriever.task_embedder import TaskEmbedder

    embedder = TaskEmbedder()
    sweeps = {}
    for name, examples in (("pool", load_pool(pool).examples), ("eft", eft_examples(eft))):
        store = ExampleStore(embedder, name, cache)
        store.index(examples)
        sweeps[name] = threshold_sweep(StoredPool.read(store))
    mean = {t: sum(s[t]["ari"] for s in sweeps.values()) / len(sweeps) for t in sweeps["pool"]}
    return {"sweeps": sweeps, "mean_ari": mean, "best": max(mean, key=lambda t: mean[t])}


def tuning_markdown(results: dict[str, Any], command: str) -> str:
    rows = [
        [t, *(f"{s[t]['ari']:.3f} ({s[t]['n_tasks']})" for s in results["sweeps"].values()), f"{ari:.3f}"]
        for t, ari in results["mean_ari"].items()
    ]
    headers = ["threshold", *(f"{name} ARI (tasks found)" for name in results["sweeps"]), "mean ARI"]
    return "\n\n".join(
        [
            "# Choosing the task-clustering threshold (built-in pool and IEB eft_test only)",
            _report.markdown_table(headers, rows),
            f"Best mean ARI at threshold {results['best']} (`icl_retriever.tasks.DEFAULT_THRESHOLD`).",
            f"Reproduce (from the repository root):\n\n```\n{command}\n```",
        ]
    )


def write_results(out: str | Path, results: dict[str, Any], header: dict[str, Any], markdown: str) -> list[Path]:
    """results.json (with provenance) and results.md in `out` (a heatmap is written by the run)."""
    out = Path(out)
    md = markdown + "\n\n" + _report.provenance_markdown(header)
    return [_report.write_json(out / "results.json", {**header, "results": results}), _report.write_markdown(out / "results.md", md)]
