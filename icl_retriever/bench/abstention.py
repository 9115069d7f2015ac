"""Abstention and label balance of the task selector on a labelled pool (iclmix dev).

Abstention (`run_abstention`): each query is selected for in three settings, leave-one-out —
`present` (only the query row is left out), `removed` (the query's whole task is left out of the
pool, so every demonstration is of another task) and, for fitting only, `wording` (every example
with the query's task wording is left out, so same-task candidates exist only in other words).
The top candidates' signals (`task_score.task_features`) and gold same-task labels fit the
`task_score` calibration on the pool's own wording; the numbers reported are held out: the
queries' tasks are split into folds, and each fold is scored by a calibration fit on the other
folds' tasks. Requests in other words (`dev_fresh.jsonl`) are only ever scored, never fit on.
A threshold keeps the candidates whose score reaches it and then the top k of those, which is
what `TaskExampleSelector(min_task_score=...)` does.

Label balance (`run_balance`): the share of queries whose k demonstrations have different
outputs, with and without `balance_labels`.

Gold task labels build the settings, fit and score the calibration; selection never reads them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from icl_retriever.bench import _report
from icl_retriever.bench.icl import LogFn, _stderr, embedding_store
from icl_retriever.bench.icl_data import IclRow, file_digest, load_rows, reworded
from icl_retriever.errors import IclRetrieverError
from icl_retriever.lexical import normalize_answer
from icl_retriever.selectors import RequestViews, TaskExampleSelector
from icl_retriever.vectorstore import ExampleVectorStore, Hit
from icl_retriever.task_score import FEATURES, TaskScoreCalibration, task_features

#: Candidates per query and setting that are kept (thresholds may reach below the top k).
TOP = 10
#: Candidates per query and setting that the calibration is fit on.
FIT_TOP = 5
#: Largest share of `present` requests that may be answered zero-shot at the recommended threshold.
MAX_WRONG_ABSTAIN = 0.05
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.01, 1.0, 0.01))
#: Rows of the sweep shown in results.md (results.json has every threshold).
SHOWN_EVERY = 5
#: Queries per store query: a removed task adds its ids to every query's `n_results`.
BATCH = 16
#: Logistic regression's inverse regularisation strength.
C = 10.0
FIT_SETTINGS = ("present", "removed", "wording")


@dataclass
class Candidates:
    """One query's top candidates in one setting, best first."""

    query: str
    task: str
    features: np.ndarray
    same: np.ndarray


class _Recorder(TaskExampleSelector):
    """The task selector, keeping each request's ranked candidates with their features."""

    def _score(self, hits: list[Hit], request: RequestViews) -> list[Hit]:
        ranked = super()._score(hits, request)
        if hits:
            features = task_features(self.signals(hits, request), self.group_size)
            row = {hit.example.key: i for i, hit in enumerate(hits)}
            self.__dict__.setdefault("_recorded", []).append((ranked, features[[row[h.example.key] for h in ranked]]))
        else:
            self.__dict__.setdefault("_recorded", []).append(([], np.zeros((0, len(FEATURES)))))
        return ranked


def collect(
    store: ExampleVectorStore, queries: Sequence[IclRow], exclusions: Sequence[Sequence[str]], rows: dict[str, IclRow]
) -> list[Candidates]:
    """The `TOP` ranked candidates of each query (default selector weights) with features and labels."""
    neutral = TaskScoreCalibration(intercept=0.0, weights=[0.0] * len(FEATURES))
    selector = _Recorder(store=store, k=TOP, calibration=neutral)
    out: list[Candidates] = []
    for start in range(0, len(queries), BATCH):
        chunk = queries[start : start + BATCH]
        selector.__dict__["_recorded"] = []
        selector.select_hits_many(
            [{"instruction": q.example.instruction, "input": q.example.input} for q in chunk],
            exclusions[start : start + BATCH],
        )
        for query, (ranked, features) in zip(chunk, selector.__dict__["_recorded"], strict=True):
            ranked, features = ranked[:TOP], features[:TOP]
            same = np.array([rows[hit.example.key].task == query.task for hit in ranked], dtype=bool)
            out.append(Candidates(query.id, query.task, features, same))
    return out


