"""Answer scoring and the statistics the ICL benchmark reports.

Plain functions over plain data (strings, lists of booleans) so that tests can check them on known
inputs and other harnesses can reuse them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.stats import binomtest

from icl_retriever.lexical import normalize_answer

Metric = Literal["exact", "contains", "exact_set"]

# exact_set answers are lists written either "a, b, c" or "a b c"; both separators split items.
_SET_SEPARATORS = re.compile(r"[,;\s]+")


def _answer_items(text: str) -> list[str]:
    """The normalised items of a list answer, empty items dropped."""
    items = (normalize_answer(item) for item in _SET_SEPARATORS.split(text))
    return [item for item in items if item]


def _exact_set_match(prediction: str, answer: str) -> bool:
    """Same items in any order; a connective "and" in the prediction is ignored unless the
    answer lists the word "and" itself (orthography tasks can ask for it)."""
    gold = _answer_items(answer)
    predicted = _answer_items(prediction)
    if "and" not in gold:
        predicted = [item for item in predicted if item != "and"]
    return bool(gold) and set(predicted) == set(gold)


def _contains_match(prediction: str, answer: str) -> bool:
    """The answer occurs in the prediction as whole words (so "cat" does not match "catalog")."""
    gold = normalize_answer(answer)
    if not gold:
        return False
    return re.search(rf"(?<!\w){re.escape(gold)}(?!\w)", normalize_answer(prediction)) is not None


def score_answer(prediction: str, answers: Sequence[str], metric: Metric | None = None) -> bool:
    """Whether `prediction` is correct against any of the accepted `answers`.

    `metric` None or "exact": normalised exact match. "contains": an answer occurs in the
    prediction as whole words. "exact_set": the prediction lists the same items as an answer, in any
    order, separated by commas or spaces.

    Example:
        >>> score_answer("penguin, lizard and mouse", ["lizard, mouse, penguin"], "exact_set")
        True
    """
    if metric in (None, "exact"):
        predicted = normalize_answer(prediction)
        return any(predicted == normalize_answer(answer) for answer in answers)
    if metric == "contains":
        return any(_contains_match(prediction, answer) for answer in answers)
    if metric == "exact_set":
        return any(_exact_set_match(prediction, answer) for answer in answers)
    raise ValueError(f"Unknown metric {metric!r}: expected 'exact', 'contains' or 'exact_set'.")


def bootstrap_ci(
    correct: Sequence[bool], *, n_resamples: int = 10_000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a mean (accuracy) over queries.

    Example:
        >>> bootstrap_ci([True] * 10)
        (1.0, 1.0)
    """
    values = np.asarray(correct, dtype=np.float64)
    if values.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, values.size, size=(n_resamples, values.size))
    means = values[indices].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return (float(low), float(high))


def paired_bootstrap_ci(
    a: Sequence[bool], b: Sequence[bool], *, n_resamples: int = 10_000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Bootstrap CI of mean(a) - mean(b) resampling queries jointly, so per-query pairing is kept."""
    if len(a) != len(b):
        raise ValueError(f"Paired samples need equal lengths, got {len(a)} and {len(b)}.")
    differences = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return bootstrap_ci(differences.tolist(), n_resamples=n_resamples, seed=seed, level=level)


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Two-sided exact McNemar p-value: a binomial test on the discordant pairs.

    Example:
        >>> round(mcnemar_exact([True] * 6 + [False] * 4, [False] * 6 + [False] * 4), 4)
        0.0312
    """
    if len(a) != len(b):
        raise ValueError(f"Paired samples need equal lengths, got {len(a)} and {len(b)}.")
    only_a = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    only_b = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5, alternative="two-sided").pvalue)


def paired_comparison(
    a: Sequence[bool], b: Sequence[bool], *, n_resamples: int = 10_000, seed: int = 0
) -> dict[str, object]:
    """Delta of accuracies (a - b) with its paired bootstrap CI and the exact McNemar p-value."""
    delta = float(np.mean(np.asarray(a, dtype=np.float64)) - np.mean(np.asarray(b, dtype=np.float64)))
    low, high = paired_bootstrap_ci(a, b, n_resamples=n_resamples, seed=seed)
    return {
        "delta": delta,
        "ci95": [low, high],
        "p_value": mcnemar_exact(a, b),
        "a_only_correct": sum(1 for x, y in zip(a, b, strict=True) if x and not y),
        "b_only_correct": sum(1 for x, y in zip(a, b, strict=True) if y and not x),
        "n": len(a),
    }


def oracle_gain_captured(accuracy: float, random_accuracy: float, oracle_accuracy: float) -> float | None:
    """Share of the oracle's gain over random that a strategy reaches; None when the oracle
    does not beat random (the ratio would be meaningless)."""
    span = oracle_accuracy - random_accuracy
    if span <= 0:
        return None
    return (accuracy - random_accuracy) / span
