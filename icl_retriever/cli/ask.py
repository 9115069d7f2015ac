"""`ask`: answer a request with demonstrations picked from an index."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any

import typer

from icl_retriever.cli._app import (
    Backend,
    JsonOption,
    Target,
    command,
    print_json,
)
from icl_retriever.cli._selection import Request, Selection


@dataclass(frozen=True)
class Engine:
    """The in-process vLLM engine's settings, an option group (see `command`); None leaves vLLM's default."""

    dtype: Annotated[
        str | None,
        typer.Option(help="vLLM weights and activations: bfloat16, float16 or float32 (default: bfloat16 where "
                     "the hardware computes it, else float32)."),
    ] = None
    gpu_memory: Annotated[
        float | None,
        typer.Option(min=0.01, max=1.0, help="vLLM: share of GPU memory (on CPU: of RAM) for weights and KV cache "
                     "(default 0.9 on GPU, 0.3 on CPU)."),
    ] = None
    enforce_eager: Annotated[
        bool | None,
        typer.Option("--enforce-eager/--no-enforce-eager",
                     help="vLLM: run eagerly (the default); --no-enforce-eager captures CUDA graphs, worth it for long GPU runs."),
    ] = None

    def options(self) -> dict[str, Any]:
        """The given settings, as `make_generator`'s engine options (`VLLMGenerator`'s arguments)."""
        given = asdict(self)
        given["gpu_memory_utilization"] = given.pop("gpu_memory")
        return {option: value for option, value in given.items() if value is not None}


@command()
def ask(
    request: Request,
    selection: Selection,
    target: Target,
    backend: Annotated[
        Backend | None,
        typer.Option(help="vllm (in-process, the default), openai (a running `vllm serve`) or transformers."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Checkpoint folder or .gguf file (default: packaged SmolLM2-135M-Instruct); "
                     "with --backend openai, the served model name."),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (--backend openai).")
    ] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="Most new tokens in the answer.")] = 32,
    temperature: Annotated[float, typer.Option(min=0.0, help="Sampling temperature; 0 = greedy.")] = 0.0,
    *,
    engine: Engine,
    json_out: JsonOption = False,
) -> None:
    """Answer a request with k demonstrations of the same task from an index.

    Example: icl-retriever ask "Is this review positive or negative?" --input "A dull, endless film."
    """
    from icl_retriever.generators import VLLMGenerator, make_generator
    from icl_retriever.pipeline import ICLPipeline

    # bad flags fail before the engine starts
    config, selector = selection.selector(target, backend=backend, model=model)
    generator = make_generator(config.backend, config.model, base_url, timeout=target.timeout, **engine.options())
    try:
        tokenizer = generator.tokenizer
        if tokenizer is not None:  # --token-budget counts the generator's tokens
            selector.count_tokens = lambda text: len(tokenizer.encode(text, add_special_tokens=False))
        result = ICLPipeline(selector, generator, max_tokens=max_tokens, temperature=temperature).answer(
            request.instruction, request.input
        )
    finally:
        if isinstance(generator, VLLMGenerator):
            generator.close()
    note = _fewer_note(len(result.demonstrations), config.k, config.min_task_score)
    if json_out:
        print_json(
            {
                "answer": result.answer,
                "demonstrations": [
                    d.model_dump(include={"id", "instruction", "input", "output", "task", "score", "task_score"})
                    for d in result.demonstrations
                ],
                "prompt": result.prompt,
                "model": result.model,
                "backend": result.backend,
                "note": note,
            }
        )
        return
    typer.echo(result.answer)
    for demo in result.demonstrations:
        score = "-" if demo.score is None else f"{demo.score:.3f}"
        sure = "" if demo.task_score is None else f"  task_score {demo.task_score:.3f}"
        typer.echo(f"  demo {demo.id}  task {demo.task or '-'}  score {score}{sure}", err=True)
    if note is not None:
        typer.echo(f"  {note}", err=True)


def _fewer_note(found: int, k: int, min_task_score: float | None) -> str | None:
    """What `ask` says when --min-task-score left it fewer than k demonstrations."""
    if min_task_score is None or found >= k:
        return None
    if found == 0:
        return (
            f"Answered zero-shot: no demonstration of the request's task reaches --min-task-score {min_task_score}."
        )
    return f"Answered with {found} of {k} demonstrations: the others did not reach --min-task-score {min_task_score}."
