"""Settings set once (ICL_RETRIEVER_* variables, icl-retriever.toml), flags on top."""

from __future__ import annotations

import json
import os
import re

import pytest

from icl_retriever.errors import IclRetrieverError
from icl_retriever.settings import Settings
from tests.conftest import BUILTIN_POOL as REQUEST_POOL
from tests.test_cli import REQUEST, indexed, invoke  # noqa: F401  (indexed: the shared store fixture)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working directory without icl-retriever.toml and no ICL_RETRIEVER_* variables."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("ICL_RETRIEVER_"):
            monkeypatch.delenv(key)
    return tmp_path


def chosen(*flags) -> int:
    result = invoke("select", *REQUEST, *flags, "--json")
    assert result.exit_code == 0, result.stderr
    return len(json.loads(result.stdout)["demonstrations"])


def test_env_vars_set_store_and_k(workdir, indexed, monkeypatch):
    store, _ = indexed
    monkeypatch.setenv("ICL_RETRIEVER_STORE", str(store))
    monkeypatch.setenv("ICL_RETRIEVER_K", "3")
    assert chosen() == 3
    assert chosen("-k", "1") == 1  # a flag overrides the environment


def test_toml_file_sets_store_and_k_and_env_overrides_it(workdir, indexed, monkeypatch):
    store, _ = indexed
    (workdir / "icl-retriever.toml").write_text(f'store = "{store}"\nname = "pool"\nk = 4\n', encoding="utf-8")
    assert chosen() == 4
    monkeypatch.setenv("ICL_RETRIEVER_K", "1")
    assert chosen() == 1


def test_embedder_backend_and_model_settings(workdir, indexed, monkeypatch):
    store, _ = indexed
    monkeypatch.setenv("ICL_RETRIEVER_BACKEND", "openai")
    monkeypatch.setenv("ICL_RETRIEVER_MODEL", "served-model")
    (workdir / "icl-retriever.toml").write_text('embedder = "semantic"\n', encoding="utf-8")
    settings = Settings()
    assert (settings.backend, settings.model, settings.embedder, settings.k) == ("openai", "served-model", "semantic", 2)
    assert Settings.resolve(backend="transformers", model=None).backend == "transformers"
    ask = invoke("ask", *REQUEST, "--store", store, "--dtype", "float32")  # the backend comes from the environment
    assert ask.exit_code == 1 and "--backend openai has none" in ask.stderr
    pool = workdir / "three.jsonl"
    pool.write_text("\n".join(open(REQUEST_POOL, encoding="utf-8").read().splitlines()[:3]) + "\n", encoding="utf-8")
    built = invoke("index", pool, "--store", workdir / "stores", "--json")
    assert built.exit_code == 0, built.stderr
    info = json.loads(invoke("info", "--store", workdir / "stores", "--name", "three", "--json").stdout)
    assert info["embedder"]["kind"] == "semantic"


def test_bad_setting_names_its_sources(workdir, monkeypatch):
    monkeypatch.setenv("ICL_RETRIEVER_K", "-1")
    with pytest.raises(IclRetrieverError, match=r"Bad setting \(flags, ICL_RETRIEVER_\* variables or icl-retriever.toml\)"):
        Settings.resolve()
    result = invoke("select", "x")
    assert result.exit_code == 1 and "greater than or equal to 0" in result.stderr


def test_data_dir_is_set_once_and_a_missing_file_names_the_setting(workdir, monkeypatch):
    from pathlib import Path

    assert Settings().data_dir == Path("../shared/data")
    monkeypatch.setenv("ICL_RETRIEVER_DATA_DIR", str(workdir / "nowhere"))
    assert Settings().data_dir == workdir / "nowhere"
    expected = rf"{workdir / 'nowhere'}/(ieb|iclmix).* not found: the data folder \(setting data_dir\) is {workdir / 'nowhere'}\. Point ICL_RETRIEVER_DATA_DIR"
    for command, flag in [
        (["train", "--out", workdir / "out"], "--data"),
        (["bench", "ieb", "--embedder", "semantic"], "--data"),
        (["bench", "tasks-threshold"], "--eft"),
        (["bench", "abstention", "--out", workdir / "out"], "--pool"),
        (["bench", "balance", "--pool", workdir / "pool.jsonl", "--out", workdir / "out"], "--queries"),
    ]:
        result = invoke(*command)
        assert result.exit_code == 1, (command, result.output)
        message = " ".join(result.stderr.split())
        assert re.search(expected, message) and f"or pass {flag}." in message, message
    assert not (workdir / "out").exists()
    (workdir / "icl-retriever.toml").write_text(f'data_dir = "{workdir / "data"}"\n', encoding="utf-8")
    monkeypatch.delenv("ICL_RETRIEVER_DATA_DIR")
    assert Settings().data_dir == workdir / "data"


def test_training_settings_from_env_file_and_flags(workdir, monkeypatch):
    from icl_retriever.training.args import TrainArgs

    (workdir / "icl-retriever.toml").write_text('train_base = "smollm2"\ntrain_max_length = 64\n', encoding="utf-8")
    monkeypatch.setenv("ICL_RETRIEVER_TRAIN_DEVICE", "cpu")
    settings = Settings()
    assert (settings.train_base, settings.train_device, settings.train_max_length) == ("smollm2", "cpu", 64)
    assert Settings.resolve(train_max_length=32).train_max_length == 32
    data = workdir / "instructions.json"
    data.write_text("[]", encoding="utf-8")
    args = TrainArgs(output_dir=workdir / "out", data=data, base_model=settings.train_base, max_length=64, device="cpu")
    assert (args.pooling, args.max_length, args.device) == ("last", 64, "cpu")
    # The environment's cuda reaches training: on a machine without a GPU it is a clear error.
    monkeypatch.setenv("ICL_RETRIEVER_TRAIN_DEVICE", "cuda")
    import torch

    if not torch.cuda.is_available():
        result = invoke("train", "--out", workdir / "out", "--data", data)
        assert result.exit_code == 1 and "Training on device cuda, but torch sees no CUDA GPU" in result.stderr
    bad = invoke("train", "--out", workdir / "out", "--data", data, "--device", "gpu")
    assert bad.exit_code == 1 and "Input should be 'cpu' or 'cuda'" in bad.stderr
    unknown = invoke("train", "--out", workdir / "out", "--data", data, "--base", "bert-large")
    assert unknown.exit_code == 1 and "Unknown base model 'bert-large'" in unknown.stderr
    mismatch = invoke("train", "--out", workdir / "out", "--data", data, "--base", "smollm2", "--pooling", "mean")
    assert mismatch.exit_code == 1 and "smollm2 trains with pooling last; got 'mean'" in mismatch.stderr
