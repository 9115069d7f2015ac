"""`label`: verb-noun task labels for the examples of a pool."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from icl_retriever.cli._app import JsonOption, command, log, print_json


@command()
def label(
    pool: Annotated[Path, typer.Argument(help="Pool file: JSONL (one example per line) or a JSON array.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the pool as JSONL with `task` filled in (the input file is never changed)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace tasks the pool already has (default: keep them).")] = False,
    json_out: JsonOption = False,
) -> None:
    """Label each example with its task (`verb|noun`, e.g. `write|poem`) and count examples per task.

    The label comes from a spaCy parse of the instruction (of the input where the instruction is
    empty). Example: icl-retriever label examples/pool.jsonl --out labeled.jsonl
    """
    from icl_retriever.labels import TaskLabeler
    from icl_retriever.pool import load_pool, write_pool

    examples = load_pool(pool).examples
    texts = [ex.instruction if ex.instruction.strip() else ex.input for ex in examples]
    labels = [lab.key for lab in TaskLabeler().label_many(texts)]
    labeled = [
        ex if ex.task and not overwrite else ex.model_copy(update={"task": key})
        for ex, key in zip(examples, labels, strict=True)
    ]
    counts = Counter(ex.task for ex in labeled)
    if out is not None:
        write_pool(out, labeled)
        log(f"Wrote {len(labeled)} labeled examples to {out}.")
    if json_out:
        print_json(
            {
                "examples": [{"id": ex.key, "instruction": ex.instruction, "task": ex.task} for ex in labeled],
                "counts": dict(counts.most_common()),
            }
        )
        return
    if out is None:
        for ex in labeled:
            typer.echo(f"{ex.task}\t{ex.instruction[:80]!r}")
    typer.echo(f"{len(labeled)} examples, {len(counts)} tasks:")
    for task, n in counts.most_common():
        typer.echo(f"{n:6d}  {task}")
