"""A pool of examples in a Chroma collection, embedded by one embedder: the `ExampleVectorStore`
(`icl_retriever.vectorstore`) that icl-retriever ships, and how an index is built.

One collection per index. Ids are `Example.key` (the user's id or a content hash), and each record
keeps the hash of its whole content, so re-indexing a pool embeds and writes only what changed.
The collection records the embedder's fingerprint and recipe: `ExampleStore.open` rebuilds the
embedder from it, and opening with a different embedder is an error instead of silently mixing
vector spaces.

`rebuild` fills a new collection and then points the alias record `NAME-alias` at it, so readers
never see a half-built index; every write changes the collection's `revision`, on which selectors
key their in-memory caches, and so does the store's memory of the records its queries returned
(`query_many` asks Chroma for ids and distances, and reads only the records it does not remember).

Nothing here reads the whole collection in one Chroma call (one `get` of everything fails past
~50k rows): whole-pool reads go page by page, and only indexing makes them.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from icl_retriever import bm25
from icl_retriever.embedders import Embedder, load_embedder
from icl_retriever.errors import DamagedIndexError, EmbedderMismatchError, IclRetrieverError, StoreNotFoundError
from icl_retriever.example import Example
from icl_retriever.lexical import TemplateStats, task_text
from icl_retriever.task_embedder import TaskEmbedder
from icl_retriever.vectorstore import Hit, IndexReport

DEFAULT_STORE_DIR = Path("stores")
_EXAMPLE_KEY = "_example"
_HASH_KEY = "_hash"
_TASK_KEY = "_task_text"
_REVISION_KEY = "revision"
_TARGET_KEY = "target"
#: The alias record `NAME-alias` names the collection that holds a rebuilt index.
_ALIAS_SUFFIX = "-alias"
_REBUILD_SUFFIX = "-rebuild"
_CHROMA_FILE = "chroma.sqlite3"
#: Examples embedded and committed together by `index` (memory is bounded by one chunk: a few MB
#: of vectors). Large enough that its length-sorted batches pad about as little as the whole pool's:
#: 4,000 mixed examples indexed at 0.92x the raw encoder over all of them at once, 0.82x with 512.
INDEX_CHUNK = 2048
#: Task views an index run remembers across its chunks (a pool repeats its instructions); the
#: memory is forgotten when full, so it stays bounded (about 1.5 kB each with MiniLM).
REMEMBERED_TASK_VIEWS = 10_000
#: Records (example, task wording, vector) a store remembers between queries, the least recently
#: returned forgotten first: about 5 kB each with the task embedder (iclmix dev, 464 requests,
#: touches 4,589 records and selects as fast with 4,096 remembered as with 10,000).
REMEMBERED_RECORDS = 4096
#: Seconds to wait for a Chroma server's answer.
DEFAULT_TIMEOUT = 60.0
#: The pool's template statistics, next to the Chroma files (see `icl_retriever.lexical`).
TEMPLATE_STATS_FILE = "template_stats.npz"
#: The pool's BM25 index (a folder, see `icl_retriever.bm25`), next to the Chroma files.
BM25_FOLDER = "bm25"
#: Rows per Chroma `get` when paging through the collection.
PAGE = 1000
#: Results (queries x neighbours) per Chroma `query` call.
RESULTS_PER_QUERY = 10_000
#: Candidates the HNSW search keeps while it walks the graph (Chroma's `ef_search`; its default is
#: 100). The task selector re-scores the 50 nearest; at 100 the search missed enough of them that
#: iclmix dev same-task moved by up to 0.011 (pool wording) / 0.020 (fresh) between builds of the
#: same pool, and at 400 three builds selected about as an exact search did (README, "Search
#: depth"), for about 0.8 ms more a Chroma query on that pool (1.8 ms on a synthetic 100k one).
SEARCH_EF = 400
#: Chroma query calls that run at the same time for one `query_many` (its vectors split among
#: them): a whole prompt's candidate and content-neighbour searches on a 100k x 768 collection took
#: 6.4 ms side by side against 10.6 ms as one call of two vectors (one vector: 5.8 ms), on 2 cores.
QUERY_THREADS = max(1, min(4, len(os.sched_getaffinity(0))))
#: Every collection's HNSW settings: cosine space, `SEARCH_EF`.
_HNSW = {"space": "cosine", "ef_search": SEARCH_EF}


def collection_name(name: str) -> str:
    """Map any index name to a valid Chroma collection name (3-512 chars of [a-zA-Z0-9._-])."""
    cleaned = re.sub(r"[^a-zA-Z0-9._-]+", "-", name).strip("._-")
    cleaned = cleaned[:512] or "pool"
    return cleaned if len(cleaned) >= 3 else f"{cleaned}-pool"


def _client(path: Path, url: str | None, timeout: float = DEFAULT_TIMEOUT) -> Any:
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    if url is not None:
        import httpx
        from urllib.parse import urlparse

        _check_server(url, timeout)
        parsed = urlparse(url)
        client = chromadb.HttpClient(
            host=parsed.hostname or "localhost",
            port=parsed.port or 8000,
            ssl=parsed.scheme == "https",
            settings=settings,
        )
        # chromadb's HTTP session has no timeout: a server that stops answering would hang every call.
        client._server._session.timeout = httpx.Timeout(timeout)
        return client
    try:
        return chromadb.PersistentClient(path=str(path), settings=settings)
    except Exception as exc:  # chromadb reports an unwritable folder as various internal errors
        if "readonly" in str(exc).lower() or "permission" in str(exc).lower() or not os.access(path, os.W_OK):
            raise IclRetrieverError(
                f"The index folder {path} cannot be opened because it is not writable ({exc}). Chroma "
                "writes to its database even to read it: give your user write access, e.g. "
                f"`chmod -R u+w {path}` (or `chown -R $USER {path}`), or copy the folder somewhere writable "
                "and pass that parent folder as --store."
            ) from exc
        raise


def _check_server(url: str, timeout: float) -> None:
    """Fail fast, with a message, when a Chroma server is unreachable or silent."""
    import httpx

    try:
        httpx.get(f"{url.rstrip('/')}/api/v2/heartbeat", timeout=timeout).raise_for_status()
    except httpx.TimeoutException as exc:
        raise IclRetrieverError(
            f"The Chroma server at {url} did not answer within {timeout:g} s. Check that a Chroma server "
            "(`chroma run`) listens there and is not overloaded, or allow it longer with --timeout."
        ) from exc
    except httpx.HTTPError as exc:
        raise IclRetrieverError(
            f"Could not reach a Chroma server at {url} ({exc}). Start one with `chroma run --path DIR`, "
            "or check --url."
        ) from exc


class ExampleStore:
    """Examples and their vectors in one Chroma collection (an `ExampleVectorStore`).

    Args:
        embedder: embeds examples and queries; must match the one the index was built with.
        name: index name; the embedded store lives in `path/name/`.
        path: parent folder of embedded stores (default `stores/`).
        url: a Chroma server (`http://host:port`); then `path` is not used.
        timeout: seconds to wait for a Chroma server's answer.
        create: create the index when it does not exist (False: `StoreNotFoundError`, nothing written).

    Raises:
        EmbedderMismatchError: the index exists and was built with another embedder.
    """

    def __init__(
        self,
        embedder: Embedder,
        name: str,
        path: str | Path = DEFAULT_STORE_DIR,
        url: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        create: bool = True,
    ) -> None:
        self.embedder = embedder
        self.name = name
        self.location = url if url is not None else str(Path(path) / name)
        # Kept on this machine even for a Chroma server: only indexing reads them.
        self._folder = Path(path) / name
        self._final = collection_name(name)
        self._remembered: dict[str, Hit] = {}
        self._remembered_revision: str | None = None
        if not create:
            self._client, self._collection = _existing(name, path, url, timeout)
        else:
            self._client = _client(self._folder, url, timeout)
            self._collection = _live(self._client, self._final) or self._client.get_or_create_collection(
                self._final,
                configuration={"hnsw": _HNSW},
                metadata=_collection_metadata(embedder),
                embedding_function=None,
            )
            with _loadable(name, self.location):
                _update_search_ef(self._collection)  # before anything reads it: this process searches so too
                count = self._collection.count()
            if _fingerprint(self._collection) != embedder.fingerprint and count == 0:
                # An index that never got its first chunk holds no vectors to mix: it takes this embedder.
                self._collection.modify(metadata=_collection_metadata(embedder))
        self._check_embedder(self._collection)

    def _check_embedder(self, collection: Any) -> None:
        recorded = _fingerprint(collection)
        if recorded != self.embedder.fingerprint:
            raise EmbedderMismatchError(
                f"Index '{self.name}' at {self.location} was built with embedder {recorded}, "
                f"but it was opened with {self.embedder.fingerprint}. Vectors from different embedders "
                f"cannot be compared. Rebuild it with `icl-retriever index POOL --name {self.name} --rebuild` "
                "and the embedder you want, or open it without naming an embedder."
            )

    @classmethod
    def open(
        cls,
        name: str,
        path: str | Path = DEFAULT_STORE_DIR,
        url: str | None = None,
        *,
        embedder: Embedder | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> ExampleStore:
        """Open an existing index (never creates or writes one), with the embedder recorded in it
        unless `embedder` is given."""
        if embedder is None:
            _, collection = _existing(name, path, url, timeout)
            spec = json.loads((collection.metadata or {}).get("embedder_spec", "{}"))
            if "kind" not in spec:
                raise IclRetrieverError(f"Index '{name}' does not record its embedder; rebuild it with `icl-retriever index`.")
            embedder = load_embedder(spec["kind"], spec.get("model"))
        return cls(embedder, name, path, url, timeout=timeout, create=False)

    @classmethod
    def describe(
        cls, name: str, path: str | Path = DEFAULT_STORE_DIR, url: str | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """Size and embedder of an existing index, read from Chroma without loading any model."""
        _, collection = _existing(name, path, url, timeout)
        metadata = collection.metadata or {}
        return {
            "store": url if url is not None else str(Path(path) / name),
            "name": name,
            "count": int(collection.count()),
            "embedder": json.loads(metadata.get("embedder_spec", "{}")),
            "fingerprint": metadata.get("embedder_fingerprint"),
            "dimension": metadata.get("dimension"),
        }

    @property
    def count(self) -> int:
        return int(self._collection.count())

    @property
    def fingerprint(self) -> str:
        return self.embedder.fingerprint

    @property
    def revision(self) -> str:
        """Changes with every write and every rebuild: in-memory caches of the pool key on it.

        After a rebuild (in any process) the store follows the alias to the new collection.
        """
        live = _live(self._client, self._final)
        if live is None:
            raise StoreNotFoundError(f"Index '{self.name}' at {self.location} was deleted.")
        if live.id != self._collection.id:
            self._check_embedder(live)
            self._collection = live
        return _revision(live)

    @property
    def stats_path(self) -> Path:
        """The index's template statistics (task embedder only; see `icl_retriever.lexical`)."""
        return _side_path(self._folder, self._collection.name, self._final, TEMPLATE_STATS_FILE)

    @property
    def bm25_path(self) -> Path:
        """The index's BM25 index (a folder; on this machine even for a Chroma server)."""
        return _side_path(self._folder, self._collection.name, self._final, BM25_FOLDER)

    def build_bm25_index(self) -> Path:
        """(Re)build the BM25 index from the stored examples, page by page; returns its folder.

        `index` calls it after writing; call it yourself for a store indexed by an older version.
        """
        _build_bm25(self._collection, self.bm25_path)
        return self.bm25_path

    def load_bm25_index(self) -> bm25.BM25Index:
        """The saved BM25 index, memory-mapped.

        Raises:
            IclRetrieverError: it was never built here (e.g. the store was indexed on another
                machine through a Chroma server).
        """
        path = self.bm25_path
        if not path.is_dir():
            server = f" --url {self.location}" if self.location != str(self._folder) else ""
            raise IclRetrieverError(
                f"Index '{self.name}' has no BM25 index at {path}: it is built by `icl-retriever index` on "
                "the machine that runs it. Build it here with `icl-retriever index POOL "
                f"--name {self.name}{server}` (nothing is re-embedded), or copy that folder from the "
                "indexing machine."
            )
        return bm25.BM25Index.load(path)

    def index(
        self,
        examples: Sequence[Example],
        *,
        progress: Callable[[int], None] | None = None,
        chunk_size: int = INDEX_CHUNK,
    ) -> IndexReport:
        """Add new examples, update changed ones, skip unchanged ones.

        Examples are embedded and written `chunk_size` at a time, each chunk committed before the
        next is embedded: memory holds one chunk's vectors, and an interrupted run loses at most one
        chunk (running it again writes only what is missing, and the result equals a clean build).
        With the task embedder, the new and changed examples are counted into the pool's template
        statistics before the first chunk, each content once even across interrupted runs (examples
        indexed earlier keep their skeletons, and a changed example's old text stays counted;
        `rebuild` recomputes them all).
        """
        _drop_leftovers(self._client, self._folder, self._final)
        with _loadable(self.name, self.location):
            existing = self._stored_hashes([e.key for e in examples])
            changed = [e for e in examples if existing.get(e.key) != e.content_hash]
            stats = None
            if isinstance(self.embedder, TaskEmbedder) and changed:
                stats = TemplateStats.load(self.stats_path)
                stats.add(_texts(self.embedder, changed), [e.content_hash for e in changed])
                stats.save(self.stats_path)
            _embed_and_write(self._client, self._collection, self.embedder, changed, stats, progress, chunk_size)
        if bm25.saved_revision(self.bm25_path) != self.revision:  # also after an interrupted run
            self.build_bm25_index()
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
        chunk_size: int = INDEX_CHUNK,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> tuple[ExampleStore, IndexReport]:
        """Build the index anew with `embedder`, replacing whatever it held (any embedder).

        The new collection (`NAME-rebuild-<random>`) is filled while readers keep using the old
        one; then the alias record `NAME-alias` is pointed at it (one metadata write, atomic) and
        the old collection is dropped. An interrupted rebuild leaves the old index in use and its
        half-built collection is dropped by the next `index` or `rebuild`. One rebuild at a time.
        """
        folder = Path(path) / name
        final = collection_name(name)
        client = _client(folder, url, timeout)
        _drop_leftovers(client, folder, final)
        new = client.create_collection(
            f"{final}{_REBUILD_SUFFIX}-{uuid.uuid4().hex[:12]}",
            configuration={"hnsw": _HNSW},
            metadata=_collection_metadata(embedder),
            embedding_function=None,
        )
        try:
            stats = None
            if isinstance(embedder, TaskEmbedder):
                stats = TemplateStats()
                stats.add(_texts(embedder, examples), [e.content_hash for e in examples])
                stats.save(_side_path(folder, new.name, final, TEMPLATE_STATS_FILE))
            _embed_and_write(client, new, embedder, examples, stats, progress, chunk_size)
            _build_bm25(client.get_collection(new.name), _side_path(folder, new.name, final, BM25_FOLDER))
        except BaseException:
            client.delete_collection(new.name)
            _drop_side_files(folder, new.name, final)
            raise
        alias = client.get_or_create_collection(
            final + _ALIAS_SUFFIX, metadata={_TARGET_KEY: new.name}, embedding_function=None
        )
        alias.modify(metadata={_TARGET_KEY: new.name})  # the switch
        _drop_leftovers(client, folder, final)  # now the old index
        store = cls(embedder, name, path, url, timeout=timeout, create=False)
        return store, IndexReport(added=len(examples), updated=0, unchanged=0)

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
        return self.query_many([vector], n, where=where, exclude_ids=[exclude_ids], with_vectors=with_vectors)[0]

    def query_many(
        self,
        vectors: Sequence[np.ndarray] | np.ndarray,
        n: int | Sequence[int],
        *,
        where: Mapping[str, Any] | None = None,
        exclude_ids: Sequence[Iterable[str]] | None = None,
        with_vectors: bool = False,
    ) -> list[list[Hit]]:
        """The `n` nearest examples to each vector (or `n[i]` to vector i), most similar first, in
        as few Chroma queries as its limits allow; `exclude_ids` holds one collection of ids per vector.

        Chroma is asked for ids and distances only; the records come from the store's memory of
        recently returned ones (`REMEMBERED_RECORDS`, forgotten when the store's revision changes),
        and those it lacks are read in one `get`: a record costs its transfer and parsing once,
        not once per query.
        """
        excludes = [set(e) for e in exclude_ids] if exclude_ids is not None else [set() for _ in range(len(vectors))]
        counts = [n] * len(vectors) if isinstance(n, int) else list(n)
        if len(vectors) == 0 or max(counts) <= 0:
            return [[] for _ in range(len(vectors))]
        # More than the store holds is fine: Chroma returns what there is (a count would cost a call).
        n_results = max(counts) + max(map(len, excludes))
        # The revision is read (and a rebuild followed) while Chroma answers the queries: through a
        # server that is one round trip at the same time instead of one more in turn.
        collection = self._collection
        pending = _background().submit(lambda: self.revision)
        try:
            nearest = _nearest(collection, vectors, n_results, counts, excludes, where)
        except Exception:
            pending.result()
            if self._collection is collection:
                raise
            nearest = None  # a rebuild dropped the collection queried
        revision = pending.result()
        if nearest is None or self._collection is not collection:  # rebuilt meanwhile: ask the new index
            return self.query_many(vectors, n, where=where, exclude_ids=excludes, with_vectors=with_vectors)
        if revision != self._remembered_revision:  # a write from any process: forget the records
            self._remembered.clear()
            self._remembered_revision = revision
        records = self._records([key for pairs in nearest for key, _ in pairs], with_vectors)
        # A record deleted since the query is left out.
        return [[_scored(records[key], distance, with_vectors) for key, distance in pairs if key in records] for pairs in nearest]

    def _records(self, keys: Sequence[str], with_vectors: bool) -> dict[str, Hit]:
        """The stored records with these ids (NaN scores; vectors too when `with_vectors`): from
        memory where remembered, the others read from Chroma and remembered."""
        remembered = self._remembered
        found = {key: remembered[key] for key in keys if key in remembered}
        missing = [key for key in dict.fromkeys(keys) if key not in found or (with_vectors and found[key].vector is None)]
        include = ["metadatas", "embeddings"] if with_vectors else ["metadatas"]
        for start in range(0, len(missing), RESULTS_PER_QUERY):
            page = self._collection.get(ids=missing[start : start + RESULTS_PER_QUERY], include=include)
            vectors = page["embeddings"] if with_vectors else [None] * len(page["ids"])
            for key, metadata, vector in zip(page["ids"], page["metadatas"], vectors):
                found[key] = record = _hit(metadata, vector=vector)
                if record.vector is not None:
                    record.vector.flags.writeable = False  # the hits of every query share it
        for key, record in found.items():  # most recently used last
            remembered.pop(key, None)
            remembered[key] = record
        while len(remembered) > REMEMBERED_RECORDS:
            del remembered[next(iter(remembered))]
        return found

    def get(self, ids: Sequence[str], *, where: Mapping[str, Any] | None = None) -> list[Hit]:
        """The stored examples with these ids (that match `where`), in the order given; ids not
        stored are left out. Scores are NaN."""
        found: dict[str, Hit] = {}
        batch = self._client.get_max_batch_size()
        for start in range(0, len(ids), batch):
            with _where_errors(where):
                page = self._collection.get(
                    ids=list(ids[start : start + batch]), where=dict(where) if where else None, include=["metadatas"]
                )
            found.update({key: _hit(metadata) for key, metadata in zip(page["ids"], page["metadatas"])})
        return [found[key] for key in ids if key in found]

    def at(self, positions: Iterable[int]) -> list[Hit]:
        """The examples at these positions of the collection's storage order (one small `get`
        each); positions past the end are left out."""
        hits = []
        for position in positions:
            found = self._collection.get(limit=1, offset=int(position), include=["metadatas"])
            hits += [_hit(metadata) for metadata in found["metadatas"]]
        return hits

    def ids(self, where: Mapping[str, Any] | None = None) -> list[str]:
        """The ids of the stored examples (that match `where`), read page by page without their records."""
        return [key for page in _pages(self._collection, [], where) for key in page["ids"]]

    def iter_records(self, batch: int = PAGE) -> Iterator[list[Hit]]:
        """Every stored example with its vector and task wording, `batch` at a time (scores are NaN).

        Pages through the collection in storage order, so memory and each Chroma call stay bounded
        however large the pool. Writes made while iterating may be missed or seen twice.
        """
        for page in _pages(self._collection, ["embeddings", "metadatas"], None, batch):
            yield [_hit(metadata, vector=vector) for metadata, vector in zip(page["metadatas"], page["embeddings"])]

    def examples(self, where: Mapping[str, Any] | None = None) -> list[Example]:
        """All stored examples (optionally filtered), in id order, read page by page. Holds the
        whole pool in memory: for inspection and tests, never used by selection."""
        pairs = [
            (key, metadata) for page in _pages(self._collection, ["metadatas"], where) for key, metadata in zip(page["ids"], page["metadatas"])
        ]
        return [_example_from(metadata) for _, metadata in sorted(pairs, key=lambda pair: pair[0])]


