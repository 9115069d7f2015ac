"""The typer application and what every command module shares: the `command` decorator (option
groups such as `Target` expanded into flags, library errors turned into exit code 1) and helpers.

Startup stays cheap: this module and the command modules import only typer and light
`icl_retriever` modules at the top, so `--help`, a bad flag or a missing file answer at once;
each command imports the store, embedders, selectors and generators (numpy, chromadb, torch,
transformers, langchain) when it runs.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import typer

from icl_retriever.errors import IclRetrieverError

if TYPE_CHECKING:
    from icl_retriever.settings import Settings
    from icl_retriever.store import ExampleStore

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


@dataclass(frozen=True)
class Target:
    """The index a command reads or writes, an option group (see `command`).

    Settings (`icl_retriever.settings.Settings`) can set these too: None means "not given", and
    `settings()` fills in the value from ICL_RETRIEVER_* variables, icl-retriever.toml or the default.
    """

    store: Annotated[
        Path | None, typer.Option("--store", help="Folder that holds the embedded indexes (default: stores).")
    ] = None
    name: Annotated[
        str | None,
        typer.Option("--name", help="Index name (default: 'pool', the built-in pool's; for `index`, the pool file's stem)."),
    ] = None
    url: Annotated[
        str | None, typer.Option("--url", help="A Chroma server, e.g. http://localhost:8000, instead of --store.")
    ] = None
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=0.1,
            help="Seconds to wait for a server's answer (the Chroma server of --url; for `ask --backend openai` "
            "also the model server) before failing.",
        ),
    ] = DEFAULT_TIMEOUT

    def settings(self, **flags: Any) -> Settings:
        """The settings with these flags, and the given ones, on top."""
        return settings(**{"store": self.store, "name": self.name, "url": self.url, **flags})

    def open_store(self, **flags: Any) -> ExampleStore:
        """The existing index these flags name (`Settings.open_store`), waiting at most `timeout` on a server."""
        return self.settings(**flags).open_store(timeout=self.timeout)


def expand_option_groups(command: F) -> F:
    """Give typer a flag for each field of every option group `command` takes, and call it with the groups.

    An option group is a dataclass whose fields are annotated like typer parameters (`Target`,
    `Selection`): a parameter annotated with one becomes its fields' flags, in its place, and the
    command receives the dataclass built from them. All parameters become keyword-only (typer passes
    every value by name), so a group may stand anywhere in the signature.
    """
    signature = inspect.signature(command, eval_str=True)
    groups = {
        name: param.annotation
        for name, param in signature.parameters.items()
        if isinstance(param.annotation, type) and is_dataclass(param.annotation)
    }
    params: list[inspect.Parameter] = []
    for name, param in signature.parameters.items():
        if name not in groups:
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY))
            continue
        hints = inspect.get_annotations(groups[name], eval_str=True)
        params.extend(
            inspect.Parameter(
                field.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=inspect.Parameter.empty if field.default is MISSING else field.default,
                annotation=hints[field.name],
            )
            for field in fields(groups[name])
        )
    names = [param.name for param in params]
    clashes = {name for name in names if names.count(name) > 1}
    if clashes:
        raise TypeError(f"{command.__name__}: option groups repeat the parameters {sorted(clashes)}")

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        for name, group in groups.items():
            kwargs[name] = group(**{field.name: kwargs.pop(field.name) for field in fields(group)})
        return command(**kwargs)

    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {param.name: param.annotation for param in params}
    return wrapper  # type: ignore[return-value]


def command(name: str | None = None, *, parent: typer.Typer = app) -> Callable[[F], F]:
    """Register a command of `parent` (the app, or `bench_app`): its option groups expanded into flags
    (`expand_option_groups`) and library errors turned into exit code 1 (`handle_errors`).

    Returns the function unchanged, as typer's own `command()` does.
    """

    def register(function: F) -> F:
        parent.command(name)(expand_option_groups(handle_errors(function)))
        return function

    return register


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
