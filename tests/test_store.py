from pathlib import Path

import numpy as np
import pytest

from icl_retriever.errors import EmbedderMismatchError, IclRetrieverError, StoreNotFoundError
from icl_retriever.example import Example
from icl_retriever.lexical import TemplateStats
from icl_retriever.store import SEARCH_EF, TEMPLATE_STATS_FILE, ExampleStore, collection_name
from tests.conftest import ROOT, make_examples, read_back, record_passes


def test_round_trip_is_exact(tmp_path, pie_untrained):
    examples = make_examples()
    store = ExampleStore(pie_untrained, "demo", tmp_path)
    assert store.index(examples).added == len(examples)
    reopened = ExampleStore.open("demo", tmp_path)
    assert reopened.examples() == sorted(examples, key=lambda e: e.key)
    assert reopened.fingerprint == pie_untrained.fingerprint
    assert reopened.embedder.spec == {"kind": "pie-minilm", "model": None}


def test_reindex_is_idempotent_and_updates_changed_records(tmp_path, pie_untrained):
    examples = make_examples()
    store = ExampleStore(pie_untrained, "demo", tmp_path)
    store.index(examples)
    again = store.index(examples)
    assert (again.added, again.updated, again.unchanged) == (0, 0, len(examples))
    changed = examples[0].model_copy(update={"output": "very positive"})
    new = Example(instruction="Count the words.", input="a b c", output="3", id="new")
    report = store.index([changed, *examples[1:], new])
    assert (report.added, report.updated, report.unchanged) == (1, 1, len(examples) - 1)
    assert store.count == len(examples) + 1
    stored = {e.key: e for e in store.examples()}
    assert stored["ex0"].output == "very positive"


def test_other_embedder_is_refused_and_rebuild_switches(tmp_path, pie_untrained, semantic):
    examples = make_examples()
    ExampleStore(pie_untrained, "demo", tmp_path).index(examples)
    with pytest.raises(EmbedderMismatchError, match=r"Index 'demo' .* was built with embedder PIEEmbedder.*--rebuild"):
        ExampleStore(semantic, "demo", tmp_path)
    store, report = ExampleStore.rebuild(semantic, "demo", examples[:3], tmp_path)
    assert report.added == 3 and store.count == 3
    assert ExampleStore.open("demo", tmp_path).fingerprint == semantic.fingerprint


def test_failed_embedding_leaves_index_intact(tmp_path, toy):
    examples = make_examples()
    store = ExampleStore(toy, "demo", tmp_path)
    store.index(examples[:3])

    class Broken(type(toy)):
        def embed_documents(self, texts):
            raise RuntimeError("out of memory")

    broken = ExampleStore(Broken(), "demo", tmp_path)
    with pytest.raises(RuntimeError):
        broken.index(examples)
    with pytest.raises(RuntimeError):
        ExampleStore.rebuild(Broken(), "demo", examples, tmp_path)
    assert [e.key for e in store.examples()] == ["ex0", "ex1", "ex2"]
    assert _collections(tmp_path / "demo") == {"demo"}  # the failed rebuild's collection is gone


def test_writes_respect_the_client_batch_size(tmp_path, toy, monkeypatch):
    store = ExampleStore(toy, "demo", tmp_path)
    calls = []
    original = store._collection.upsert
    monkeypatch.setattr(store._client, "get_max_batch_size", lambda: 4)
    monkeypatch.setattr(store._collection, "upsert", lambda **kw: (calls.append(len(kw["ids"])), original(**kw)))
    many = [Example(instruction=f"Task {i}.", output=str(i)) for i in range(10)]
    assert store.index(many).added == 10
    assert calls == [4, 4, 2]


def test_index_writes_no_chroma_documents_and_reads_records_from_metadata(tmp_path, toy):
    """A Chroma document would cost a full-text index entry per record and nothing reads it."""
    store = ExampleStore(toy, "demo", tmp_path)
    many = [Example(instruction=f"Task {i}.", input=f"x{i}", output=str(i)) for i in range(10)]
    store.index(many)
    stored = store._collection.get(include=["documents", "metadatas"])
    assert stored["documents"] == [None] * 10 and len(stored["metadatas"]) == 10
    assert sorted((h.example.instruction, h.example.input, h.example.output) for h in store.get(stored["ids"])) == sorted(
        (e.instruction, e.input, e.output) for e in many
    )


