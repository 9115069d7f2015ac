"""ICL benchmark harness: scoring, statistics, the oracle, leave-one-out, and end-to-end runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from icl_retriever.bench.icl import (
    STRATEGIES,
    OracleSelector,
    embedding_store,
    make_selector,
    run_icl_benchmark,
    select_for_queries,
    strategy_metrics,
)
from icl_retriever.bench.icl_data import IclRow, load_rows, read_query_ids, read_requests, reworded
from icl_retriever.bench.scoring import (
    bootstrap_ci,
    mcnemar_exact,
    normalize_answer,
    oracle_gain_captured,
    paired_comparison,
    score_answer,
)
from icl_retriever.errors import IclRetrieverError, PoolFormatError
from icl_retriever.example import Example
from tests.conftest import SHARED_DATA

# ---------------------------------------------------------------------------------------------
# Scoring


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Yes. ", "yes"),
        ('"Positive"', "positive"),
        ("\u201cflattering\u201d", "flattering"),
        ("s  c\ti e\nn", "s c i e n"),
        ("(A)", "a"),
        ("it's fine", "it's fine"),
        ("...", ""),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_exact_match_against_any_answer() -> None:
    assert score_answer("no", ["No."])
    assert score_answer(" 24 hours a day", ["everyday.", "24 hours a day."])
    assert not score_answer("yes no", ["Yes"])
    assert not score_answer("", ["Yes"])
    assert not score_answer("Yes, it is", ["Yes"])


def test_contains_metric_matches_whole_words_only() -> None:
    assert score_answer("The word is apply.", ["apply"], "contains")
    assert score_answer("Apply", ["apply"], "contains")
    assert not score_answer("applying", ["apply"], "contains")
    assert not score_answer("reapply it", ["apply"], "contains")
    assert score_answer("take a break", ["break", "rest"], "contains")


def test_exact_set_metric_ignores_order_and_separators() -> None:
    gold = ["lizard, mouse, penguin"]
    assert score_answer("penguin, lizard, mouse", gold, "exact_set")
    assert score_answer("mouse lizard penguin.", gold, "exact_set")
    assert score_answer("penguin, lizard and mouse", gold, "exact_set")
    assert not score_answer("penguin, lizard", gold, "exact_set")
    assert not score_answer("penguin, lizard, mouse, shoe", gold, "exact_set")
    # Orthography answers may contain the word "and" itself; then it is required.
    assert score_answer("afternoon ago and", ["ago and afternoon"], "exact_set")
    assert not score_answer("ago afternoon", ["ago and afternoon"], "exact_set")


def test_unknown_metric_is_an_error() -> None:
    with pytest.raises(ValueError, match="Unknown metric 'bleu'"):
        score_answer("x", ["x"], "bleu")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Statistics


def test_bootstrap_ci_brackets_the_mean_and_is_deterministic() -> None:
    correct = [True] * 30 + [False] * 70
    low, high = bootstrap_ci(correct, seed=1)
    assert low < 0.30 < high
    # Normal approximation: 1.96 * sqrt(.3 * .7 / 100) = 0.0898.
    assert high - low == pytest.approx(2 * 0.0898, abs=0.02)
    assert bootstrap_ci(correct, seed=1) == (low, high)
    assert bootstrap_ci([False] * 5) == (0.0, 0.0)


def test_mcnemar_exact_on_known_counts() -> None:
    # 6 discordant pairs all in favour of a: p = 2 * 0.5**6.
    a = [True] * 6 + [True, False] * 5
    b = [False] * 6 + [True, False] * 5
    assert mcnemar_exact(a, b) == pytest.approx(2 * 0.5**6)
    # 5 vs 3 discordant: two-sided binomial p = 0.7266.
    a = [True] * 5 + [False] * 3
    b = [False] * 5 + [True] * 3
    assert mcnemar_exact(a, b) == pytest.approx(0.7265625)
    assert mcnemar_exact([True, False], [True, False]) == 1.0
    with pytest.raises(ValueError, match="equal lengths"):
        mcnemar_exact([True], [True, False])


def test_paired_comparison_reports_delta_ci_and_counts() -> None:
    a = [True] * 40 + [False] * 60
    b = [True] * 30 + [False] * 70
    result = paired_comparison(a, b, seed=0)
    assert result["delta"] == pytest.approx(0.10)
    low, high = result["ci95"]
    assert low <= 0.10 <= high
    assert low > 0  # all 10 discordant pairs favour a
    assert result["a_only_correct"] == 10 and result["b_only_correct"] == 0
    assert result["p_value"] == pytest.approx(2 * 0.5**10)


def test_oracle_gain_captured() -> None:
    assert oracle_gain_captured(0.198, 0.082, 0.284) == pytest.approx(0.5743, abs=1e-4)
    assert oracle_gain_captured(0.284, 0.082, 0.284) == pytest.approx(1.0)
    assert oracle_gain_captured(0.2, 0.3, 0.3) is None


# ---------------------------------------------------------------------------------------------
# Report helpers


def test_markdown_table_and_formatting() -> None:
    from icl_retriever.bench._report import format_ci, format_value, markdown_table

    assert markdown_table(["a", "b"], [[1, "x"]]) == "| a | b |\n| --- | --- |\n| 1 | x |"
    with pytest.raises(ValueError, match="has 1 cells, expected 2"):
        markdown_table(["a", "b"], [[1]])
    assert format_ci(0.1984, [0.15, 0.25]) == "0.198 [0.150, 0.250]"
    assert format_value(None) == "—"


def test_provenance_and_plot(tmp_path: Path) -> None:
    from icl_retriever.bench._report import bar_chart, provenance, write_json

    header = provenance(seed=3, command=["icl-retriever", "bench", "icl", "--pool", "a b.jsonl"])
    assert header["command"] == "icl-retriever bench icl --pool 'a b.jsonl'"
    assert header["seed"] == 3
    assert header["versions"]["icl-retriever"] == "0.1.0"
    assert header["machine"]["cpu_count"] >= 1
    write_json(tmp_path / "r" / "x.json", {"value": np.float32(0.5)})
    assert json.loads((tmp_path / "r" / "x.json").read_text()) == {"value": 0.5}
    png = bar_chart(tmp_path / "p.png", ["a", "b"], [0.2, 0.4], ci=[[0.1, 0.3], [0.3, 0.5]])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------
# Pool rows, the oracle and leave-one-out

POOL = SHARED_DATA / "iclmix" / "pool.jsonl"
DEV_IDS = SHARED_DATA / "iclmix" / "dev_ids.txt"
needs_iclmix = pytest.mark.skipif(not POOL.is_file(), reason="needs ../shared/data/iclmix")


def _records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in POOL.read_text("utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def small_pool(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """A pool subset in a temporary JSONL file, and an id file of 12 dev queries.

    Queries: the shortest dev queries of distinct tasks, 4 per collection (short prompts keep the
    transformers run fast). Pool: the queries, up to 6 more rows of each query's task, 3 rows of
    the same family but another task, and 20 distractors, in pool order.
    """
    records = _records()
    by_id = {r["id"]: r for r in records}
    dev = sorted(DEV_IDS.read_text().split(), key=lambda i: len(by_id[i]["instruction"] + by_id[i]["input"]))
    by_collection: dict[str, list[str]] = {}
    for qid in dev:
        group = by_collection.setdefault(by_id[qid]["collection"], [])
        if len(group) < 4 and by_id[qid]["task"] not in {by_id[q]["task"] for q in group}:
            group.append(qid)
    # Interleave collections so that the first 10 ids (--limit 10) cover all three.
    queries = [qid for batch in zip(*by_collection.values()) for qid in batch]
    keep = set(queries)
    for qid in queries:
        same_task = [r["id"] for r in records if r["task"] == by_id[qid]["task"] and r["id"] not in keep]
        same_family = [
            r["id"] for r in records if r["family"] == by_id[qid]["family"] and r["task"] != by_id[qid]["task"]
        ]
        keep.update(same_task[:6] + same_family[:3])
    keep.update([r["id"] for r in records if r["role"] == "distractor"][::90][:20])
    folder = tmp_path_factory.mktemp("iclmix")
    pool = folder / "pool.jsonl"
    pool.write_text("".join(json.dumps(r) + "\n" for r in records if r["id"] in keep))
    ids = folder / "ids.txt"
    ids.write_text("\n".join(queries) + "\n")
    return pool, ids, queries[:10]


@needs_iclmix
def test_load_rows_maps_iclmix_records() -> None:
    rows = load_rows(POOL)
    assert len(rows) == 8652
    t0 = rows["m00000"]  # T0/P3: the instruction lives in the input
    assert t0.example.instruction.startswith("Is this product review positive?")
    assert t0.example.input == ""
    assert t0.example.output == "Yes" and t0.answers == ("Yes",)
    assert t0.example.metadata == {"family": "amazon_polarity", "collection": "T0/P3", "role": "query"}
    synonym = rows["m07180"]
    assert (synonym.example.instruction, synonym.example.input, synonym.metric) == (
        "provide a synonym",
        "enforce",
        "contains",
    )
    assert all(qid in rows for qid in read_query_ids(DEV_IDS))


def test_load_rows_reports_bad_lines(tmp_path: Path) -> None:
    pool = tmp_path / "bad.jsonl"
    pool.write_text('{"id": "a", "task": "t", "instruction": "x", "input": "", "answers": ["y"]}\n{"id": "b"}\n')
    with pytest.raises(PoolFormatError, match=r"bad.jsonl:2: not an ICL benchmark row \(missing field 'answers'\)"):
        load_rows(pool)
    # Read by the library's pool reader: JSON lines that do not parse are named, a JSON array works.
    pool.write_text('{"id": "a", "task": "t", "instruction": "x", "input": "", "answers": ["y"]}\n{"id": \n')
    with pytest.raises(PoolFormatError, match=r"bad.jsonl has 1 line\(s\) that are not JSON:\n  .*bad.jsonl:2: "):
        load_rows(pool)
    pool.write_text('[{"id": "a", "task": "t", "instruction": "x", "input": "", "answers": ["y", "z"]}]')
    assert load_rows(pool)["a"].answers == ("y", "z")


def _toy_rows() -> dict[str, IclRow]:
    specs = [
        ("q1", "sentiment", "reviews", "Is the review positive?", "Good."),
        ("a1", "sentiment", "reviews", "Is the review positive?", "Bad."),
        ("a2", "sentiment", "reviews", "Is the review positive?", "Fine."),
        ("b1", "title", "reviews", "Write a title for the review.", "Good."),
        ("c1", "sum", "math", "Add the numbers.", "1 2"),
    ]
    return {
        rid: IclRow(
            example=Example(instruction=instr, input=text, output="x", id=rid, task=task, metadata={"family": fam}),
            answers=("x",),
            metric=None,
            task=task,
            family=fam,
            collection="C",
        )
        for rid, task, fam, instr, text in specs
    }


def test_oracle_reads_only_the_task_and_excludes_the_query() -> None:
    rows = _toy_rows()
    oracle = OracleSelector(examples=[row.example for row in rows.values()], k=2, seed=0)
    hits = oracle.select_hits({"task": "sentiment"}, exclude_ids=["q1"])
    assert sorted(hit.example.key for hit in hits) == ["a1", "a2"]
    # Instruction and input are ignored: only `task` decides.
    misleading = {"task": "sum", "instruction": "Is the review positive?", "input": "Good."}
    assert [hit.example.key for hit in oracle.select_hits(misleading)] == ["c1"]
    with pytest.raises(KeyError):
        oracle.select_hits({"instruction": "Is the review positive?", "input": "Good."})


class _Spy:
    """Records what a strategy's selector is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], list[str]]] = []

    def select_hits_many(self, inputs: Sequence[dict[str, Any]], exclude_ids: Sequence[Sequence[str]]) -> list[Any]:
        self.calls += [(dict(variables), list(ids)) for variables, ids in zip(inputs, exclude_ids)]
        return [[] for _ in inputs]


