"""LangChain example selectors over an `ExampleStore`.

All selectors share one interface, so a benchmark (or an application) can swap them:
`select_examples({"instruction": ..., "input": ...})` returns up to `k` dicts with the keys
`instruction`, `input`, `output`, `id`, `task` and `score`, ordered with the most similar LAST, next
to the request in the prompt.

Example:
    >>> from langchain_core.prompts import FewShotPromptTemplate, PromptTemplate
    >>> selector = TaskExampleSelector(store=store, k=2)            # doctest: +SKIP
    >>> prompt = FewShotPromptTemplate(
    ...     example_selector=selector,
    ...     example_prompt=PromptTemplate.from_template("{instruction}\\n{input}\\n{output}"),
    ...     suffix="{instruction}\\n{input}\\n", input_variables=["instruction", "input"],
    ... )                                                               # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
from langchain_core.example_selectors import BaseExampleSelector
from pydantic import BaseModel, ConfigDict, Field

from icl_retriever.embedders import PIEEmbedder, SemanticEmbedder
from icl_retriever.errors import IclRetrieverError
from icl_retriever.example import Example
from icl_retriever.lexical import ContentIndex, TemplateVocabulary
from icl_retriever.store import Hit, ExampleStore


def _word_count(text: str) -> int:
    return len(re.findall(r"\S+", text))


class _StoreSelector(BaseExampleSelector, BaseModel):
    """Options every selector shares."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    store: ExampleStore
    """The pool to choose from."""
    k: int = Field(default=2, ge=0)
    """How many demonstrations to return."""
    instruction_key: str = "instruction"
    """Input variable that holds the request's instruction."""
    input_keys: list[str] = Field(default_factory=lambda: ["input"])
    """Input variables whose values form the request's input (joined by newlines)."""
    where: dict[str, Any] | None = None
    """Chroma metadata filter applied to the pool, e.g. `{"lang": "en"}`."""
    exclude_ids: set[str] = Field(default_factory=set)
    """Example ids never returned (e.g. the request itself in leave-one-out evaluation)."""
    token_budget: int | None = Field(default=None, ge=1)
    """Upper bound on the demonstrations' total length, measured by `count_tokens`."""
    count_tokens: Callable[[str], int] = _word_count
    """Length function for `token_budget` (default: whitespace-separated words)."""

    def add_example(self, example: dict[str, Any]) -> Any:
        """Validate and index one example (same keys as a pool record)."""
        return self.store.add([Example.model_validate(example)])

    async def aadd_example(self, example: dict[str, Any]) -> Any:
        return await asyncio.to_thread(self.add_example, example)

    def select_examples(self, input_variables: dict[str, Any]) -> list[dict[str, Any]]:
        """Demonstrations for a request, most similar last."""
        return [_as_dict(hit) for hit in self.select_hits(input_variables)]

    async def aselect_examples(self, input_variables: dict[str, Any]) -> list[dict[str, Any]]:
        # Embedding and Chroma calls block: run them off the event loop.
        return await asyncio.to_thread(self.select_examples, input_variables)

    def select_hits(self, input_variables: dict[str, Any], exclude_ids: Sequence[str] = ()) -> list[Hit]:
        """Like `select_examples`, returning `Hit`s; `exclude_ids` adds to the fixed exclusions."""
        instruction, text_input = self._request(input_variables)
        excluded = self.exclude_ids | set(exclude_ids)
        ranked = self._rank(instruction, text_input, excluded)  # most similar first
        chosen = self._within_budget(ranked)
        return list(reversed(chosen))

    def _request(self, input_variables: dict[str, Any]) -> tuple[str, str]:
        instruction = str(input_variables.get(self.instruction_key, ""))
        parts = [str(input_variables[key]) for key in self.input_keys if input_variables.get(key)]
        if not instruction.strip() and not parts:
            raise IclRetrieverError(
                f"The request has no text: expected '{self.instruction_key}' or one of {self.input_keys} "
                f"in the input variables, got keys {sorted(input_variables)}."
            )
        return instruction, "\n".join(parts)

    def _within_budget(self, ranked: list[Hit]) -> list[Hit]:
        if self.token_budget is None:
            return ranked[: self.k]
        chosen, used = [], 0
        for hit in ranked:
            length = self.count_tokens("\n".join((hit.example.instruction, hit.example.input, hit.example.output)))
            if used + length <= self.token_budget:
                chosen.append(hit)
                used += length
            if len(chosen) == self.k:
                break
        return chosen

    def _pool(self) -> list[Example]:
        """The pool's examples in memory (after `where`), reloaded when the store grows."""
        count = self.store.count
        cached = self.__dict__.get("_cached_pool")
        if cached is None or cached[0] != count:
            cached = (count, self.store.examples(where=self.where))
            self.__dict__["_cached_pool"] = cached
        return cached[1]

    def _candidates_needed(self) -> int:
        # With a budget some of the nearest may not fit: look further down the ranking.
        return self.k if self.token_budget is None else max(self.k * 5, 20)

    def _rank(self, instruction: str, text_input: str, excluded: set[str]) -> list[Hit]:
        raise NotImplementedError


