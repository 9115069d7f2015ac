"""Answer accuracy behind abstention and label balance (iclmix dev, generation).

1. Removed task: each dev query's whole task is left out of the pool, so the task selector's k
   demonstrations are all of other tasks. Accuracy with those demonstrations against zero-shot
   (what abstaining gives), on every query.
2. Label balance: on the queries where `balance_labels=True` changes the demonstrations (normal
   leave-one-out), accuracy without and with it. Elsewhere the prompts, hence the greedy answers,
   are identical.

Both wordings (the pool's and `--requests`); one vLLM engine, greedy, k = 2; prompts and
generation through the pipeline's `answer_with`, as in `bench icl`.

    python -m benchmarks.abstention_accuracy --requests ../shared/data/iclmix/dev_fresh.jsonl \
        --out benchmarks/results/abstention-accuracy
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from icl_retriever.bench._report import markdown_table, provenance, provenance_markdown, write_json, write_markdown
from icl_retriever.bench.abstention import BATCH
from icl_retriever.bench.icl import DEFAULT_MAX_TOKENS, STOP, embedding_store
from icl_retriever.bench.icl_data import file_digest, load_rows, read_query_ids, read_requests, reworded
from icl_retriever.bench.scoring import paired_comparison, score_answer
from icl_retriever.generators import make_generator
from icl_retriever.models import cache_dir
from icl_retriever.pipeline import Request, answer_with
from icl_retriever.selectors import TaskExampleSelector, balance_labels
from icl_retriever.store import Hit


def ranked_for(selector: TaskExampleSelector, queries: Sequence[Any], exclusions: Sequence[Sequence[str]]) -> list[list[Hit]]:
    out: list[list[Hit]] = []
    for start in range(0, len(queries), BATCH):
        chunk = queries[start : start + BATCH]
        found = selector.select_hits_many(
            [{"instruction": q.example.instruction, "input": q.example.input} for q in chunk], exclusions[start : start + BATCH]
        )
        out += [hits[::-1] for hits in found]  # best first
    return out


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(help=__doc__.splitlines()[0])
def main(
    pool: Annotated[Path, typer.Option(help="iclmix-style pool (JSONL).")] = Path("../shared/data/iclmix/pool.jsonl"),
    queries: Annotated[Path, typer.Option(help="Query ids, one per line.")] = Path("../shared/data/iclmix/dev_ids.txt"),
    requests: Annotated[Path | None, typer.Option(help="Other wordings of the queries (JSONL id, instruction, input).")] = None,
    cache: Annotated[Path | None, typer.Option(help="Folder of the embedded pool (default: the bench cache).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap intervals.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for results.json and results.md.")] = Path("benchmarks/results/abstention-accuracy"),
) -> None:
    header = provenance(seed=seed)
    start = time.perf_counter()
    k = 2
    rows = load_rows(str(pool))
    query_ids = read_query_ids(queries)
    cache = cache if cache is not None else cache_dir() / "bench" / file_digest(str(pool))
    store, _ = embedding_store("task", [row.example for row in rows.values()], cache)
    by_task: dict[str, list[str]] = {}
    for row in rows.values():
        by_task.setdefault(row.task, []).append(row.id)
    originals = [rows[qid] for qid in query_ids]
    wordings = {"original": originals}
    if requests is not None:
        fresh = read_requests(requests)
        wordings["fresh"] = [reworded(row, *fresh[row.id]) for row in originals]

    plans: list[tuple[str, str, list[Any], list[list[Any]]]] = []  # (wording, variant, queries, demos)
    for wording, queries in wordings.items():
        removed = ranked_for(TaskExampleSelector(store=store, k=k), queries, [by_task[q.task] for q in queries])
        plans.append((wording, "removed: zero-shot", queries, [[] for _ in queries]))
        plans.append((wording, "removed: wrong-task demos", queries, [[h.example for h in hits[:k]] for hits in removed]))
        ranked = ranked_for(TaskExampleSelector(store=store, k=50), queries, [[q.id] for q in queries])
        plain = [[h.example for h in hits[:k]] for hits in ranked]
        balanced = [[h.example for h in balance_labels(hits)[:k]] for hits in ranked]
        changed = [i for i, (a, b) in enumerate(zip(plain, balanced)) if [e.key for e in a] != [e.key for e in b]]
        plans.append((wording, "balance: without", [queries[i] for i in changed], [plain[i] for i in changed]))
        plans.append((wording, "balance: with", [queries[i] for i in changed], [balanced[i] for i in changed]))

    generator = make_generator("vllm")
    correct: dict[tuple[str, str], list[bool]] = {}
    try:
        for wording, variant, queries, demos in plans:
            t0 = time.perf_counter()
            answers = answer_with(
                generator,
                [Request(instruction=q.example.instruction, input=q.example.input) for q in queries],
                [[demo.to_prompt_dict() for demo in chosen] for chosen in demos],
                max_tokens=DEFAULT_MAX_TOKENS,
                stop=STOP,
            )
            correct[(wording, variant)] = [score_answer(a.answer, q.answers, q.metric) for a, q in zip(answers, queries)]
            print(f"[{wording}] {variant}: {sum(correct[(wording, variant)])}/{len(queries)} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    finally:
        close = getattr(generator, "close", None)
        if close is not None:
            close()

    results: dict[str, Any] = {"pool": str(pool), "n_queries": len(query_ids), "k": k, "model": generator.model,
                               "backend": generator.backend, "wordings": {}}
    table = []
    for wording in wordings:
        entry: dict[str, Any] = {}
        for a, b in (("removed: zero-shot", "removed: wrong-task demos"), ("balance: with", "balance: without")):
            ca, cb = correct[(wording, a)], correct[(wording, b)]
            paired = paired_comparison(ca, cb, seed=seed) if ca else None
            entry[f"{a} vs {b}"] = {"n": len(ca), "accuracy_a": sum(ca) / len(ca) if ca else None,
                                     "accuracy_b": sum(cb) / len(cb) if cb else None, "paired": paired}
            table.append([wording, f"{a} vs {b}", len(ca),
                          f"{sum(ca) / len(ca):.3f}" if ca else "—", f"{sum(cb) / len(cb):.3f}" if cb else "—",
                          f"{paired['delta']:+.3f} [{paired['ci95'][0]:+.3f}, {paired['ci95'][1]:+.3f}]" if paired else "—",
                          f"{paired['p_value']:.3g}" if paired else "—"])
        results["wordings"][wording] = entry
    results["total_s"] = round(time.perf_counter() - start, 1)
    write_json(out / "results.json", {**header, **results})
    write_markdown(out / "results.md", "\n".join([
        "# Accuracy behind abstention and label balance",
        "",
        f"{len(query_ids)} iclmix dev queries, k = {k}, {generator.backend} `{Path(generator.model).name}`, greedy. "
        "removed: the query's whole task is left out of the pool, so the task selector's demonstrations are all of "
        "other tasks; abstaining answers zero-shot. balance: the queries where `balance_labels` changes the "
        "demonstrations (normal leave-one-out).",
        "",
        markdown_table(["wording", "comparison (a vs b)", "queries", "accuracy a", "accuracy b",
                        "delta [95% CI]", "McNemar p"], table),
        "",
        f"Total time: {results['total_s']:.0f} s.",
        "",
        "## Provenance",
        "",
        provenance_markdown(header),
    ]))
    print((out / "results.md").read_text())


if __name__ == "__main__":
    app()
