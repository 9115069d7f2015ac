"""`bench ieb`, `bench icl`, `bench tasks`, `bench tasks-threshold`: the benchmark commands (code in `icl_retriever.bench`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from icl_retriever.cli._app import Backend, JsonOption, bench_app, command, print_json, settings


@dataclass(frozen=True)
class DevQueries:
    """What `bench abstention` and `bench balance` run on, an option group (see `command`): iclmix dev
    under the data folder unless told (never its test ids)."""

    pool: Annotated[
        Path | None,
        typer.Option("--pool", help="Pool JSONL with id, task, instruction, input, answers (default: DATA_DIR/iclmix/pool.jsonl)."),
    ] = None
    queries: Annotated[
        Path | None,
        typer.Option("--queries", help="File of query ids, dev only, never test (default: DATA_DIR/iclmix/dev_ids.txt)."),
    ] = None
    requests: Annotated[
        Path | None,
        typer.Option(
            "--requests",
            help="JSONL {id, instruction, input}: the queries in other words (`abstention` scores them, never fits on them).",
        ),
    ] = None
    cache: Annotated[
        Path | None, typer.Option(help="Embedded-pool cache folder (default: the one `bench icl` uses).")
    ] = None

    def read(self) -> tuple[Path, list[str], dict[str, tuple[str, str]] | None]:
        """The pool file, the query ids and the other wordings (None: the pool's own)."""
        from icl_retriever.bench.icl_data import read_query_ids, read_requests

        config = settings()
        pool = self.pool if self.pool is not None else config.data_file("iclmix/pool.jsonl", "--pool")
        queries = self.queries if self.queries is not None else config.data_file("iclmix/dev_ids.txt", "--queries")
        return pool, read_query_ids(queries), None if self.requests is None else read_requests(self.requests)


@command("icl", parent=bench_app)
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
    from icl_retriever.bench import _report
    from icl_retriever.bench.icl import run_icl_benchmark
    from icl_retriever.bench.icl_data import read_query_ids, read_requests
    from icl_retriever.bench.icl_report import results_markdown, write_results
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


@command("ieb", parent=bench_app)
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
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Folder with the IEB test files (default: ieb/ in the data folder, ICL_RETRIEVER_DATA_DIR).",
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for results.json and results.md.")] = None,
    json_out: JsonOption = False,
) -> None:
    """Instruction-embedding quality on IEB: clustering (ICT), intention similarity (IIS), retrieval.

    Example: icl-retriever bench ieb --embedder semantic,pie-minilm,pie-decoder,trained,task --out benchmarks/results/ieb
    """
    from icl_retriever.bench import _report
    from icl_retriever.bench.ieb import SEED, evaluate_ieb, results_markdown, write_results
    from icl_retriever.cli._app import log
    from icl_retriever.embedders import EMBEDDER_KINDS, load_embedder
    from icl_retriever.errors import IclRetrieverError

    if data is None:
        data = settings().data_file("ieb", "--data")
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



@command("tasks", parent=bench_app)
def tasks(
    name: Annotated[str, typer.Option("--name", help="Index of a pool whose examples all carry `task`.")],
    store: Annotated[Path, typer.Option("--store", help="Folder that holds the index.")] = Path("stores"),
    queries: Annotated[
        Path | None, typer.Option("--queries", help="File of query ids: how many of their tasks form one cluster.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random samples.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for results.json, results.md, heatmap.png.")] = Path(
        "out/bench-tasks"
    ),
    json_out: JsonOption = False,
) -> None:
    """Task discovery against a pool's `task` labels: ARI, tasks found, query tasks as one cluster, samples.

    Example: icl-retriever bench tasks --name iclmix --queries ../shared/data/iclmix/dev_ids.txt
    --out benchmarks/results/tasks-iclmix
    """
    from icl_retriever.bench import _report
    from icl_retriever.bench.icl_data import read_query_ids
    from icl_retriever.bench.tasks import evaluate_tasks, results_markdown, write_results
    from icl_retriever.store import ExampleStore
    from icl_retriever.tasks import StoredPool

    header = _report.provenance(seed=seed)
    stored = StoredPool.read(ExampleStore.open(name, store))
    query_ids = read_query_ids(queries) if queries is not None else []
    results = evaluate_tasks(stored, query_ids, seed=seed, plot=out / "heatmap.png")
    markdown = results_markdown(results, header["command"])
    write_results(out, results, header, markdown)
    if json_out:
        print_json(results)
    else:
        typer.echo(markdown)


