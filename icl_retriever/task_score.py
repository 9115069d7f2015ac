"""`task_score`: the calibrated probability that a demonstration asks for the request's task.

The task selector ranks its fetched candidates by signals (`selectors.TaskSignals`): the task-view
cosine, the content-view cosine, the word overlap of the task wordings and the support of the
candidate's task group. A logistic regression over four of them turns a candidate into a
probability:

    task_score = sigmoid(intercept + w . [task cosine, content cosine, overlap, group mean])

where `group mean` is the group support divided by the number of group members it sums (the mean
`own` score of the group's best members). The weights shipped in `weights/task-score.json` were
fit by `icl-retriever bench abstention` on the iclmix dev queries in the pool's own wording only
(never on test files or on `dev_fresh.jsonl`), with the gold task ids as labels: the top 5
candidates of each query in three settings (leave-one-out; the query's whole task removed from the
pool; every example with the query's task wording removed, so that same-task candidates in other
words are seen). Gold labels are used to fit and measure the calibration, never when selecting.
It was fit at the selector's default weights; other `content_weight` / `overlap_weight` /
`answer_weight` / `group_size` values change the group mean and leave the score less well
calibrated.

Example:
    >>> calibration = TaskScoreCalibration(intercept=-1.0, weights=[1.0, 0.0, 2.0, 0.0])
    >>> calibration.probability(np.array([[0.5, 0.2, 0.25, 1.0]])).round(3).tolist()
    [0.5]
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from icl_retriever.selectors import TaskSignals

__all__ = ["FEATURES", "TaskScoreCalibration", "default_calibration", "task_features"]

#: The inputs of the logistic regression, in order.
FEATURES: tuple[str, ...] = ("task_cosine", "content_cosine", "overlap", "group_mean")
#: Where the fitted weights ship.
DEFAULT_PATH = Path(__file__).parent / "weights" / "task-score.json"


def task_features(signals: TaskSignals, group_size: int) -> np.ndarray:
    """The `FEATURES` of each candidate, one row per candidate (fetch order)."""
    members = np.maximum(np.minimum(signals.group_count, group_size), 1)
    return np.stack(
        [signals.task_cosine, signals.content_cosine, signals.overlap, signals.support / members], axis=1
    ).astype(np.float64)


class TaskScoreCalibration(BaseModel):
    """A logistic regression over `FEATURES`; `fit` records how it was fit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    intercept: float
    weights: list[float] = Field(min_length=len(FEATURES), max_length=len(FEATURES))
    """One weight per name in `FEATURES`."""
    features: list[str] = Field(default_factory=lambda: list(FEATURES))
    fit: dict[str, Any] = Field(default_factory=dict)
    """Provenance: data, settings, command."""

    @model_validator(mode="after")
    def _known_features(self) -> TaskScoreCalibration:
        if list(self.features) != list(FEATURES):
            raise ValueError(f"features must be {list(FEATURES)}, got {self.features}")
        return self

    def probability(self, features: np.ndarray) -> np.ndarray:
        """Same-task probability of each row of `features`."""
        logits = self.intercept + np.atleast_2d(features) @ np.asarray(self.weights)
        return 1.0 / (1.0 + np.exp(-logits))

    @classmethod
    def load(cls, path: str | Path) -> TaskScoreCalibration:
        return cls.model_validate(json.loads(Path(path).read_text("utf-8")))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.model_dump(), indent=2) + "\n", "utf-8")
        return path


@lru_cache(maxsize=1)
def default_calibration() -> TaskScoreCalibration:
    """The shipped calibration (`weights/task-score.json`)."""
    return TaskScoreCalibration.load(DEFAULT_PATH)
