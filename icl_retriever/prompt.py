"""THE prompt format, shared by `icl-retriever ask`, `ICLPipeline`, the LangChain chain and the ICL benchmark.

Each demonstration and the request are rendered as a block::

    Instruction: <instruction>       (line left out when the instruction is empty: T0-style rows
    Input: <input>                    carry the whole prompt in `input`; likewise for an empty input)
    Output: <output>

Base models (no chat template) get the blocks separated by blank lines, the request last with an
open `Output:`, and the answer is read up to the first newline::

    Instruction: Classify the sentiment.
    Input: A wonderful film.
    Output: positive

    Instruction: Classify the sentiment.
    Input: Two hours I will never get back.
    Output:

Chat models (the tokenizer has a `chat_template`) get the same blocks as conversation turns: a
system line asking for a one-line answer, then per demonstration a user turn (instruction + input)
and an assistant turn (output), then the request as the last user turn. Measured on 58 iclmix
query tasks with SmolLM2-135M-Instruct (2 same-task demonstrations, greedy, exact match): turns
20/58, plain text 22/58, all demonstrations pasted into one user turn 8/58 (the model chats
instead of completing the pattern). Turns keep the chat format the model was tuned on at no
measurable cost, so they are the rule for chat models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.example_selectors import BaseExampleSelector
from langchain_core.prompts import FewShotPromptTemplate, PromptTemplate

__all__ = [
    "EXAMPLE_PROMPT",
    "REQUEST_PROMPT",
    "SYSTEM_PROMPT",
    "build_messages",
    "build_prompt",
    "few_shot_prompt",
    "has_chat_template",
]

# jinja2 (sandboxed by LangChain) so that empty fields drop their line; the same templates
# render the plain prompt here and the LangChain FewShotPromptTemplate, so they cannot drift.
_REQUEST = (
    "{% if instruction | trim %}Instruction: {{ instruction | trim }}\n{% endif %}"
    "{% if input | trim %}Input: {{ input | trim }}\n{% endif %}"
)
REQUEST_PROMPT = PromptTemplate.from_template(_REQUEST, template_format="jinja2")
"""Instruction and input lines of one block (ends with a newline)."""
EXAMPLE_PROMPT = PromptTemplate.from_template(_REQUEST + "Output: {{ output | trim }}", template_format="jinja2")
"""A full demonstration block."""
SYSTEM_PROMPT = "Answer with the output only, on one line."
"""System turn for chat models."""
_SEPARATOR = "\n\n"


def few_shot_prompt(
    selector: BaseExampleSelector | None = None, examples: Sequence[Mapping[str, Any]] | None = None
) -> FewShotPromptTemplate:
    """LangChain template for the plain format; give a `selector` or fixed `examples`.

    Its input variables are `instruction` and `input`.
    """
    return FewShotPromptTemplate(
        example_selector=selector,
        examples=None if examples is None else [_fields(e) for e in examples],
        example_prompt=EXAMPLE_PROMPT,
        suffix=_REQUEST + "Output:",
        example_separator=_SEPARATOR,
        input_variables=["instruction", "input"],
        template_format="jinja2",
    )


def has_chat_template(tokenizer: Any) -> bool:
    """True when `tokenizer` is a chat model's tokenizer (a non-empty `chat_template`)."""
    return bool(getattr(tokenizer, "chat_template", None))


def build_messages(demos: Sequence[Mapping[str, Any]], instruction: str, input: str = "") -> list[dict[str, str]]:
    """Chat turns: system, (user, assistant) per demonstration, then the request as user."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for demo in demos:
        d = _fields(demo)
        messages.append({"role": "user", "content": _request_text(d["instruction"], d["input"])})
        messages.append({"role": "assistant", "content": d["output"].strip()})
    messages.append({"role": "user", "content": _request_text(instruction, input)})
    return messages


def build_prompt(
    demos: Sequence[Mapping[str, Any]], instruction: str, input: str = "", tokenizer: Any = None
) -> str:
    """The exact text sent to the model for a request and its demonstrations (most similar last).

    `demos` are mappings with instruction, input and output (extra keys are ignored).
    `tokenizer`: a transformers tokenizer; with a chat template the prompt is rendered as chat
    turns ending in the assistant header, otherwise (or None) as plain few-shot text.
    """
    if not instruction.strip() and not input.strip():
        raise ValueError("A request needs an instruction or an input; both are empty.")
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(
            build_messages(demos, instruction, input), tokenize=False, add_generation_prompt=True
        )
    return few_shot_prompt(examples=demos).format(instruction=instruction, input=input)


def _request_text(instruction: str, input: str) -> str:
    return REQUEST_PROMPT.format(instruction=instruction, input=input).rstrip("\n")


def _fields(example: Mapping[str, Any]) -> dict[str, str]:
    return {
        "instruction": str(example.get("instruction") or ""),
        "input": str(example.get("input") or ""),
        "output": str(example["output"]),
    }