@command("tasks-threshold", parent=bench_app)
def tasks_threshold(
    pool: Annotated[Path, typer.Option("--pool", help="The built-in pool (or another labelled pool).")] = Path(
        "examples/pool.jsonl"
    ),
    eft: Annotated[
        Path | None,
        typer.Option("--eft", help="IEB eft_test.json (default: ieb/eft_test.json in the data folder, ICL_RETRIEVER_DATA_DIR)."),
    ] = None,
    cache: Annotated[Path, typer.Option(help="Folder for the two task-embedder indexes (built once).")] = Path(
        "out/tasks-threshold-stores"
    ),
    out: Annotated[Path, typer.Option(help="Folder for results.json and results.md.")] = Path("out/tasks-threshold"),
) -> None:
    """ARI of task discovery per clustering threshold on the tuning pools, and the best mean.

    How `tasks`'s default threshold was chosen: on the built-in pool and IEB eft_test, never on
    iclmix. Example: icl-retriever bench tasks-threshold --out benchmarks/results/tasks-threshold
    """
    from icl_retriever.bench import _report
    from icl_retriever.bench.tasks import tune_threshold, tuning_markdown, write_results

    if eft is None:
        eft = settings().data_file("ieb/eft_test.json", "--eft")
    header = _report.provenance()
    results = tune_threshold(pool, eft, cache)
    markdown = tuning_markdown(results, header["command"])
    write_results(out, results, header, markdown)
    typer.echo(markdown)


@command("abstention", parent=bench_app)
def abstention(
    dev: DevQueries,
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Demonstrations per query.")] = 2,
    folds: Annotated[int, typer.Option(min=2, help="Task folds for the held-out (cross-fit) numbers.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of the task folds.")] = 0,
    repeats: Annotated[
        int, typer.Option(min=1, help="Splits of the tasks into folds (seeds seed, seed+1, ...), each reported.")
    ] = 1,
    save_calibration: Annotated[
        Path | None,
        typer.Option(help="Write the calibration fit on all queries (pool wording) here, e.g. "
                     "icl_retriever/weights/task-score.json."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for results.json and results.md.")] = Path("out/bench-abstention"),
) -> None:
    """Fit the task selector's `task_score` calibration and measure abstention: how many wrong-task
    demonstrations a threshold removes when the query's task is missing from the pool, and how often
    it answers zero-shot when the task is there (held out by task folds; fresh wording never fit on).

    Example: icl-retriever bench abstention --requests ../shared/data/iclmix/dev_fresh.jsonl
    --out benchmarks/results/abstention
    """
    from icl_retriever.bench import _report
    from icl_retriever.bench.abstention import abstention_markdown, run_abstention, write_results
    from icl_retriever.cli._app import log

    pool, query_ids, requests = dev.read()
    header = _report.provenance(seed=seed)
    results, calibration = run_abstention(
        pool, query_ids, requests=requests, k=k, folds=folds, seed=seed, repeats=repeats, cache=dev.cache
    )
    if save_calibration is not None:
        calibration.model_copy(update={"fit": {**calibration.fit, "command": header["command"]}}).save(save_calibration)
        log(f"Wrote {save_calibration}")
    markdown = abstention_markdown(results, header["command"])
    for path in write_results(out, results, header, markdown):
        log(f"Wrote {path}")
    typer.echo(markdown.split("\n## Threshold sweep")[0])


@command("balance", parent=bench_app)
def balance(
    dev: DevQueries,
    k: Annotated[int, typer.Option("-k", "--k", min=2, help="Demonstrations per query.")] = 2,
    out: Annotated[Path, typer.Option(help="Folder for results.json and results.md.")] = Path("out/bench-balance"),
) -> None:
    """How often the demonstrations have different outputs, with and without --balance-labels.

    Example: icl-retriever bench balance --requests ../shared/data/iclmix/dev_fresh.jsonl
    --out benchmarks/results/balance
    """
    from icl_retriever.bench import _report
    from icl_retriever.bench.abstention import balance_markdown, run_balance, write_results
    from icl_retriever.cli._app import log

    pool, query_ids, requests = dev.read()
    header = _report.provenance()
    results = run_balance(pool, query_ids, requests=requests, k=k, cache=dev.cache)
    markdown = balance_markdown(results, header["command"])
    for path in write_results(out, results, header, markdown):
        log(f"Wrote {path}")
    typer.echo(markdown)