def test_query_scores_where_and_exclusion(tmp_path, toy):
    store = ExampleStore(toy, "demo", tmp_path)
    store.index(make_examples())
    query = toy.embed_query("Translate this sentence into French. I like the film.")
    hits = store.query(query, 2)
    assert hits[0].example.key == "ex4" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].score >= hits[1].score
    assert [h.example.key for h in store.query(query, 2, exclude_ids=["ex4"])][0] != "ex4"
    assert {h.example.metadata["topic"] for h in store.query(query, 5, where={"topic": "food"})} == {"food"}


def test_query_many_past_chromas_sql_variable_limit(tmp_path, toy):
    """300 requests x 150 neighbours is 45,000 results, past the 32,766 that one Chroma query can
    read (it failed with "too many SQL variables"): answered in several calls, same as one by one."""
    from tests.test_store_durability import durable_pool

    store = ExampleStore(toy, "demo", tmp_path)
    pool = durable_pool(200, 0)
    store.index(pool)
    vectors = toy.embed_documents([e.instruction for e in pool] * 2)[:300]
    found = store.query_many(vectors, 150, exclude_ids=[[pool[i % 200].key] for i in range(300)])
    assert len(found) == 300 and all(len(hits) == 150 for hits in found)
    for i in (0, 67, 299):
        alone = store.query(vectors[i], 150, exclude_ids=[pool[i % 200].key])
        assert [h.example.key for h in found[i]] == [h.example.key for h in alone]
        assert pool[i % 200].key not in {h.example.key for h in found[i]}


def test_query_many_takes_a_count_per_vector(tmp_path, toy):
    store = ExampleStore(toy, "demo", tmp_path)
    store.index(make_examples())
    vectors = toy.embed_documents(["Translate this sentence into French.", "Is this review positive?"])
    found = store.query_many(vectors, [1, 4], exclude_ids=[["ex3"], []])
    keys = lambda hits: [h.example.key for h in hits]  # noqa: E731
    assert keys(found[0]) == keys(store.query(vectors[0], 1, exclude_ids=["ex3"]))
    assert keys(found[1]) == keys(store.query(vectors[1], 4))
    assert [len(hits) for hits in found] == [1, 4]


def test_query_many_splits_its_vectors_among_chroma_calls_on_several_threads(tmp_path, toy, monkeypatch):
    """`QUERY_THREADS` calls side by side (Chroma searches without the GIL), answers in order."""
    import threading

    import icl_retriever.store as store_module

    monkeypatch.setattr(store_module, "QUERY_THREADS", 3)
    store = ExampleStore(toy, "demo", tmp_path)
    store.index(make_examples())
    texts = [toy.text_for(e.instruction, e.input) for e in make_examples()] + ["Translate this sentence into French."]
    vectors = toy.embed_documents(texts)
    # Ties (the toy vectors make some) come back in either order: compare (score, id) in order.
    answers = lambda found: [sorted((-round(h.score, 6), h.example.key) for h in hits) for hits in found]  # noqa: E731
    calls: list[tuple[str, int]] = []

    class Recording:
        def __init__(self, collection):
            self._collection = collection

        def __getattr__(self, name):
            return getattr(self._collection, name)

        def query(self, query_embeddings, **options):
            calls.append((threading.current_thread().name, len(query_embeddings)))
            return self._collection.query(query_embeddings=query_embeddings, **options)

    alone = [store.query(vector, 2 + i % 2) for i, vector in enumerate(vectors)]
    store._collection = Recording(store._collection)
    found = store.query_many(vectors, [2 + i % 2 for i in range(len(texts))])
    assert answers(found) == answers(alone)
    assert sorted(size for _, size in calls) == [2, 2, 3]
    threads = {thread for thread, _ in calls}
    assert threading.current_thread().name in threads and len(threads) >= 2  # the caller's and the background's


