"""task_score, min_task_score and balance_labels of the task selector; the abstention benchmark."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from icl_retriever.bench.abstention import (
    Candidates,
    abstention_markdown,
    choose_threshold,
    fit_calibration,
    run_abstention,
    task_folds,
    threshold_metrics,
)
from icl_retriever.cli import app
from icl_retriever.example import Example
from icl_retriever.selectors import TaskExampleSelector, balance_labels
from icl_retriever.store import ExampleStore
from icl_retriever.task_score import DEFAULT_PATH, TaskScoreCalibration, default_calibration
from tests.test_bench_icl import needs_iclmix, small_pool  # noqa: F401  (small_pool: a fixture)
from tests.test_selectors import RESTAURANT_REVIEWS

runner = CliRunner()
RECOMMENDED = default_calibration().fit["recommended_min_task_score"]
TASKS = {
    "sentiment": ("Is the sentiment of this restaurant review positive or negative?", "positive"),
    "rewrite": ("Rewrite this restaurant review as a full, formal sentence.", "The meal was served."),
    "list": ("List the dishes mentioned in this restaurant review.", "pasta"),
}
REQUEST = {"instruction": TASKS["sentiment"][0], "input": "The steak was overcooked and the bill was wrong."}


def _restaurants(tasks: set[str]) -> list[Example]:
    return [
        Example(instruction=instruction, input=review, output=output, id=f"{task}{n}", task=task)
        for task, (instruction, output) in TASKS.items()
        if task in tasks
        for n, review in enumerate(RESTAURANT_REVIEWS)
    ]


@pytest.fixture(scope="module")
def stores(tmp_path_factory, task_embedder) -> dict[str, ExampleStore]:
    """The three restaurant tasks, and the same pool without the sentiment task."""
    folder = tmp_path_factory.mktemp("abstain")
    out = {}
    for name, tasks in (("all", set(TASKS)), ("no-sentiment", {"rewrite", "list"})):
        out[name] = ExampleStore(task_embedder, name, folder)
        out[name].index(_restaurants(tasks))
    return out


def test_task_score_is_a_probability_highest_for_the_requests_task(stores):
    demos = TaskExampleSelector(store=stores["all"], k=12).select_examples(REQUEST)
    scores = {d["id"]: d["task_score"] for d in demos}
    assert len(scores) == 12 and all(0.0 <= s <= 1.0 for s in scores.values())
    same = [s for key, s in scores.items() if key.startswith("sentiment")]
    other = [s for key, s in scores.items() if not key.startswith("sentiment")]
    assert min(same) > 0.9 > 0.2 > max(other)


def test_min_task_score_answers_zero_shot_when_the_task_is_missing(stores):
    kept = TaskExampleSelector(store=stores["all"], k=2, min_task_score=RECOMMENDED).select_examples(REQUEST)
    assert [d["task"] for d in kept] == ["sentiment", "sentiment"]
    assert TaskExampleSelector(store=stores["no-sentiment"], k=2, min_task_score=RECOMMENDED).select_examples(REQUEST) == []
    # Without a threshold the other tasks' examples fill the prompt.
    wrong = TaskExampleSelector(store=stores["no-sentiment"], k=2).select_examples(REQUEST)
    assert len(wrong) == 2 and {d["task"] for d in wrong} <= {"rewrite", "list"}


def test_min_task_score_keeps_the_best_ranked_candidates_that_reach_it(stores):
    ranked = TaskExampleSelector(store=stores["all"], k=12).select_hits(REQUEST)[::-1]  # best first
    scores = sorted({round(hit.task_score, 6) for hit in ranked})
    for threshold in (0.0, scores[3], scores[-2], 1.0):
        expected = [hit.example.key for hit in ranked if hit.task_score >= threshold][:3]
        chosen = TaskExampleSelector(store=stores["all"], k=3, min_task_score=threshold).select_hits(REQUEST)
        assert [hit.example.key for hit in chosen[::-1]] == expected


def test_a_fresh_wording_scores_lower_than_the_pools_own(stores):
    """The calibration was fit on requests in the pool's own wording: a request in new words keeps
    its same-task demonstrations ranked first, with scores far below the pool wording's."""
    fresh = {"instruction": "Tell me whether the following review of a restaurant is positive or negative.",
             "input": REQUEST["input"]}
    demos = TaskExampleSelector(store=stores["all"], k=12).select_examples(fresh)
    assert [d["task"] for d in demos[-4:]] == ["sentiment"] * 4
    assert max(d["task_score"] for d in demos) < RECOMMENDED