def fit_calibration(items: Sequence[Candidates], *, fit: dict[str, Any] | None = None) -> TaskScoreCalibration:
    """Logistic regression of same-task on the features of each item's `FIT_TOP` best candidates."""
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([item.features[:FIT_TOP] for item in items])
    y = np.concatenate([item.same[:FIT_TOP] for item in items])
    if len(set(y.tolist())) < 2:
        raise IclRetrieverError("Cannot fit the task-score calibration: the candidates are all of one kind.")
    model = LogisticRegression(C=C, max_iter=2000).fit(x, y)
    return TaskScoreCalibration(
        intercept=float(model.intercept_[0]), weights=[float(w) for w in model.coef_[0]], fit=fit or {}
    )


def task_folds(tasks: Sequence[str], folds: int, seed: int) -> dict[str, int]:
    """Each task's fold: tasks shuffled with the seed, then dealt out in turn."""
    order = sorted(set(tasks))
    random.Random(seed).shuffle(order)
    return {task: i % folds for i, task in enumerate(order)}


def decide(probabilities: np.ndarray, threshold: float, k: int) -> np.ndarray:
    """Indices of the demonstrations kept: the best-ranked k of those reaching the threshold."""
    return np.flatnonzero(probabilities >= threshold)[:k]


def threshold_metrics(
    present: Sequence[tuple[np.ndarray, np.ndarray]], removed: Sequence[tuple[np.ndarray, np.ndarray]], threshold: float, k: int
) -> dict[str, float]:
    """At one threshold: abstention (no demonstration) and removed demonstrations, per setting.

    `present` / `removed` hold (probabilities, same-task) per query, candidates best first.
    """
    kept_present = [decide(p, threshold, k) for p, _ in present]
    kept_removed = [decide(p, threshold, k) for p, _ in removed]
    same_before = sum(int(same[:k].sum()) for _, same in present)
    wrong_before = sum(int((~same[:k]).sum()) for _, same in present)
    same_after = sum(int(same[kept].sum()) for (_, same), kept in zip(present, kept_present))
    wrong_after = sum(int((~same[kept]).sum()) for (_, same), kept in zip(present, kept_present))
    removed_before = sum(min(k, len(p)) for p, _ in removed)
    return {
        "threshold": threshold,
        "present_abstain": float(np.mean([len(kept) == 0 for kept in kept_present])),
        "present_same_task_kept": same_after / same_before if same_before else None,
        "present_wrong_task_removed": 1 - wrong_after / wrong_before if wrong_before else None,
        "present_demos_per_query": float(np.mean([len(kept) for kept in kept_present])),
        "removed_abstain": float(np.mean([len(kept) == 0 for kept in kept_removed])),
        "removed_wrong_task_removed": 1 - sum(map(len, kept_removed)) / removed_before if removed_before else None,
    }


