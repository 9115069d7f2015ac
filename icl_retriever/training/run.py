"""The PIE training run: labels -> triplets -> LoRA on the base with the label-masked loss -> folder.

The base is MiniLM (mean pooling, the shipped embedder) or, with `base_model="smollm2"`, the
SmolLM2-135M-Instruct decoder with last-token pooling (the paper's decoder PIE).

Resumable: checkpoints go to `<output_dir>/checkpoints/`; running the same command again continues
from the newest one. The finished folder is the "trained PIE folder" that
`icl_retriever.embedders.PIEEmbedder.from_pretrained` loads.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from icl_retriever.embedders import PIE_CONFIG, base_model_path
from icl_retriever.training.args import TrainArgs
from icl_retriever.training.data import Labeled, label_file, make_triplets, split_dev, usable

logger = logging.getLogger(__name__)


def fill(template: str, text: str, max_chars: int) -> str:
    """The text the encoder sees: the instruction (cut) inside the template, as the embedder does."""
    return template.replace("{instruction}", text.strip()[:max_chars])


def dev_match_at_1(embeddings: np.ndarray, labels: list[str]) -> float:
    """Leave-one-out task match@1: does each query's nearest other item share its label?"""
    sims = embeddings @ embeddings.T
    np.fill_diagonal(sims, -np.inf)
    nearest = sims.argmax(1)
    label_array = np.array(labels)
    return float((label_array[nearest] == label_array).mean())


def build_model(args: TrainArgs) -> Any:
    """The base with a fresh LoRA adapter on `args.device`: an encoder such as MiniLM (mean
    pooling, normalised), or a decoder such as SmolLM2 (float32, last-token pooling, normalised)."""
    from peft import LoraConfig, get_peft_model
    from sentence_transformers import SentenceTransformer

    assert args.max_length is not None and args.lora_targets is not None  # set by TrainArgs
    base = str(base_model_path(args.base_model))
    if args.pooling == "last":
        import torch
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

        # Plain text in, right padding, the last real token: as TransformerEmbedder(pooling="last")
        # embeds. Text-only modality: else sentence-transformers wraps each text in the chat template.
        transformer = Transformer(
            base,
            max_seq_length=args.max_length,
            model_kwargs={"dtype": torch.float32},
            modality_config={"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
            module_output_name="token_embeddings",
        )
        pooling = Pooling(transformer.get_embedding_dimension(), "lasttoken")
        model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device=args.device)
    elif args.pooling == "mean":
        model = SentenceTransformer(base, device=args.device)
        model.max_seq_length = args.max_length
    else:
        raise ValueError(f"Training supports pooling mean (an encoder) or last (a decoder); got {args.pooling!r}.")
    config = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=list(args.lora_targets),
    )
    model[0].model = get_peft_model(model[0].model, config)
    return model


def prepare_data(args: TrainArgs) -> tuple[Any, list[Labeled]]:
    """Labels (cached), the dev split, and the triplet dataset with label ids for masking."""
    from datasets import Dataset

    assert args.data is not None  # set by TrainArgs
    examples = label_file(args.data, limit=args.limit)
    train, dev = split_dev(usable(examples), args.n_dev, args.seed)
    triplets = make_triplets(train, args.seed, max_per_label=args.max_per_label)
    ids = {label: i for i, label in enumerate(sorted({e.label for e in train}))}
    dataset = Dataset.from_dict(
        {
            "anchor": [fill(args.template, t.anchor, args.max_chars) for t in triplets],
            "positive": [fill(args.template, t.positive, args.max_chars) for t in triplets],
            "negative": [fill(args.template, t.negative, args.max_chars) for t in triplets],
            "label": [[ids[t.label], ids[t.negative_label]] for t in triplets],
        }
    )
    return dataset, dev


def evaluate_dev(model: Any, dev: list[Labeled], args: TrainArgs) -> dict[str, float]:
    texts = [fill(args.template, e.instruction, args.max_chars) for e in dev]
    vectors = model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    return {"dev_match@1": dev_match_at_1(np.asarray(vectors), [e.label for e in dev]), "dev_n": len(dev)}


