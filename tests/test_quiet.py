"""`ask --backend vllm` prints the answer, not the engine's logs or shutdown warnings."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import BUILTIN_POOL, ROOT

CLI = "from icl_retriever.cli import main; main()"


@pytest.mark.slow
def test_ask_with_vllm_keeps_the_terminal_quiet(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for key in ("VLLM_LOGGING_LEVEL", "TRANSFORMERS_VERBOSITY"):
        env.pop(key, None)
    pool = tmp_path / "few.jsonl"
    pool.write_text("\n".join(BUILTIN_POOL.read_text(encoding="utf-8").splitlines()[:20]) + "\n", encoding="utf-8")
    store = tmp_path / "stores"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=600, check=False)

    assert cli("index", str(pool), "--store", str(store), "--embedder", "semantic").returncode == 0
    done = cli("ask", "Is this review positive or negative?", "--input", "A dull, endless film.",
               "--store", str(store), "--name", "few", "--backend", "vllm", "--max-tokens", "4")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()  # the answer
    lines = done.stderr.splitlines()
    assert [line for line in lines if " INFO " in line or line.startswith("INFO")] == []
    assert "resource_tracker" not in done.stderr and "leaked" not in done.stderr
    assert "force killing" not in done.stderr
