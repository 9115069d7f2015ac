"""The encoder runtimes side by side: torch against ONNX Runtime (`ICL_RETRIEVER_ENCODER=onnx`).

On one pool from the scale benchmark's mix (`speed_scale.mixed_examples`): the task index built
with each runtime (examples/s, and the largest difference between the two indexes' vectors), then
select latency of the task selector and of LangChain's `SemanticSimilarityExampleSelector`, each on
each runtime, timed in turn on every request in one process (`interleaved_samples_ms`), and whether
the two runtimes' task selections are the same (ids and order).

    python -m benchmarks.encoder_runtime --size 1000 --threads 1 --out benchmarks/results/encoder-runtime
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from benchmarks.speed_scale import (
    LANGCHAIN,
    LangChainEmbeddings,
    index_langchain,
    index_task,
    interleaved_samples_ms,
    langchain_selector,
    limit_threads,
    mixed_examples,
    percentiles,
    split_pool,
)
from icl_retriever.bench._report import markdown_table, provenance, provenance_markdown, write_json, write_markdown
from icl_retriever.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
RUNTIMES = ("torch", "onnx")
TASK = "icl-retriever task"


def stored_vectors(store: Any, ids: list[str]) -> np.ndarray:
    """The vectors a store holds for `ids`, in that order (read from its Chroma collection)."""
    found = store._collection.get(ids=ids, include=["embeddings"])
    row = {key: i for i, key in enumerate(found["ids"])}
    return np.stack([found["embeddings"][row[key]] for key in ids])


def run(size: int, n_requests: int, rounds: int, seed: int, iclmix: Path, ieb: Path) -> dict[str, Any]:
    import torch

    from icl_retriever.selectors import selector_for_store
    from icl_retriever.task_embedder import TaskEmbedder

    pool, requests = split_pool(mixed_examples(iclmix, ieb, seed), size, n_requests)
    embedders = {runtime: TaskEmbedder(runtime=runtime) for runtime in RUNTIMES}
    rows: dict[str, dict[str, Any]] = {}
    selectors: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        stores = {}
        for runtime, embedder in embedders.items():
            # Untimed: the first index of a process pays the Chroma client and lazy imports.
            index_task(pool[:2], Path(tmp) / f"warm-up-{runtime}", embedder)
            stores[runtime], seconds = index_task(pool, Path(tmp) / runtime, embedder)
            rows[f"{TASK} [{runtime}]"] = {"runtime": runtime, "index_examples_per_s": len(pool) / seconds}
            selectors[f"{TASK} [{runtime}]"] = selector_for_store(stores[runtime], k=2).select_examples
        ids = [example.key for example in pool]
        index_max_diff = float(np.abs(stored_vectors(stores["torch"], ids) - stored_vectors(stores["onnx"], ids)).max())
        index_langchain(pool, Path(tmp) / "langchain", LangChainEmbeddings(embedders["torch"].content))
        for runtime, embedder in embedders.items():
            rows[f"{LANGCHAIN} [{runtime}]"] = {"runtime": runtime}
            selectors[f"{LANGCHAIN} [{runtime}]"] = langchain_selector(embedder.content, folder=str(Path(tmp) / "langchain")).select_examples
        picked = {runtime: [[d["id"] for d in selectors[f"{TASK} [{runtime}]"](r)] for r in requests] for runtime in RUNTIMES}
        for name, samples in interleaved_samples_ms(selectors, requests, rounds).items():
            rows[name].update(percentiles(samples))
    for name, row in rows.items():
        same_runtime_langchain = rows[f"{LANGCHAIN} [{row['runtime']}]"]["select_p50_ms"]
        row["p50_x_langchain_same_runtime"] = row["select_p50_ms"] / same_runtime_langchain
        row["p50_x_torch"] = row["select_p50_ms"] / rows[name.replace("[onnx]", "[torch]")]["select_p50_ms"]
    same = sum(a == b for a, b in zip(picked["torch"], picked["onnx"]))
    return {
        "n_examples": size, "n_requests": len(requests), "rounds": rounds, "systems": rows,
        "index_max_abs_vector_diff": index_max_diff, "same_selections": same,
        "torch_threads": torch.get_num_threads(),
    }


def markdown(results: dict[str, Any]) -> str:
    table = markdown_table(
        ["system [runtime]", "index examples/s", "select p50 ms", "p95 ms", "p50 × torch", "p50 × LangChain, same runtime"],
        [
            [name, f"{r['index_examples_per_s']:.1f}" if "index_examples_per_s" in r else "—", f"{r['select_p50_ms']:.1f}",
             f"{r['select_p95_ms']:.1f}", f"{r['p50_x_torch']:.2f}", f"{r['p50_x_langchain_same_runtime']:.2f}"]
            for name, r in results["systems"].items()
        ],
    )
    return (
        f"# Encoder runtimes on {results['n_examples']} examples, {results['n_requests']} requests × {results['rounds']}\n\n"
        f"{table}\n\n"
        f"- task selections identical (ids and order) on both runtimes: {results['same_selections']} of {results['n_requests']}\n"
        f"- largest difference between the two task indexes' stored vectors: {results['index_max_abs_vector_diff']:.1e}\n"
        f"- torch threads (ONNX Runtime takes the same): {results['torch_threads']}\n\n"
        f"{provenance_markdown(results)}\n"
    )


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(help=__doc__.splitlines()[0])
def main(
    size: Annotated[int, typer.Option(min=10, help="Pool size (a prefix of the iclmix + IEB mix).")] = 1000,
    n_requests: Annotated[int, typer.Option(min=1, help="Held-out requests.")] = 40,
    rounds: Annotated[int, typer.Option(min=1, help="Passes over the requests.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the mix.")] = 0,
    threads: Annotated[int | None, typer.Option(min=1, help="torch (and ONNX Runtime) threads.")] = None,
    iclmix: Annotated[Path | None, typer.Option(help="iclmix pool (default: data_dir/iclmix/pool.jsonl).")] = None,
    ieb: Annotated[Path | None, typer.Option(help="IEB training instructions (default: data_dir/ieb/eft_train_unsup.json).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for results.json and results.md.")] = ROOT / "benchmarks" / "results" / "encoder-runtime",
) -> None:
    limit_threads(threads)
    settings = Settings()
    results = run(
        size, n_requests, rounds, seed,
        iclmix or settings.data_file("iclmix/pool.jsonl", "--iclmix"),
        ieb or settings.data_file("ieb/eft_train_unsup.json", "--ieb"),
    )
    results = {**provenance(seed=seed), **results}
    write_json(out / "results.json", results)
    write_markdown(out / "results.md", markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    app()