def separability(present: Sequence[tuple[np.ndarray, np.ndarray]], removed: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> dict[str, float]:
    """AUC, Brier score and expected calibration error (10 bins) of the top-k candidates' scores."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    p = np.concatenate([probs[:k] for probs, _ in [*present, *removed]])
    y = np.concatenate([same[:k] for _, same in [*present, *removed]]).astype(float)
    bins = np.minimum((p * 10).astype(int), 9)
    ece = sum(abs(p[bins == b].mean() - y[bins == b].mean()) * (bins == b).mean() for b in range(10) if (bins == b).any())
    return {
        "auc": float(roc_auc_score(y, p)) if 0 < y.mean() < 1 else None,
        "brier": float(brier_score_loss(y, p)),
        "ece": float(ece),
        "mean_score": float(p.mean()),
        "same_task_share": float(y.mean()),
        "n": int(len(y)),
    }


def run_abstention(
    pool: str | Path,
    query_ids: Sequence[str],
    *,
    requests: dict[str, tuple[str, str]] | None = None,
    k: int = 2,
    folds: int = 2,
    seed: int = 0,
    repeats: int = 1,
    cache: str | Path | None = None,
    log: LogFn = _stderr,
) -> tuple[dict[str, Any], TaskScoreCalibration]:
    """Cross-fitted abstention metrics on both wordings, and the calibration fit on all the queries
    in the pool's wording (what ships as `weights/task-score.json`).

    `repeats` > 1 also splits the tasks into folds with the seeds after `seed` (`results["splits"]`:
    each split's own recommended threshold and its numbers there), since one split of 58 tasks
    into folds moves the held-out numbers by several points."""
    from icl_retriever.models import cache_dir

    start = time.perf_counter()
    rows = load_rows(pool)
    missing = [qid for qid in query_ids if qid not in rows]
    if missing or not query_ids:
        raise IclRetrieverError(f"Query ids missing from {pool}: {missing[:5] or '(no query ids given)'}.")
    cache_path = Path(cache) if cache is not None else cache_dir() / "bench" / file_digest(pool)
    store, _ = embedding_store("task", [row.example for row in rows.values()], cache_path, log=log)
    by_task: dict[str, list[str]] = {}
    for row in rows.values():
        by_task.setdefault(row.task, []).append(row.id)
    by_wording: dict[str, list[str]] = {}
    wording_of: dict[str, str] = {}
    for page in store.iter_records():
        for hit in page:
            wording_of[hit.example.key] = hit.task_text or hit.example.key
            by_wording.setdefault(wording_of[hit.example.key], []).append(hit.example.key)

    originals = [rows[qid] for qid in query_ids]
    wordings = {"original": originals}
    if requests is not None:
        wordings["fresh"] = [reworded(row, *requests[row.id]) for row in originals]
    exclusions = {
        "present": [[row.id] for row in originals],
        "removed": [by_task[row.task] for row in originals],
        "wording": [by_wording[wording_of[row.id]] for row in originals],
    }
    data: dict[tuple[str, str], list[Candidates]] = {}
    for wording, queries in wordings.items():
        for setting in ("present", "removed", "wording") if wording == "original" else ("present", "removed"):
            t0 = time.perf_counter()
            data[(wording, setting)] = collect(store, queries, exclusions[setting], rows)
            log(f"[{wording}/{setting}] ranked {len(queries)} queries in {time.perf_counter() - t0:.1f} s")

    tasks = [row.task for row in originals]
    fold_of, fitted = cross_fit(data, tasks, folds, seed)
    shipped = fit_calibration(
        [c for s in FIT_SETTINGS for c in data[("original", s)]],
        fit={
            "data": f"{Path(pool).name} queries {len(query_ids)} (pool wording), settings {list(FIT_SETTINGS)}",
            "candidates_per_query": FIT_TOP,
            "C": C,
            "selector": "TaskExampleSelector defaults",
        },
    )

    evaluations: dict[str, Any] = {}
    for wording in wordings:
        for name, model in (("cross-fit", None), ("all-original fit", shipped)):
            if wording == "original" and model is not None:
                continue  # in-sample: not reported
            present = scored(data[(wording, "present")], model, fitted, fold_of)
            removed = scored(data[(wording, "removed")], model, fitted, fold_of)
            evaluations[f"{wording} ({name})"] = {
                "wording": wording,
                "calibration": name,
                "separability": separability(present, removed, k),
                "thresholds": [threshold_metrics(present, removed, t, k) for t in THRESHOLDS],
                "baseline_same_task": float(np.mean([same[:k].mean() for _, same in present if len(same)])),
            }
    chosen = choose_threshold(evaluations["original (cross-fit)"]["thresholds"])
    shipped = shipped.model_copy(update={"fit": {**shipped.fit, "recommended_min_task_score": chosen}})
    for evaluation in evaluations.values():
        evaluation["at_recommended"] = next(
            (m for m in evaluation["thresholds"] if chosen is not None and m["threshold"] == chosen), None
        )
    results = {
        "benchmark": "abstention",
        "pool": str(pool),
        "pool_digest": file_digest(pool),
        "n_queries": len(query_ids),
        "k": k,
        "folds": folds,
        "seed": seed,
        "features": list(FEATURES),
        "fold_weights": [model.model_dump(exclude={"fit"}) for model in fitted],
        "shipped": shipped.model_dump(),
        "recommended_threshold": chosen,
        "max_wrong_abstain": MAX_WRONG_ABSTAIN,
        "evaluations": evaluations,
        "splits": [
            split_outcome(data, list(wordings), (fold_of, fitted) if r == 0 else cross_fit(data, tasks, folds, seed + r), seed + r, k)
            for r in range(repeats)
        ],
        "total_s": round(time.perf_counter() - start, 1),
    }
    return results, shipped


def cross_fit(
    data: dict[tuple[str, str], list[Candidates]], tasks: Sequence[str], folds: int, seed: int
) -> tuple[dict[str, int], list[TaskScoreCalibration]]:
    """Each task's fold, and per fold the calibration fit on the other folds' tasks (pool wording)."""
    fold_of = task_folds(tasks, folds, seed)
    fitted = [
        fit_calibration([c for s in FIT_SETTINGS for c in data[("original", s)] if fold_of[c.task] != f])
        for f in range(folds)
    ]
    return fold_of, fitted


def scored(
    items: Sequence[Candidates],
    model: TaskScoreCalibration | None,
    fitted: Sequence[TaskScoreCalibration],
    fold_of: dict[str, int],
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(probabilities, same-task) per query; model None: cross-fitted, each query scored by the fit
    that never saw its task."""
    return [
        ((model or fitted[fold_of[c.task]]).probability(c.features) if len(c.features) else np.zeros(0), c.same)
        for c in items
    ]


def split_outcome(
    data: dict[tuple[str, str], list[Candidates]],
    wordings: Sequence[str],
    split: tuple[dict[str, int], list[TaskScoreCalibration]],
    seed: int,
    k: int,
) -> dict[str, Any]:
    """One split of the tasks into folds (`cross_fit` with `seed`): the threshold it recommends
    (original wording, cross-fit) and each wording's numbers at that threshold."""
    fold_of, fitted = split
    sweeps = {}
    for wording in wordings:
        present = scored(data[(wording, "present")], None, fitted, fold_of)
        removed = scored(data[(wording, "removed")], None, fitted, fold_of)
        sweeps[wording] = [threshold_metrics(present, removed, t, k) for t in THRESHOLDS]
    chosen = choose_threshold(sweeps["original"])
    at = {wording: next((m for m in sweep if m["threshold"] == chosen), None) for wording, sweep in sweeps.items()}
    return {"seed": seed, "threshold": chosen, **at}


def choose_threshold(thresholds: Sequence[dict[str, Any]]) -> float | None:
    """The threshold that removes most wrong-task demonstrations in the removed-task setting while
    abstaining on at most `MAX_WRONG_ABSTAIN` of requests whose task is present (None: none does)."""
    allowed = [m for m in thresholds if m["present_abstain"] <= MAX_WRONG_ABSTAIN]
    if not allowed:
        return None
    return max(allowed, key=lambda m: (m["removed_wrong_task_removed"], -m["threshold"]))["threshold"]


def abstention_markdown(results: dict[str, Any], command: str) -> str:
    """results.md: separability, the recommended threshold on each wording, the threshold sweep."""
    chosen = results["recommended_threshold"]
    k = results["k"]
    summary = []
    for name, evaluation in results["evaluations"].items():
        sep, at = evaluation["separability"], evaluation["at_recommended"] or {}
        summary.append(
            [
                name,
                _report.format_value(sep["auc"]),
                _report.format_value(sep["brier"]),
                _report.format_value(sep["ece"]),
                _report.format_value(at.get("removed_wrong_task_removed")),
                _report.format_value(at.get("removed_abstain")),
                _report.format_value(at.get("present_abstain")),
                _report.format_value(at.get("present_same_task_kept")),
                _report.format_value(at.get("present_wrong_task_removed")),
            ]
        )
    parts = [
        "# Abstention: does `task_score` keep wrong-task demonstrations out?",
        "",
        f"{results['n_queries']} queries of `{Path(results['pool']).name}`, k = {k}, leave-one-out. "
        "removed: the query's whole task is left out of the pool (every demonstration is of another task); "
        "present: only the query row is left out. A threshold keeps the candidates whose `task_score` reaches it, "
        f"then the best {k}. Held out: the query tasks are split into {results['folds']} folds (seed "
        f"{results['seed']}) and each fold is scored by a calibration fit on the other folds' tasks, in the "
        "pool's wording only; `fresh` requests are never fit on (`all-original fit` = the shipped calibration, "
        "fit on every query's task in the pool's wording).",
        "",
        f"Recommended threshold (chosen on the original wording, cross-fit: most wrong-task demonstrations "
        f"removed with at most {results['max_wrong_abstain']:.0%} of present-task requests answered zero-shot): "
        f"**{chosen if chosen is not None else 'none qualifies'}**.",
        "",
        _report.markdown_table(
            [
                "wording (calibration)",
                "AUC",
                "Brier",
                "ECE",
                "removed: wrong demos removed",
                "removed: abstains",
                "present: abstains",
                "present: same-task kept",
                "present: wrong-task removed",
            ],
            summary,
        ),
        "",
        f"AUC, Brier, ECE: the top {k} candidates' scores against same-task, both settings pooled. Issue 13's "
        "floors: removed-task wrong demos removed >= 0.80 with present-task abstention <= 0.05. present: "
        "wrong-task removed is 1 - wrong-task demonstrations kept / wrong-task demonstrations without a threshold; "
        "negative where dropping a candidate lets a lower-ranked one of another task in.",
    ]
    splits = results.get("splits", [])
    if len(splits) > 1:
        parts += ["", f"## {len(splits)} splits of the tasks into {results['folds']} folds", "",
                  "Each split recommends its own threshold (as above); its held-out numbers there:", "",
                  _splits_table(splits)]
    for name, evaluation in results["evaluations"].items():
        parts += [
            "",
            f"## Threshold sweep: {name}",
            "",
            _report.markdown_table(
                ["threshold", "removed: wrong removed", "removed: abstains", "present: abstains", "present: same-task kept",
                 "present: wrong-task removed", "present: demos / query"],
                [
                    [
                        f"{m['threshold']:.2f}",
                        _report.format_value(m["removed_wrong_task_removed"]),
                        _report.format_value(m["removed_abstain"]),
                        _report.format_value(m["present_abstain"]),
                        _report.format_value(m["present_same_task_kept"]),
                        _report.format_value(m["present_wrong_task_removed"]),
                        _report.format_value(m["present_demos_per_query"], 2),
                    ]
                    for m in evaluation["thresholds"]
                    if round(m["threshold"] * 100) % SHOWN_EVERY == 0 or m["threshold"] == chosen
                ],
            ),
        ]
    shipped = results["shipped"]
    parts += [
        "",
        "## Shipped calibration",
        "",
        "task_score = sigmoid(" + f"{shipped['intercept']:.3f}"
        + "".join(f" {w:+.3f} x {f}" for w, f in zip(shipped["weights"], shipped["features"])) + ")",
        "",
        f"Command: `{command}`",
        "",
        f"Total time: {results['total_s']:.0f} s.",
    ]
    return "\n".join(parts)


def _splits_table(splits: Sequence[dict[str, Any]]) -> str:
    columns = [(w, key) for w in ("original", "fresh") if w in splits[0] for key in ("removed_wrong_task_removed", "present_abstain")]
    rows = [
        [str(split["seed"]), _report.format_value(split["threshold"], 2),
         *[_report.format_value((split[w] or {}).get(key)) for w, key in columns]]
        for split in splits
    ]
    means = [np.mean([split[w][key] for split in splits if split[w]]) if any(split[w] for split in splits) else None for w, key in columns]
    rows.append(["mean", "", *[_report.format_value(m) for m in means]])
    headers = ["fold seed", "threshold", *[f"{w}: {'removed: wrong demos removed' if key.startswith('removed') else 'present: abstains'}" for w, key in columns]]
    return _report.markdown_table(headers, rows)


def write_results(out: str | Path, results: dict[str, Any], header: dict[str, Any], markdown: str) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return [
        _report.write_json(out / "results.json", {**header, **results}),
        _report.write_markdown(out / "results.md", markdown + "\n\n## Provenance\n\n" + _report.provenance_markdown(header)),
    ]


# ------------------------------------------------------------------------------- label balance


def run_balance(
    pool: str | Path,
    query_ids: Sequence[str],
    *,
    requests: dict[str, tuple[str, str]] | None = None,
    k: int = 2,
    cache: str | Path | None = None,
    max_labels: int = 10,
    log: LogFn = _stderr,
) -> dict[str, Any]:
    """How often the k demonstrations have different outputs, without and with `balance_labels`.

    A query's task counts as a classification for the report (gold) when its pool rows take at most
    `max_labels` distinct outputs; the selector decides without labels (`classification_group`).
    """
    from icl_retriever.models import cache_dir
    from icl_retriever.selectors import balance_labels, classification_group

    start = time.perf_counter()
    rows = load_rows(pool)
    cache_path = Path(cache) if cache is not None else cache_dir() / "bench" / file_digest(pool)
    store, _ = embedding_store("task", [row.example for row in rows.values()], cache_path, log=log)
    labels: dict[str, set[str]] = {}
    for row in rows.values():
        labels.setdefault(row.task, set()).add(normalize_answer(row.example.output))
    gold = {task for task, values in labels.items() if len(values) <= max_labels}
    originals = [rows[qid] for qid in query_ids]
    wordings = {"original": originals}
    if requests is not None:
        wordings["fresh"] = [reworded(row, *requests[row.id]) for row in originals]
    selector = TaskExampleSelector(store=store, k=TaskExampleSelector.model_fields["fetch_k"].default)
    results: dict[str, Any] = {}
    for wording, queries in wordings.items():
        ranked: list[list[Hit]] = []
        for begin in range(0, len(queries), BATCH):
            chunk = queries[begin : begin + BATCH]
            found = selector.select_hits_many(
                [{"instruction": q.example.instruction, "input": q.example.input} for q in chunk],
                [[q.id] for q in chunk],
            )
            ranked += [list(reversed(hits)) for hits in found]  # best first
        flagged = [classification_group(hits) is not None for hits in ranked]
        variants = {"without": [hits[:k] for hits in ranked], "with": [balance_labels(hits)[:k] for hits in ranked]}
        is_gold = [query.task in gold for query in originals]
        per: dict[str, Any] = {}
        for name, demos in variants.items():
            different = [len({normalize_answer(h.example.output) for h in chosen}) > 1 for chosen in demos]
            same_task = [rows[h.example.key].task == q.task for q, chosen in zip(queries, demos) for h in chosen]
            answer_shown = [
                any(normalize_answer(h.example.output) in {normalize_answer(a) for a in q.answers} for h in chosen)
                for q, chosen in zip(queries, demos)
            ]
            per[name] = {
                "different_outputs_gold_classification": _share(different, is_gold),
                "different_outputs_flagged": _share(different, flagged),
                "gold_answer_among_demo_outputs_gold_classification": _share(answer_shown, is_gold),
                "same_task_rate": float(np.mean(same_task)) if same_task else None,
            }
        changed = sum(a != b for a, b in zip(
            [[h.example.key for h in d] for d in variants["without"]],
            [[h.example.key for h in d] for d in variants["with"]],
        ))
        results[wording] = {
            "queries": len(queries),
            "gold_classification": int(sum(is_gold)),
            "flagged": int(sum(flagged)),
            "flagged_and_gold": int(sum(f and g for f, g in zip(flagged, is_gold))),
            "changed": int(changed),
            **per,
        }
        log(f"[balance/{wording}] {results[wording]}")
    return {
        "benchmark": "balance",
        "pool": str(pool),
        "pool_digest": file_digest(pool),
        "n_queries": len(query_ids),
        "k": k,
        "max_labels": max_labels,
        "wordings": results,
        "total_s": round(time.perf_counter() - start, 1),
    }


def _share(values: Sequence[bool], mask: Sequence[bool]) -> float | None:
    chosen = [value for value, keep in zip(values, mask) if keep]
    return float(np.mean(chosen)) if chosen else None


def balance_markdown(results: dict[str, Any], command: str) -> str:
    """results.md of `run_balance`."""
    rows = []
    for wording, r in results["wordings"].items():
        for name in ("without", "with"):
            m = r[name]
            rows.append(
                [
                    wording,
                    name,
                    _report.format_value(m["different_outputs_gold_classification"]),
                    _report.format_value(m["different_outputs_flagged"]),
                    _report.format_value(m["gold_answer_among_demo_outputs_gold_classification"]),
                    _report.format_value(m["same_task_rate"]),
                ]
            )
    counts = [
        [wording, r["queries"], r["gold_classification"], r["flagged"], r["flagged_and_gold"], r["changed"]]
        for wording, r in results["wordings"].items()
    ]
    return "\n".join(
        [
            "# Label-balanced demonstrations (`balance_labels`)",
            "",
            f"{results['n_queries']} queries of `{Path(results['pool']).name}`, k = {results['k']}, leave-one-out, "
            "selection only. gold classification: the query's task takes at most "
            f"{results['max_labels']} distinct outputs in the pool (used for this report only); flagged: the selector "
            "judged the task a classification from its fetched candidates (no label read).",
            "",
            _report.markdown_table(
                ["wording", "balance_labels", "different outputs (gold classification)", "different outputs (flagged)",
                 "gold answer among demo outputs (gold classification)", "same-task rate (all)"],
                rows,
            ),
            "",
            _report.markdown_table(
                ["wording", "queries", "gold classification", "flagged", "flagged and gold", "demonstrations changed"],
                counts,
            ),
            "",
            f"Command: `{command}`",
            "",
            f"Total time: {results['total_s']:.0f} s.",
        ]
    )
