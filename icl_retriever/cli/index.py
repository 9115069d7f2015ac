"""`index`, `select` and `info`: build an index from a pool file and query it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from icl_retriever.cli._app import (
    DEFAULT_MAX_FIELD_CHARS,
    EmbedderKind,
    JsonOption,
    Target,
    command,
    log,
    print_json,
)
from icl_retriever.cli._selection import Request, Selection

if TYPE_CHECKING:
    from icl_retriever.settings import Settings
    from icl_retriever.store import ExampleStore


@command()
def index(
    pool: Annotated[Path, typer.Argument(help="Pool file: JSONL (one example per line) or a JSON array.")],
    target: Target,
    embedder: Annotated[
        EmbedderKind | None,
        typer.Option(
            help="task (the default for a new index, or the `embedder` setting: task wording + content, MiniLM), pie-minilm (PIE prompt, "
            "MiniLM), pie-decoder (PIE prompt, SmolLM2 last token), trained (a folder from `train`; --model) "
            "or semantic (MiniLM over instruction + input)."
        ),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Embedder weights: a trained folder or a checkpoint.")] = None,
    skip_invalid: Annotated[bool, typer.Option(help="Index the valid records and report the others.")] = False,
    rebuild: Annotated[bool, typer.Option(help="Re-embed everything, e.g. to switch embedders.")] = False,
    max_field_chars: Annotated[int, typer.Option(help="Longest accepted text field.")] = DEFAULT_MAX_FIELD_CHARS,
    json_out: JsonOption = False,
) -> None:
    """Validate a pool file and index it; re-indexing adds only new or changed examples.

    Example: icl-retriever index examples/pool.jsonl --name pool
    """
    from tqdm import tqdm

    from icl_retriever.embedders import load_embedder
    from icl_retriever.pool import load_pool
    from icl_retriever.store import ExampleStore

    loaded = load_pool(pool, skip_invalid=skip_invalid, max_field_chars=max_field_chars)
    for issue in loaded.skipped:
        log(f"skipped {issue}")
    config = target.settings(name=target.name or pool.stem, embedder=embedder)
    # Rate and time left on stderr; one update per committed chunk.
    with tqdm(total=len(loaded.examples), desc="indexing", unit="ex", disable=None) as bar:
        if rebuild:
            store, report = ExampleStore.rebuild(
                load_embedder(config.embedder, model), config.name, loaded.examples, config.store, config.url,
                progress=bar.update, timeout=target.timeout,
            )
        else:
            store = _open_or_create(config, embedder is not None, model, target.timeout)
            report = store.index(loaded.examples, progress=bar.update)
    summary = {
        "store": store.location,
        "name": config.name,
        "added": report.added,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "invalid": len(loaded.skipped),
        "count": store.count,
    }
    if json_out:
        print_json(summary)
    else:
        typer.echo(
            f"Indexed {pool} into {store.location}: {report.added} added, {report.updated} updated, "
            f"{report.unchanged} unchanged, {len(loaded.skipped)} invalid; {store.count} examples in the index."
        )


def _open_or_create(config: Settings, embedder_given: bool, model: str | None, timeout: float) -> ExampleStore:
    """An existing index keeps its embedder unless one is named; a new one gets the `embedder` setting's."""
    from icl_retriever.embedders import load_embedder
    from icl_retriever.errors import StoreNotFoundError
    from icl_retriever.store import ExampleStore

    if not embedder_given and model is None:
        try:
            return config.open_store(timeout=timeout)
        except StoreNotFoundError:
            pass
    return ExampleStore(load_embedder(config.embedder, model), config.name, config.store, config.url, timeout=timeout)


@command()
def select(request: Request, selection: Selection, target: Target, json_out: JsonOption = False) -> None:
    """Print the demonstrations chosen for a request, most similar last.

    Example: icl-retriever select "Is this review positive or negative?" --input "Loved it."
    """
    from icl_retriever.example import shorten

    config, selector = selection.selector(target)
    demos = selector.select_examples({"instruction": request.instruction, "input": request.input})
    if json_out:
        print_json({"demonstrations": demos})
        return
    if not demos:
        typer.echo(
            "No demonstrations matched."
            if config.min_task_score is None
            else f"No demonstration reaches --min-task-score {config.min_task_score}: the request's task is not in the pool."
        )
    for rank, demo in enumerate(demos, start=1):
        score = "-" if demo["score"] is None else f"{demo['score']:.3f}"
        sure = "" if demo["task_score"] is None else f"  task_score {demo['task_score']:.3f}"
        typer.echo(f"#{rank}  score {score}{sure}  id {demo['id']}  task {demo['task'] or '-'}")
        typer.echo(f"    instruction: {shorten(demo['instruction'])}")
        if demo["input"]:
            typer.echo(f"    input:       {shorten(demo['input'])}")
        typer.echo(f"    output:      {shorten(demo['output'])}")


@command()
def info(target: Target, json_out: JsonOption = False) -> None:
    """Describe an index: size, embedder fingerprint and dimension (no model is loaded)."""
    from icl_retriever.store import ExampleStore

    config = target.settings()
    data = ExampleStore.describe(config.name, config.store, config.url, timeout=target.timeout)
    if json_out:
        print_json(data)
    else:
        for key, value in data.items():
            typer.echo(f"{key:12} {value}")
