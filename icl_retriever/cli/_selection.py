"""What `select` and `ask` share: the request, and the selector flags with the selector they describe (option groups)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Annotated, Any

import typer

from icl_retriever.cli._app import Target, parse_where
from icl_retriever.errors import IclRetrieverError

if TYPE_CHECKING:
    from langchain_core.example_selectors import BaseExampleSelector

    from icl_retriever.settings import Settings

#: Flags that only the task selector (an index built with the task embedder) understands.
TASK_ONLY = ("content_weight", "overlap_weight", "answer_weight", "group_size", "min_task_score", "balance_labels")


@dataclass(frozen=True)
class Request:
    """The request that demonstrations are chosen for, an option group (see `command`)."""

    instruction: Annotated[str, typer.Argument(help="The request's instruction.")]
    input: Annotated[str, typer.Option("--input", help="The request's input.")] = ""


@dataclass(frozen=True)
class Selection:
    """How demonstrations are chosen, an option group (see `command`); None leaves the setting
    (`k`, `min_task_score`) or the selector's own default."""

    k: Annotated[int | None, typer.Option("-k", min=0, help="How many demonstrations (default 2).")] = None
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
    answer_weight: Annotated[
        float | None,
        typer.Option(
            min=0.0, help="Task selector: weight of the answer match, the request naming a candidate's output (default 0.4)."
        ),
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
            "below this, answering with fewer or none (zero-shot) instead of another task's; 0.35 was chosen on "
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

    def selector(self, target: Target, **flags: Any) -> tuple[Settings, BaseExampleSelector]:
        """The settings (`target.settings` with -k, --min-task-score and `flags` on top) and the selector
        (`selector_for_store`) of the index they name, with these flags; bad flags fail here."""
        from icl_retriever.selectors import selector_for_store
        from icl_retriever.task_embedder import TaskEmbedder

        config = target.settings(k=self.k, min_task_score=self.min_task_score, **flags)
        store = config.open_store(timeout=target.timeout)
        given = {field.name: getattr(self, field.name) for field in fields(self) if field.name not in ("k", "where", "mmr")}
        given["min_task_score"] = config.min_task_score  # the flag, else ICL_RETRIEVER_MIN_TASK_SCORE or the config file
        # a flag not given is None; --balance-labels only counts when set
        options: dict[str, Any] = {name: value for name, value in given.items() if value is not None and value is not False}
        misplaced = [f"--{name.replace('_', '-')}" for name in TASK_ONLY if name in options]
        if misplaced and not isinstance(store.embedder, TaskEmbedder):
            raise IclRetrieverError(
                f"{', '.join(misplaced)} tune the task selector, but index '{store.name}' uses {store.fingerprint}. "
                "Drop them, or re-index the pool with `icl-retriever index POOL --embedder task --rebuild`."
            )
        return config, selector_for_store(store, k=config.k, where=parse_where(self.where), mmr=self.mmr, **options)

