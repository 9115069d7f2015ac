"""LangChain example selectors over an `ExampleVectorStore` (Chroma's `ExampleStore` by default).

All selectors share one interface, so a benchmark (or an application) can swap them:
`select_examples({"instruction": ..., "input": ...})` returns up to `k` dicts with the keys
`instruction`, `input`, `output`, `id`, `task`, `score` and `task_score` (the task selector's
calibrated same-task probability; None for the others), ordered with the most similar LAST, next
to the request in the prompt. `select_many([...])` answers several requests at once (one encoder
call and one store query for all of them) with the same results as one by one.

No selector reads the whole pool when it selects: the nearest-neighbour selectors query the store,
random draws positions and fetches those rows, BM25 reads the inverted index saved at index time.

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
from collections import Counter
from dataclasses import dataclass, replace
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
from langchain_core.example_selectors import BaseExampleSelector
from langchain_core.vectorstores.utils import maximal_marginal_relevance
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from icl_retriever.embedders import SemanticEmbedder
from icl_retriever.errors import IclRetrieverError
from icl_retriever.example import Example
from icl_retriever.bm25 import BM25Index, content_text
from icl_retriever.lexical import answer_match, normalize_answer, strip_shared_content, task_text, word_overlap
from icl_retriever.task_embedder import TaskEmbedder
from icl_retriever.task_score import TaskScoreCalibration, default_calibration, task_features
from icl_retriever.vectorstore import ExampleVectorStore, Hit


def _word_count(text: str) -> int:
    return len(re.findall(r"\S+", text))


class _StoreSelector(BaseExampleSelector, BaseModel):
    """Options every selector shares."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    store: ExampleVectorStore
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
    _cache: dict[str, tuple[int, Any]] = PrivateAttr(default_factory=dict)

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
        return self.select_hits_many([input_variables], [exclude_ids])[0]

    def select_many(self, inputs: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """`select_examples` for each request, computed together (same results as one by one)."""
        return [[_as_dict(hit) for hit in hits] for hits in self.select_hits_many(inputs)]

    def select_hits_many(
        self, inputs: Sequence[dict[str, Any]], exclude_ids: Sequence[Sequence[str]] | None = None
    ) -> list[list[Hit]]:
        """`select_hits` for each request; `exclude_ids` holds one list of extra exclusions per request."""
        requests = [self._request(variables) for variables in inputs]
        extra = exclude_ids if exclude_ids is not None else [()] * len(requests)
        excluded = [self.exclude_ids | set(ids) for ids in extra]
        ranked = self._rank_many(requests, excluded)  # most similar first
        return [list(reversed(self._within_budget(hits))) for hits in ranked]

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

    def _cached(self, name: str, load: Callable[[], Any]) -> Any:
        """`load()`, kept until the next write to the store (any process) changes its revision."""
        revision = self.store.revision
        cached = self._cache.get(name)
        if cached is None or cached[0] != revision:
            cached = self._cache[name] = (revision, load())
        return cached[1]

    def _candidates_needed(self) -> int:
        # With a budget some of the nearest may not fit: look further down the ranking.
        return self.k if self.token_budget is None else max(self.k * 5, 20)

    def _rank_many(self, requests: Sequence[tuple[str, str]], excluded: Sequence[set[str]]) -> list[list[Hit]]:
        """Ranked candidates per (instruction, input) request, best first."""
        return [self._rank(instruction, text_input, ex) for (instruction, text_input), ex in zip(requests, excluded)]

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

    def _rank_many(self, requests: Sequence[tuple[str, str]], excluded: Sequence[set[str]]) -> list[list[Hit]]:
        n = max(self.fetch_k, self._candidates_needed()) if self.mmr else self._candidates_needed()
        embedder = self.store.embedder
        queries = embedder.embed_documents([embedder.text_for(instruction, text_input) for instruction, text_input in requests])
        found = self.store.query_many(queries, n, where=self.where, exclude_ids=excluded, with_vectors=self.mmr)
        if not self.mmr:
            return found
        return [
            [hits[i] for i in maximal_marginal_relevance(query, [hit.vector for hit in hits], self.lambda_mult, len(hits))]
            for query, hits in zip(queries, found)
        ]


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


class TaskExampleSelector(_StoreSelector):
    """Demonstrations that ask for the same task as the request, however the request is worded.

    Needs a store built with the task embedder (`icl_retriever.task_embedder`). For a request:

    1. Its task wording: the instruction when the input is separate; for a whole prompt in the
       instruction, the prompt minus the content it shares with its `strip_k` nearest pool
       examples by content (`lexical.strip_shared_content`).
    2. The `fetch_k` nearest examples under `task cosine + content_weight x content cosine`.
    3. Each scored `own = task cosine + content_weight x content cosine + overlap_weight x word
       overlap` of the task wordings (`lexical.word_overlap`, unigrams and bigrams averaged)
       `+ answer_weight x answer match`: 1 when the request names the candidate's output as an
       answer (`lexical.answer_match`: "Reply with more, less or no effect" names "less", not "B").
    4. Ranked by `score = own + group support`: the fetched examples that share one task wording
       (the same instruction, or the same template skeleton) form a task group, and its support is
       the sum of its `group_size` best `own` scores. A task that several fetched examples agree on
       beats a single example of another task that happens to sit closest (`group_support`).

    Each candidate also gets `task_score`, the calibrated probability that it asks for the request's
    task (`icl_retriever.task_score`); `min_task_score` drops candidates below it, and
    `balance_labels` alternates the outputs of a classification task (`balance_labels`).

    Nothing is read beyond the fetched examples, and no task label is used.
    """

    fetch_k: int = Field(default=50, ge=1)
    """Nearest examples that are re-scored (and considered by MMR)."""
    content_weight: float = Field(default=0.5, ge=0.0)
    """Weight of the content view's cosine: prefers examples whose input looks like the request's."""
    overlap_weight: float = Field(default=0.9, ge=0.0)
    """Weight of the word overlap of the task wordings (itself in [0, 1])."""
    answer_weight: float = Field(default=0.4, ge=0.0)
    """Weight of the answer match: whether the request names the candidate's output as an answer."""
    group_size: int = Field(default=3, ge=0)
    """How many of a task group's best fetched examples add up to its support (0: no grouping)."""
    strip_k: int = Field(default=10, ge=0)
    """Nearest examples by content whose shared content is cut from a whole-prompt request."""
    mmr: bool = False
    """Use maximal marginal relevance over the re-scored candidates."""
    lambda_mult: float = Field(default=0.5, ge=0.0, le=1.0)
    """MMR trade-off: 1 = pure relevance, 0 = pure diversity."""
    min_task_score: float | None = Field(default=None, ge=0.0, le=1.0)
    """Leave out candidates whose `task_score` (calibrated same-task probability) is below this: a
    request without a demonstration of its task gets fewer or none (zero-shot). None: keep all."""
    balance_labels: bool = False
    """Where the request's task is a classification (`balance_labels`), take its demonstrations
    from different outputs in turn instead of the best-ranked ones alone."""
    calibration: TaskScoreCalibration = Field(default_factory=default_calibration)
    """How signals become `task_score` (`icl_retriever.task_score`; default: the shipped fit)."""

    def model_post_init(self, context: Any) -> None:
        if not isinstance(self.store.embedder, TaskEmbedder):
            raise IclRetrieverError(
                f"TaskExampleSelector needs a store built with the task embedder; '{self.store.name}' uses "
                f"{self.store.fingerprint}. Index the pool with --embedder task."
            )

    def _whole_prompts(self, requests: Sequence[tuple[str, str]]) -> list[int]:
        """Requests without a separate input, whose task wording needs their content neighbours."""
        return [i for i, (_, text_input) in enumerate(requests) if not text_input.strip()] if self.strip_k else []

    def _rank_many(self, requests: Sequence[tuple[str, str]], excluded: Sequence[set[str]]) -> list[list[Hit]]:
        embedder: TaskEmbedder = self.store.embedder  # type: ignore[assignment]
        whole = self._whole_prompts(requests)
        texts = [embedder.text_for(*request) for request in requests]
        tasks = [task_text(*request) for request in requests]
        # One encoder call for the contents and the task wordings as they stand (a whole prompt's
        # wording tokenizes like its content: no cost), and one store query for every request's
        # candidates under that wording and every whole prompt's content neighbours.
        contents, task_vectors = embedder.embed_queries(texts, tasks)
        n = max(self.fetch_k, self._candidates_needed())
        by_content = [embedder.query_vector(np.zeros_like(task_vectors[i]), contents[i], 1.0) for i in whole]
        found = self.store.query_many(
            [*self._queries(task_vectors, contents), *by_content],
            [n] * len(requests) + [self.strip_k] * len(whole),
            where=self.where,
            exclude_ids=[*excluded, *(excluded[i] for i in whole)],
            with_vectors=True,
        )
        found, neighbours = found[: len(requests)], found[len(requests) :]
        # A whole prompt's wording is final once the content it shares with its neighbours is cut
        # (step 1); where that cut anything, the wording is encoded again and its candidates fetched again.
        changed = []
        for i, near in zip(whole, neighbours):
            stripped = strip_shared_content(
                texts[i], [(embedder.text_for(h.example.instruction, h.example.input), h.task_text or "") for h in near]
            )
            if stripped != tasks[i]:
                tasks[i] = stripped
                changed.append(i)
        if changed:
            task_vectors[changed] = embedder.task.embed_documents([tasks[i] for i in changed])
            again = self.store.query_many(
                self._queries(task_vectors[changed], contents[changed]),
                n,
                where=self.where,
                exclude_ids=[excluded[i] for i in changed],
                with_vectors=True,
            )
            for i, hits in zip(changed, again):
                found[i] = hits
        views = [RequestViews(*parts) for parts in zip(texts, tasks, task_vectors, contents)]
        return [self._score(hits, request) for hits, request in zip(found, views)]

    def _queries(self, task_vectors: np.ndarray, contents: np.ndarray) -> list[np.ndarray]:
        """Store queries that rank by task cosine + content_weight x content cosine (step 2)."""
        embedder: TaskEmbedder = self.store.embedder  # type: ignore[assignment]
        return [embedder.query_vector(task, content, self.content_weight) for task, content in zip(task_vectors, contents)]

    def _score(self, hits: list[Hit], request: RequestViews) -> list[Hit]:
        """One request's fetched candidates re-scored and ranked (steps 3 and 4 above)."""
        if not hits:
            return []
        signals = self.signals(hits, request)
        scores = signals.own + signals.support
        sure = self.calibration.probability(task_features(signals, self.group_size))
        order = np.argsort(-scores, kind="stable")
        if self.min_task_score is not None:
            order = order[sure[order] >= self.min_task_score]
        ranked = [
            Hit(hits[i].example, score, hits[i].vector, hits[i].task_text, task_score)
            for i, score, task_score in zip(order.tolist(), scores[order].tolist(), sure[order].tolist())
        ]
        ranked = _mmr_by_score(ranked, self.lambda_mult) if self.mmr else ranked
        return balance_labels(ranked) if self.balance_labels else ranked

    def signals(self, hits: list[Hit], request: RequestViews) -> TaskSignals:
        """What the ranking of one request's fetched candidates rests on (steps 3 and 4 above)."""
        embedder: TaskEmbedder = self.store.embedder  # type: ignore[assignment]
        task_views, content_views = embedder.split(np.stack([hit.vector for hit in hits]))
        their_tasks = [hit.task_text or "" for hit in hits]
        overlap = (word_overlap(request.task, their_tasks, 1) + word_overlap(request.task, their_tasks, 2)) / 2
        task_cosine, content_cosine = task_views @ request.task_vector, content_views @ request.content
        answer = answer_match(request.text, [hit.example.output for hit in hits])
        own = (
            task_cosine
            + self.content_weight * content_cosine
            + self.overlap_weight * overlap
            + self.answer_weight * answer
        )
        groups = [_group_of(hit) for hit in hits]  # no wording: a group of its own
        sizes = Counter(groups)
        return TaskSignals(
            task_cosine=task_cosine,
            content_cosine=content_cosine,
            overlap=overlap,
            answer=answer,
            own=own,
            support=group_support(own, groups, self.group_size),
            group_count=np.array([sizes[group] for group in groups], dtype=np.float64),
        )


class SemanticExampleSelector(_EmbedderBoundSelector):
    """Topic baseline: nearest neighbours of instruction + input under a sentence embedder."""

    _embedder_type = SemanticEmbedder
    _embedder_name = "semantic"


class RandomExampleSelector(_StoreSelector):
    """Uniformly random demonstrations (seeded per request, so runs are reproducible)."""

    seed: int = 0
    """Base seed; each request's draw depends on the seed and the request text."""

    def _rank(self, instruction: str, text_input: str, excluded: set[str]) -> list[Hit]:
        """Draws positions and fetches only those rows. Without `where` a position is an offset in
        the store (one small `get` per draw); Chroma cannot count filtered rows, so with `where` the
        matching ids (ids only, page by page, cached until the next write) are drawn from."""
        rng = random.Random(f"{self.seed}\x00{instruction}\x00{text_input}")
        needed = self._candidates_needed()
        # Keyed by the filter too: a `model_copy(update={"where": ...})` shares this selector's cache.
        ids = self._cached(f"where_ids {self.where!r}", lambda: self.store.ids(self.where)) if self.where else None
        count = len(ids) if ids is not None else self.store.count
        # Enough draws that the excluded ids cannot leave fewer than `needed`.
        positions = rng.sample(range(count), min(count, needed + len(excluded)))
        hits = self.store.get([ids[p] for p in positions]) if ids is not None else self.store.at(positions)
        return [hit for hit in hits if hit.example.key not in excluded][:needed]


class BM25ExampleSelector(_StoreSelector):
    """Lexical baseline: Okapi BM25 over instruction + input (`icl_retriever.bm25`).

    Reads the inverted index that `index` saved in the store folder (memory-mapped, reloaded after
    a write). With `where`, candidates are taken down the BM25 ranking, a growing page at a time,
    and filtered by the store: a filter that few examples match may read many of them.
    """

    def _rank(self, instruction: str, text_input: str, excluded: set[str]) -> list[Hit]:
        index: BM25Index = self._cached("bm25", self.store.load_bm25_index)
        order, scores = index.ranked(content_text(instruction, text_input))
        needed, hits, start = self._candidates_needed(), [], 0
        page = needed + len(excluded)
        while len(hits) < needed and start < len(order):
            positions = order[start : start + page]
            ids = [str(index.ids[p]) for p in positions]
            score = {key: float(scores[p]) for key, p in zip(ids, positions)}
            found = self.store.get([key for key in ids if key not in excluded], where=self.where)
            hits += [replace(hit, score=score[hit.example.key]) for hit in found]
            start, page = start + page, page * 4
        return hits[:needed]


def _mmr_by_score(hits: list[Hit], lambda_mult: float) -> list[Hit]:
    """Greedy maximal marginal relevance over hits that carry their vectors, all of them reordered.

    Relevance is each hit's score (the task selector's re-scoring); redundancy the cosine to the
    hits already chosen. langchain_core's `maximal_marginal_relevance`, which the similarity
    selectors use, takes relevance as the cosine to a query vector, which these scores are not.
    """
    if not hits:
        return []
    vectors = np.stack([hit.vector for hit in hits])
    relevance = np.array([hit.score for hit in hits])
    chosen: list[int] = []
    while len(chosen) < len(hits):
        if chosen:
            redundancy = (vectors @ vectors[chosen].T).max(axis=1)
        else:
            redundancy = np.zeros(len(hits))
        value = lambda_mult * relevance - (1 - lambda_mult) * redundancy
        value[chosen] = -np.inf
        chosen.append(int(np.argmax(value)))
    return [hits[i] for i in chosen]


@dataclass(frozen=True)
class RequestViews:
    """One request as the task selector scores candidates against it."""

    text: str
    """The whole request: instruction and input (`TaskEmbedder.text_for`, the content view's text)."""
    task: str
    """Its task wording (`lexical.task_text`, or what `strip_shared_content` left of a whole prompt)."""
    task_vector: np.ndarray
    content: np.ndarray


@dataclass(frozen=True)
class TaskSignals:
    """Per fetched candidate of one request (arrays in fetch order): what `TaskExampleSelector`
    ranks by, and what its `task_score` is calibrated on."""

    task_cosine: np.ndarray
    content_cosine: np.ndarray
    overlap: np.ndarray
    """Word overlap of the task wordings, unigrams and bigrams averaged, in [0, 1]."""
    answer: np.ndarray
    """`lexical.answer_match`: 1 where the request names the candidate's output as an answer."""
    own: np.ndarray
    support: np.ndarray
    """`group_support`: the sum of the candidate's task group's best `own` scores."""
    group_count: np.ndarray
    """How many fetched candidates share the candidate's task wording."""


def group_support(scores: np.ndarray, groups: Sequence[str], size: int) -> np.ndarray:
    """For each candidate, the sum of the `size` best scores among candidates of its group.

    >>> group_support(np.array([0.9, 0.8, 0.7, 0.6]), ["a", "b", "b", "b"], 2).round(2).tolist()
    [0.9, 1.5, 1.5, 1.5]
    """
    support = np.zeros(len(scores))
    if size == 0:
        return support
    members: dict[str, list[float]] = {}
    for score, group in zip(scores.tolist(), groups):  # a few dozen candidates: plain Python is fastest
        members.setdefault(group, []).append(score)
    best = {group: sum(sorted(values, reverse=True)[:size]) for group, values in members.items()}
    support[:] = [best[group] for group in groups]
    return support


def balance_labels(ranked: list[Hit], min_members: int = 4) -> list[Hit]:
    """`ranked` with the top candidate's task group taking its outputs in turn, where that task
    is a classification.

    The group is the candidates that share the top candidate's task wording. It counts as a
    classification when it has at least `min_members` members and they repeat their outputs (at
    most half as many distinct outputs as members, and at least two): no label is read. Its
    members keep the group's places in the ranking, refilled output by output (the best-ranked
    member of each output first, outputs in order of their best member); other candidates stay put.

    >>> from icl_retriever.example import Example
    >>> hits = [Hit(Example(instruction="Sentiment?", input=str(i), output=o, id=f"e{i}"), 1.0, task_text="sentiment ?")
    ...         for i, o in enumerate(["pos", "pos", "pos", "neg", "neg"])]
    >>> [hit.example.output for hit in balance_labels(hits)]
    ['pos', 'neg', 'pos', 'neg', 'pos']
    """
    places = classification_group(ranked, min_members)
    if places is None:
        return ranked
    by_label: dict[str, list[Hit]] = {}
    for i in places:
        by_label.setdefault(normalize_answer(ranked[i].example.output), []).append(ranked[i])
    queues = list(by_label.values())
    turns = [queue[depth] for depth in range(max(map(len, queues))) for queue in queues if depth < len(queue)]
    out = list(ranked)
    for place, hit in zip(places, turns):
        out[place] = hit
    return out


def classification_group(ranked: list[Hit], min_members: int = 4) -> list[int] | None:
    """Places in `ranked` of the top candidate's task group when that task is a classification
    (see `balance_labels`), else None."""
    if not ranked:
        return None
    group = _group_of(ranked[0])
    places = [i for i, hit in enumerate(ranked) if _group_of(hit) == group]
    labels = {normalize_answer(ranked[i].example.output) for i in places}
    return places if len(places) >= min_members and 2 <= len(labels) <= len(places) / 2 else None


def _group_of(hit: Hit) -> str:
    return hit.task_text or hit.example.key


def _as_dict(hit: Hit) -> dict[str, Any]:
    score = None if np.isnan(hit.score) else round(hit.score, 6)
    task_score = None if hit.task_score is None else round(hit.task_score, 6)
    return {**hit.example.to_prompt_dict(), "score": score, "task_score": task_score}


def selector_for_store(store: ExampleVectorStore, **options: Any) -> TaskExampleSelector | SimilarityExampleSelector:
    """The selector that matches the store's embedder: the task selector for the task embedder,
    nearest neighbours for any other."""
    if isinstance(store.embedder, TaskEmbedder):
        return TaskExampleSelector(store=store, **options)
    return SimilarityExampleSelector(store=store, **options)
