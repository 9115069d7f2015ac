"""`bench ieb` and `bench icl`: the benchmark commands (code in the top-level `benchmarks/`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from icl_retriever.cli._app import JsonOption, bench_app, handle_errors, print_json
from icl_retriever.generators import Backend


@bench_app.command("icl")
@handle_errors
def icl(
    pool: Annotated[Path, typer.Option("--pool", help="Pool JSONL with id, task, instruction, input, answers.")],
    queries: Annotated[Path, typer.Option("--queries", help="File of query ids, one per line.")],
    strategies: Annotated[
        str,
        typer.Option(help="Comma-separated: zero, random, bm25, semantic, pie-untrained, pie, oracle."),
    ] = "zero,random,bm25,semantic,pie-untrained,pie,oracle",
    k: Annotated[int, typer.Option("-k", "--k", min=0, help="Demonstrations per query.")] = 2,
    backend: Annotated[Backend, typer.Option(help="vllm (in process), openai (a server) or transformers.")] = "vllm",
    model: Annotated[
        str | None, typer.Option(help="Generator: checkpoint folder, .gguf, or server model name (default SmolLM2).")
    ] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL for --backend openai.")] = None,
    pie_weights: Annotated[
        Path | None, typer.Option(help="Trained PIE folder for the `pie` strategy (default: the shipped weights).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for random/oracle draws and bootstrap resampling.")] = 0,
    max_tokens: Annotated[int, typer.Option(min=1, help="Generated tokens per answer (greedy, stops at newline).")] = 32,
    limit: Annotated[int | None, typer.Option(min=1, help="Use only the first N query ids.")] = None,
    cache: Annotated[
        Path | None, typer.Option(help="Embedded-pool cache folder (default: <cache_dir>/bench/<pool digest>).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for results.json, results.md, accuracy.png.")] = Path(
        "out/bench-icl"
    ),
    json_out: JsonOption = False,
) -> None:
    """ICL accuracy of each demonstration-selection strategy, leave-one-out over the query ids.

    Example: icl-retriever bench icl --pool ../shared/data/iclmix/pool.jsonl
    --queries ../shared/data/iclmix/dev_ids.txt --out benchmarks/results/iclmix-dev
    """
    from benchmarks import _report
    from benchmarks.icl import read_query_ids, results_markdown, run_icl_benchmark, write_results
    from icl_retriever.generators import make_generator

    query_ids = read_query_ids(queries)[:limit]
    names = [name.strip() for name in strategies.split(",") if name.strip()]
    header = _report.provenance(seed=seed)
    results = run_icl_benchmark(
        pool,
        query_ids,
        generator=lambda: make_generator(backend, model, base_url),
        strategies=names,
        k=k,
        seed=seed,
        max_tokens=max_tokens,
        pie_weights=pie_weights,
        cache=cache,
    )
    results = {**header, **results}
    paths = write_results(results, out)
    if json_out:
        print_json({key: value for key, value in results.items() if key != "predictions"})
    else:
        typer.echo(results_markdown(results).split("\n## Paired")[0])
        typer.echo(f"Wrote {', '.join(str(path) for path in paths.values())}")
