"""Typed arguments of a PIE training run (the `icl-retriever train` options)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from icl_retriever.embedders import PIE_TEMPLATE

DEFAULT_DATA = Path("../shared/data/ieb/eft_train_unsup.json")
LORA_TARGETS = ("query", "key", "value", "dense")


@dataclass
class TrainArgs:
    """Everything that determines a run; saved into `eval.json` next to the weights."""

    output_dir: Path
    data: Path = DEFAULT_DATA
    template: str = PIE_TEMPLATE
    pooling: str = "mean"
    max_length: int = 256
    #: Training texts are cut to this many characters (the task is stated up front; keeps steps fast).
    max_chars: int = 150
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = LORA_TARGETS
    learning_rate: float = 3e-4
    batch_size: int = 64
    epochs: float = 1.0
    max_steps: int = -1
    warmup_ratio: float = 0.05
    temperature: float = 0.05
    symmetric: bool = True
    max_per_label: int = 64
    n_dev: int = 800
    seed: int = 42
    save_steps: int = 10
    logging_steps: int = 5
    fp16_adapter: bool = True
    ieb_data: Path | None = None
    #: torch CPU threads; 1 beats 2 when the cores are shared with other work (oversubscription).
    threads: int | None = None
    limit: int | None = None  # use only the first N instructions (smoke runs and tests)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in data.items()}
