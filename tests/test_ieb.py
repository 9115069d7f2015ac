"""IEB metrics: clustering, retrieval, the full evaluation on a small slice, and `bench ieb`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from icl_retriever.bench.ieb import (
    clustering_metrics,
    evaluate_ieb,
    results_markdown,
    retrieval_metrics,
    unseen_mask,
    write_results,
)
from icl_retriever.embedders import load_embedder

IEB = Path(__file__).resolve().parents[2] / "shared" / "data" / "ieb"


def test_clustering_metrics_perfect_and_shuffled() -> None:
    vectors = np.array([[1, 0], [1, 0.01], [0, 1], [0.01, 1]], dtype=np.float32)
    assert clustering_metrics(vectors, ["a", "a", "b", "b"]) == {"ari": 1.0, "purity": 1.0, "homogeneity": 1.0}
    mixed = clustering_metrics(vectors, ["a", "b", "a", "b"])
    assert mixed["ari"] < 0 and mixed["purity"] == 0.5 and mixed["homogeneity"] == pytest.approx(0.0)


def test_retrieval_metrics_leave_one_out() -> None:
    vectors = np.array(
        [
            [1.0, 0.0, 0.0, 0.0],  # a
            [0.8, 0.6, 0.0, 0.0],  # a': nearest to a
            [0.7, -0.6, 0.39, 0.0],  # b: nearest is a, second its partner b'
            [0.0, 0.0, 1.0, 0.0],  # b'
        ],
        dtype=np.float32,
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    metrics = retrieval_metrics(vectors, ["a", "a", "b", "b"])
    assert metrics == {"match@1": 0.75, "hit@2": 1.0, "queries": 4}


def test_retrieval_metrics_skip_singletons() -> None:
    vectors = np.eye(3, dtype=np.float32)
    assert retrieval_metrics(vectors, ["a", "a", "z"])["queries"] == 2


@pytest.fixture(scope="module")
def small_ieb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-task slice of every IEB file (the real files take minutes to embed)."""
    if not IEB.is_dir():
        pytest.skip("needs ../shared/data/ieb")
    folder = tmp_path_factory.mktemp("data") / "ieb"  # laid out as a data folder (Settings.data_dir)
    folder.mkdir()
    ict = json.loads((IEB / "eft_test.json").read_text())
    keys = ["sort|word", "translate|phrase", "recommend|book"]
    (folder / "eft_test.json").write_text(json.dumps({k: {**ict[k], "samples": ict[k]["samples"][:8]} for k in keys}))
    pairs = json.loads((IEB / "intention_similarity_test.json").read_text())
    (folder / "intention_similarity_test.json").write_text(json.dumps(pairs[:10] + pairs[-10:]))
    rows = json.loads((IEB / "ift_test_alpaca_style.json").read_text())
    # rows 680-719 hold 11 instructions that eft_train_unsup.json also holds
    (folder / "ift_test_alpaca_style.json").write_text(json.dumps(rows[:40] + rows[680:720]))
    shutil.copy(IEB / "eft_train_unsup.json", folder)
    return folder


def test_evaluate_ieb_on_a_slice(small_ieb: Path, semantic) -> None:  # type: ignore[no-untyped-def]
    metrics = evaluate_ieb(semantic, small_ieb)
    assert set(metrics) == {"ict", "iis", "retrieval", "retrieval_unseen"}
    # Three unrelated tasks: even the topic baseline clusters them perfectly.
    assert metrics["ict"] == {"ari": pytest.approx(1.0), "purity": pytest.approx(1.0), "homogeneity": pytest.approx(1.0)}
    assert metrics["retrieval"]["queries"] == 44
    assert metrics["retrieval_unseen"]["rows_seen_in_training"] == 11
    assert metrics["retrieval_unseen"]["queries"] < 44
    assert 0.0 <= metrics["retrieval"]["match@1"] <= metrics["retrieval"]["hit@2"] <= 1.0
    assert "| semantic |" in results_markdown({"semantic": metrics})
    # The shipped task embedder finds same-task neighbours the topic baseline misses.
    trained = evaluate_ieb(load_embedder("trained"), small_ieb)
    assert trained["retrieval"]["match@1"] > metrics["retrieval"]["match@1"] + 0.2
    assert trained["iis"]["spearman"] > metrics["iis"]["spearman"]


