"""Indexing throughput and selection latency, side by side with LangChain's semantic selector.

Both sides use the same MiniLM weights and an embedded Chroma store on disk; the baseline is
`SemanticSimilarityExampleSelector.from_examples(..., vectorstore_cls=Chroma)`, the way LangChain
documents it. The machine is shared and noisy, so the numbers that matter are the ratios measured
in one run.

    python -m benchmarks.speed --out benchmarks/results/speed
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

from icl_retriever.bench._report import markdown_table, provenance, provenance_markdown, write_json, write_markdown
from icl_retriever.embedders import EmbedderKind, TransformerEmbedder, load_embedder
from icl_retriever.example import Example
from icl_retriever.pool import load_pool
from icl_retriever.selectors import selector_for_store
from icl_retriever.store import ExampleStore

ROOT = Path(__file__).resolve().parents[1]


class _LangChainEmbeddings:
    """Our embedder behind LangChain's `Embeddings` interface, so both sides use the same model."""

    def __init__(self, embedder: TransformerEmbedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed_documents(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed_query(text).tolist()


def _interleaved_median_ms(
    selectors: dict[str, Callable[[dict[str, str]], Any]], requests: Sequence[dict[str, str]], rounds: int
) -> dict[str, float]:
    """Median latency per selector, timing the systems in turn on each request.

    Interleaving spreads the shared machine's load changes evenly over the systems compared.
    """
    for select in selectors.values():
        select(requests[0])  # warm-up: first call pays for lazy initialisation
    samples: dict[str, list[float]] = {name: [] for name in selectors}
    for _ in range(rounds):
        for request in requests:
            for name, select in selectors.items():
                start = time.perf_counter()
                select(request)
                samples[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def run(pool: Path, requests_file: Path, embedder_kind: str, rounds: int) -> dict[str, Any]:
    from langchain_chroma import Chroma
    from langchain_core.example_selectors import SemanticSimilarityExampleSelector

    examples: list[Example] = load_pool(pool).examples
    requests = [json.loads(line) for line in requests_file.read_text().splitlines() if line.strip()]
    requests = [{"instruction": r["instruction"], "input": r.get("input", "")} for r in requests]
    semantic = load_embedder("semantic")
    ours = load_embedder(embedder_kind)  # type: ignore[arg-type]
    results: dict[str, dict[str, float]] = {}
    selectors: dict[str, Callable[[dict[str, str]], Any]] = {}
    baseline_name = "langchain SemanticSimilarityExampleSelector"
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
            _LangChainEmbeddings(semantic),
            Chroma,
            k=2,
            input_keys=["instruction", "input"],
            persist_directory=str(Path(tmp) / "langchain"),
        )
        results[baseline_name] = {"index_seconds": time.perf_counter() - start}
        selectors[baseline_name] = baseline.select_examples
        for name, median in _interleaved_median_ms(selectors, requests, rounds).items():
            results[name]["select_median_ms"] = median
            results[name]["index_examples_per_s"] = len(examples) / results[name]["index_seconds"]
    reference = results[baseline_name]
    for row in results.values():
        row["index_speed_ratio"] = row["index_examples_per_s"] / reference["index_examples_per_s"]
        row["select_latency_ratio"] = row["select_median_ms"] / reference["select_median_ms"]
    return {"pool": str(pool), "n_examples": len(examples), "n_requests": len(requests), "rounds": rounds,
            "systems": results}


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(help=__doc__.splitlines()[0])
def main(
    pool: Annotated[Path, typer.Option(help="Pool to index.")] = ROOT / "examples" / "pool.jsonl",
    requests: Annotated[Path, typer.Option(help="JSONL requests to select for.")] = ROOT
    / "tests"
    / "data"
    / "retrieval_requests.jsonl",
    embedder: Annotated[EmbedderKind, typer.Option(help="Embedder of icl-retriever's own index.")] = "task",
    rounds: Annotated[int, typer.Option(min=1, help="Passes over the requests for the latency median.")] = 5,
    out: Annotated[Path, typer.Option(help="Folder for results.json and results.md.")] = ROOT
    / "benchmarks"
    / "results"
    / "speed",
) -> None:
    results = {**provenance(), **run(pool, requests, embedder, rounds)}
    write_json(out / "results.json", results)
    rows = [
        [name, f"{r['index_examples_per_s']:.1f}", f"{r['index_speed_ratio']:.2f}", f"{r['select_median_ms']:.1f}",
         f"{r['select_latency_ratio']:.2f}"]
        for name, r in results["systems"].items()
    ]
    table = markdown_table(
        ["system", "index examples/s", "× LangChain", "select median ms", "× LangChain"], rows
    )
    write_markdown(
        out / "results.md",
        f"# Speed on {results['n_examples']} examples, {results['n_requests']} requests × {rounds}\n\n"
        f"{table}\n\n{provenance_markdown(results)}",
    )
    print(table)


if __name__ == "__main__":
    app()