def test_query_many_answers_as_one_full_chroma_query_and_remembers_records(tmp_path, toy, monkeypatch):
    """Records come from the store's memory (bounded) or one `get`: ids, scores, vectors and
    examples equal what a Chroma query with every field returns, warm or cold, vectors or not."""
    import icl_retriever.store as store_module

    monkeypatch.setattr(store_module, "REMEMBERED_RECORDS", 4)
    store = ExampleStore(toy, "demo", tmp_path)
    store.index(make_examples())
    vectors = toy.embed_documents(["Translate this sentence into French.", "Is this review positive?"])
    full = store._collection.query(query_embeddings=list(vectors), n_results=3, include=["metadatas", "distances", "embeddings"])
    for with_vectors in (False, True, True):  # cold, then vectors added to remembered records, then warm
        found = store.query_many(vectors, 3, with_vectors=with_vectors)
        for q, hits in enumerate(found):
            assert [h.example.key for h in hits] == full["ids"][q]
            assert [h.score for h in hits] == [1.0 - d for d in full["distances"][q]]
            assert [h.example.model_dump_json() for h in hits] == [m["_example"] for m in full["metadatas"][q]]
            assert all(h.task_text is None for h in hits)
            if with_vectors:
                assert all(np.array_equal(h.vector, np.asarray(v, np.float32)) for h, v in zip(hits, full["embeddings"][q]))
            else:
                assert all(h.vector is None for h in hits)
        assert len(store._remembered) <= 4


def test_a_forked_process_reads_revisions_on_a_thread_of_its_own(monkeypatch):
    """A child forked after a query (a server's workers after a warm-up) inherits the executor but
    not its thread: work handed to it would wait forever."""
    import icl_retriever.store as store_module

    mine = store_module._background()
    assert store_module._background() is mine
    monkeypatch.setattr(store_module.os, "getpid", lambda: -1)  # as seen from a forked child
    theirs = store_module._background()
    assert theirs is not mine and theirs.submit(lambda: 7).result(timeout=10) == 7


def test_remembered_records_are_forgotten_after_a_write_from_any_store(tmp_path, toy):
    examples = make_examples()
    reader = ExampleStore(toy, "demo", tmp_path)
    reader.index(examples)
    query = toy.embed_query(toy.text_for(examples[0].instruction, examples[0].input))
    assert reader.query(query, 1)[0].example.output == examples[0].output
    ExampleStore.open("demo", tmp_path, embedder=toy).index([examples[0].model_copy(update={"output": "changed"})])
    assert reader.query(query, 1)[0].example.output == "changed"
    hit = reader.query(query, 1, with_vectors=True)[0]
    with pytest.raises(ValueError):  # remembered records share their vectors: read-only
        hit.vector[0] = 1.0


@pytest.mark.parametrize(
    ("where", "reason"),
    [({"topic": {"$bogus": 1}}, r"got \$bogus"), ({"$and": []}, r"at least two where expressions")],
)
def test_malformed_where_is_a_clear_error(tmp_path, toy, where, reason):
    store = ExampleStore(toy, "demo", tmp_path)
    store.index(make_examples())
    with pytest.raises(IclRetrieverError, match=rf"The metadata filter .* is not valid: .*{reason}.*where syntax"):
        store.query(toy.embed_query("x"), 2, where=where)
    with pytest.raises(IclRetrieverError, match="is not valid"):
        store.examples(where=where)


def test_open_missing_index(tmp_path):
    with pytest.raises(StoreNotFoundError, match="No index named 'nope'.*icl-retriever index POOL --name nope"):
        ExampleStore.open("nope", tmp_path)


@pytest.mark.parametrize("name, expected", [("my pool!", "my-pool"), ("a", "a-pool"), ("__x__y", "x__y")])
def test_collection_names_are_valid(name, expected):
    assert collection_name(name) == expected


