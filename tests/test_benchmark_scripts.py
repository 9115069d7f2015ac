"""The scripts in `benchmarks/` are typer commands with the options the README runs them with."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from benchmarks import abstention_accuracy, bm25_speed, generation_speed, speed
from icl_retriever.store import ExampleStore
from tests.conftest import make_examples

runner = CliRunner()


@pytest.mark.parametrize(
    ("script", "options"),
    [
        (speed, ["--pool", "--requests", "--embedder", "--rounds", "--out"]),
        (bm25_speed, ["STORE", "--queries", "--old-queries", "--out"]),
        (generation_speed, ["--out", "--pool", "-n", "--max-tokens", "--model"]),
        (abstention_accuracy, ["--pool", "--queries", "--requests", "--cache", "--seed", "--out"]),
    ],
)
def test_help_lists_the_options_and_a_bad_flag_exits_2(script, options) -> None:  # type: ignore[no-untyped-def]
    shown = runner.invoke(script.app, ["--help"])
    assert shown.exit_code == 0
    for option in options:
        assert option in shown.stdout
    assert runner.invoke(script.app, ["--no-such-flag"]).exit_code == 2


def test_speed_rejects_an_unknown_embedder() -> None:
    result = runner.invoke(speed.app, ["--embedder", "bm25"])
    assert result.exit_code == 2 and "'bm25' is not one of" in result.output


def test_bm25_speed_times_both_scorers_and_writes_its_results(tmp_path, semantic) -> None:  # type: ignore[no-untyped-def]
    ExampleStore(semantic, "pool", tmp_path / "stores").index(make_examples())
    out = tmp_path / "out"
    result = runner.invoke(
        bm25_speed.app, [str(tmp_path / "stores" / "pool"), "--queries", "3", "--old-queries", "2", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    assert (data["pool"], len(data["new_ms"]), len(data["old_ms"])) == (6, 3, 2)
    assert "# BM25 selection speed, 6-example pool" in (out / "results.md").read_text()
