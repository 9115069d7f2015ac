"""The typer application, shared options and error handling for every command module.

Startup stays cheap: this module and the command modules import only typer and light
`icl_retriever` modules at the top, so `--help`, a bad flag or a missing file answer at once;
each command imports the store, embedders, selectors and generators (numpy, chromadb, torch,
transformers, langchain) when it runs.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import typer

from icl_retriever.errors import IclRetrieverError

if TYPE_CHECKING:
    from icl_retriever.settings import Settings

# Mirrors of library values that typer needs while parsing, whose modules are too heavy to import
# for that (store, embedders: numpy; pool: pydantic). tests/test_cli_startup.py checks they match.
#: `icl_retriever.embedders.EmbedderKind` (its values: `EMBEDDER_KINDS`)
EmbedderKind = Literal["task", "pie-minilm", "pie-decoder", "trained", "semantic"]
#: `icl_retriever.pool.DEFAULT_MAX_FIELD_CHARS`
DEFAULT_MAX_FIELD_CHARS = 20_000
#: `icl_retriever.generators.Backend`
Backend = Literal["vllm", "openai", "transformers"]
#: `icl_retriever.store.DEFAULT_TIMEOUT`, `icl_retriever.generators.DEFAULT_TIMEOUT`
DEFAULT_TIMEOUT = 60.0

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

# Options that icl_retriever.settings.Settings can also set: None here means "not given", and
# `settings(...)` fills in the value from ICL_RETRIEVER_* variables, icl-retriever.toml or the default.
StoreOption = Annotated[
    Path | None, typer.Option("--store", help="Folder that holds the embedded indexes (default: stores).")
]
NameOption = Annotated[str | None, typer.Option("--name", help="Index name (default: 'pool', the built-in pool's).")]
UrlOption = Annotated[
    str | None, typer.Option("--url", help="A Chroma server, e.g. http://localhost:8000, instead of --store.")
]
TimeoutOption = Annotated[
    float,
    typer.Option(
        "--timeout",
        min=0.1,
        help="Seconds to wait for a server's answer (the Chroma server of --url; for `ask --backend openai` "
        "also the model server) before failing.",
    ),
]
InstructionArgument = Annotated[str, typer.Argument(help="The request's instruction.")]
InputOption = Annotated[str, typer.Option("--input", help="The request's input.")]
KOption = Annotated[int | None, typer.Option("-k", min=0, help="How many demonstrations (default 2).")]
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


def settings(**flags: Any) -> Settings:
    """The settings (ICL_RETRIEVER_* variables, icl-retriever.toml, defaults) with the given flags on top."""
    from icl_retriever.settings import Settings

    return Settings.resolve(**flags)


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
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show the libraries' own logs (vLLM engine, transformers).")
    ] = False,
) -> None:
    """Pick in-context demonstrations by task, and answer with them."""
    if not verbose:
        quiet_libraries()


def quiet_libraries() -> None:
    """Keep vLLM's engine logs and transformers' per-load progress bars and notices off stderr:
    the CLI owns the terminal, and only warnings get through.

    Importing these libraries takes seconds, so this sets the environment variables that vLLM,
    transformers and huggingface_hub read when they are imported (vLLM's engine subprocesses
    inherit them; a user's own setting wins); only if transformers is already loaded is it
    configured directly.
    """
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    transformers_logging = sys.modules.get("transformers.utils.logging")
    if transformers_logging is not None:
        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
