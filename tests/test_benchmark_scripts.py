"""The scripts in `benchmarks/` are typer commands with the options the README runs them with."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from benchmarks import abstention_accuracy, bm25_speed, encoder_runtime, generation_speed, speed, speed_scale
from icl_retriever.store import ExampleStore
from tests.conftest import make_examples

runner = CliRunner()


@pytest.mark.parametrize(
    ("script", "options"),
    [
        (
            speed,
            ["--pool", "--requests", "--embedder", "--rounds", "--sizes", "--n-requests", "--cold-runs", "--server",
             "--iclmix", "--ieb", "--seed", "--threads", "--out"],
        ),
        (bm25_speed, ["STORE", "--queries", "--old-queries", "--out"]),
        (generation_speed, ["--out", "--pool", "-n", "--max-tokens", "--model"]),
        (abstention_accuracy, ["--pool", "--queries", "--requests", "--cache", "--seed", "--out"]),
        (encoder_runtime, ["--size", "--n-requests", "--rounds", "--seed", "--threads", "--iclmix", "--ieb", "--out"]),
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


def _scale_data(folder: Path) -> tuple[Path, Path]:
    """A tiny iclmix pool (40 rows, two tasks) and IEB instruction list (40)."""
    folder.mkdir()
    rows = [
        {"id": f"m{i:03d}", "task": "sentiment", "family": "reviews", "collection": "toy", "role": "query",
         "instruction": "", "input": f"Is this review positive?\nReview: product number {i} was {'great' if i % 2 else 'awful'}.\nAnswer:",
         "answers": ["Yes" if i % 2 else "No"]}
        for i in range(20)
    ] + [
        {"id": f"m{i:03d}", "task": "reverse", "family": "words", "collection": "toy", "role": "query",
         "instruction": ["Write the words in reverse order.", "Reverse the order of the words.", "List the words last to first."][i % 3],
         "input": f"alpha beta {i}", "answers": [f"{i} beta alpha"]}
        for i in range(20, 40)
    ]
    iclmix = folder / "pool.jsonl"
    iclmix.write_text("".join(json.dumps(row) + "\n" for row in rows))
    ieb = folder / "eft_train_unsup.json"
    ieb.write_text(json.dumps([f"Name {i} kinds of fruit that grow in {['Spain', 'Peru'][i % 2]}." for i in range(40)]))
    return iclmix, ieb


def _run_scale(tmp_path: Path, *extra: str) -> tuple[Path, dict[str, Any]]:
    iclmix, ieb = _scale_data(tmp_path / "data")
    out = tmp_path / "out"
    result = runner.invoke(speed.app, [
        "--sizes", "40,20", "--n-requests", "3", "--rounds", "1", "--cold-runs", "1", "--threads", "1", "--index-threads", "2",
        "--iclmix", str(iclmix), "--ieb", str(ieb), "--work-dir", str(tmp_path), "--out", str(out), *extra,
    ])
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "results.json").read_text())


def _check_scale_results(out: Path, data: dict[str, Any], modes: tuple[str, ...]) -> None:
    close = lambda a, b: math.isclose(a, b, rel_tol=1e-9)  # noqa: E731
    assert data["sizes"] == [20, 40] and data["n_requests"] == 3 and data["torch_threads"] == 1 and data["index_threads"] == 2
    assert set(data["runs"]) == {"20", "40"}
    for size, run in data["runs"].items():
        assert sum(run["composition"].values()) == run["n_examples"] == int(size)
        for name, row in run["index"].items():
            assert close(row["index_examples_per_s"], int(size) / row["index_seconds"])
            assert close(row["index_x_raw_encoder"], row["index_examples_per_s"] / row["raw_encoder_examples_per_s"])
            assert close(row["index_x_langchain"], row["index_examples_per_s"] / run["index"][speed.LANGCHAIN]["index_examples_per_s"])
        assert set(run) - {"n_examples", "composition", "index"} == set(modes)
        for mode in modes:
            assert set(run[mode]) == {speed.TASK, speed.LANGCHAIN}
            for name, row in run[mode].items():
                baseline, first = run[mode][speed.LANGCHAIN], data["runs"]["20"][mode][name]
                assert 0 < row["select_p50_ms"] <= row["select_p95_ms"]
                colds = row["cold_start_runs"]
                assert row["cold_start_s"] == statistics.median(cold["cold_start_s"] for cold in colds)
                assert row["peak_rss_mib"] == statistics.median(cold["peak_rss_mib"] for cold in colds)
                for cold in colds:
                    assert cold["cold_start_s"] > cold["child_open_s"] + cold["child_select_s"]
                    assert cold["peak_rss_mib"] > 100 and len(cold["selected"]) == 2
                for key in ("select_p50_ms", "select_p95_ms", "cold_start_s", "peak_rss_mib"):
                    assert close(row[f"{key}_x_langchain"], row[key] / baseline[key])
                    assert close(row[f"{key}_x_smallest"], row[key] / first[key])
                if mode == "server":
                    assert row["server_peak_rss_mib"] > 0
    targets = data["targets"]
    assert len(targets) == 5 * len(modes) + 2
    for target in targets:
        assert target["holds"] == (target["value"] <= target["limit"] if target["at_most"] else target["value"] >= target["limit"])
    assert close(targets[0]["value"], data["runs"]["40"][modes[0]][speed.TASK]["cold_start_s_x_smallest"])
    markdown = (out / "results.md").read_text()
    for heading in ("# Speed at 20, 40 examples", "## 20 examples", "## 40 examples", "## The issue's targets", "- command:"):
        assert heading in markdown
    assert (out / "speed-scale.png").read_bytes()[:4] == b"\x89PNG"


def _fake_cold_start(spec: dict[str, Any]) -> dict[str, Any]:
    """A cold start without its child process (~12 s each): numbers that differ by pool and system."""
    size = next(int(part) for part in Path(spec["folder"]).parts if part.isdigit())
    seconds = 5.0 + size / 10 + (1.0 if spec["system"] == speed.TASK else 0.0)
    return {"cold_start_s": seconds, "peak_rss_mib": 600.0 + size, "child_import_s": 0.1, "child_open_s": seconds - 1,
            "child_select_s": 0.2, "selected": ["a", "b"]}


def test_speed_scale_measures_both_systems_embedded_and_writes_consistent_ratios(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    started: list[tuple[int, str, bool]] = []

    def fake(spec: dict[str, Any]) -> dict[str, Any]:
        result = _fake_cold_start(spec)  # the slow test below runs the real child
        work = Path(spec["folder"]).parent
        started.append((int(work.name), spec["system"], (work.parent / "40" / "langchain").is_dir()))
        return result

    monkeypatch.setattr(speed_scale, "cold_start_once", fake)
    out, data = _run_scale(tmp_path, "--no-server", "--cold-runs", "2")
    # Once both pools are indexed, every pool and system in turn, round after round.
    assert started == [(20, speed.TASK, True), (20, speed.LANGCHAIN, True), (40, speed.TASK, True), (40, speed.LANGCHAIN, True)] * 2
    _check_scale_results(out, data, ("embedded",))
    assert not data["server"]
    assert data["runs"]["40"]["embedded"][speed.TASK]["cold_start_s_x_smallest"] == pytest.approx(10.0 / 8.0)


@pytest.mark.slow
def test_speed_scale_cold_starts_real_processes_embedded_and_through_chroma_servers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out, data = _run_scale(tmp_path)
    _check_scale_results(out, data, ("embedded", "server"))


def test_speed_scale_rejects_bad_sizes_and_a_mix_too_small(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert runner.invoke(speed.app, ["--sizes", "10,x"]).exit_code == 2
    assert runner.invoke(speed.app, ["--sizes", "0"]).exit_code == 2
    iclmix, ieb = _scale_data(tmp_path / "data")
    result = runner.invoke(speed.app, ["--sizes", "79", "--n-requests", "80", "--iclmix", str(iclmix), "--ieb", str(ieb)])
    message = " ".join(result.output.replace("│", " ").split())  # unwrapped from typer's error box
    assert result.exit_code == 2 and "80 held-out requests need more rows than the mix's 80" in message


def test_pools_past_the_mix_are_filled_with_new_recombined_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    iclmix, ieb = _scale_data(tmp_path / "data")
    mix = speed_scale.mixed_examples(iclmix, ieb, 0)
    small, requests = speed_scale.split_pool(mix, 20, 3)
    assert small == mix[:20] and requests == [{"instruction": e.instruction, "input": e.input} for e in mix[20:23]]
    pool, requests = speed_scale.split_pool(mix, 100, 3)
    assert len(pool) == 100 and pool[:77] == mix[:77] and pool[:20] == small  # the smaller pools are its prefixes
    assert requests == [{"instruction": e.instruction, "input": e.input} for e in mix[77:]]
    extra = pool[77:]
    assert speed_scale.composition(pool)["recombined"] == 23 == len({(e.instruction, e.input) for e in extra})
    texts = {(e.instruction, e.input) for e in mix}
    with_input = [e for e in mix[:77] if e.input.strip()]
    for example in extra:
        assert (example.instruction, example.input) not in texts
        assert example.instruction in {e.instruction for e in with_input}
        assert (example.input, example.output) in {(e.input, e.output) for e in with_input}
    assert speed_scale.split_pool(mix, 100, 3, seed=0) == (pool, requests)
    with pytest.raises(speed_scale.PoolTooSmall, match="make 40 new texts"):  # 3 instructions x 20 inputs, 20 pairs taken
        speed_scale.split_pool(mix, 77 + 41, 3)


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


def test_encoder_runtime_compares_torch_and_onnx_and_finds_the_same_selections(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ICL_RETRIEVER_CACHE", str(tmp_path / "cache"))  # the export is written here
    iclmix, ieb = _scale_data(tmp_path / "data")
    out = tmp_path / "out"
    result = runner.invoke(encoder_runtime.app, [
        "--size", "30", "--n-requests", "4", "--rounds", "1", "--threads", "1",
        "--iclmix", str(iclmix), "--ieb", str(ieb), "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    assert data["same_selections"] == 4 and data["index_max_abs_vector_diff"] < 1e-5
    rows = data["systems"]
    assert set(rows) == {f"{system} [{runtime}]" for system in (encoder_runtime.TASK, speed.LANGCHAIN) for runtime in ("torch", "onnx")}
    for name, row in rows.items():
        langchain = rows[f"{speed.LANGCHAIN} [{row['runtime']}]"]
        assert math.isclose(row["p50_x_langchain_same_runtime"], row["select_p50_ms"] / langchain["select_p50_ms"])
        assert math.isclose(row["p50_x_torch"], row["select_p50_ms"] / rows[name.replace("[onnx]", "[torch]")]["select_p50_ms"])
    assert "task selections identical (ids and order) on both runtimes: 4 of 4" in (out / "results.md").read_text()
