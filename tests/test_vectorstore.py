"""The vector-store seam: selectors and task discovery read any `ExampleVectorStore`, not just Chroma.

`MemoryStore` is a second implementation written here (numpy cosine over a list): every selector
that works with any embedder chooses the same demonstrations from it as from Chroma's `ExampleStore`
holding the same examples.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from icl_retriever.bm25 import BM25Index, content_text
from icl_retriever.embedders import Embedder
from icl_retriever.example import Example
from icl_retriever.selectors import BM25ExampleSelector, RandomExampleSelector, SimilarityExampleSelector
from icl_retriever.store import ExampleStore
from icl_retriever.tasks import StoredPool
from icl_retriever.vectorstore import ExampleVectorStore, Hit, IndexReport
from tests.conftest import make_examples

REQUEST = {"instruction": "Translate this sentence into French.", "input": "I like the pasta."}


class MemoryStore:
    """Examples in a list, their vectors in a matrix; exact cosine search. `where`: equality only."""

    location = "memory"

    def __init__(self, embedder: Embedder, name: str = "memory") -> None:
        self.embedder, self.name = embedder, name
        self._examples: list[Example] = []
        self._vectors = np.zeros((0, embedder.dimension), np.float32)

    @property
    def count(self) -> int:
        return len(self._examples)

    @property
    def fingerprint(self) -> str:
        return self.embedder.fingerprint

    @property
    def revision(self) -> str:
        return str(self.count)  # this store only grows

    def add(self, examples: Sequence[Example]) -> IndexReport:
        texts = [self.embedder.text_for(e.instruction, e.input) for e in examples]
        self._vectors = np.vstack([self._vectors, self.embedder.embed_documents(texts)])
        self._examples += examples
        return IndexReport(added=len(examples), updated=0, unchanged=0)

    def query_many(
        self,
        vectors: Sequence[np.ndarray] | np.ndarray,
        n: int | Sequence[int],
        *,
        where: Mapping[str, Any] | None = None,
        exclude_ids: Sequence[Iterable[str]] | None = None,
        with_vectors: bool = False,
    ) -> list[list[Hit]]:
        out = []
        counts = [n] * len(vectors) if isinstance(n, int) else n
        for vector, exclude, count in zip(vectors, exclude_ids or [()] * len(vectors), counts):
            scores, skip = self._vectors @ vector, set(exclude)
            order = [i for i in np.argsort(-scores, kind="stable") if self._matches(i, where) and self._examples[i].key not in skip]
            out.append([Hit(self._examples[i], float(scores[i]), self._vectors[i] if with_vectors else None) for i in order[:count]])
        return out

    def get(self, ids: Sequence[str], *, where: Mapping[str, Any] | None = None) -> list[Hit]:
        found = {e.key: e for i, e in enumerate(self._examples) if self._matches(i, where)}
        return [Hit(found[key], float("nan")) for key in ids if key in found]

    def at(self, positions: Iterable[int]) -> list[Hit]:
        return [Hit(self._examples[p], float("nan")) for p in positions if p < self.count]

    def ids(self, where: Mapping[str, Any] | None = None) -> list[str]:
        return [e.key for i, e in enumerate(self._examples) if self._matches(i, where)]

    def iter_records(self, batch: int = 1000) -> Iterator[list[Hit]]:
        for start in range(0, self.count, batch):
            rows = zip(self._examples[start : start + batch], self._vectors[start : start + batch])
            yield [Hit(example, float("nan"), vector) for example, vector in rows]

    def load_bm25_index(self) -> BM25Index:
        return BM25Index.build(((e.key, content_text(e.instruction, e.input)) for e in self._examples), self.revision)

    def _matches(self, i: int, where: Mapping[str, Any] | None) -> bool:
        return all(self._examples[i].metadata.get(key) == value for key, value in (where or {}).items())


@pytest.fixture()
def stores(tmp_path, toy) -> tuple[MemoryStore, ExampleStore]:
    memory, chroma = MemoryStore(toy), ExampleStore(toy, "demo", tmp_path)
    memory.add(make_examples())
    chroma.index(make_examples())
    return memory, chroma


def test_both_stores_are_example_vector_stores(stores):
    assert all(isinstance(store, ExampleVectorStore) for store in stores)
    assert not isinstance(make_examples()[0], ExampleVectorStore)


def test_similarity_selector_reads_the_memory_store(stores):
    memory, _ = stores
    assert [d["id"] for d in SimilarityExampleSelector(store=memory, k=3).select_examples(REQUEST)] == ["ex0", "ex3", "ex4"]
    filtered = SimilarityExampleSelector(store=memory, k=2, where={"topic": "movies"}, exclude_ids={"ex4"})
    assert [d["id"] for d in filtered.select_examples(REQUEST)] == ["ex2", "ex1"]


@pytest.mark.parametrize(
    "make",
    [
        lambda store: SimilarityExampleSelector(store=store, k=3),
        lambda store: SimilarityExampleSelector(store=store, k=2, mmr=True, fetch_k=6, lambda_mult=0.3),
        lambda store: SimilarityExampleSelector(store=store, k=2, where={"topic": "movies"}, exclude_ids={"ex4"}),
        lambda store: RandomExampleSelector(store=store, k=2, seed=3),
        lambda store: RandomExampleSelector(store=store, k=2, seed=3, where={"topic": "movies"}),
        lambda store: BM25ExampleSelector(store=store, k=3),
        lambda store: BM25ExampleSelector(store=store, k=2, where={"topic": "food"}),
    ],
    ids=["similarity", "mmr", "similarity-where", "random", "random-where", "bm25", "bm25-where"],
)
def test_selectors_choose_the_same_from_memory_as_from_chroma(stores, make):
    memory, chroma = (make(store).select_examples(REQUEST) for store in stores)
    assert [d["id"] for d in memory] == [d["id"] for d in chroma]
    assert [d["score"] for d in memory] == pytest.approx([d["score"] for d in chroma], abs=1e-5)


def test_selectors_see_examples_added_through_the_protocol(stores):
    memory, _ = stores
    bm25, random = BM25ExampleSelector(store=memory, k=1), RandomExampleSelector(store=memory, k=7)
    assert len(random.select_examples(REQUEST)) == 6 and bm25.select_examples(REQUEST)[0]["id"] != "new"
    bm25.add_example({"instruction": "Translate this sentence into French.", "input": "I like the pasta.", "output": "x", "id": "new"})
    assert len(random.select_examples(REQUEST)) == 7 and bm25.select_examples(REQUEST)[0]["id"] == "new"


def test_task_discovery_reads_the_memory_store(stores):
    memory, chroma = (StoredPool.read(store, batch=4) for store in stores)
    assert memory.examples == chroma.examples == make_examples()
    np.testing.assert_allclose(memory.task_vectors, chroma.task_vectors, atol=1e-6)
