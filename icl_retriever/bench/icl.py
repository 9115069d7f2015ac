"""ICL accuracy by demonstration-selection strategy, on a pool with verifiable answers (iclmix).

Each query is answered with k demonstrations chosen by one strategy, leave-one-out (the query's
own row is never a candidate). Selection goes through the library's selectors (`select_hits_many`)
and prompting and generation through the pipeline's own step (`icl_retriever.pipeline.answer_with`):
one generator, greedy decoding, one batched `generate` call per strategy.

Strategies: `zero` (no demonstrations), `random`, `bm25`, `semantic` (MiniLM over instruction +
input), nearest neighbours under the other embedders — `pie-minilm` (MiniLM reading the PIE
prompt), `pie-decoder` (the paper's PIE: SmolLM2 reading the PIE prompt, last token),
`minilm-verbnoun` (MiniLM fine-tuned on verb|noun labels, no prompt) — then `task` (the
library's default: `TaskExampleSelector` over the task embedder) and `oracle` (random
demonstrations of the query's own task, the ceiling).
Only the oracle ever sees a task label; the others get the query's instruction and input alone.
Inputs are read in `icl_data`, result files written in `icl_report`; this module selects,
generates, scores and runs the paired comparisons.

Example:
    >>> from icl_retriever.bench.icl_data import read_query_ids       # doctest: +SKIP
    >>> from icl_retriever.generators import make_generator          # doctest: +SKIP
    >>> results = run_icl_benchmark(                                   # doctest: +SKIP
    ...     "../shared/data/iclmix/pool.jsonl", read_query_ids("../shared/data/iclmix/dev_ids.txt"),
    ...     generator=lambda: make_generator("vllm"), strategies=["random", "task"])
    >>> results["strategies"]["task"]["accuracy"]                      # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.example_selectors import BaseExampleSelector
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from icl_retriever.bench.icl_data import IclRow, file_digest, load_rows, reworded
from icl_retriever.bench.scoring import bootstrap_ci, oracle_gain_captured, paired_comparison, score_answer
from icl_retriever.errors import IclRetrieverError
from icl_retriever.example import Example
from icl_retriever.generators import Generator
from icl_retriever.pipeline import Request, answer_with
from icl_retriever.store import ExampleStore, collection_name
from icl_retriever.vectorstore import ExampleVectorStore, Hit

STRATEGIES: tuple[str, ...] = (
    "zero", "random", "bm25", "semantic", "pie-minilm", "pie-decoder", "minilm-verbnoun", "task", "oracle",
)  # fmt: skip
#: Strategies that need the pool embedded, and the embedder kind each uses.
EMBEDDER_OF: dict[str, str] = {
    "semantic": "semantic",
    "pie-minilm": "pie-minilm",
    "pie-decoder": "pie-decoder",
    "minilm-verbnoun": "trained",
    "task": "task",
}
#: Paired tests reported when both strategies ran; the first is the headline comparison.
PAIRS: tuple[tuple[str, str], ...] = (
    ("task", "semantic"),
    ("task", "bm25"),
    ("task", "pie-minilm"),
    ("task", "pie-decoder"),
    ("task", "minilm-verbnoun"),
    ("task", "random"),
)
DEFAULT_MAX_TOKENS = 32
STOP = ("\n",)
LogFn = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------ selectors


class OracleSelector(BaseExampleSelector, BaseModel):
    """Reference ceiling: random demonstrations of the request's own task.

    The only selector that reads a task label, and the only thing it reads is `task` from the
    input variables; instruction and input are ignored. Benchmark-only, never in the library.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    examples: list[Example]
    """The pool; examples without a task are never chosen."""
    k: int = Field(default=2, ge=0)
    seed: int = 0
    task_key: str = "task"
    _by_task: dict[str, list[Example]] | None = PrivateAttr(default=None)

    def add_example(self, example: dict[str, Any]) -> Any:
        self.examples.append(Example.model_validate(example))
        self._by_task = None

    def select_hits(self, input_variables: dict[str, Any], exclude_ids: Sequence[str] = ()) -> list[Hit]:
        """`k` examples of the same task, drawn with a seed derived from the task and exclusions."""
        task = input_variables[self.task_key]
        if self._by_task is None:
            self._by_task = {}
            for example in self.examples:
                if example.task is not None:
                    self._by_task.setdefault(example.task, []).append(example)
        by_task = self._by_task
        excluded = set(exclude_ids)
        candidates = [e for e in by_task.get(task, []) if e.key not in excluded]
        rng = random.Random(f"{self.seed}\x00{task}\x00{sorted(excluded)}")
        return [Hit(e, float("nan")) for e in rng.sample(candidates, min(self.k, len(candidates)))]

    def select_hits_many(
        self, inputs: Sequence[dict[str, Any]], exclude_ids: Sequence[Sequence[str]]
    ) -> list[list[Hit]]:
        return [self.select_hits(variables, ids) for variables, ids in zip(inputs, exclude_ids, strict=True)]

    def select_examples(self, input_variables: dict[str, Any]) -> list[dict[str, Any]]:
        return [{**hit.example.to_prompt_dict(), "score": None} for hit in self.select_hits(input_variables)]