class SimilarityExampleSelector(_StoreSelector):
    """Nearest neighbours of the request in the store's vector space, with optional MMR."""

    mmr: bool = False
    """Use maximal marginal relevance to avoid near-duplicate demonstrations."""
    fetch_k: int = Field(default=20, ge=1)
    """Candidates considered by MMR."""
    lambda_mult: float = Field(default=0.5, ge=0.0, le=1.0)
    """MMR trade-off: 1 = pure similarity, 0 = pure diversity."""

    def _rank(self, instruction: str, text_input: str, excluded: set[str]) -> list[Hit]:
        n = max(self.fetch_k, self._candidates_needed()) if self.mmr else self._candidates_needed()
        hits = self._nearest(instruction, text_input, excluded, n)
        return _mmr(hits, len(hits), self.lambda_mult) if self.mmr else hits

    def _nearest(self, instruction: str, text_input: str, excluded: set[str], n: int) -> list[Hit]:
        embedder = self.store.embedder
        query = embedder.embed_query(embedder.text_for(instruction, text_input))
        return self.store.query(query, n, where=self.where, exclude_ids=excluded, with_vectors=self.mmr)


class _EmbedderBoundSelector(SimilarityExampleSelector):
    """A similarity selector that only makes sense over one kind of embedder."""

    _embedder_type: ClassVar[type]
    _embedder_name: ClassVar[str]

    def model_post_init(self, context: Any) -> None:
        if not isinstance(self.store.embedder, self._embedder_type):
            raise IclRetrieverError(
                f"{type(self).__name__} needs a store built with the {self._embedder_name} embedder; "
                f"'{self.store.name}' uses {self.store.fingerprint}. "
                f"Index the pool with --embedder {self._embedder_name}."
            )


class TaskExampleSelector(_EmbedderBoundSelector):
    """Demonstrations that ask for the same task: nearest neighbours under a PIE embedder, re-scored.

    PIE's `fetch_k` nearest examples are ranked by

        score = PIE cosine + template_weight * template overlap + content_weight * content similarity

    Template overlap (`icl_retriever.lexical`) is the Jaccard overlap of the word 4-grams that
    recur across the pool, i.e. prompt-template wording: it tells apart sibling tasks whose prompts
    differ in a few template words. Content similarity (TF-IDF cosine of instruction + input) is
    a smaller term that, among examples of the same task, prefers those about similar content.
    Both weights at 0 give plain PIE nearest neighbours.
    """

    _embedder_type = PIEEmbedder
    _embedder_name = "pie"

    fetch_k: int = Field(default=50, ge=1)
    """PIE's nearest examples that are re-scored (and considered by MMR)."""
    template_weight: float = Field(default=1.0, ge=0.0)
    """Weight of the template overlap (itself in [0, 1])."""
    content_weight: float = Field(default=0.3, ge=0.0)
    """Weight of the content similarity (itself in [0, 1])."""

    def _rank(self, instruction: str, text_input: str, excluded: set[str]) -> list[Hit]:
        if not (self.template_weight or self.content_weight):
            return super()._rank(instruction, text_input, excluded)
        hits = self._nearest(instruction, text_input, excluded, max(self.fetch_k, self._candidates_needed()))
        templates, contents = self._lexicons()
        task_text = self.store.embedder.text_for
        template = templates.overlap(
            task_text(instruction, text_input), [task_text(h.example.instruction, h.example.input) for h in hits]
        )
        content = contents.similarity(
            _content_text(instruction, text_input), [_content_text(h.example.instruction, h.example.input) for h in hits]
        )
        scores = np.array([hit.score for hit in hits]) + self.template_weight * template + self.content_weight * content
        ranked = [Hit(hits[i].example, float(scores[i]), hits[i].vector) for i in np.argsort(-scores, kind="stable")]
        return _mmr(ranked, len(ranked), self.lambda_mult) if self.mmr else ranked

    def _lexicons(self) -> tuple[TemplateVocabulary, ContentIndex]:
        pool = self._pool()
        cached = self.__dict__.get("_cached_lexicons")
        if cached is None or cached[0] is not pool:
            embedder = self.store.embedder
            cached = (
                pool,
                TemplateVocabulary([embedder.text_for(e.instruction, e.input) for e in pool]),
                ContentIndex([_content_text(e.instruction, e.input) for e in pool]),
            )
            self.__dict__["_cached_lexicons"] = cached
        return cached[1], cached[2]