def test_evaluate_ieb_names_a_missing_file(tmp_path: Path, semantic) -> None:  # type: ignore[no-untyped-def]
    from icl_retriever.errors import IclRetrieverError

    with pytest.raises(IclRetrieverError, match="eft_test.json"):
        evaluate_ieb(semantic, tmp_path)


def test_bench_ieb_command(small_ieb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from icl_retriever.cli import app

    out = tmp_path / "results"
    monkeypatch.setenv("ICL_RETRIEVER_DATA_DIR", str(small_ieb.parent))  # no --data: ieb/ in the data folder
    args = ["bench", "ieb", "--embedder", "semantic", "--json", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert set(metrics["ict"]) == {"ari", "purity", "homogeneity"}
    assert set(metrics["retrieval"]) == {"match@1", "hit@2", "queries"}
    assert set(metrics["retrieval_unseen"]) == {"match@1", "hit@2", "queries", "rows_seen_in_training"}
    saved = json.loads((out / "results.json").read_text())
    assert saved["results"]["semantic"] == metrics
    assert "| semantic |" in (out / "results.md").read_text()


def test_bench_ieb_rejects_unknown_embedder(small_ieb: Path) -> None:
    from icl_retriever.cli import app

    result = CliRunner().invoke(app, ["bench", "ieb", "--embedder", "bm25", "--data", str(small_ieb)])
    assert result.exit_code == 1
    assert "Unknown --embedder" in result.output


def test_unseen_rows_ignore_case_and_spacing() -> None:
    mask = unseen_mask(["Write a poem.", "write  a POEM. ", "Write a story."], ["  write a poem.", "Sort it."])
    assert mask.tolist() == [False, False, True]


def test_retrieval_unseen_drops_rows_seen_in_training(tmp_path: Path, semantic) -> None:  # type: ignore[no-untyped-def]
    """A test row seen in training (and labelled apart) steals the nearest-neighbour slot of its
    near-copy; without it every unseen query finds its task."""
    rows = [
        ("Write a poem about cats.", "poem-seen"),
        ("Write a poem about cats!", "poem"),
        ("Write a poem about dogs.", "poem"),
        ("Translate this sentence into French.", "translate"),
        ("Translate this sentence into German.", "translate"),
    ]
    (tmp_path / "ift_test_alpaca_style.json").write_text(
        json.dumps([{"instruction": text, "input": "", "label": label} for text, label in rows])
    )
    (tmp_path / "eft_train_unsup.json").write_text(json.dumps(["  write a POEM about cats.", "Sort the list."]))
    (tmp_path / "eft_test.json").write_text(
        json.dumps({label: {"samples": [{"instruction": text} for text, lab in rows if lab == label]} for label in ("poem", "translate")})
    )
    pairs = [{"instruction1": rows[1][0], "instruction2": rows[2][0], "label": 1},
             {"instruction1": rows[1][0], "instruction2": rows[3][0], "label": 0}]
    (tmp_path / "intention_similarity_test.json").write_text(json.dumps(pairs))
    metrics = evaluate_ieb(semantic, tmp_path)
    assert metrics["retrieval"]["queries"] == 4 and metrics["retrieval"]["match@1"] <= 0.75
    assert metrics["retrieval_unseen"] == {"match@1": 1.0, "hit@2": 1.0, "queries": 4, "rows_seen_in_training": 1}
    paths = write_results(tmp_path / "out", {"semantic": metrics}, {"command": "test"})
    markdown = paths[1].read_text()
    assert "| match@1 | hit@2 | match@1 unseen | hit@2 unseen |" in markdown
    assert "without its 1 rows whose instruction occurs in eft_train_unsup.json" in markdown