def embedding_store(
    kind: str, examples: Sequence[Example], cache: Path, *, pie_weights: str | Path | None = None, log: LogFn = _stderr
) -> tuple[ExampleStore, dict[str, float]]:
    """The pool in a Chroma store under `cache`, embedded once per embedder fingerprint.

    Returns the store and its timing: `index_s` (loading the embedder, embedding what the cache
    lacks) and `embedded` (how many examples that was; 0 when the cache was complete).
    """
    from icl_retriever.embedders import load_embedder

    start = time.perf_counter()
    embedder = load_embedder(kind, pie_weights if kind == "trained" else None)  # type: ignore[arg-type]
    digest = hashlib.sha256(embedder.fingerprint.encode()).hexdigest()[:12]
    store = ExampleStore(embedder, collection_name(f"{kind}-{digest}"), path=cache)
    done = [0]

    def progress(count: int) -> None:
        # Embedding the full pool takes minutes on a CPU: say where it is every ~2,000 examples.
        done[0] += count
        if done[0] % 2048 < count:
            log(f"[{kind}] embedded {done[0]} examples ({time.perf_counter() - start:.0f} s)")

    report = store.index(examples, progress=progress)
    seconds = time.perf_counter() - start
    log(
        f"[{kind}] pool index: {report.added} embedded, {report.unchanged} cached "
        f"({seconds:.1f} s, {store.location})"
    )
    return store, {"index_s": seconds, "embedded": report.added + report.updated}


def make_selector(name: str, store: ExampleVectorStore | None, examples: list[Example], k: int, seed: int) -> Any:
    """The selector for a strategy; None for zero-shot. `store` is required except for the oracle."""
    from icl_retriever.selectors import (
        BM25ExampleSelector,
        RandomExampleSelector,
        SimilarityExampleSelector,
        TaskExampleSelector,
    )

    if name == "zero":
        return None
    if name == "oracle":
        return OracleSelector(examples=examples, k=k, seed=seed)
    if store is None:
        raise IclRetrieverError(f"Strategy {name!r} needs a store.")
    if name == "random":
        return RandomExampleSelector(store=store, k=k, seed=seed)
    if name == "bm25":
        return BM25ExampleSelector(store=store, k=k)
    if name == "task":
        return TaskExampleSelector(store=store, k=k)
    if name in EMBEDDER_OF:
        return SimilarityExampleSelector(store=store, k=k)
    raise IclRetrieverError(f"Unknown strategy {name!r}; expected some of {', '.join(STRATEGIES)}.")


def select_for_queries(name: str, selector: Any, queries: Sequence[IclRow]) -> list[list[Example]]:
    """Demonstrations per query, leave-one-out: the query's id is always excluded."""
    if selector is None:
        return [[] for _ in queries]
    # The oracle gets the task and nothing else; every other selector gets no task at all.
    inputs = [
        {"task": query.task} if name == "oracle" else {"instruction": query.example.instruction, "input": query.example.input}
        for query in queries
    ]
    found = selector.select_hits_many(inputs, exclude_ids=[[query.id] for query in queries])
    return [[hit.example for hit in hits] for hits in found]


# ------------------------------------------------------------------------------------- metrics


