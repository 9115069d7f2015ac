"""The typer application, shared options and error handling for every command module."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from icl_retriever.errors import IclRetrieverError

app = typer.Typer(
    name="icl-retriever",
    help="Pick in-context demonstrations by task, and answer with them.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(
    help="Benchmarks: `ieb` (instruction embedding quality) and `icl` (answer accuracy by strategy).",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")

StoreOption = Annotated[Path, typer.Option("--store", help="Folder that holds the embedded indexes.")]
NameOption = Annotated[str, typer.Option("--name", help="Index name (default: 'pool', the built-in pool's).")]
UrlOption = Annotated[
    str | None, typer.Option("--url", help="A Chroma server, e.g. http://localhost:8000, instead of --store.")
]
InstructionArgument = Annotated[str, typer.Argument(help="The request's instruction.")]
InputOption = Annotated[str, typer.Option("--input", help="The request's input.")]
KOption = Annotated[int, typer.Option("-k", min=0, help="How many demonstrations.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(command: F) -> F:
    """Turn library errors into a message on stderr and exit code 1 (bad flags stay typer's 2)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except IclRetrieverError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(1) from exc

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def parse_where(where: str | None) -> dict[str, Any] | None:
    if where is None:
        return None
    try:
        value = json.loads(where)
    except json.JSONDecodeError as exc:
        raise IclRetrieverError(f"--where must be a JSON object such as '{{\"lang\": \"en\"}}': {exc.msg}.") from exc
    if not isinstance(value, dict):
        raise IclRetrieverError(f"--where must be a JSON object, got {type(value).__name__}.")
    return value


def log(message: str) -> None:
    print(message, file=sys.stderr)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"icl-retriever {version('icl-retriever')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Pick in-context demonstrations by task, and answer with them."""
    # The CLI owns the terminal: keep transformers' per-load progress bars and notices off stderr.
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