def test_only_the_oracle_is_given_the_task() -> None:
    queries = [_toy_rows()["q1"]]
    for name in ("random", "bm25", "semantic", "pie-minilm", "pie-decoder", "minilm-verbnoun", "task"):
        spy = _Spy()
        select_for_queries(name, spy, queries)
        assert spy.calls == [({"instruction": "Is the review positive?", "input": "Good."}, ["q1"])]
    spy = _Spy()
    select_for_queries("oracle", spy, queries)
    assert spy.calls == [({"task": "sentiment"}, ["q1"])]


def test_strategy_metrics_task_and_family_rates() -> None:
    rows = _toy_rows()
    queries = [rows["q1"]]
    demos = [[rows["a1"].example, rows["b1"].example, rows["c1"].example, rows["a2"].example]]
    metrics = strategy_metrics(queries, rows, demos, [True], seed=0)
    assert metrics["same_task_rate"] == 0.5
    assert metrics["same_family_other_task_rate"] == 0.25
    assert metrics["by_collection"] == {"C": 1.0}
    assert metrics["same_task_by_collection"] == {"C": 0.5}
    zero = strategy_metrics(queries, rows, [[]], [False], seed=0)
    assert zero["same_task_rate"] is None and zero["accuracy"] == 0.0
    # Selection only: no answers, so no accuracy.
    selection = strategy_metrics(queries, rows, demos, None, seed=0)
    assert "accuracy" not in selection and selection["same_task_rate"] == 0.5


