"""Task discovery and task-covering samples on a real task-embedder store of the built-in pool.

The built-in pool has 17 tasks (its `task` field), every instruction worded differently; the
floors below were measured with the default threshold (README, "Know your pool").
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from typer.testing import CliRunner

from icl_retriever.cli import app
from icl_retriever.errors import IclRetrieverError, StoreNotFoundError
from icl_retriever.example import Example
from icl_retriever.pool import load_pool
from icl_retriever.store import ExampleStore
from icl_retriever.tasks import SINGLETONS, cluster, discover_tasks, plot_task_similarity, sample_examples
from tests.conftest import BUILTIN_POOL

runner = CliRunner()
TRUE_TASKS = 17


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The built-in pool indexed with the task embedder (`pool`), through the CLI."""
    path = tmp_path_factory.mktemp("stores")
    result = invoke("index", BUILTIN_POOL, "--store", path, "--json")
    assert result.exit_code == 0, result.stderr
    return path


@pytest.fixture(scope="module")
def task_map(stores):
    return discover_tasks(ExampleStore.open("pool", stores))


def test_every_example_is_in_exactly_one_task(task_map):
    ids = [key for task in task_map.tasks for key in task.ids]
    assert sorted(ids) == sorted(e.key for e in load_pool(BUILTIN_POOL).examples)
    assert len(ids) == len(set(ids)) == 96
    assert [t.size for t in task_map.tasks] == [len(t.ids) for t in task_map.tasks]
    real = task_map.tasks[: task_map.n_tasks]
    assert all(t.size >= 2 for t in real) and [t.size for t in real] == sorted((t.size for t in real), reverse=True)
    assert task_map.tasks[-1].name == SINGLETONS
    assert len({t.name for t in task_map.tasks}) == len(task_map.tasks)


def test_tasks_agree_with_the_pool_labels(task_map):
    assert TRUE_TASKS - 5 <= task_map.n_tasks <= TRUE_TASKS + 5
    assert task_map.gold_tasks == TRUE_TASKS
    assert task_map.ari is not None and task_map.ari >= 0.6
    by_id = {e.key: e for e in load_pool(BUILTIN_POOL).examples}
    largest = task_map.tasks[0]
    # The representative is the most central member's instruction; the name is the labeler's majority.
    assert largest.representative == by_id[largest.ids[0]].instruction
    assert "|" in largest.name
    sentiment = next(t for t in task_map.tasks if {by_id[k].task for k in t.ids} == {"classify|sentiment"})
    assert sentiment.outputs is not None and set(sentiment.outputs) <= {"positive", "negative"}
    assert sum(sentiment.outputs.values()) == sentiment.size


