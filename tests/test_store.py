from pathlib import Path

import pytest

from icl_retriever.errors import EmbedderMismatchError, IclRetrieverError, StoreNotFoundError
from icl_retriever.example import Example
from icl_retriever.lexical import TemplateStats
from icl_retriever.store import TEMPLATE_STATS_FILE, ExampleStore, collection_name
from tests.conftest import make_examples


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


def test_writes_respect_the_client_batch_size(tmp_path, toy, monkeypatch):
    store = ExampleStore(toy, "demo", tmp_path)
    calls = []
    original = store._collection.upsert
    monkeypatch.setattr(store._client, "get_max_batch_size", lambda: 4)
    monkeypatch.setattr(store._collection, "upsert", lambda **kw: (calls.append(len(kw["ids"])), original(**kw)))
    many = [Example(instruction=f"Task {i}.", output=str(i)) for i in range(10)]
    assert store.index(many).added == 10
    assert calls == [4, 4, 2]


def test_query_scores_where_and_exclusion(tmp_path, toy):
    store = ExampleStore(toy, "demo", tmp_path)
    store.index(make_examples())
    query = toy.embed_query("Translate this sentence into French. I like the film.")
    hits = store.query(query, 2)
    assert hits[0].example.key == "ex4" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].score >= hits[1].score
    assert [h.example.key for h in store.query(query, 2, exclude_ids=["ex4"])][0] != "ex4"
    assert {h.example.metadata["topic"] for h in store.query(query, 5, where={"topic": "food"})} == {"food"}


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