@pytest.fixture()
def chroma_server(tmp_path):
    """A real Chroma server on loopback, stopped after the test."""
    import shutil
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # The chroma CLI comes with chromadb, next to the interpreter (the venv need not be on PATH).
    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    assert chroma, "the chroma CLI (installed with chromadb) was not found"
    process = subprocess.Popen(
        [chroma, "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("chroma server did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_http_client_against_a_chroma_server(chroma_server, toy):
    store = ExampleStore(toy, "remote pool", url=chroma_server)
    assert store.index(make_examples()).added == 6
    assert ExampleStore(toy, "remote pool", url=chroma_server).examples() == sorted(make_examples(), key=lambda e: e.key)
    with pytest.raises(StoreNotFoundError, match="No index named 'other'"):
        ExampleStore.open("other", url=chroma_server)


def test_task_store_keeps_task_wordings_and_template_stats(tmp_path, task_embedder):
    """The task embedder's index records each example's task wording and the pool's 4-gram counts."""
    from tests.test_lexical import STORIES, letter_prompt

    whole_prompts = [Example(instruction=letter_prompt(s), output="A", id=f"l{n}") for n, s in enumerate(STORIES)]
    store = ExampleStore(task_embedder, "tasks", tmp_path)
    store.index([*whole_prompts, *make_examples()])
    stats = TemplateStats.load(tmp_path / "tasks" / TEMPLATE_STATS_FILE)
    assert stats.documents == len(whole_prompts) + len(make_examples())
    reopened = ExampleStore.open("tasks", tmp_path)
    assert reopened.embedder.spec == {"kind": "task", "model": None}
    query = task_embedder.embed_views(["classify the sentiment ."], ["Classify the sentiment."])[0]
    hits = {hit.example.key: hit for hit in reopened.query(query, 20, with_vectors=True)}
    # A whole prompt is indexed by its template; an instruction with its own input by the instruction.
    assert hits["l0"].task_text == "... . according to the above context , choose the best option . options : a . yes b . no"
    assert hits["ex0"].task_text == "classify the sentiment of this review ."
    # Cosine over the concatenation = mean of the two views' cosines (both views unit length).
    task_view, content_view = task_embedder.split(hits["ex0"].vector)
    query_task, query_content = task_embedder.split(query)
    assert float(task_view @ task_view.T) == pytest.approx(1.0, abs=1e-5)
    expected = (float(task_view @ query_task.T) + float(content_view @ query_content.T)) / 2
    assert hits["ex0"].score == pytest.approx(expected, abs=1e-5)


def test_iter_records_pages_through_every_example_with_its_vector(tmp_path, toy):
    examples = make_examples()
    store = ExampleStore(toy, "paged", tmp_path)
    store.index(examples)
    pages = list(store.iter_records(batch=4))
    assert [len(page) for page in pages] == [4, 2]
    records = {hit.example.key: hit for page in pages for hit in page}
    assert sorted(records) == sorted(e.key for e in examples)
    assert records["ex3"].example == examples[3] and records["ex3"].task_text is None
    expected = toy.embed_documents([toy.text_for(examples[3].instruction, examples[3].input)])[0]
    assert records["ex3"].vector == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="batch must be at least 1, got 0"):
        next(store.iter_records(batch=0))


def _collections(folder: Path) -> set[str]:
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=str(folder), settings=Settings(anonymized_telemetry=False))
    return {c.name for c in client.list_collections()}


def test_rebuild_switches_an_alias_and_drops_the_old_index(tmp_path, toy):
    examples = make_examples()
    reader = ExampleStore(toy, "demo", tmp_path)
    reader.index(examples[:3])
    before = reader.revision
    ExampleStore.rebuild(toy, "demo", examples, tmp_path)
    names = _collections(tmp_path / "demo")
    (live,) = names - {"demo-alias"}
    assert "demo-alias" in names and live.startswith("demo-rebuild-")  # the old 'demo' is gone
    # A store opened before the rebuild follows the alias at its next revision check.
    assert reader.revision != before and reader.count == len(examples)
    ExampleStore.rebuild(toy, "demo", examples[:2], tmp_path)
    assert len(_collections(tmp_path / "demo") - {"demo-alias", live}) == 1 and live not in _collections(tmp_path / "demo")
    assert [e.key for e in ExampleStore.open("demo", tmp_path, embedder=toy).examples()] == ["ex0", "ex1"]


def _search_ef(store: ExampleStore) -> int:
    return store._collection.configuration["hnsw"]["ef_search"]


def test_indexes_are_set_to_the_shipped_search_depth_and_a_writer_brings_older_ones_to_it(tmp_path, toy):
    assert SEARCH_EF > 100  # deeper than Chroma's default (see store.SEARCH_EF)
    store = ExampleStore(toy, "demo", tmp_path)
    store.index(make_examples())
    assert _search_ef(store) == SEARCH_EF
    store._collection.modify(configuration={"hnsw": {"ef_search": 100}})  # as built before SEARCH_EF
    assert _search_ef(ExampleStore.open("demo", tmp_path, embedder=toy)) == 100  # a reader changes nothing
    assert _search_ef(ExampleStore(toy, "demo", tmp_path)) == SEARCH_EF  # a writer's open does
    rebuilt, _ = ExampleStore.rebuild(toy, "demo", make_examples(), tmp_path)
    assert _search_ef(rebuilt) == SEARCH_EF