def test_read_requests_and_reworded_queries(tmp_path: Path) -> None:
    rows = _toy_rows()
    good = tmp_path / "fresh.jsonl"
    good.write_text(
        json.dumps({"id": "q1", "instruction": "", "input": "Say it in other words."}) + "\n\n"
        + json.dumps({"id": "a1", "instruction": "Other words.", "input": "x"}) + "\n"
    )  # fmt: skip
    requests = read_requests(good)
    assert requests == {"q1": ("", "Say it in other words."), "a1": ("Other words.", "x")}
    asked = reworded(rows["q1"], *requests["q1"])
    # An empty instruction moves the input into it, as for pool rows; answers and task stay.
    assert (asked.example.instruction, asked.example.input) == ("Say it in other words.", "")
    assert (asked.id, asked.task, asked.answers, asked.collection) == ("q1", "sentiment", rows["q1"].answers, "C")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "q1", "instruction": "x"}) + "\n")
    with pytest.raises(IclRetrieverError, match=r"bad.jsonl:1: field 'input' must be a string, got None"):
        read_requests(bad)
    bad.write_text(json.dumps({"id": "q1", "instruction": "x", "input": ""}) + "\n{oops\n")
    with pytest.raises(IclRetrieverError, match=r"bad.jsonl has 1 line\(s\) that are not JSON:\n  .*bad.jsonl:2: "):
        read_requests(bad)