def _pages(collection: Any, include: list[str], where: Mapping[str, Any] | None, batch: int = PAGE) -> Iterator[dict[str, Any]]:
    """Chroma `get` results of the collection (filtered by `where`), `batch` rows at a time."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}.")
    offset = 0
    while True:
        with _where_errors(where):
            found = collection.get(where=dict(where) if where else None, limit=batch, offset=offset, include=include)
        if not found["ids"]:
            return
        yield found
        offset += len(found["ids"])


def _hit(metadata: Mapping[str, Any], score: float = float("nan"), vector: Any = None) -> Hit:
    vec = np.asarray(vector, dtype=np.float32) if vector is not None else None
    return Hit(_example_from(metadata), score, vec, metadata.get(_TASK_KEY))


def _scored(record: Hit, distance: float, with_vector: bool) -> Hit:
    """A remembered record as a query's hit: its cosine similarity, and its vector if asked for."""
    return Hit(record.example, 1.0 - float(distance), record.vector if with_vector else None, record.task_text)


_BACKGROUND: dict[int, ThreadPoolExecutor] = {}


def _background() -> ThreadPoolExecutor:
    """This process's threads for the Chroma calls of `ExampleStore.query_many` that run beside its
    own: the revision read and the query calls past the first (`_nearest`). Per process: a child
    forked after a query inherits the parent's executor but not its threads, and work handed to that
    executor would never run."""
    pid = os.getpid()
    if pid not in _BACKGROUND:
        _BACKGROUND.clear()
        _BACKGROUND[pid] = ThreadPoolExecutor(max_workers=1 + QUERY_THREADS, thread_name_prefix="icl-retriever-chroma")
    return _BACKGROUND[pid]


