"""A pool of examples in a Chroma collection, embedded by one embedder.

One collection per index. Ids are `Example.key` (the user's id or a content hash), and each record
keeps the hash of its whole content, so re-indexing a pool embeds and writes only what changed.
The collection records the embedder's fingerprint and recipe: `ExampleStore.open` rebuilds the
embedder from it, and opening with a different embedder is an error instead of silently mixing
vector spaces.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from icl_retriever.embedders import Embedder, load_embedder
from icl_retriever.errors import EmbedderMismatchError, IclRetrieverError, StoreNotFoundError
from icl_retriever.example import Example
from icl_retriever.lexical import TemplateStats, task_text
from icl_retriever.task_embedder import TaskEmbedder

DEFAULT_STORE_DIR = Path("stores")
_EXAMPLE_KEY = "_example"
_HASH_KEY = "_hash"
_TASK_KEY = "_task_text"
_EMBED_CHUNK = 256
#: The pool's template statistics, next to the Chroma files (see `icl_retriever.lexical`).
TEMPLATE_STATS_FILE = "template_stats.npz"


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


def collection_name(name: str) -> str:
    """Map any index name to a valid Chroma collection name (3-512 chars of [a-zA-Z0-9._-])."""
    cleaned = re.sub(r"[^a-zA-Z0-9._-]+", "-", name).strip("._-")
    cleaned = cleaned[:512] or "pool"
    return cleaned if len(cleaned) >= 3 else f"{cleaned}-pool"


def _client(path: Path, url: str | None) -> Any:
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    if url is not None:
        from urllib.parse import urlparse

        parsed = urlparse(url)
        return chromadb.HttpClient(
            host=parsed.hostname or "localhost",
            port=parsed.port or 8000,
            ssl=parsed.scheme == "https",
            settings=settings,
        )
    return chromadb.PersistentClient(path=str(path), settings=settings)


class ExampleStore:
    """Examples and their vectors in one Chroma collection.

    Args:
        embedder: embeds examples and queries; must match the one the index was built with.
        name: index name; the embedded store lives in `path/name/`.
        path: parent folder of embedded stores (default `stores/`).
        url: a Chroma server (`http://host:port`); then `path` is not used.

    Raises:
        EmbedderMismatchError: the index exists and was built with another embedder.
    """

    def __init__(
        self,
        embedder: Embedder,
        name: str,
        path: str | Path = DEFAULT_STORE_DIR,
        url: str | None = None,
    ) -> None:
        self.embedder = embedder
        self.name = name
        self.location = url if url is not None else str(Path(path) / name)
        # Kept on this machine even for a Chroma server: only indexing reads them.
        self._stats_path = Path(path) / name / TEMPLATE_STATS_FILE
        self._client = _client(Path(path) / name, url)
        self._collection_name = collection_name(name)
        self._collection = self._client.get_or_create_collection(
            self._collection_name,
            configuration={"hnsw": {"space": "cosine"}},
            metadata=_collection_metadata(embedder),
            embedding_function=None,
        )
        recorded = (self._collection.metadata or {}).get("embedder_fingerprint")
        if recorded != embedder.fingerprint:
            raise EmbedderMismatchError(
                f"Index '{name}' at {self.location} was built with embedder {recorded}, "
                f"but it was opened with {embedder.fingerprint}. Vectors from different embedders "
                f"cannot be compared. Rebuild it with `icl-retriever index POOL --name {name} --rebuild` "
                "and the embedder you want, or open it without naming an embedder."
            )

    @classmethod
    def open(
        cls, name: str, path: str | Path = DEFAULT_STORE_DIR, url: str | None = None
    ) -> ExampleStore:
        """Open an existing index with the embedder recorded in it."""
        collection = cls._existing_collection(name, path, url)
        spec = json.loads((collection.metadata or {}).get("embedder_spec", "{}"))
        if "kind" not in spec:
            raise IclRetrieverError(f"Index '{name}' does not record its embedder; rebuild it with `icl-retriever index`.")
        return cls(load_embedder(spec["kind"], spec.get("model")), name, path, url)

    @classmethod
    def describe(cls, name: str, path: str | Path = DEFAULT_STORE_DIR, url: str | None = None) -> dict[str, Any]:
        """Size and embedder of an existing index, read from Chroma without loading any model."""
        collection = cls._existing_collection(name, path, url)
        metadata = collection.metadata or {}
        return {
            "store": url if url is not None else str(Path(path) / name),
            "name": name,
            "count": int(collection.count()),
            "embedder": json.loads(metadata.get("embedder_spec", "{}")),
            "fingerprint": metadata.get("embedder_fingerprint"),
            "dimension": metadata.get("dimension"),
        }

    @staticmethod
    def _existing_collection(name: str, path: str | Path, url: str | None) -> Any:
        if url is None and not (Path(path) / name).is_dir():
            raise StoreNotFoundError(
                f"No index named '{name}' in {path}/. Create it with `icl-retriever index POOL --name {name}`."
            )
        client = _client(Path(path) / name, url)
        try:
            return client.get_collection(collection_name(name))
        except Exception as exc:  # chromadb raises NotFoundError/ValueError depending on the client
            raise StoreNotFoundError(
                f"No index named '{name}' at {url or Path(path) / name}. "
                f"Create it with `icl-retriever index POOL --name {name}`."
            ) from exc

    @property
    def count(self) -> int:
        return int(self._collection.count())

    @property
    def fingerprint(self) -> str:
        return self.embedder.fingerprint

    def index(
        self, examples: Sequence[Example], *, progress: Callable[[int], None] | None = None
    ) -> IndexReport:
        """Add new examples, update changed ones, skip unchanged ones.

        Everything is embedded before anything is written, so an error while embedding leaves the
        index as it was. With the task embedder, the new and changed examples are counted into the
        pool's template statistics first, then embedded (examples indexed earlier keep their
        skeletons, and a changed example's old text stays counted; `rebuild` recomputes them all).
        """
        existing = self._stored_hashes([e.key for e in examples])
        changed = [e for e in examples if existing.get(e.key) != e.content_hash]
        stats = TemplateStats.load(self._stats_path) if isinstance(self.embedder, TaskEmbedder) else None
        vectors, task_texts = _embed(self.embedder, changed, progress, stats)
        _write(self._client, self._collection, self.embedder, changed, vectors, task_texts)
        if stats is not None and changed:
            stats.save(self._stats_path)
        updated = sum(1 for e in changed if e.key in existing)
        return IndexReport(added=len(changed) - updated, updated=updated, unchanged=len(examples) - len(changed))

    def add(self, examples: Sequence[Example]) -> IndexReport:
        """Index a few examples (no progress reporting)."""
        return self.index(examples)

    @classmethod
    def rebuild(
        cls,
        embedder: Embedder,
        name: str,
        examples: Sequence[Example],
        path: str | Path = DEFAULT_STORE_DIR,
        url: str | None = None,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[ExampleStore, IndexReport]:
        """Build the index anew with `embedder`, replacing whatever it held (any embedder).

        The new collection is written under a temporary name and swapped in only when complete,
        so a failure leaves the old index intact.
        """
        stats = TemplateStats() if isinstance(embedder, TaskEmbedder) else None
        vectors, task_texts = _embed(embedder, examples, progress, stats)
        client = _client(Path(path) / name, url)
        final_name = collection_name(name)
        temp_name = collection_name(f"{final_name}-rebuild")
        if temp_name in {c.name for c in client.list_collections()}:
            client.delete_collection(temp_name)  # left over from an interrupted rebuild
        temp = client.create_collection(
            temp_name,
            configuration={"hnsw": {"space": "cosine"}},
            metadata=_collection_metadata(embedder),
            embedding_function=None,
        )
        _write(client, temp, embedder, examples, vectors, task_texts)
        if final_name in {c.name for c in client.list_collections()}:
            client.delete_collection(final_name)
        temp.modify(name=final_name)
        if stats is not None:
            stats.save(Path(path) / name / TEMPLATE_STATS_FILE)
        return cls(embedder, name, path, url), IndexReport(added=len(examples), updated=0, unchanged=0)

    def _stored_hashes(self, keys: Iterable[str]) -> dict[str, str]:
        keys = list(keys)
        hashes: dict[str, str] = {}
        batch = self._client.get_max_batch_size()
        for start in range(0, len(keys), batch):
            found = self._collection.get(ids=keys[start : start + batch], include=["metadatas"])
            for key, metadata in zip(found["ids"], found["metadatas"]):
                hashes[key] = str(metadata[_HASH_KEY])
        return hashes

    def query(
        self,
        vector: np.ndarray,
        n: int,
        *,
        where: Mapping[str, Any] | None = None,
        exclude_ids: Iterable[str] = (),
        with_vectors: bool = False,
    ) -> list[Hit]:
        """The `n` nearest examples to `vector`, most similar first."""
        exclude = set(exclude_ids)
        available = self.count
        if n <= 0 or available == 0:
            return []
        include = ["metadatas", "distances"] + (["embeddings"] if with_vectors else [])
        with _where_errors(where):
            result = self._collection.query(
                query_embeddings=[np.asarray(vector, dtype=np.float32)],
                n_results=min(n + len(exclude), available),
                where=dict(where) if where else None,
                include=include,
            )
        hits = []
        vectors = result["embeddings"][0] if with_vectors else None
        for i, (key, metadata, distance) in enumerate(
            zip(result["ids"][0], result["metadatas"][0], result["distances"][0])
        ):
            if key in exclude:
                continue
            vec = np.asarray(vectors[i], dtype=np.float32) if vectors is not None else None
            hits.append(Hit(_example_from(metadata), 1.0 - float(distance), vec, metadata.get(_TASK_KEY)))
        return hits[:n]

    def iter_records(self, batch: int = 1000) -> Iterator[list[Hit]]:
        """Every stored example with its vector and task wording, `batch` at a time (scores are NaN).

        Pages through the collection in storage order, so memory and each Chroma call stay bounded
        however large the pool (one `get` of everything fails past ~50k rows). Writes made while
        iterating may be missed or seen twice.
        """
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}.")
        offset = 0
        while True:
            found = self._collection.get(limit=batch, offset=offset, include=["embeddings", "metadatas"])
            if not found["ids"]:
                return
            yield [
                Hit(_example_from(metadata), float("nan"), np.asarray(vector, dtype=np.float32), metadata.get(_TASK_KEY))
                for metadata, vector in zip(found["metadatas"], found["embeddings"])
            ]
            offset += len(found["ids"])

    def examples(self, where: Mapping[str, Any] | None = None) -> list[Example]:
        """All stored examples (optionally filtered), in id order."""
        with _where_errors(where):
            found = self._collection.get(where=dict(where) if where else None, include=["metadatas"])
        pairs = sorted(zip(found["ids"], found["metadatas"]), key=lambda pair: pair[0])
        return [_example_from(metadata) for _, metadata in pairs]


@contextmanager
def _where_errors(where: Mapping[str, Any] | None) -> Iterator[None]:
    """Chroma rejects a malformed `where` filter with a ValueError: say which filter, and the syntax."""
    try:
        yield
    except ValueError as exc:
        if not where:
            raise
        raise IclRetrieverError(
            f"The metadata filter {json.dumps(where)} is not valid: {exc} Use Chroma's where syntax, e.g. "
            '\'{"topic": "food"}\', \'{"n": {"$gte": 2}}\' or \'{"$and": [{"a": 1}, {"b": 2}]}\'.'
        ) from exc


def _collection_metadata(embedder: Embedder) -> dict[str, Any]:
    return {
        "embedder_fingerprint": embedder.fingerprint,
        "embedder_spec": json.dumps(embedder.spec),
        "dimension": embedder.dimension,
    }


def _embed(
    embedder: Embedder,
    examples: Sequence[Example],
    progress: Callable[[int], None] | None,
    stats: TemplateStats | None = None,
) -> tuple[np.ndarray, list[str] | None]:
    """Vectors of the examples and, with the task embedder (`stats` given), their task texts."""
    texts = [embedder.text_for(e.instruction, e.input) for e in examples]
    task_texts = None
    if stats is not None:
        stats.add(texts)
        task_texts = [task_text(e.instruction, e.input, stats) for e in examples]
    chunks = []
    for start in range(0, len(texts), _EMBED_CHUNK):
        part = texts[start : start + _EMBED_CHUNK]
        if task_texts is not None:  # stats are only given for the task embedder
            chunks.append(embedder.embed_views(task_texts[start : start + _EMBED_CHUNK], part))  # type: ignore[attr-defined]
        else:
            chunks.append(embedder.embed_documents(part))
        if progress is not None:
            progress(len(chunks[-1]))
    vectors = np.concatenate(chunks) if chunks else np.zeros((0, embedder.dimension), np.float32)
    return vectors, task_texts


def _write(
    client: Any,
    collection: Any,
    embedder: Embedder,
    examples: Sequence[Example],
    vectors: np.ndarray,
    task_texts: Sequence[str] | None,
) -> None:
    batch = client.get_max_batch_size()
    for start in range(0, len(examples), batch):
        part = examples[start : start + batch]
        metadatas = [_record_metadata(e) for e in part]
        if task_texts is not None:
            for metadata, text in zip(metadatas, task_texts[start : start + batch]):
                metadata[_TASK_KEY] = text
        collection.upsert(
            ids=[e.key for e in part],
            embeddings=vectors[start : start + batch],
            documents=[embedder.text_for(e.instruction, e.input) for e in part],
            metadatas=metadatas,
        )


def _record_metadata(example: Example) -> dict[str, Any]:
    # The full example travels as JSON so it round-trips exactly; the flat user metadata sits
    # beside it so Chroma `where` filters can use it.
    return {
        **example.metadata,
        _EXAMPLE_KEY: example.model_dump_json(),
        _HASH_KEY: example.content_hash,
    }


def _example_from(metadata: Mapping[str, Any]) -> Example:
    return Example.model_validate_json(metadata[_EXAMPLE_KEY])
