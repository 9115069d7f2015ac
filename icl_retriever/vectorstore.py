"""The vector-store seam: what selectors read from an index, and the records it answers with.

Selectors, task discovery and the benchmarks depend on `ExampleVectorStore`, not on Chroma.
`icl_retriever.store.ExampleStore` (Chroma) is the implementation shipped; building and
rebuilding an index (`index`, `rebuild`) stay there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from icl_retriever.embedders import Embedder
from icl_retriever.example import Example

if TYPE_CHECKING:
    import numpy as np

    from icl_retriever.bm25 import BM25Index


@dataclass(frozen=True)
class IndexReport:
    """What an `index` call changed."""

    added: int
    updated: int
    unchanged: int


@dataclass(frozen=True)
class Hit:
    """A stored example with its score: cosine similarity to the query, or a selector's re-scoring."""

    example: Example
    score: float
    vector: np.ndarray | None = None
    task_text: str | None = None
    """The example's task wording as indexed (stores built with the task embedder only)."""
    task_score: float | None = None
    """Calibrated probability that the example asks for the request's task (the task selector's;
    `icl_retriever.task_score`)."""


# runtime_checkable: selectors are pydantic models, and pydantic checks their `store` with isinstance
# (on Python 3.11 that check reads `count`, `fingerprint` and `revision`: a few ms per selector built).
@runtime_checkable
class ExampleVectorStore(Protocol):
    """A pool of examples and their vectors, as selectors read it.

    Scores are cosine similarities; `where` is a metadata filter in Chroma's syntax (e.g.
    `{"topic": "food"}`); examples come back whole, as `Hit`s with NaN scores unless a query
    scored them.
    """

    embedder: Embedder
    """Embeds requests into the store's vector space; the index was built with it."""
    name: str
    """The index's name (for messages)."""
    location: str
    """Where the index lives, a folder or a server (for messages)."""

    @property
    def count(self) -> int:
        """How many examples the store holds."""
        ...

    @property
    def fingerprint(self) -> str:
        """The embedder's fingerprint."""
        ...

    @property
    def revision(self) -> str:
        """Changes with every write: in-memory caches of the pool key on it."""
        ...

    def add(self, examples: Sequence[Example]) -> IndexReport:
        """Index a few examples (LangChain's `add_example`)."""
        ...

    def query_many(
        self,
        vectors: Sequence[np.ndarray] | np.ndarray,
        n: int | Sequence[int],
        *,
        where: Mapping[str, Any] | None = None,
        exclude_ids: Sequence[Iterable[str]] | None = None,
        with_vectors: bool = False,
    ) -> list[list[Hit]]:
        """The `n` nearest examples to each vector (or `n[i]` to vector i), most similar first;
        `exclude_ids` holds one collection of ids per vector, `with_vectors` fills `Hit.vector`."""
        ...

    def get(self, ids: Sequence[str], *, where: Mapping[str, Any] | None = None) -> list[Hit]:
        """The stored examples with these ids (that match `where`), in the order given; ids not
        stored are left out."""
        ...

    def at(self, positions: Iterable[int]) -> list[Hit]:
        """The examples at these positions of a fixed storage order; positions past the end are left out."""
        ...

    def ids(self, where: Mapping[str, Any] | None = None) -> list[str]:
        """The ids of the stored examples (that match `where`)."""
        ...

    def iter_records(self, batch: int = ...) -> Iterator[list[Hit]]:
        """Every stored example with its vector and task wording, `batch` at a time."""
        ...

    def load_bm25_index(self) -> BM25Index:
        """The BM25 index of the stored examples (`icl_retriever.bm25`)."""
        ...