class SemanticExampleSelector(_EmbedderBoundSelector):
    """Topic baseline: nearest neighbours of instruction + input under a sentence embedder."""

    _embedder_type = SemanticEmbedder
    _embedder_name = "semantic"


class RandomExampleSelector(_StoreSelector):
    """Uniformly random demonstrations (seeded per request, so runs are reproducible)."""

    seed: int = 0
    """Base seed; each request's draw depends on the seed and the request text."""

    def _rank(self, instruction: str, text_input: str, excluded: set[str]) -> list[Hit]:
        pool = [e for e in self._pool() if e.key not in excluded]
        rng = random.Random(f"{self.seed}\x00{instruction}\x00{text_input}")
        return [Hit(e, float("nan")) for e in rng.sample(pool, min(len(pool), self._candidates_needed()))]


class BM25ExampleSelector(_StoreSelector):
    """Lexical baseline: Okapi BM25 over instruction + input."""

    def _rank(self, instruction: str, text_input: str, excluded: set[str]) -> list[Hit]:
        from rank_bm25 import BM25Okapi

        pool = self._pool()
        index = self.__dict__.get("_bm25")
        if index is None or index[0] is not pool:
            index = (pool, BM25Okapi([_tokens(_content_text(e.instruction, e.input)) for e in pool]))
            self.__dict__["_bm25"] = index
        scores = index[1].get_scores(_tokens(_content_text(instruction, text_input)))
        hits = []
        for i in np.argsort(-scores, kind="stable"):
            if pool[i].key not in excluded:
                hits.append(Hit(pool[i], float(scores[i])))
            if len(hits) == self._candidates_needed():
                break
        return hits


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _content_text(instruction: str, text_input: str) -> str:
    return f"{instruction}\n{text_input}"


def _mmr(hits: list[Hit], n: int, lambda_mult: float) -> list[Hit]:
    """Greedy maximal marginal relevance over candidate hits that carry their vectors.

    Relevance is each hit's score; redundancy the cosine to the hits already chosen.
    """
    if not hits:
        return []
    vectors = np.stack([hit.vector for hit in hits])
    relevance = np.array([hit.score for hit in hits])
    chosen: list[int] = []
    while len(chosen) < min(n, len(hits)):
        if chosen:
            redundancy = (vectors @ vectors[chosen].T).max(axis=1)
        else:
            redundancy = np.zeros(len(hits))
        value = lambda_mult * relevance - (1 - lambda_mult) * redundancy
        value[chosen] = -np.inf
        chosen.append(int(np.argmax(value)))
    return [hits[i] for i in chosen]


def _as_dict(hit: Hit) -> dict[str, Any]:
    score = None if np.isnan(hit.score) else round(hit.score, 6)
    return {**hit.example.to_prompt_dict(), "score": score}


def selector_for_store(store: ExampleStore, **options: Any) -> SimilarityExampleSelector:
    """The similarity selector that matches the store's embedder (task for PIE, else semantic)."""
    if isinstance(store.embedder, PIEEmbedder):
        return TaskExampleSelector(store=store, **options)
    return SemanticExampleSelector(store=store, **options)
