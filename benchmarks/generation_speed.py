"""Generation speed: vLLM (in-process engine) versus transformers on the same 64 prompts.

Each request is a built-in pool example with 2 other examples of its task as demonstrations,
rendered with the shared prompt format (`icl_retriever.prompt.build_prompt`), answered greedily
with max_tokens 16 and the pipeline's stop string. Both backends run in one process on the same
converted checkpoint, so the ratio is what matters on a shared machine.

    python -m benchmarks.generation_speed --out benchmarks/results/generation_speed
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from icl_retriever.bench._report import markdown_table, provenance, provenance_markdown, write_json, write_markdown
from icl_retriever.generators import Generator, TransformersGenerator, VLLMGenerator
from icl_retriever.models import resolve_generator_model
from icl_retriever.pool import load_pool
from icl_retriever.prompt import build_prompt

ROOT = Path(__file__).resolve().parents[1]
STOP = ["\n"]


def build_requests(pool: Path, n: int, demos: int = 2) -> list[tuple[list[dict[str, Any]], str, str]]:
    """`n` requests (cycling over the pool): each with `demos` other examples of its task."""
    examples = [e.to_prompt_dict() for e in load_pool(pool).examples]
    by_task: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for example in examples:
        by_task[example["task"]].append(example)
    requests = []
    for i in range(n):
        query = examples[i % len(examples)]
        others = [e for e in by_task[query["task"]] if e["id"] != query["id"]][:demos]
        requests.append((others, query["instruction"], query["input"]))
    return requests


def measure(make: Callable[[Path], Generator], model: Path, requests: list, max_tokens: int) -> dict[str, Any]:
    start = time.perf_counter()
    generator = make(model)
    started = time.perf_counter() - start
    prompts = [build_prompt(d, i, x, tokenizer=generator.tokenizer) for d, i, x in requests]
    generator.generate(prompts[:1], max_tokens=max_tokens, stop=STOP)  # first-call warm-up, not timed
    start = time.perf_counter()
    texts = generator.generate(prompts, max_tokens=max_tokens, stop=STOP)
    seconds = time.perf_counter() - start
    tokens = [len(generator.tokenizer(p, add_special_tokens=False).input_ids) for p in prompts]
    return {
        "backend": generator.backend,
        "start_s": round(started, 2),
        "generate_s": round(seconds, 2),
        "prompts_per_s": round(len(prompts) / seconds, 2),
        "mean_prompt_tokens": round(sum(tokens) / len(tokens), 1),
        "outputs": texts,
    }


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(help=__doc__.split("\n\n")[0])
def main(
    out: Annotated[Path, typer.Option(help="Folder for results.json and results.md.")],
    pool: Annotated[Path, typer.Option(help="Pool whose examples are the requests.")] = ROOT / "examples" / "pool.jsonl",
    n: Annotated[int, typer.Option("-n", min=1, help="Number of requests.")] = 64,
    max_tokens: Annotated[int, typer.Option(min=1, help="Generated tokens per answer.")] = 16,
    model: Annotated[str | None, typer.Option(help="Checkpoint or .gguf (default: packaged SmolLM2).")] = None,
) -> None:
    start = time.perf_counter()
    model_path = resolve_generator_model(model)
    resolve_s = time.perf_counter() - start
    requests = build_requests(pool, n)
    # transformers first: a started vLLM engine keeps its worker processes alive until exit.
    results = [measure(TransformersGenerator, model_path, requests, max_tokens)]
    results.append(measure(VLLMGenerator, model_path, requests, max_tokens))
    hf, vllm = results
    same = sum(a.strip() == b.strip() for a, b in zip(hf["outputs"], vllm["outputs"])) / len(requests)
    data = {
        **provenance(),
        "model": str(model_path),
        "model_resolve_s": round(resolve_s, 2),
        "requests": len(requests),
        "demonstrations": 2,
        "max_tokens": max_tokens,
        "stop": STOP,
        "results": results,
        "speedup_vllm_over_transformers": round(vllm["prompts_per_s"] / hf["prompts_per_s"], 2),
        "identical_answers": round(same, 3),
    }
    write_json(out / "results.json", data)
    table = markdown_table(
        ["backend", "start (s)", "generate 64 (s)", "prompts/s", "mean prompt tokens"],
        [[r["backend"], r["start_s"], r["generate_s"], r["prompts_per_s"], r["mean_prompt_tokens"]] for r in results],
    )
    write_markdown(
        out / "results.md",
        f"# Generation speed\n\n{len(requests)} requests from {pool.name}, 2 demonstrations each, greedy, "
        f"max_tokens {max_tokens}, stop {STOP!r}; model `{Path(model_path).name}` "
        f"(resolved in {resolve_s:.2f} s).\n\n{table}\n\n"
        f"vLLM / transformers: {data['speedup_vllm_over_transformers']}x prompts/s; identical answers: {same:.0%}.\n\n"
        f"{provenance_markdown(data)}\n",
    )
    print((out / "results.md").read_text())


if __name__ == "__main__":  # vLLM starts engine subprocesses: never at import time
    app()
