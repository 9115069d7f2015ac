"""The selector flags that `select` and `ask` share, and the selector they describe."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Annotated, Any

import typer

from icl_retriever.cli._app import parse_where
from icl_retriever.errors import IclRetrieverError

if TYPE_CHECKING:
    from langchain_core.example_selectors import BaseExampleSelector

    from icl_retriever.vectorstore import ExampleVectorStore

#: Flags that only the task selector (an index built with the task embedder) understands.
TASK_ONLY = ("content_weight", "overlap_weight", "group_size", "min_task_score", "balance_labels")


@dataclass(frozen=True)
class Selection:
    """How demonstrations are chosen; None leaves the selector's own default."""

    where: Annotated[str | None, typer.Option(help="JSON metadata filter, e.g. '{\"lang\": \"en\"}'.")] = None
    mmr: Annotated[bool, typer.Option(help="Prefer diverse demonstrations (maximal marginal relevance).")] = False
    content_weight: Annotated[
        float | None,
        typer.Option(min=0.0, help="Task selector: weight of the content cosine, which prefers similar inputs (default 0.5)."),
    ] = None
    overlap_weight: Annotated[
        float | None,
        typer.Option(min=0.0, help="Task selector: weight of the word overlap of the task wordings (default 0.9)."),
    ] = None
    group_size: Annotated[
        int | None,
        typer.Option(min=0, help="Task selector: best examples of a task group that add up to its support; 0 = none (default 3)."),
    ] = None
    fetch_k: Annotated[
        int | None,
        typer.Option(min=1, help="Nearest examples re-scored (task selector, default 50) or considered by --mmr (default 20)."),
    ] = None
    min_task_score: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Task selector: leave out demonstrations whose task_score (calibrated same-task probability) is "
            "below this, answering with fewer or none (zero-shot) instead of another task's; 0.37 was chosen on "
            "iclmix dev for requests in the pool's own wording (README, Know your pool). Default: off.",
        ),
    ] = None
    balance_labels: Annotated[
        bool,
        typer.Option(help="Task selector: for a classification task, demonstrations with different outputs."),
    ] = False
    token_budget: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Most tokens all demonstrations may take together (`ask`: the generator's tokens; `select`: words).",
        ),
    ] = None

    def selector(
        self,
        store: ExampleVectorStore,
        k: int,
        count_tokens: Callable[[str], int] | None = None,
        *,
        min_task_score: float | None = None,
    ) -> BaseExampleSelector:
        """The store's selector (`selector_for_store`) with these settings; `min_task_score` is the
        resolved setting (the flag, else `ICL_RETRIEVER_MIN_TASK_SCORE` or the config file)."""
        from icl_retriever.selectors import selector_for_store
        from icl_retriever.task_embedder import TaskEmbedder

        given = {field.name: getattr(self, field.name) for field in fields(self) if field.name not in ("where", "mmr")}
        given["min_task_score"] = min_task_score if min_task_score is not None else self.min_task_score
        # a flag not given is None; --balance-labels only counts when set
        options: dict[str, Any] = {name: value for name, value in given.items() if value is not None and value is not False}
        misplaced = [f"--{name.replace('_', '-')}" for name in TASK_ONLY if name in options]
        if misplaced and not isinstance(store.embedder, TaskEmbedder):
            raise IclRetrieverError(
                f"{', '.join(misplaced)} tune the task selector, but index '{store.name}' uses {store.fingerprint}. "
                "Drop them, or re-index the pool with `icl-retriever index POOL --embedder task --rebuild`."
            )
        if count_tokens is not None:
            options["count_tokens"] = count_tokens
        return selector_for_store(store, k=k, where=parse_where(self.where), mmr=self.mmr, **options)


def selection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the `Selection` flags; it receives them as one `selection` argument."""
    names = [field.name for field in fields(Selection)]
    hints = inspect.get_annotations(Selection, eval_str=True)
    added = [
        inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=field.default, annotation=hints[field.name])
        for field in fields(Selection)
    ]
    signature = inspect.signature(command, eval_str=True)
    own = [param for name, param in signature.parameters.items() if name != "selection"]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        selection = Selection(**{name: kwargs.pop(name) for name in names})
        return command(*args, selection=selection, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**{p.name: p.annotation for p in own}, **{p.name: p.annotation for p in added}}
    return wrapper
