"""`bench tasks` on a real task-embedder store of the built-in pool (17 labelled tasks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from icl_retriever.bench.tasks import THRESHOLDS, evaluate_tasks, threshold_sweep
from icl_retriever.cli import app
from icl_retriever.errors import IclRetrieverError
from icl_retriever.example import Example
from icl_retriever.store import ExampleStore
from icl_retriever.tasks import DEFAULT_THRESHOLD, StoredPool, discover_tasks


@pytest.fixture(scope="module")
def stored(tmp_path_factory, task_embedder, builtin_examples):
    store = ExampleStore(task_embedder, "pool", tmp_path_factory.mktemp("stores"))
    store.index(builtin_examples)
    return store


def test_evaluate_tasks_on_the_builtin_pool(stored, tmp_path):
    pool = StoredPool.read(stored)
    results = evaluate_tasks(pool, ["sent-01", "sent-02"], plot=tmp_path / "heat.png")
    assert results["n_tasks_true"] == 17 and results["examples"] == 96
    assert results["ari"] == pytest.approx(discover_tasks(pool).ari)
    assert results["query_tasks"] == 1  # both ids are classify|sentiment
    assert results["query_tasks_one_cluster"] + len(results["query_tasks_split"]) == 1
    assert list(results["samples"]) == ["8", "17", "34", "85"]
    for sample in results["samples"].values():
        assert 0 < sample["round-robin"] <= 17 and 0 < sample["random"] <= 17
    assert results["samples"]["17"]["round-robin"] > results["samples"]["17"]["random"]
    sweep = threshold_sweep(pool)
    assert list(sweep) == [f"{t:g}" for t in THRESHOLDS]
    assert sweep[f"{DEFAULT_THRESHOLD:g}"]["ari"] == pytest.approx(results["ari"])
    assert max(v["ari"] for v in sweep.values()) == pytest.approx(results["ari"])  # chosen on this pool (and eft)
    assert (tmp_path / "heat.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_tasks_cli_writes_results(stored, tmp_path):
    out = tmp_path / "out"
    folder = Path(stored.location).parent
    result = CliRunner().invoke(app, ["bench", "tasks", "--name", "pool", "--store", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    data = json.loads((out / "results.json").read_text())
    assert data["results"]["n_tasks_true"] == 17 and "command" in data
    md = (out / "results.md").read_text()
    assert "| ARI against the task labels |" in md and "Reproduce" in md and "query tasks" not in md
    assert (out / "heatmap.png").is_file()


def test_unlabelled_pool_is_refused(tmp_path, toy):
    store = ExampleStore(toy, "plain", tmp_path)
    store.index([Example(instruction="Say hi.", output="hi", id="a"), Example(instruction="Say bye.", output="bye", id="b")])
    with pytest.raises(IclRetrieverError, match="2 stored examples have no `task`"):
        evaluate_tasks(StoredPool.read(store))
