"""BM25 selection speed: the bm25s inverted index saved with the store against rank_bm25's full scan.

Both score the same requests (instruction + input of `--queries` pool rows, k = 2, the row itself
excluded) over the same store: the new path is `BM25ExampleSelector` as an application calls it
(saved index memory-mapped, candidates fetched from Chroma); the old one is what the selector did
before: the whole pool in memory and `BM25Okapi.get_scores` over every example.

    mkdir -p /tmp/iclmix && cp -r ~/.cache/icl-retriever/bench/958c2a8ce9d29962/semantic-0d516fdf2d62 /tmp/iclmix/
    python -m benchmarks.bm25_speed /tmp/iclmix/semantic-0d516fdf2d62 --out benchmarks/results/bm25-speed
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from icl_retriever.bench._report import markdown_table, provenance, provenance_markdown, write_json, write_markdown
from icl_retriever.bm25 import content_text, tokens
from icl_retriever.selectors import BM25ExampleSelector
from icl_retriever.store import ExampleStore


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(help=__doc__.splitlines()[0])
def main(
    store_folder: Annotated[
        Path, typer.Argument(metavar="STORE", help="An index folder (a copy: its BM25 index is built there if missing).")
    ],
    queries: Annotated[int, typer.Option(min=1, help="Requests timed on the saved index.")] = 200,
    old_queries: Annotated[int, typer.Option(min=1, help="Requests timed on the slow full scan.")] = 20,
    out: Annotated[Path, typer.Option(help="Folder for results.json and results.md.")] = Path("benchmarks/results/bm25-speed"),
) -> None:
    from rank_bm25 import BM25Okapi

    store = ExampleStore.open(store_folder.name, store_folder.parent)
    start = time.perf_counter()
    store.build_bm25_index()
    build_s = time.perf_counter() - start
    pool = [hit.example for page in store.iter_records() for hit in page]
    requests = pool[:: max(1, len(pool) // queries)][: queries]

    selector = BM25ExampleSelector(store=store, k=2)
    selector.select_hits({"instruction": "warm up"})  # loads the saved index once
    new_ms = []
    for example in requests:
        start = time.perf_counter()
        selector.select_hits({"instruction": example.instruction, "input": example.input}, exclude_ids=[example.key])
        new_ms.append(1000 * (time.perf_counter() - start))

    old = BM25Okapi([tokens(content_text(e.instruction, e.input)) for e in pool])
    old_ms = []
    for example in requests[: old_queries]:
        start = time.perf_counter()
        scores = old.get_scores(tokens(content_text(example.instruction, example.input)))
        [i for i in np.argsort(-scores, kind="stable") if pool[i].key != example.key][:2]
        old_ms.append(1000 * (time.perf_counter() - start))

    rows = [
        ["rank_bm25 full scan (before)", len(old_ms), f"{statistics.median(old_ms):.1f}", f"{np.percentile(old_ms, 95):.1f}"],
        ["bm25s saved index (now)", len(new_ms), f"{statistics.median(new_ms):.1f}", f"{np.percentile(new_ms, 95):.1f}"],
    ]
    results = {
        **provenance(),
        "pool": len(pool),
        "build_s": build_s,
        "old_ms": old_ms,
        "new_ms": new_ms,
        "speedup_p50": statistics.median(old_ms) / statistics.median(new_ms),
    }
    write_json(out / "results.json", results)
    text = (
        f"# BM25 selection speed, {len(pool)}-example pool\n\n"
        + markdown_table(["scorer", "requests", "p50 ms/request", "p95 ms/request"], rows)
        + f"\n\np50 speed-up: x{results['speedup_p50']:.0f}. Building the saved index from the store's pages: "
        f"{build_s:.1f} s (done by `icl-retriever index`).\n\n"
        + provenance_markdown(results)
    )
    write_markdown(out / "results.md", text)
    print(text)


if __name__ == "__main__":
    app()
