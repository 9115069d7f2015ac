"""Agreement of `TaskLabeler` with the gold task keys of IEB's `eft_test.json` (measurement only:
the rules are developed on `eft_train_unsup.json`, never tuned on these items).

    python -m training.measure_labels [GOLD]   # default: ieb/eft_test.json in the data folder (Settings.data_dir)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from icl_retriever.labels import TaskLabeler, agreement
from icl_retriever.settings import Settings


def measure(gold_file: str | Path, labeler: TaskLabeler | None = None) -> dict[str, float]:
    """{"exact": share of exact verb|noun matches, "verb": share of verb matches, "n": items}."""
    data = json.loads(Path(gold_file).read_text())
    pairs = [(sample["instruction"], key) for key, task in data.items() for sample in task["samples"]]
    labeler = labeler or TaskLabeler()
    predicted = [label.key for label in labeler.label_many(instruction for instruction, _ in pairs)]
    return agreement(predicted, [key for _, key in pairs])


if __name__ == "__main__":
    result = measure(sys.argv[1] if len(sys.argv) > 1 else Settings().data_file("ieb/eft_test.json", "GOLD"))
    print(json.dumps({**result, "labeler_version": TaskLabeler.version}, indent=2))