@needs_iclmix
def test_leave_one_out_never_returns_the_query(small_pool: tuple[Path, Path, list[str]], tmp_path: Path) -> None:
    pool, _, query_ids = small_pool
    rows = load_rows(pool)
    examples = [row.example for row in rows.values()]
    queries = [rows[qid] for qid in query_ids]
    stores = {
        kind: embedding_store(kind, examples, tmp_path, log=lambda _: None)[0] for kind in ("semantic", "task")
    }
    # The pool is embedded once per embedder: a second run finds everything in the cache.
    assert embedding_store("semantic", examples, tmp_path, log=lambda _: None)[1]["embedded"] == 0
    for name in ("random", "bm25", "semantic", "task", "oracle"):
        store = stores["task" if name == "task" else "semantic"]
        demos = select_for_queries(name, make_selector(name, store, examples, 2, 0), queries)
        for query, chosen in zip(queries, demos):
            assert len(chosen) == 2
            assert query.id not in [demo.key for demo in chosen], name
    # Without the exclusion the query is its own nearest neighbour, so the check above has teeth.
    semantic = make_selector("semantic", stores["semantic"], examples, 2, 0)
    first = queries[0].example
    nearest = semantic.select_hits({"instruction": first.instruction, "input": first.input})[-1]
    assert nearest.example.key == queries[0].id