def _nearest(
    collection: Any,
    vectors: Sequence[np.ndarray] | np.ndarray,
    n_results: int,
    counts: Sequence[int],
    excludes: Sequence[set[str]],
    where: Mapping[str, Any] | None,
) -> list[list[tuple[str, float]]]:
    """(id, distance) of each vector's `counts[i]` nearest examples outside `excludes[i]`.

    The vectors are split into `QUERY_THREADS` Chroma calls (more where Chroma's limits ask for
    them) that run side by side: Chroma searches without holding the GIL.
    """
    # Chroma reads all results of one call in one SQL statement (at most 32,766 variables).
    per_call = max(1, RESULTS_PER_QUERY // n_results)
    calls = max(-(-len(vectors) // per_call), min(len(vectors), QUERY_THREADS))
    groups = [group for group in np.array_split(np.arange(len(vectors)), calls) if len(group)]

    def ask(group: np.ndarray) -> list[list[tuple[str, float]]]:
        with _where_errors(where):
            result = collection.query(
                query_embeddings=[np.asarray(vectors[i], dtype=np.float32) for i in group],
                n_results=n_results,
                where=dict(where) if where else None,
                include=["distances"],
            )
        return [
            [(key, distance) for key, distance in zip(keys, distances) if key not in excludes[i]][: counts[i]]
            for i, keys, distances in zip(group.tolist(), result["ids"], result["distances"])
        ]

    others = [_background().submit(ask, group) for group in groups[1:]]
    out = ask(groups[0])
    for other in others:
        out += other.result()
    return out


def _revision(collection: Any) -> str:
    return f"{collection.id}:{(collection.metadata or {}).get(_REVISION_KEY)}"


def _build_bm25(collection: Any, path: Path) -> None:
    if collection.count() == 0:  # nothing to index (bm25s needs a document)
        return
    revision = _revision(collection)
    examples = (_example_from(m) for page in _pages(collection, ["metadatas"], None) for m in page["metadatas"])
    documents = ((e.key, bm25.content_text(e.instruction, e.input)) for e in examples)
    bm25.BM25Index.build(documents, revision).save(path)


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


def _collection_metadata(embedder: Embedder, revision: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "embedder_fingerprint": embedder.fingerprint,
        "embedder_spec": json.dumps(embedder.spec),
        "dimension": embedder.dimension,
    }
    if revision is not None:
        metadata[_REVISION_KEY] = revision
    return metadata


def _update_search_ef(collection: Any) -> None:
    """Give an index built with another search depth (e.g. before `SEARCH_EF`) this one. Chroma
    takes the setting when a process first reads the collection: processes that read it before the
    change keep the old depth until they reopen it."""
    if (collection.configuration.get("hnsw") or {}).get("ef_search") != SEARCH_EF:
        collection.modify(configuration={"hnsw": {"ef_search": SEARCH_EF}})


def _fingerprint(collection: Any) -> str | None:
    return (collection.metadata or {}).get("embedder_fingerprint")


def _live(client: Any, final: str) -> Any:
    """The collection that holds the index: the alias's target once the index has been rebuilt,
    else the collection named `final` (stores from before aliases, and until the first rebuild);
    None when there is neither."""
    collections = {c.name: c for c in client.list_collections()}
    alias = collections.get(final + _ALIAS_SUFFIX)
    if alias is not None:
        return collections.get((alias.metadata or {}).get(_TARGET_KEY))
    return collections.get(final)


def _existing(name: str, path: str | Path, url: str | None, timeout: float) -> tuple[Any, Any]:
    """Client and live collection of an index that exists and holds examples; nothing is written."""
    folder = Path(path) / name
    # Chroma creates its database in any folder it opens: look before opening.
    if url is None and not (folder / _CHROMA_FILE).is_file():
        raise StoreNotFoundError(
            f"No index named '{name}' in {path}/. Create it with `icl-retriever index POOL --name {name}`."
        )
    client = _client(folder, url, timeout)
    collection = _live(client, collection_name(name))
    if collection is None:
        raise StoreNotFoundError(
            f"No index named '{name}' at {url or folder}. Create it with `icl-retriever index POOL --name {name}`."
        )
    with _loadable(name, url or folder):
        count = collection.count()
    if count == 0:
        raise StoreNotFoundError(
            f"Index '{name}' at {url or folder} holds no examples yet: its first `index` run has not "
            f"committed a chunk (it may still be running, or was interrupted). Run "
            f"`icl-retriever index POOL --name {name}` and wait for it to finish."
        )
    return client, collection


@contextmanager
def _loadable(name: str, location: str | Path) -> Iterator[None]:
    """Chroma failing to load an index's vector segment, as a message with the way out."""
    from chromadb.errors import InternalError

    try:
        yield
    except InternalError as exc:
        raise DamagedIndexError(
            f"Index '{name}' at {location} is damaged: Chroma cannot load its vectors ({exc}). A process "
            "killed in the middle of a Chroma write can leave an index so (a Chroma defect, rare). Its examples "
            "cannot be read back; rebuild it from your pool file with "
            f"`icl-retriever index POOL --name {name} --rebuild`, which replaces it in one switch."
        ) from exc


def _side_path(folder: Path, collection: str, final: str, name: str) -> Path:
    # A rebuilt collection has its own statistics and BM25 index, switched in and dropped with it.
    return folder / (name if collection == final else f"{collection}.{name}")


def _drop_side_files(folder: Path, collection: str, final: str) -> None:
    _side_path(folder, collection, final, TEMPLATE_STATS_FILE).unlink(missing_ok=True)
    bm25.remove(_side_path(folder, collection, final, BM25_FOLDER))


def _drop_leftovers(client: Any, folder: Path, final: str) -> None:
    """Drop the collections (and statistics) of the index that the alias no longer points to:
    the old index after a rebuild, and half-built ones from interrupted rebuilds."""
    live = _live(client, final)
    for collection in client.list_collections():
        name = collection.name
        if (name == final or name.startswith(final + _REBUILD_SUFFIX)) and (live is None or name != live.name):
            client.delete_collection(name)
            _drop_side_files(folder, name, final)


def _texts(embedder: Embedder, examples: Sequence[Example]) -> list[str]:
    return [embedder.text_for(e.instruction, e.input) for e in examples]


def _embed_and_write(
    client: Any,
    collection: Any,
    embedder: Embedder,
    examples: Sequence[Example],
    stats: TemplateStats | None,
    progress: Callable[[int], None] | None,
    chunk_size: int,
) -> None:
    """Embed and write the examples one committed chunk at a time; with the task embedder
    (`stats` given) each record also keeps its task wording, and each distinct wording is encoded
    once per run (up to `REMEMBERED_TASK_VIEWS` at a time)."""
    task_views: dict[str, np.ndarray] = {}
    for start in range(0, len(examples), chunk_size):
        part = examples[start : start + chunk_size]
        texts = _texts(embedder, part)
        if stats is not None:
            if len(task_views) > REMEMBERED_TASK_VIEWS:
                task_views.clear()
            task_texts = [task_text(e.instruction, e.input, stats) for e in part]
            vectors = embedder.embed_views(task_texts, texts, task_views)  # type: ignore[attr-defined]
            _write(client, collection, embedder, part, vectors, task_texts)
        else:
            _write(client, collection, embedder, part, embedder.embed_documents(texts), None)
        if progress is not None:
            progress(len(part))


def _write(
    client: Any,
    collection: Any,
    embedder: Embedder,
    examples: Sequence[Example],
    vectors: np.ndarray,
    task_texts: Sequence[str] | None,
) -> None:
    # No Chroma documents: records are read from their metadata, and a document costs a full-text
    # index entry (about a third of the write's time).
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
            metadatas=metadatas,
        )
    # After the rows: a reader that caches the pool sees the new revision only with the new rows.
    collection.modify(metadata=_collection_metadata(embedder, uuid.uuid4().hex))


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