def strategy_metrics(
    queries: Sequence[IclRow],
    rows: dict[str, IclRow],
    demos: Sequence[Sequence[Example]],
    correct: Sequence[bool] | None,
    *,
    seed: int,
) -> dict[str, Any]:
    """Demonstration task match (overall and per collection) and, when answers were generated
    (`correct` given), accuracy with CI and per collection."""
    same_task = same_family = total = 0
    same_by_collection: dict[str, list[bool]] = {}
    for query, chosen in zip(queries, demos, strict=True):
        for demo in chosen:
            row = rows[demo.key]
            total += 1
            same_task += row.task == query.task
            same_family += row.task != query.task and row.family == query.family
            same_by_collection.setdefault(query.collection, []).append(row.task == query.task)
    metrics: dict[str, Any] = {
        "n": len(queries),
        "same_task_rate": same_task / total if total else None,
        "same_family_other_task_rate": same_family / total if total else None,
        "same_task_by_collection": {name: float(np.mean(v)) for name, v in sorted(same_by_collection.items())},
    }
    if correct is None:
        return metrics
    by_collection: dict[str, list[bool]] = {}
    for query, ok in zip(queries, correct, strict=True):
        by_collection.setdefault(query.collection, []).append(ok)
    low, high = bootstrap_ci(correct, seed=seed)
    return {
        "accuracy": float(np.mean(correct)) if correct else 0.0,
        "ci95": [low, high],
        **metrics,
        "by_collection": {name: float(np.mean(values)) for name, values in sorted(by_collection.items())},
        "by_collection_n": {name: len(values) for name, values in sorted(by_collection.items())},
    }


def add_relative_metrics(strategies: dict[str, dict[str, Any]]) -> None:
    """Gains over random and semantic, and the share of the oracle's gain over random captured."""
    random_acc = strategies.get("random", {}).get("accuracy")
    oracle_acc = strategies.get("oracle", {}).get("accuracy")
    semantic_acc = strategies.get("semantic", {}).get("accuracy")
    for metrics in strategies.values():
        acc = metrics.get("accuracy")
        if acc is None:  # selection only
            continue
        metrics["gain_over_random"] = None if random_acc is None else acc - random_acc
        metrics["gain_over_semantic"] = None if semantic_acc is None else acc - semantic_acc
        metrics["oracle_gain_captured"] = (
            None
            if random_acc is None or oracle_acc is None
            else oracle_gain_captured(acc, random_acc, oracle_acc)
        )


# ------------------------------------------------------------------------------------ harness


def select_all(
    strategies: Sequence[str],
    queries: Sequence[IclRow],
    examples: list[Example],
    cache: Path,
    *,
    k: int,
    seed: int,
    pie_weights: str | Path | None,
    timings: dict[str, dict[str, float]],
    log: LogFn,
) -> dict[str, list[list[Example]]]:
    """Demonstrations of every strategy for every query; fills `timings[name]` (index_s, select_s)."""
    # Random and BM25 read the pool from a store; any store of the pool serves, so they share the
    # semantic one (built once and cached like the others).
    store_of = {name: EMBEDDER_OF.get(name, "semantic") for name in strategies if name not in ("zero", "oracle")}
    stores: dict[str, ExampleStore] = {}
    for kind in dict.fromkeys(store_of.values()):
        stores[kind], index_timing = embedding_store(kind, examples, cache, pie_weights=pie_weights, log=log)
        for name in strategies:
            if EMBEDDER_OF.get(name) == kind:
                timings[name].update(index_timing)
    demos: dict[str, list[list[Example]]] = {}
    for name in strategies:
        selector = make_selector(name, stores.get(store_of.get(name, "")), examples, k, seed)
        start = time.perf_counter()
        demos[name] = select_for_queries(name, selector, queries)
        timings[name]["select_s"] = time.perf_counter() - start
        log(f"[{name}] selected demonstrations for {len(queries)} queries in {timings[name]['select_s']:.1f} s")
    return demos