@needs_iclmix
def test_bench_prompts_and_demonstrations_equal_the_pipelines(small_pool: tuple[Path, Path, list[str]], tmp_path: Path) -> None:
    """The benchmark measures what `ICLPipeline` runs: for each query the same demonstrations and
    the same prompt as the pipeline with the same selector (leave-one-out: the query excluded)."""
    from icl_retriever.generators import TransformersGenerator
    from icl_retriever.pipeline import ICLPipeline
    from icl_retriever.selectors import TaskExampleSelector

    class RecordingGenerator(TransformersGenerator):
        """The real transformers generator, keeping the prompts it was asked."""

        prompts: list[str] = []

        def generate(self, prompts, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.prompts = [*self.prompts, *prompts]
            return super().generate(prompts, *args, **kwargs)

    pool, _, query_ids = small_pool
    query_ids = query_ids[:4]
    generator = RecordingGenerator()
    results = run_icl_benchmark(
        pool, query_ids, generator=generator, strategies=["task"], max_tokens=4, cache=tmp_path, log=lambda _: None
    )
    bench_prompts, generator.prompts = generator.prompts, []
    assert len(bench_prompts) == len(query_ids)
    rows = load_rows(pool)
    store, timing = embedding_store("task", [row.example for row in rows.values()], tmp_path, log=lambda _: None)
    assert timing["embedded"] == 0  # the benchmark's own index
    for qid, prompt, prediction in zip(query_ids, bench_prompts, results["predictions"], strict=True):
        pipeline = ICLPipeline(TaskExampleSelector(store=store, k=2, exclude_ids={qid}), generator, max_tokens=4)
        answer = pipeline.answer(rows[qid].example.instruction, rows[qid].example.input)
        assert [demo.id for demo in answer.demonstrations] == prediction["demo_ids"]
        assert answer.prompt == prompt


# ---------------------------------------------------------------------------------------------
# End to end through the CLI


def test_bench_icl_reports_bad_input_with_exit_1(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from icl_retriever.cli import app

    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"id": "a", "task": "t", "instruction": "Say hi.", "input": "", "answers": ["hi"]}\n')
    ids = tmp_path / "ids.txt"
    ids.write_text("a\nnope\n")
    base = ["bench", "icl", "--pool", str(pool), "--queries", str(ids), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, [*base, "--strategies", "zero,magic"])
    assert result.exit_code == 1
    assert "Unknown strategies ['magic']: choose from zero, random, bm25" in result.stderr
    result = CliRunner().invoke(app, [*base, "--strategies", "zero"])
    assert result.exit_code == 1
    assert "1 query id(s) are not in" in result.stderr and "'nope'" in result.stderr
    assert not (tmp_path / "out").exists()


def _run_cli(
    small_pool: tuple[Path, Path, list[str]], tmp_path: Path, backend: str, strategies: Sequence[str]
) -> dict[str, Any]:
    from typer.testing import CliRunner

    from icl_retriever.cli import app

    pool, ids, queries = small_pool
    out = tmp_path / "out"
    args = [
        "bench", "icl", "--pool", pool, "--queries", ids, "--strategies", ",".join(strategies),
        "--backend", backend, "--limit", 10, "--max-tokens", 6, "--cache", tmp_path / "cache",
        "--out", out, "--json",
    ]  # fmt: skip
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)
    assert results == json.loads((out / "results.json").read_text())
    assert {p.name for p in out.iterdir()} == {"results.json", "results.md", "accuracy.png", "predictions.jsonl"}
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [(p["strategy"], p["id"]) for p in predictions] == [(s, q) for s in strategies for q in queries]
    assert all(p["id"] not in p["demo_ids"] for p in predictions)

    assert results["n_queries"] == 10 and results["k"] == 2 and results["seed"] == 0
    # The recorded command is this process's argv (pytest here), so only its presence is checked.
    assert results["backend"] == backend and results["command"]
    assert list(results["strategies"]) == list(strategies)
    for metrics in results["strategies"].values():
        assert 0.0 <= metrics["ci95"][0] <= metrics["accuracy"] <= metrics["ci95"][1] <= 1.0
        assert set(metrics["by_collection"]) == {"T0/P3", "NIv1(BIG-bench)", "InstructionInduction"}
        assert set(metrics["timings"]) >= {"select_s", "generate_s"}
        assert {"oracle_gain_captured", "same_family_other_task_rate", "gain_over_random"} <= set(metrics)
    assert results["strategies"]["zero"]["same_task_rate"] is None
    assert results["strategies"]["oracle"]["same_task_rate"] == 1.0
    assert results["strategies"]["zero"]["oracle_gain_captured"] == pytest.approx(
        oracle_gain_captured(*(results["strategies"][s]["accuracy"] for s in ("zero", "random", "oracle")))
    )
    paired = results["paired"]["task_vs_semantic"]
    assert set(paired) >= {"delta", "ci95", "p_value"} and 0.0 <= paired["p_value"] <= 1.0
    assert results["versions"]["icl-retriever"] and results["machine"]["cpu_count"]
    table = (out / "results.md").read_text()
    assert "| strategy | accuracy [95% CI] | same-task | T0/P3 | NI v1 | Instr. Induction | gain captured |" in table
    assert "task vs semantic" in table
    return results