def train(args: TrainArgs) -> dict[str, Any]:
    """Run (or resume) training and write the PIE folder; returns what goes into `eval.json`."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from transformers import set_seed

    if args.threads:
        torch.set_num_threads(args.threads)
    set_seed(args.seed)
    started = time.time()
    out = Path(args.output_dir)
    if (out / "eval.json").is_file():
        # A finished folder: re-running the command is a no-op, not a second training run.
        logger.warning("%s already holds a finished run; delete it to train again.", out)
        return json.loads((out / "eval.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    dataset, dev = prepare_data(args)
    model = build_model(args)
    from icl_retriever.training.loss import LabelMaskedContrastiveLoss

    loss = LabelMaskedContrastiveLoss(model, temperature=args.temperature, symmetric=args.symmetric)

    class _Trainer(SentenceTransformerTrainer):
        def _load_from_checkpoint(self, checkpoint_path: str, model: Any = None) -> None:
            # Checkpoints hold only the adapter; load it into the live peft model.
            weights = next(Path(checkpoint_path).rglob("adapter_model.safetensors"))
            set_peft_model_state_dict(self.model[0].model, load_file(str(weights)))

    checkpoints = out / "checkpoints"
    training_args = SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        warmup_steps=args.warmup_ratio,  # a float below 1 is a ratio in transformers v5
        seed=args.seed,
        data_seed=args.seed,
        save_strategy="steps",
        save_steps=args.save_steps,
        save_total_limit=2,
        logging_steps=args.logging_steps,
        report_to="none",
        dataloader_drop_last=True,
        use_cpu=args.device == "cpu",
        disable_tqdm=False,
    )
    trainer = _Trainer(model=model, args=training_args, train_dataset=dataset, loss=loss)
    resume = any(checkpoints.glob("checkpoint-*"))
    if resume:
        logger.warning("Resuming from the newest checkpoint in %s", checkpoints)
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    metrics: dict[str, Any] = evaluate_dev(model, dev, args)
    save_folder(model, args, out)
    info = {
        "dev": metrics,
        "train_loss_first": losses[0] if losses else None,
        "train_loss_last": losses[-1] if losses else None,
        "train_loss_history": losses,
        "global_step": trainer.state.global_step,
        "train_runtime_s": result.metrics.get("train_runtime"),
        "wall_s": round(time.time() - started, 1),
        "examples": len(dataset),
        "args": args.to_json(),
    }
    if args.ieb_data is not None:
        from icl_retriever.bench.ieb import evaluate_ieb
        from icl_retriever.embedders import PIEEmbedder

        info["ieb"] = evaluate_ieb(PIEEmbedder.from_pretrained(out), args.ieb_data)
    (out / "eval.json").write_text(json.dumps(info, indent=2))
    return info


def save_folder(model: Any, args: TrainArgs, out: Path) -> None:
    """Write pie_config.json and the LoRA adapter (fp16 when asked: half the size, same vectors)."""
    from safetensors.torch import load_file, save_file

    peft_model = model[0].model
    peft_model.save_pretrained(str(out))
    # peft records the base model by absolute path; the loader resolves the packaged base instead.
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    adapter_config["base_model_name_or_path"] = args.base_model
    (out / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))
    if args.fp16_adapter:
        path = out / "adapter_model.safetensors"
        tensors = {k: v.half().contiguous() for k, v in load_file(str(path)).items()}
        save_file(tensors, str(path), metadata={"format": "pt"})
    for file in out.iterdir():
        if file.is_file():
            file.chmod(0o644)  # safetensors writes 0600; a shipped folder must be readable by all
    config = {
        "base_model": args.base_model,
        "template": args.template,
        "pooling": args.pooling,
        "max_length": args.max_length,
        "adapter": True,
    }
    (out / PIE_CONFIG).write_text(json.dumps(config, indent=2))
    readme = out / "README.md"
    if readme.exists():
        readme.unlink()  # peft's model card template is not about this folder


def clean_checkpoints(out: Path) -> None:
    """Drop the resumable checkpoints once a folder is final (they are not part of the artifact)."""
    shutil.rmtree(Path(out) / "checkpoints", ignore_errors=True)
