"""Settings set once (ICL_RETRIEVER_* variables, icl-retriever.toml), flags on top."""

from __future__ import annotations

import json
import os

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