@needs_iclmix
def test_bench_icl_end_to_end_transformers(small_pool: tuple[Path, Path, list[str]], tmp_path: Path) -> None:
    # Five strategies keep it fast: bm25 runs in the leave-one-out test above, the others with vLLM.
    _run_cli(small_pool, tmp_path, "transformers", ["zero", "random", "semantic", "task", "oracle"])


@needs_iclmix
def test_bench_icl_select_only_with_reworded_requests(small_pool: tuple[Path, Path, list[str]], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from icl_retriever.cli import app

    pool, ids, queries = small_pool
    rows = load_rows(pool)
    # Reword each query by prefixing a sentence no pool row uses; the answers stay the pool row's.
    requests = tmp_path / "requests.jsonl"
    requests.write_text(
        "".join(
            json.dumps({"id": q, "instruction": rows[q].example.instruction, "input": "Please help. " + rows[q].example.input})
            + "\n"
            for q in queries
        )
    )
    out = tmp_path / "out"
    args = [
        "bench", "icl", "--pool", pool, "--queries", ids, "--limit", 10, "--strategies", "random,semantic,oracle",
        "--requests", requests, "--select-only", "--cache", tmp_path / "cache", "--out", out, "--json",
    ]  # fmt: skip
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)
    assert results["model"] is None and results["requests"] == "reworded" and results["paired"] == {}
    assert {p.name for p in out.iterdir()} == {"results.json", "results.md", "predictions.jsonl"}
    assert results["strategies"]["oracle"]["same_task_rate"] == 1.0
    assert "accuracy" not in results["strategies"]["semantic"]
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert all(p["prediction"] is None and p["id"] not in p["demo_ids"] for p in predictions)
    table = (out / "results.md").read_text()
    assert "(selection only)" in table and "asked in reworded requests" in table
    assert "| strategy | same-task | T0/P3 | NI v1 | Instr. Induction |" in table
    # A requests file that misses a query id is an error naming it.
    requests.write_text(requests.read_text().split("\n", 1)[1])
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 1 and "have no line in the requests file" in result.stderr


@needs_iclmix
@pytest.mark.slow
def test_bench_icl_end_to_end_vllm(small_pool: tuple[Path, Path, list[str]], tmp_path: Path) -> None:
    results = _run_cli(small_pool, tmp_path, "vllm", STRATEGIES)
    strategies = results["strategies"]
    # The pool holds other tasks asked about the same content: the topic baseline falls for them.
    assert strategies["task"]["same_task_rate"] > strategies["semantic"]["same_task_rate"]
    assert results["paired"]["task_vs_minilm-verbnoun"]["n"] == results["n_queries"]