def test_balance_labels_alternates_outputs_of_a_classification_task(tmp_path, task_embedder):
    reviews = ["Lovely pasta and kind staff.", "Wonderful pizza, friendly staff.", "Great soup and kind waiters.",
               "Delicious bread, happy staff.", "Awful noise everywhere, never again.", "Prices were outrageous."]
    labels = ["positive"] * 4 + ["negative"] * 2
    sentiment = [Example(instruction=TASKS["sentiment"][0], input=r, output=o, id=f"s{n}")
                 for n, (r, o) in enumerate(zip(reviews, labels))]
    translate = [Example(instruction="Translate this review into French.", input=r, output=f"fr {n}", id=f"t{n}")
                 for n, r in enumerate(reviews)]
    store = ExampleStore(task_embedder, "balance", tmp_path)
    store.index(sentiment + translate)
    request = {"instruction": TASKS["sentiment"][0], "input": "Lovely soup and kind staff."}
    plain = TaskExampleSelector(store=store, k=6).select_examples(request)[::-1]  # best first
    assert [d["output"] for d in plain[:2]] == ["positive", "positive"]
    balanced = TaskExampleSelector(store=store, k=2, balance_labels=True).select_examples(request)[::-1]
    first_negative = next(d for d in plain if d["output"] == "negative")
    assert [d["id"] for d in balanced] == [plain[0]["id"], first_negative["id"]]
    # A task whose outputs never repeat is not a classification: nothing moves.
    french = {"instruction": "Translate this review into French.", "input": "Lovely soup and kind staff."}
    assert TaskExampleSelector(store=store, k=2, balance_labels=True).select_examples(french) == \
        TaskExampleSelector(store=store, k=2).select_examples(french)


def test_balance_labels_leaves_other_groups_in_place():
    from icl_retriever.store import Hit

    def hit(key: str, output: str, wording: str) -> Hit:
        return Hit(Example(instruction=wording, output=output, id=key), 1.0, task_text=wording)

    ranked = [hit("a", "yes", "w"), hit("x", "maybe", "other"), hit("b", "yes", "w"), hit("c", "yes", "w"),
              hit("d", "no", "w")]
    assert [h.example.key for h in balance_labels(ranked)] == ["a", "x", "d", "b", "c"]
    assert balance_labels(ranked[:4]) == ranked[:4]  # one output among the group: nothing to balance


def test_calibration_file_round_trip_and_validation(tmp_path):
    shipped = TaskScoreCalibration.load(DEFAULT_PATH)
    assert shipped.fit["recommended_min_task_score"] == RECOMMENDED and 0 < RECOMMENDED < 1
    copy = TaskScoreCalibration.load(shipped.save(tmp_path / "c.json"))
    assert copy == shipped
    x = np.array([[0.9, 0.5, 1.0, 3.0], [0.2, 0.1, 0.0, 0.5]])
    expected = 1 / (1 + np.exp(-(shipped.intercept + x @ np.array(shipped.weights))))
    assert copy.probability(x) == pytest.approx(expected)
    with pytest.raises(ValueError, match="features must be"):
        TaskScoreCalibration(intercept=0.0, weights=[1.0] * 4, features=["a", "b", "c", "d"])


def test_cli_help_states_the_recommended_threshold():
    result = runner.invoke(app, ["select", "--help"])
    assert re.search(rf"{RECOMMENDED}\s+was\s+chosen", " ".join(result.stdout.split())), result.stdout


def test_threshold_metrics_choose_threshold_and_folds():
    present = [(np.array([0.9, 0.8, 0.1]), np.array([True, True, False])),
               (np.array([0.3, 0.2]), np.array([True, False]))]
    removed = [(np.array([0.4, 0.1]), np.array([False, False])), (np.array([0.05]), np.array([False]))]
    m = threshold_metrics(present, removed, 0.25, k=2)
    assert m["present_abstain"] == 0.0 and m["present_same_task_kept"] == 1.0
    assert m["present_wrong_task_removed"] == 1.0 and m["present_demos_per_query"] == 1.5
    assert m["removed_abstain"] == 0.5 and m["removed_wrong_task_removed"] == pytest.approx(2 / 3)
    sweep = [threshold_metrics(present, removed, t, k=2) for t in (0.25, 0.35, 0.5)]
    assert [s["present_abstain"] for s in sweep] == [0.0, 0.5, 0.5]
    assert choose_threshold(sweep) == 0.25
    folds = task_folds(["a", "b", "c", "d", "a"], 2, seed=0)
    assert sorted(folds) == ["a", "b", "c", "d"] and sorted(folds.values()) == [0, 0, 1, 1]