def test_identical_wordings_always_share_a_cluster():
    import numpy as np

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(6, 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = cluster(vectors, ["a", "b", "a", None, "b", None], ["x"] * 6, threshold=0.01)
    assert labels[0] == labels[2] and labels[1] == labels[4]
    assert len(set(labels.tolist())) == 4  # far-apart groups stay apart; None rows are their own


def test_wordings_sharing_most_words_merge_and_disagreeing_answers_never_do():
    import numpy as np

    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(4, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)  # far apart: cosine says 4 tasks
    wordings = ["question : ... ? answer yes or no", "question : ... what ? answer yes or no", "x", "y"]
    assert cluster(vectors, wordings, ["yes", "no", "a", "b"], threshold=0.45).tolist() == [0, 0, 1, 2]
    # Same vectors, but one side answers with a letter: the answer forms disagree.
    assert len(set(cluster(vectors, wordings, ["yes", "B", "a", "b"], threshold=0.45).tolist())) == 4
    # A closed answer space (8+ outputs, few values) keeps out a cluster answering outside it.
    same = np.repeat(vectors[:1], 18, axis=0)
    outputs = ["increase", "decrease"] * 5 + ["positive", "negative"] * 4
    labels = cluster(same, ["a"] * 10 + ["b"] * 8, outputs, threshold=0.45)
    assert len(set(labels[:10].tolist())) == len(set(labels[10:].tolist())) == 1 and labels[0] != labels[10]
    assert len(set(cluster(same, ["a"] * 10 + ["b"] * 8, ["yes", "no"] * 9, threshold=0.45).tolist())) == 1


def test_answer_lengths_far_apart_never_merge():
    import numpy as np

    same = np.repeat(np.eye(1, 8), 16, axis=0)  # one vector: cosine says one task
    words = ["paris", "rome", "oslo", "lima", "kyiv", "cairo", "quito", "bern"]
    sentences = [f"the capital of country {n} is a large city" for n in range(8)]
    labels = cluster(same, ["a"] * 8 + ["b"] * 8, words + sentences, threshold=0.45)  # 1 word, 9 words
    assert len(set(labels[:8].tolist())) == len(set(labels[8:].tolist())) == 1 and labels[0] != labels[8]
    pairs = [f"{word} city" for word in words]  # 1 word against 2: no more than ANSWER_LENGTH_RATIO apart
    assert len(set(cluster(same, ["a"] * 8 + ["b"] * 8, words + pairs, threshold=0.45).tolist())) == 1


def test_shared_items_answered_differently_keep_wordings_apart():
    import numpy as np

    from icl_retriever.tasks import _shared_items

    reviews = ["Great blender, crushes ice fast.", "Broke after one week.", "Lovely colours, soft fabric.",
               "Battery died on day two."]
    texts = [f"Is this review positive? {r}" for r in reviews] + [f"{r} Is this review negative?" for r in reviews]
    wordings = ["is this review positive ? ..."] * 4 + ["... is this review negative ?"] * 4
    same = np.repeat(np.eye(1, 8), 8, axis=0)  # one vector: cosine says one task
    positive = ["yes", "no", "yes", "no"]
    negative = ["no", "yes", "no", "yes"]
    labels = cluster(same, wordings, positive + negative, threshold=0.45, texts=texts)
    assert len(set(labels[:4].tolist())) == len(set(labels[4:].tolist())) == 1 and labels[0] != labels[4]
    assert len(set(cluster(same, wordings, positive + negative, threshold=0.45).tolist())) == 1  # without texts
    # The same items answered alike: one task in two wordings.
    assert len(set(cluster(same, wordings, positive + positive, threshold=0.45, texts=texts).tolist())) == 1
    # One passage asked two different questions is not one item; the same question in two wordings is.
    passage = "Tom walked the old dog in the park."
    asked = [f"Passage: {passage} Question: who walked the dog?", f"{passage} Where was the dog walked?",
             f"{passage} Who walked the dog?"]
    assert _shared_items(asked, ["passage : ... question : ...", "... ?", "... ?"], np.array([0, 1, 2])) == [(0, 2)]


def test_answers_split_two_close_wordings_in_a_real_store(tmp_path, task_embedder, monkeypatch):
    from icl_retriever import tasks

    effects = ["more", "less", "no effect"]
    rows = [Example(instruction="Suppose the change happens. How will it affect the second effect? Answer more, less or no effect.",
                    input=f"Process {n}: water flows, soil moves, step {n}.", output=effects[n % 3], task="words", id=f"w{n}")
            for n in range(9)]
    rows += [Example(instruction="Suppose the change happens. How will it affect the second effect? A: more B: less C: no effect",
                     input=f"Process {n}: wind blows, sand moves, step {n}.", output="ABC"[n % 3], task="letters", id=f"l{n}")
             for n in range(9)]
    store = ExampleStore(task_embedder, "answers", tmp_path)
    store.index(rows)
    found = discover_tasks(store, name_tasks=False)
    assert found.n_tasks == 2 and found.ari == pytest.approx(1.0)
    monkeypatch.setattr(tasks, "ANSWER_AGREEMENT", 0.0)  # answers ignored: the wordings are one task
    monkeypatch.setattr(tasks, "ITEM_AGREEMENT", 0.0)  # (both end in "step {n}.": shared items to them)
    assert discover_tasks(store, name_tasks=False).n_tasks == 1


def test_near_duplicates_are_grouped(tmp_path, task_embedder):
    rows = [Example(instruction="Translate this sentence into French.", input=text, output=out, id=f"t{n}")
            for n, (text, out) in enumerate([("Good morning.", "Bonjour."), ("Good morning!", "Bonjour !"),
                                             ("The cat sleeps on the sofa.", "Le chat dort sur le canapé.")])]
    store = ExampleStore(task_embedder, "dups", tmp_path)
    store.index(rows)
    found = discover_tasks(store, name_tasks=False)
    assert found.n_tasks == 1 and found.tasks[0].size == 3
    assert found.duplicates == [["t0", "t1"]]
    assert found.ari is None and found.gold_tasks is None


def test_tasks_json_schema_and_plot(stores, tmp_path):
    plot = tmp_path / "heat.png"
    result = invoke("tasks", "--store", stores, "--json", "--plot", plot)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"tasks", "n_tasks", "agreement", "duplicates", "threshold"}
    assert set(data["agreement"]) == {"ari", "gold_tasks"} and data["agreement"]["ari"] >= 0.6
    assert {"name", "size", "ids", "representative"} <= set(data["tasks"][0])
    assert data["n_tasks"] == sum(t["name"] != SINGLETONS for t in data["tasks"])
    assert Counter(k for t in data["tasks"] for k in t["ids"]).most_common(1)[0][1] == 1
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "heatmap" in result.stderr


