"""A LangChain `LLM` over any icl-retriever `Generator`, and the few-shot LCEL chain.

Example (selector -> FewShotPromptTemplate -> LLM):
    >>> from icl_retriever.generators import make_generator
    >>> llm = GeneratorLLM(generator=make_generator("vllm"))                 # doctest: +SKIP
    >>> chain = few_shot_chain(selector, llm)                                 # doctest: +SKIP
    >>> chain.invoke({"instruction": "Is this review positive or negative?",
    ...               "input": "The plot makes no sense."})                   # doctest: +SKIP
    'negative'

The chain sends the plain few-shot text of `icl_retriever.prompt` as is (measured best of the
string formats for SmolLM2-135M-Instruct; pasting it into one chat user turn was much worse, so
`chat` is off by default). `ICLPipeline` / `icl-retriever ask` render chat models' demonstrations
as chat turns instead; both use the same demonstration blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.example_selectors import BaseExampleSelector
from langchain_core.language_models import LLM
from langchain_core.outputs import Generation, LLMResult
from langchain_core.runnables import Runnable
from pydantic import ConfigDict, Field

from icl_retriever.generators import Generator
from icl_retriever.prompt import SYSTEM_PROMPT, few_shot_prompt, has_chat_template

__all__ = ["GeneratorLLM", "few_shot_chain"]


class GeneratorLLM(LLM):
    """LangChain LLM backed by a `Generator`; `batch`/`generate` send all prompts in one call."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    generator: Generator
    """The backend (vLLM, OpenAI-compatible server or transformers)."""
    max_tokens: int = Field(default=32, ge=1)
    """Most new tokens per answer."""
    temperature: float = Field(default=0.0, ge=0.0)
    """0 = greedy."""
    stop: list[str] | None = Field(default_factory=lambda: ["\n"])
    """Default stop strings (one-line answers); a call's own `stop` replaces them."""
    chat: bool = False
    """Wrap each prompt in the model's chat template as one user turn (for chat-style prompts)."""

    @property
    def _llm_type(self) -> str:
        return f"icl-retriever-{self.generator.backend}"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.generator.model,
            "backend": self.generator.backend,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "chat": self.chat,
        }

    def _format(self, prompt: str) -> str:
        if not (self.chat and has_chat_template(self.generator.tokenizer)):
            return prompt
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
        return self.generator.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _call(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        return self._complete([prompt], stop)[0]

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        # LLM's default loops over _call; one batch lets vLLM schedule all prompts together.
        return LLMResult(generations=[[Generation(text=t)] for t in self._complete(prompts, stop)])

    def _complete(self, prompts: Sequence[str], stop: list[str] | None) -> list[str]:
        texts = self.generator.generate(
            [self._format(p) for p in prompts],
            max_tokens=self.max_tokens,
            stop=stop if stop is not None else self.stop,
            temperature=self.temperature,
        )
        return [t.strip() for t in texts]


def few_shot_chain(selector: BaseExampleSelector, llm: LLM) -> Runnable[dict[str, Any], str]:
    """`selector -> FewShotPromptTemplate -> llm`; invoke with {"instruction": ..., "input": ...}."""
    return few_shot_prompt(selector=selector) | llm