def run_icl_benchmark(
    pool: str | Path,
    query_ids: Sequence[str],
    *,
    generator: Generator | Callable[[], Generator] | None,
    strategies: Sequence[str] = STRATEGIES,
    requests: dict[str, tuple[str, str]] | None = None,
    k: int = 2,
    seed: int = 0,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    pie_weights: str | Path | None = None,
    cache: str | Path | None = None,
    log: LogFn = _stderr,
) -> dict[str, Any]:
    """Run every strategy on the queries and return the results dict (without provenance).

    `requests` asks queries in other words ({id: (instruction, input)}, see `read_requests`): the
    selectors and the prompt see that text, gold answers and task stay the pool row's. With
    `generator=None` only demonstrations are chosen and their task match reported (seconds, not
    minutes). `generator` may be a factory: it is then called once, after all demonstrations are selected,
    so that a slow engine start comes after the cheap failures. `cache` holds the embedded pool
    (default: `cache_dir()/bench/<pool digest>`); per-query records are under `"predictions"`.

    Raises:
        IclRetrieverError: unknown strategies, or query ids missing from the pool.
    """
    from icl_retriever.models import cache_dir

    unknown = [name for name in strategies if name not in STRATEGIES]
    if unknown or not strategies:
        raise IclRetrieverError(
            f"Unknown strategies {unknown or '(none given)'}: choose from {', '.join(STRATEGIES)}."
        )
    total_start = time.perf_counter()
    rows = load_rows(pool)
    missing = [qid for qid in query_ids if qid not in rows]
    if missing:
        raise IclRetrieverError(
            f"{len(missing)} query id(s) are not in {pool}, e.g. {missing[:5]}. "
            "Check that the query file belongs to this pool."
        )
    if not query_ids:
        raise IclRetrieverError("No query ids given: the query file is empty.")
    queries = [rows[qid] for qid in query_ids]
    if requests is not None:
        unasked = [qid for qid in query_ids if qid not in requests]
        if unasked:
            raise IclRetrieverError(
                f"{len(unasked)} query id(s) have no line in the requests file, e.g. {unasked[:5]}. "
                "Give every query another wording, or leave out --requests."
            )
        queries = [reworded(query, *requests[query.id]) for query in queries]
    examples = [row.example for row in rows.values()]
    cache_path = Path(cache) if cache is not None else cache_dir() / "bench" / file_digest(pool)

    timings: dict[str, dict[str, float]] = {name: {} for name in strategies}
    demos = select_all(
        strategies, queries, examples, cache_path, k=k, seed=seed, pie_weights=pie_weights, timings=timings, log=log
    )

    results: dict[str, dict[str, Any]] = {}
    predictions: list[dict[str, Any]] = []
    gen = None
    generator_load_s = 0.0
    if generator is not None:
        start = time.perf_counter()
        gen = generator() if callable(generator) and not hasattr(generator, "generate") else generator
        generator_load_s = time.perf_counter() - start
        log(f"generator ready: {gen.backend} {gen.model} ({generator_load_s:.1f} s)")
    for name in strategies:
        outputs: list[str | None] = [None] * len(queries)
        correct: list[bool] | None = None
        if gen is not None:
            start = time.perf_counter()
            answers = answer_with(
                gen,
                [Request(instruction=q.example.instruction, input=q.example.input) for q in queries],
                [[demo.to_prompt_dict() for demo in chosen] for chosen in demos[name]],
                max_tokens=max_tokens,
                stop=STOP,
                temperature=0.0,
            )
            outputs = [answer.answer for answer in answers]
            timings[name]["generate_s"] = time.perf_counter() - start
            correct = [score_answer(out or "", q.answers, q.metric) for out, q in zip(outputs, queries, strict=True)]
        results[name] = strategy_metrics(queries, rows, demos[name], correct, seed=seed)
        results[name]["timings"] = {key: round(value, 3) for key, value in timings[name].items()}
        if correct is not None:
            log(f"[{name}] accuracy {results[name]['accuracy']:.3f} (generation {timings[name]['generate_s']:.1f} s)")
        log(f"[{name}] same-task {results[name]['same_task_rate'] or 0:.3f}")
        predictions.extend(
            {
                "strategy": name,
                "id": q.id,
                "prediction": out,
                "correct": None if correct is None else correct[i],
                "demo_ids": [d.key for d in chosen],
            }
            for i, (q, chosen, out) in enumerate(zip(queries, demos[name], outputs, strict=True))
        )
    add_relative_metrics(results)

    correct_by = {name: [p["correct"] for p in predictions if p["strategy"] == name] for name in strategies}
    paired = {
        f"{a}_vs_{b}": paired_comparison(correct_by[a], correct_by[b], seed=seed)
        for a, b in PAIRS
        if gen is not None and a in correct_by and b in correct_by
    }
    return {
        "benchmark": "icl",
        "pool": str(pool),
        "pool_digest": file_digest(pool),
        "n_queries": len(queries),
        "k": k,
        "requests": None if requests is None else "reworded",
        "model": None if gen is None else gen.model,
        "backend": None if gen is None else gen.backend,
        "max_tokens": max_tokens,
        "stop": list(STOP),
        "decoding": "greedy",
        "strategies": results,
        "paired": paired,
        "timings": {
            "generator_load_s": round(generator_load_s, 3),
            "total_s": round(time.perf_counter() - total_start, 3),
        },
        "cache": str(cache_path),
        "predictions": predictions,
    }
