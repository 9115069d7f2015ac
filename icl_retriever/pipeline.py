"""ICLPipeline: pick demonstrations for a request, build the prompt, generate, report what was used.

Example:
    >>> from icl_retriever.generators import make_generator
    >>> pipe = ICLPipeline(selector, make_generator("vllm"))        # doctest: +SKIP
    >>> answer = pipe.answer("Is this review positive or negative?", "A dull, endless film.")  # doctest: +SKIP
    >>> answer.answer, [d.id for d in answer.demonstrations]        # doctest: +SKIP
    ('negative', ['sent-02', 'sent-04'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.example_selectors import BaseExampleSelector
from pydantic import BaseModel, ConfigDict, Field

from icl_retriever.generators import Generator
from icl_retriever.prompt import build_prompt

__all__ = ["Answer", "Demonstration", "ICLPipeline", "Request", "answer_with"]


class Demonstration(BaseModel):
    """A pool example placed in the prompt, with the selector's similarity score."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    instruction: str
    input: str = ""
    output: str
    task: str | None = None
    score: float | None = Field(default=None, description="Selector score; None for random choice.")
    task_score: float | None = Field(
        default=None, description="Calibrated probability that it asks for the request's task (task selector only)."
    )


class Request(BaseModel):
    """One question for the pipeline."""

    model_config = ConfigDict(extra="forbid")

    instruction: str
    input: str = ""


class Answer(BaseModel):
    """The generated answer and everything needed to reproduce it."""

    model_config = ConfigDict(extra="forbid")

    answer: str = Field(description="First line of the completion, stripped.")
    demonstrations: list[Demonstration] = Field(description="In prompt order (most similar last).")
    prompt: str = Field(description="The exact text sent to the model.")
    model: str
    backend: str


class ICLPipeline:
    """Selector + the shared prompt format + a generator.

    `selector` is any LangChain `BaseExampleSelector` whose `select_examples` returns dicts with
    instruction, input, output (and optionally id, task, score); `k`, when given, overrides the
    selector's own `k` for this pipeline.
    """

    def __init__(
        self,
        selector: BaseExampleSelector,
        generator: Generator,
        k: int | None = None,
        *,
        max_tokens: int = 32,
        stop: Sequence[str] | None = ("\n",),
        temperature: float = 0.0,
    ) -> None:
        if k is not None:
            if not hasattr(selector, "k"):
                raise TypeError(f"k={k} given but {type(selector).__name__} has no `k` to set.")
            # A copy, so that the caller's selector keeps its own k.
            selector = selector.model_copy(update={"k": k}) if isinstance(selector, BaseModel) else selector
            selector.k = k
        self.selector = selector
        self.generator = generator
        self.max_tokens = max_tokens
        self.stop = list(stop) if stop else None
        self.temperature = temperature

    def answer(self, instruction: str, input: str = "") -> Answer:
        """Answer one request."""
        return self.answer_many([Request(instruction=instruction, input=input)])[0]

    def answer_many(self, requests: Sequence[Request | Mapping[str, Any]]) -> list[Answer]:
        """Answer several requests with a single `generate` call (one batch for the engine)."""
        reqs = [r if isinstance(r, Request) else Request.model_validate(dict(r)) for r in requests]
        inputs = [{"instruction": r.instruction, "input": r.input} for r in reqs]
        select_many = getattr(self.selector, "select_many", None)  # ours select all requests at once
        demos = select_many(inputs) if select_many else [self.selector.select_examples(v) for v in inputs]
        return answer_with(
            self.generator, reqs, demos, max_tokens=self.max_tokens, stop=self.stop, temperature=self.temperature
        )


def answer_with(
    generator: Generator,
    requests: Sequence[Request],
    demonstrations: Sequence[Sequence[Mapping[str, Any]]],
    *,
    max_tokens: int = 32,
    stop: Sequence[str] | None = ("\n",),
    temperature: float = 0.0,
) -> list[Answer]:
    """Answer each request with its given demonstrations (most similar last): the prompt and
    generation step of `ICLPipeline.answer_many`, one `generate` call for all. The ICL benchmark
    calls it with each strategy's demonstrations, so it measures what the pipeline runs."""
    tokenizer = generator.tokenizer
    prompts = [
        build_prompt(demos, request.instruction, request.input, tokenizer=tokenizer)
        for demos, request in zip(demonstrations, requests, strict=True)
    ]
    texts = generator.generate(prompts, max_tokens=max_tokens, stop=list(stop) if stop else None, temperature=temperature)
    return [
        Answer(
            answer=_first_line(text),
            demonstrations=[_demonstration(d) for d in chosen],
            prompt=prompt,
            model=generator.model,
            backend=generator.backend,
        )
        for text, chosen, prompt in zip(texts, demonstrations, prompts)
    ]


def _first_line(text: str) -> str:
    # The prompt asks for a one-line answer; a generator run without a stop string may go on.
    stripped = text.strip()
    return stripped.splitlines()[0].strip() if stripped else ""


def _demonstration(example: Mapping[str, Any]) -> Demonstration:
    fields = Demonstration.model_fields
    return Demonstration.model_validate({key: example[key] for key in fields if key in example})
