"""`tasks` and `sample`: the tasks an indexed pool holds, and a sample that covers them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from icl_retriever.cli._app import JsonOption, Target, command, log, print_json

# Mirrors of `icl_retriever.tasks` values (numpy, sklearn: too heavy to import while parsing);
# tests/test_cli_startup.py checks they match.
#: `icl_retriever.tasks.DEFAULT_THRESHOLD`
DEFAULT_THRESHOLD = 0.45
#: `icl_retriever.tasks.SampleMethod`
SampleMethod = Literal["round-robin", "farthest"]

ThresholdOption = Annotated[
    float,
    typer.Option(
        min=0.0, max=2.0, help="Cosine distance at which task clusters stop merging; lower finds more, finer tasks."
    ),
]


@command()
def tasks(
    target: Target,
    threshold: ThresholdOption = DEFAULT_THRESHOLD,
    plot: Annotated[
        Path | None, typer.Option(help="Write a heatmap PNG of the similarity between the largest tasks.")
    ] = None,
    show: Annotated[int, typer.Option(min=1, help="How many tasks to list (--json lists all).")] = 30,
    json_out: JsonOption = False,
) -> None:
    """List the tasks an indexed pool holds, found without labels: size, name, label balance, duplicates.

    Examples with the same task wording are grouped, then groups are clustered on the task
    embedding; where the pool has `task` labels, the agreement with them (ARI) is reported.
    Example: icl-retriever tasks --name pool --plot tasks.png
    """
    from icl_retriever.example import shorten
    from icl_retriever.tasks import discover_tasks, plot_task_similarity

    task_map = discover_tasks(target.open_store(), threshold=threshold)
    if plot is not None:
        log(f"Wrote the task-similarity heatmap to {plot_task_similarity(task_map, plot)}.")
    if json_out:
        print_json(task_map.to_dict())
        return
    size = sum(task.size for task in task_map.tasks)
    typer.echo(f"{task_map.n_tasks} tasks in {size} examples (threshold {task_map.threshold}).")
    typer.echo(f"{'size':>6}  {'task':30}  representative instruction")
    for task in task_map.tasks[:show]:
        typer.echo(f"{task.size:6d}  {task.name[:30]:30}  {shorten(task.representative, 70)}")
        if task.outputs is not None:
            balance = ", ".join(f"{shorten(value, 20)}: {count}" for value, count in list(task.outputs.items())[:6])
            typer.echo(f"{'':40}outputs: {balance}")
    if len(task_map.tasks) > show:
        typer.echo(f"... {len(task_map.tasks) - show} more (--show, --json).")
    if task_map.ari is not None:
        typer.echo(f"Agreement with the pool's {task_map.gold_tasks} `task` labels: ARI {task_map.ari:.3f}.")
    duplicates = task_map.duplicates
    typer.echo(f"{len(duplicates)} groups of near-duplicate examples" + (":" if duplicates else "."))
    for group in duplicates[:10]:
        typer.echo("    " + ", ".join(group))


@command()
def sample(
    n: Annotated[int, typer.Option("--n", min=1, help="How many examples to choose.")],
    target: Target,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the chosen examples as JSONL.")] = None,
    method: Annotated[
        SampleMethod,
        typer.Option(help="round-robin: the most central example of each task in turn; farthest: farthest-point."),
    ] = "round-robin",
    threshold: ThresholdOption = DEFAULT_THRESHOLD,
    seed: Annotated[int, typer.Option(help="Seed of the random samples compared against.")] = 0,
    json_out: JsonOption = False,
) -> None:
    """Choose N examples of an indexed pool that cover its tasks evenly, and compare with random samples.

    For a task-diverse instruction-tuning subset or a compressed test set. Index the pool first
    (`icl-retriever index POOL --name NAME`): the tasks are the ones `tasks` finds.
    Example: icl-retriever sample --name pool --n 20 --out subset.jsonl
    """
    from icl_retriever.pool import write_pool
    from icl_retriever.tasks import sample_examples

    report = sample_examples(target.open_store(), n, method=method, threshold=threshold, seed=seed)
    if out is not None:
        write_pool(out, report.examples)
        log(f"Wrote {len(report.ids)} examples to {out}.")
    if json_out:
        print_json(report.to_dict())
        return
    typer.echo(f"{len(report.ids)} examples chosen ({report.method}); task coverage against "
               f"{report.random_draws} random samples of the same size (mean):")
    typer.echo(f"  discovered tasks: {report.coverage.tasks:.0f} of {report.n_tasks} (random {report.random.tasks:.1f})")
    if report.gold_tasks is not None:
        typer.echo(
            f"  `task` labels:    {report.coverage.gold_tasks:.0f} of {report.gold_tasks} "
            f"(random {report.random.gold_tasks:.1f})"
        )
    if out is None:
        typer.echo("ids: " + " ".join(report.ids))
