"""`bench ieb` and `bench icl`: the benchmark commands (code in the top-level `benchmarks/`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from icl_retriever.cli._app import Backend, JsonOption, bench_app, handle_errors, print_json


@bench_app.command("icl")
@handle_errors
def icl(
    pool: Annotated[Path, typer.Option("--pool", help="Pool JSONL with id, task, instruction, input, answers.")],
    queries: Annotated[Path, typer.Option("--queries", help="File of query ids, one per line.")],
    requests: Annotated[
        Path | None,
        typer.Option(
            "--requests",
            help="JSONL {id, instruction, input}: ask each query in these words (gold answers and task "
            "stay the pool row's), e.g. ../shared/data/iclmix/dev_fresh.jsonl.",
        ),
    ] = None,
    select_only: Annotated[
        bool, typer.Option("--select-only", help="Choose demonstrations and report task match; generate nothing.")
    ] = False,
    strategies: Annotated[
        str,
        typer.Option(
            help="Comma-separated: zero, random, bm25, semantic, pie-minilm, pie-decoder, minilm-verbnoun, task, oracle."
        ),
    ] = "zero,random,bm25,semantic,pie-minilm,pie-decoder,minilm-verbnoun,task,oracle",
    k: Annotated[int, typer.Option("-k", "--k", min=0, help="Demonstrations per query.")] = 2,
    backend: Annotated[Backend, typer.Option(help="vllm (in process), openai (a server) or transformers.")] = "vllm",
    model: Annotated[
        str | None, typer.Option(help="Generator: checkpoint folder, .gguf, or server model name (default SmolLM2).")
    ] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL for --backend openai.")] = None,
    pie_weights: Annotated[
        Path | None,
        typer.Option(help="Trained folder for the `minilm-verbnoun` strategy (default: the shipped weights)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for random/oracle draws and bootstrap resampling.")] = 0,
    max_tokens: Annotated[
        int, typer.Option(min=1, help="Generated tokens per answer (greedy, stops at newline).")
    ] = 32,
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
    (add --requests ../shared/data/iclmix/dev_fresh.jsonl for the fresh wording, --select-only for
    the task match alone)
    """
    from benchmarks import _report
    from benchmarks.icl import read_query_ids, read_requests, results_markdown, run_icl_benchmark, write_results
    from icl_retriever.generators import make_generator

    query_ids = read_query_ids(queries)[:limit]
    names = [name.strip() for name in strategies.split(",") if name.strip()]
    header = _report.provenance(seed=seed)
    results = run_icl_benchmark(
        pool,
        query_ids,
        generator=None if select_only else lambda: make_generator(backend, model, base_url),
        strategies=names,
        requests=None if requests is None else read_requests(requests),
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


@bench_app.command("ieb")
@handle_errors
def ieb(
    model: Annotated[
        Path | None,
        typer.Option("--model", help="Trained folder for `trained`, or a checkpoint (default: shipped weights / MiniLM)."),
    ] = None,
    embedder: Annotated[
        str,
        typer.Option(
            "--embedder",
            help="task, pie-minilm, pie-decoder, trained or semantic (see `index --help`); comma-separate to compare.",
        ),
    ] = "task",
    data: Annotated[Path, typer.Option("--data", help="Folder with the IEB test files.")] = Path("../shared/data/ieb"),
    out: Annotated[Path | None, typer.Option("--out", help="Folder for results.json and results.md.")] = None,
    json_out: JsonOption = False,
) -> None:
    """Instruction-embedding quality on IEB: clustering (ICT), intention similarity (IIS), retrieval.

    Example: icl-retriever bench ieb --embedder semantic,pie-minilm,pie-decoder,trained,task --out benchmarks/results/ieb
    """
    from benchmarks import _report
    from benchmarks.ieb import SEED, evaluate_ieb, results_markdown, write_results
    from icl_retriever.cli._app import log
    from icl_retriever.embedders import EMBEDDER_KINDS, load_embedder
    from icl_retriever.errors import IclRetrieverError

    kinds = [kind.strip() for kind in embedder.split(",") if kind.strip()]
    for kind in kinds:
        if kind not in EMBEDDER_KINDS:
            raise IclRetrieverError(f"Unknown --embedder {kind!r}; expected one of {', '.join(EMBEDDER_KINDS)}.")
    header = _report.provenance(seed=SEED)
    results = {}
    for kind in kinds:
        log(f"IEB: embedding with {kind} ...")
        # --model names trained weights for `trained`; the other kinds keep their packaged model.
        weights = model if kind == "trained" or len(kinds) == 1 else None
        results[kind] = evaluate_ieb(load_embedder(kind, weights), data)  # type: ignore[arg-type]
    if out is not None:
        for path in write_results(out, results, header):
            log(f"Wrote {path}")
    if json_out:
        print_json(results[kinds[0]] if len(kinds) == 1 else results)
    else:
        typer.echo(results_markdown(results))


@bench_app.command("tasks")
@handle_errors
def tasks(
    name: Annotated[str, typer.Option("--name", help="The index of the pool (built with `icl-retriever index`).")],
    pool: Annotated[Path, typer.Option("--pool", help="The same pool as JSONL with `id` and `task` on every row.")],
    queries: Annotated[Path, typer.Option("--queries", help="File of query ids: their tasks are the query tasks.")],
    store: Annotated[Path, typer.Option("--store", help="Folder that holds the index.")] = Path("stores"),
    seed: Annotated[int, typer.Option(help="Seed of the random samples.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for results.json, results.md, heatmap.png.")] = Path(
        "out/bench-tasks"
    ),
    json_out: JsonOption = False,
) -> None:
    """Task discovery against a pool's task ids: ARI, tasks found, query tasks as one cluster, sample coverage.

    Example: icl-retriever bench tasks --name iclmix --pool ../shared/data/iclmix/pool.jsonl
    --queries ../shared/data/iclmix/dev_ids.txt --out benchmarks/results/tasks-iclmix
    """
    from benchmarks import _report
    from benchmarks.icl import read_query_ids
    from benchmarks.tasks import evaluate_tasks, results_markdown, write_results
    from icl_retriever.store import ExampleStore

    header = _report.provenance(seed=seed)
    results = evaluate_tasks(
        ExampleStore.open(name, store), pool, read_query_ids(queries), seed=seed, plot=out / "heatmap.png"
    )
    write_results(out, results, header)
    if json_out:
        print_json(results)
    else:
        typer.echo(results_markdown(results, header["command"]))