def test_fit_calibration_learns_which_features_mean_same_task():
    rng = np.random.default_rng(0)
    items = []
    for n in range(40):
        same = np.array([n % 2 == 0] * 3 + [False] * 2)
        features = rng.normal(0, 0.1, (5, 4)) + np.where(same[:, None], [0.8, 0.3, 0.9, 2.0], [0.5, 0.3, 0.1, 1.0])
        items.append(Candidates(f"q{n}", f"t{n % 4}", features, same))
    calibration = fit_calibration(items)
    weights = dict(zip(calibration.features, calibration.weights))
    assert weights["overlap"] > 0 and weights["group_mean"] > 0
    probs = calibration.probability(np.array([[0.8, 0.3, 0.9, 2.0], [0.5, 0.3, 0.1, 1.0]]))
    assert probs[0] > 0.9 and probs[1] < 0.1


@needs_iclmix
def test_run_abstention_on_a_small_iclmix_pool(small_pool, tmp_path):  # noqa: F811
    from icl_retriever.bench.icl import load_rows

    pool, ids, queries = small_pool
    rows = load_rows(pool)
    requests = {q: (rows[q].example.instruction, "Please help. " + rows[q].example.input) for q in queries}
    results, calibration = run_abstention(pool, queries, requests=requests, repeats=3, cache=tmp_path / "cache", log=lambda _: None)
    assert set(results["evaluations"]) == {"original (cross-fit)", "fresh (cross-fit)", "fresh (all-original fit)"}
    for evaluation in results["evaluations"].values():
        removed = [m["removed_wrong_task_removed"] for m in evaluation["thresholds"]]
        abstain = [m["present_abstain"] for m in evaluation["thresholds"]]
        assert removed == sorted(removed) and abstain == sorted(abstain)  # a higher threshold only removes more
        assert 0.0 <= evaluation["separability"]["auc"] <= 1.0
    assert len(results["fold_weights"]) == 2 and calibration.fit["recommended_min_task_score"] == results["recommended_threshold"]
    # the first split is the reported one; the others use the next seeds and choose their own thresholds
    first, *others = results["splits"]
    assert [split["seed"] for split in results["splits"]] == [0, 1, 2]
    assert first["threshold"] == results["recommended_threshold"]
    assert first["original"] == results["evaluations"]["original (cross-fit)"]["at_recommended"]
    assert first["fresh"] == results["evaluations"]["fresh (cross-fit)"]["at_recommended"]
    markdown = abstention_markdown(results, "cmd")
    assert "## 3 splits of the tasks into 2 folds" in markdown and "| mean |" in markdown


def test_select_and_ask_cli_carry_task_score_and_say_zero_shot(stores):
    folder = Path(stores["all"].location).parent
    args = [REQUEST["instruction"], "--input", REQUEST["input"], "--store", str(folder)]
    result = runner.invoke(app, ["select", *args, "--name", "all", "--json"])
    assert result.exit_code == 0, result.stderr
    demos = json.loads(result.stdout)["demonstrations"]
    assert [d["task"] for d in demos] == ["sentiment"] * 2 and all(d["task_score"] > 0.9 for d in demos)
    result = runner.invoke(app, ["select", *args, "--name", "no-sentiment", "--min-task-score", str(RECOMMENDED)])
    assert result.exit_code == 0, result.stderr
    assert f"No demonstration reaches --min-task-score {RECOMMENDED}" in result.stdout
    result = runner.invoke(app, ["ask", *args, "--name", "no-sentiment", "--min-task-score", str(RECOMMENDED),
                                 "--backend", "transformers", "--max-tokens", "3", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["demonstrations"] == [] and data["note"].startswith("Answered zero-shot: no demonstration")
    result = runner.invoke(app, ["ask", *args, "--name", "all", "--min-task-score", str(RECOMMENDED),
                                 "--backend", "transformers", "--max-tokens", "3", "--json"])
    data = json.loads(result.stdout)
    assert data["note"] is None and [set(d) for d in data["demonstrations"]] == [
        {"id", "instruction", "input", "output", "task", "score", "task_score"}
    ] * 2


def test_min_task_score_setting_and_flags_on_another_index(stores, tmp_path, monkeypatch, semantic):
    folder = Path(stores["all"].location).parent
    monkeypatch.setenv("ICL_RETRIEVER_MIN_TASK_SCORE", str(RECOMMENDED))
    result = runner.invoke(app, ["select", REQUEST["instruction"], "--input", REQUEST["input"], "--store", str(folder),
                                 "--name", "no-sentiment", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["demonstrations"] == []
    monkeypatch.delenv("ICL_RETRIEVER_MIN_TASK_SCORE")
    other = ExampleStore(semantic, "semantic", tmp_path)
    other.index(_restaurants({"sentiment"}))
    result = runner.invoke(app, ["select", "x", "--store", str(tmp_path), "--name", "semantic", "--min-task-score", "0.5",
                                 "--balance-labels"])
    assert result.exit_code == 1
    assert "--min-task-score, --balance-labels tune the task selector" in result.stderr