def test_interrupted_rebuild_is_invisible_and_cleaned_by_the_next_index(tmp_path, toy):
    """What a rebuild killed right after creating its collection leaves: an empty `NAME-rebuild-*`
    (and one of the old code's `NAME-rebuild` with rows). Readers keep the old index."""
    import chromadb
    from chromadb.config import Settings

    examples = make_examples()
    ExampleStore(toy, "demo", tmp_path).index(examples[:3])
    client = chromadb.PersistentClient(path=str(tmp_path / "demo"), settings=Settings(anonymized_telemetry=False))
    client.create_collection("demo-rebuild-dead", metadata={"embedder_fingerprint": toy.fingerprint}, embedding_function=None)
    ExampleStore.rebuild(toy, "other", examples, tmp_path)  # a complete rebuild elsewhere is not touched
    half = client.create_collection("demo-rebuild", embedding_function=None)
    half.add(ids=["x"], embeddings=[[1.0] * toy.dimension], metadatas=[{"a": 1}])
    assert [e.key for e in ExampleStore.open("demo", tmp_path, embedder=toy).examples()] == ["ex0", "ex1", "ex2"]
    ExampleStore(toy, "demo", tmp_path).index(examples)
    assert _collections(tmp_path / "demo") == {"demo"}
    assert ExampleStore.open("demo", tmp_path, embedder=toy).count == len(examples)


def test_an_index_without_examples_is_reported_not_shown_empty(tmp_path, toy, pie_untrained):
    """An `index` run killed before its first chunk leaves an empty collection: readers say so,
    and the next run may use any embedder."""
    ExampleStore(toy, "demo", tmp_path)
    with pytest.raises(StoreNotFoundError, match=r"Index 'demo' .* holds no examples yet.*icl-retriever index POOL --name demo"):
        ExampleStore.open("demo", tmp_path)
    with pytest.raises(StoreNotFoundError, match="holds no examples yet"):
        ExampleStore.describe("demo", tmp_path)
    store = ExampleStore(pie_untrained, "demo", tmp_path)
    store.index(make_examples()[:2])
    assert ExampleStore.open("demo", tmp_path).fingerprint == pie_untrained.fingerprint


def test_readers_never_write_to_a_folder_that_is_not_an_index(tmp_path):
    from typer.testing import CliRunner

    from icl_retriever.cli import app

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("not an index")
    for call in (ExampleStore.open, ExampleStore.describe):
        with pytest.raises(StoreNotFoundError, match="No index named 'notes'"):
            call("notes", tmp_path)
    for args in (["select", "x"], ["info"]):
        result = CliRunner().invoke(app, [*args, "--store", str(tmp_path), "--name", "notes"])
        assert result.exit_code == 1 and "No index named 'notes'" in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["readme.txt"]


class _Interrupted(Exception):
    pass


def _failing_after(embedder, calls: int):
    """The task embedder, failing on its `calls + 1`-th chunk (a crash in the middle of a run)."""

    class Failing(type(embedder)):
        def __init__(self) -> None:
            self.__dict__.update(embedder.__dict__)
            self.left = calls

        def embed_views(self, *args, **kwargs):
            if self.left == 0:
                raise _Interrupted("killed")
            self.left -= 1
            return super().embed_views(*args, **kwargs)

    return Failing()


def _snapshot(store: ExampleStore):
    found = store._collection.get(include=["embeddings", "metadatas"])
    order = sorted(range(len(found["ids"])), key=lambda i: found["ids"][i])
    return ([found["ids"][i] for i in order], found["embeddings"][order], [found["metadatas"][i] for i in order])


