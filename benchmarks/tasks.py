"""Task discovery on a labelled pool: do the tasks `icl-retriever tasks` finds match the pool's own?

The pool's `task` ids are read from its file for this report only; discovery never sees them.
Reported: the adjusted Rand index against the task ids, tasks found against the true number, how
many of the query tasks (the tasks of the query ids) come out as one cluster (all their examples
together; `pure`: and nothing else with them), and the gold-task coverage of task-covering samples
(round-robin, farthest-point) against seeded random samples of the same sizes.

Example:
    >>> results = evaluate_tasks(ExampleStore.open("pool"), "../shared/data/iclmix/pool.jsonl",
    ...                          read_query_ids("../shared/data/iclmix/dev_ids.txt"))   # doctest: +SKIP
    >>> results["ari"]                                                                  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import _report
from icl_retriever.errors import IclRetrieverError
from icl_retriever.store import ExampleStore
from icl_retriever.tasks import DEFAULT_THRESHOLD, StoredPool, discover_tasks, plot_task_similarity, sample_examples

#: Sample sizes compared, as multiples of the true number of tasks.
SAMPLE_MULTIPLES: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0)
METHODS = ("round-robin", "farthest")


def read_task_ids(pool: str | Path) -> dict[str, str]:
    """Example id -> `task` from a JSONL pool file (every row must have both)."""
    out: dict[str, str] = {}
    for number, line in enumerate(Path(pool).read_text("utf-8").splitlines(), start=1):
        if line.strip():
            row = json.loads(line)
            if "id" not in row or "task" not in row:
                raise IclRetrieverError(f"{pool}:{number}: every row needs `id` and `task` for this benchmark.")
            out[row["id"]] = row["task"]
    return out


def evaluate_tasks(
    store: ExampleStore,
    pool: str | Path,
    query_ids: Sequence[str],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    seed: int = 0,
    plot: str | Path | None = None,
) -> dict[str, Any]:
    """Discovery and sampling metrics of `store` against the task ids in `pool` (see module doc)."""
    from sklearn.metrics import adjusted_rand_score

    gold = read_task_ids(pool)
    stored = StoredPool.read(store)
    keys = [e.key for e in stored.examples]
    if set(keys) != set(gold):
        raise IclRetrieverError(f"The index holds {len(keys)} ids and {pool} {len(gold)}; they must be the same rows.")
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
    samples = {}
    for multiple in SAMPLE_MULTIPLES:
        n = round(multiple * len(members))
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
        "ari": adjusted_rand_score([gold[k] for k in keys], [cluster_of[k] for k in keys]),
        "n_tasks_found": task_map.n_tasks,
        "n_tasks_true": len(members),
        "singletons": len(keys) - sum(t.size for t in task_map.tasks[: task_map.n_tasks]),
        "near_duplicate_groups": len(task_map.duplicates),
        "query_tasks": len(query_tasks),
        "query_tasks_one_cluster": len(together),
        "query_tasks_one_pure_cluster": len(pure),
        "query_tasks_split": [t for t in query_tasks if t not in together],
        "samples": samples,
        "random_draws": reports["round-robin"].random_draws,
        "largest_tasks": [{"name": t.name, "size": t.size, "representative": t.representative} for t in task_map.tasks[:15]],
    }


def results_markdown(results: dict[str, Any], command: str) -> str:
    r = results
    rows = [
        ["ARI against the task ids", f"{r['ari']:.3f}"],
        ["tasks found (true)", f"{r['n_tasks_found']} ({r['n_tasks_true']})"],
        ["examples left as singletons", r["singletons"]],
        ["query tasks whose examples form one cluster", f"{r['query_tasks_one_cluster']} of {r['query_tasks']}"],
        ["... and that cluster holds nothing else", f"{r['query_tasks_one_pure_cluster']} of {r['query_tasks']}"],
        ["near-duplicate groups", r["near_duplicate_groups"]],
    ]
    sample_rows = [
        [n, s["round-robin"], s["farthest"], f"{s['random']:.1f}"] for n, s in r["samples"].items()
    ]
    return "\n\n".join(
        [
            f"# Task discovery on {r['examples']} examples (threshold {r['threshold']})",
            _report.markdown_table(["metric", "value"], rows),
            f"Gold tasks covered by a sample of n examples (of {r['n_tasks_true']}; random: mean of "
            f"{r['random_draws']} seeded draws):",
            _report.markdown_table(["n", "round-robin", "farthest-point", "random"], sample_rows),
            "Query tasks split over clusters: " + (", ".join(r["query_tasks_split"]) or "none") + ".",
            "![task similarity](heatmap.png)",
            f"Reproduce (from the repository root):\n\n```\n{command}\n```",
        ]
    )


def write_results(out: str | Path, results: dict[str, Any], header: dict[str, Any]) -> list[Path]:
    """results.json (with provenance) and results.md in `out` (the heatmap is written by the run)."""
    out = Path(out)
    md = results_markdown(results, header["command"]) + "\n\n" + _report.provenance_markdown(header)
    return [_report.write_json(out / "results.json", {**header, "results": results}), _report.write_markdown(out / "results.md", md)]