def test_tasks_table(stores):
    result = invoke("tasks", "--store", stores, "--show", "3")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("tasks in 96 examples (threshold 0.45).")
    assert "Agreement with the pool's 17 `task` labels: ARI" in result.stdout
    assert "more (--show, --json)." in result.stdout


def test_sample_covers_more_tasks_than_random(stores):
    report = sample_examples(ExampleStore.open("pool", stores), 17)
    assert len(set(report.ids)) == 17
    assert report.coverage.gold_tasks is not None and report.random.gold_tasks is not None
    assert report.coverage.gold_tasks >= report.random.gold_tasks + 2
    assert report.coverage.tasks == min(17, report.n_tasks) >= report.random.tasks


def test_sample_cli_json_and_out(stores, tmp_path):
    out = tmp_path / "subset.jsonl"
    result = invoke("sample", "--store", stores, "--n", 10, "--method", "farthest", "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["method"] == "farthest" and len(set(data["ids"])) == 10
    assert [e.key for e in load_pool(out).examples] == data["ids"]
    assert data["coverage"]["gold_tasks"] >= data["random"]["gold_tasks"]


def test_sample_size_beyond_the_pool_is_an_error(stores):
    with pytest.raises(IclRetrieverError, match=r"--n must be between 1 and the pool size \(96\), got 97"):
        sample_examples(ExampleStore.open("pool", stores), 97)


def test_missing_store_is_exit_1_with_how_to_fix(tmp_path):
    for command in (["tasks"], ["sample", "--n", "3"]):
        result = invoke(*command, "--store", tmp_path, "--name", "nope")
        assert result.exit_code == 1
        assert "No index named 'nope'" in result.stderr and "icl-retriever index POOL --name nope" in result.stderr
    with pytest.raises(StoreNotFoundError):
        discover_tasks(ExampleStore.open("nope", tmp_path))


def test_empty_store_and_empty_plot_are_errors(tmp_path, toy):
    store = ExampleStore(toy, "empty", tmp_path)
    with pytest.raises(IclRetrieverError, match="Index 'empty' .* is empty: add examples"):
        discover_tasks(store)
    store.index([Example(instruction="Say hi.", output="hi", id="one")])
    alone = discover_tasks(store, name_tasks=False)
    assert alone.n_tasks == 0 and [t.name for t in alone.tasks] == [SINGLETONS]
    with pytest.raises(IclRetrieverError, match="nothing to plot"):
        plot_task_similarity(alone, tmp_path / "x.png")
