"""`ask`: answer a request with demonstrations picked from an index."""

from __future__ import annotations

from typing import Annotated

import typer

from icl_retriever.cli._app import (
    DEFAULT_STORE_DIR,
    DEFAULT_TIMEOUT,
    Backend,
    InputOption,
    InstructionArgument,
    JsonOption,
    KOption,
    NameOption,
    StoreOption,
    TimeoutOption,
    UrlOption,
    app,
    handle_errors,
    print_json,
)


@app.command()
@handle_errors
def ask(
    instruction: InstructionArgument,
    input: InputOption = "",
    k: KOption = 2,
    store: StoreOption = DEFAULT_STORE_DIR,
    name: NameOption = "pool",
    url: UrlOption = None,
    backend: Annotated[
        Backend, typer.Option(help="vllm (in-process), openai (a running `vllm serve`) or transformers.")
    ] = "vllm",
    model: Annotated[
        str | None,
        typer.Option(help="Checkpoint folder or .gguf file (default: packaged SmolLM2-135M-Instruct); "
                     "with --backend openai, the served model name."),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (--backend openai).")
    ] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="Most new tokens in the answer.")] = 32,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    json_out: JsonOption = False,
) -> None:
    """Answer a request with k demonstrations of the same task from an index.

    Example: icl-retriever ask "Is this review positive or negative?" --input "A dull, endless film."
    """
    from icl_retriever.generators import make_generator
    from icl_retriever.pipeline import ICLPipeline
    from icl_retriever.selectors import selector_for_store
    from icl_retriever.store import ExampleStore

    selector = selector_for_store(ExampleStore.open(name, store, url, timeout=timeout), k=k)
    generator = make_generator(backend, model, base_url, timeout=timeout)
    result = ICLPipeline(selector, generator, max_tokens=max_tokens).answer(instruction, input)
    if json_out:
        print_json(
            {
                "answer": result.answer,
                "demonstrations": [
                    d.model_dump(include={"id", "instruction", "input", "output", "task", "score"})
                    for d in result.demonstrations
                ],
                "prompt": result.prompt,
                "model": result.model,
                "backend": result.backend,
            }
        )
        return
    typer.echo(result.answer)
    for demo in result.demonstrations:
        score = "-" if demo.score is None else f"{demo.score:.3f}"
        typer.echo(f"  demo {demo.id}  task {demo.task or '-'}  score {score}", err=True)