def test_interrupted_index_resumes_to_a_clean_build(tmp_path, task_embedder):
    """Chunks are committed as they are embedded; re-running writes only the rest, and ids,
    vectors, task wordings and template statistics equal a clean build's (nothing counted twice)."""
    from tests.test_lexical import STORIES, letter_prompt

    pool = [*[Example(instruction=letter_prompt(s), output="A", id=f"l{n}") for n, s in enumerate(STORIES)], *make_examples()]
    clean = ExampleStore(task_embedder, "clean", tmp_path)
    clean.index(pool, chunk_size=4)
    resumed = ExampleStore(_failing_after(task_embedder, 2), "resumed", tmp_path)
    with pytest.raises(_Interrupted):
        resumed.index(pool, chunk_size=4)
    assert resumed.count == 8  # two committed chunks survive
    report = ExampleStore(task_embedder, "resumed", tmp_path).index(pool, chunk_size=4)
    assert (report.added, report.unchanged) == (len(pool) - 8, 8)
    (ids, vectors, metadatas), (ids2, vectors2, metadatas2) = _snapshot(clean), _snapshot(resumed)
    assert ids == ids2 == sorted(e.key for e in pool)
    assert np.allclose(vectors, vectors2, atol=1e-6)
    assert [m["_task_text"] for m in metadatas] == [m["_task_text"] for m in metadatas2]
    stats, stats2 = TemplateStats.load(clean.stats_path), TemplateStats.load(resumed.stats_path)
    assert stats.documents == stats2.documents == len(pool)
    assert np.array_equal(stats.counts, stats2.counts)


def test_index_encodes_each_task_wording_once_across_chunks(tmp_path, task_embedder, monkeypatch):
    """A pool repeats its instructions: later chunks reuse the task views earlier ones encoded, and
    the vectors equal those of a build in one chunk."""
    pool = [
        Example(instruction=instruction, input=f"Review number {n} of the soup.", output="positive", id=f"{i}-{n}")
        for i, instruction in enumerate(["Classify the sentiment of the review.", "Summarise the review."])
        for n in range(4)
    ]
    one_chunk = ExampleStore(task_embedder, "one", tmp_path)
    one_chunk.index(pool, chunk_size=len(pool))
    passes = record_passes(task_embedder.content, monkeypatch)
    chunked = ExampleStore(task_embedder, "chunked", tmp_path)
    chunked.index(pool, chunk_size=2)
    encoded = [prompt for batch in passes for prompt in batch]
    wordings = [prompt for prompt in encoded if "number" not in prompt]
    expected = ["classify the sentiment of the review .", "summarise the review ."]
    assert sorted(wordings) == [read_back(task_embedder.content, wording) for wording in expected]
    assert len(encoded) == len(pool) + 2
    (ids, vectors, _), (ids2, vectors2, _) = _snapshot(one_chunk), _snapshot(chunked)
    assert ids == ids2 and np.allclose(vectors, vectors2, atol=1e-6)


def test_silent_chroma_server_times_out_with_a_message(tmp_path):
    """A server that accepts the connection and never answers: exit 1 within the timeout."""
    import socket
    import time

    from typer.testing import CliRunner

    from icl_retriever.cli import app

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        start = time.monotonic()
        result = CliRunner().invoke(app, ["select", "x", "--url", url, "--timeout", "1"])
        assert time.monotonic() - start < 10
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"The Chroma server at {url} did not answer within 1 s" in result.stderr and "--timeout" in result.stderr


def test_unreachable_chroma_server_is_a_clear_error():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(IclRetrieverError, match=f"Could not reach a Chroma server at http://127.0.0.1:{port}.*chroma run"):
        ExampleStore.describe("pool", url=f"http://127.0.0.1:{port}")


def test_read_only_store_says_how_to_fix_permissions(tmp_path, toy):
    """Chroma writes to its database even to read: a read-only folder gets one paragraph, no traceback."""
    import os
    import shutil
    import subprocess
    import sys

    ExampleStore(toy, "demo", tmp_path).index(make_examples())
    folder = tmp_path / "demo"
    # root ignores permission bits; in a user namespace without a uid mapping it does not.
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("unshare") is None:
            pytest.skip("running as root without `unshare`: cannot make a folder read-only")
        prefix = ["unshare", "--user"]
    subprocess.run(["chmod", "-R", "a-w", str(folder)], check=True)
    try:
        before = sorted((p.name, p.stat().st_mtime_ns) for p in folder.rglob("*"))
        for args in (["info"], ["select", "Translate this."]):
            done = subprocess.run(
                [*prefix, sys.executable, "-c", "from icl_retriever.cli import main; main()",
                 *args, "--store", str(tmp_path), "--name", "demo"],
                capture_output=True, text=True, cwd=ROOT, timeout=120,
            )
            assert done.returncode == 1, done.stderr
            assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
            assert f"The index folder {folder} cannot be opened because it is not writable" in done.stderr
            assert f"chmod -R u+w {folder}" in done.stderr
        assert sorted((p.name, p.stat().st_mtime_ns) for p in folder.rglob("*")) == before
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(folder)], check=True)
