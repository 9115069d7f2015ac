"""The CLI parses its arguments before any heavy import.

Each check runs the typer app in a fresh interpreter (so `sys.modules` starts clean) and reports
which heavy modules the command imported: `--help`, a bad flag, a missing file and `info` must
answer without torch, transformers, scikit-learn, scipy, pandas or langchain, and without a model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import pytest
from typer.testing import CliRunner

from icl_retriever.cli import _app, app
from icl_retriever.cli import tasks as cli_tasks
from tests.conftest import BUILTIN_POOL, ROOT

HEAVY = ("torch", "transformers", "sklearn", "scipy", "pandas", "langchain_core", "sentence_transformers")

_PROBE = """
import json, sys
from typer.testing import CliRunner
from icl_retriever.cli import app
heavy = json.loads(sys.argv[1])
result = CliRunner().invoke(app, json.loads(sys.argv[2]))
print(json.dumps({"exit_code": result.exit_code, "stdout": result.stdout, "stderr": result.stderr,
                  "imported": sorted(m for m in heavy if m in sys.modules)}))
"""


def probe(*args: object) -> dict[str, Any]:
    """Run `icl-retriever ARGS` in a fresh interpreter; its exit code, output and heavy imports."""
    heavy = [*HEAVY, "chromadb"]
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(heavy), json.dumps([str(a) for a in args])],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args",
    [
        ["--help"], ["index", "--help"], ["select", "--help"], ["ask", "--help"], ["bench", "icl", "--help"],
        ["tasks", "--help"], ["sample", "--help"],
    ],
    ids=" ".join,
)
def test_help_imports_nothing_heavy(args):
    out = probe(*args)
    assert out["exit_code"] == 0, out
    assert "Usage:" in out["stdout"]
    assert out["imported"] == []


def test_bad_flag_exits_2_without_heavy_imports():
    out = probe("--bogus")
    assert out["exit_code"] == 2
    assert "No such option" in out["stderr"]
    assert out["imported"] == []
    out = probe("select", "an instruction", "--bogus")
    assert out["exit_code"] == 2
    assert out["imported"] == []


def test_missing_pool_file_exits_1_without_heavy_imports(tmp_path):
    out = probe("index", tmp_path / "missing.jsonl", "--store", tmp_path / "stores")
    assert out["exit_code"] == 1
    assert "missing.jsonl" in out["stderr"]
    assert out["imported"] == []
    assert not (tmp_path / "stores").exists()


def test_info_on_missing_index_exits_1_without_heavy_imports(tmp_path):
    out = probe("info", "--store", tmp_path, "--name", "nope")
    assert out["exit_code"] == 1
    assert "No index named 'nope'" in out["stderr"]
    assert out["imported"] == []


def test_sample_bad_method_exits_2_without_heavy_imports():
    out = probe("sample", "--n", "3", "--method", "kmeans")
    assert out["exit_code"] == 2
    assert "kmeans" in out["stderr"]
    assert out["imported"] == []


def test_info_reads_metadata_without_loading_a_model(tmp_path):
    pool = tmp_path / "three.jsonl"
    pool.write_text("\n".join(BUILTIN_POOL.read_text(encoding="utf-8").splitlines()[:3]) + "\n", encoding="utf-8")
    store = tmp_path / "stores"
    built = CliRunner().invoke(app, ["index", str(pool), "--store", str(store), "--embedder", "semantic", "--json"])
    assert built.exit_code == 0, built.output
    out = probe("info", "--store", store, "--name", "three", "--json")
    assert out["exit_code"] == 0, out["stderr"]
    data = json.loads(out["stdout"])
    assert data["count"] == 3 and data["dimension"] == 384
    assert data["embedder"]["kind"] == "semantic"
    assert [m for m in out["imported"] if m != "chromadb"] == []  # chromadb reads the metadata


def test_cli_mirrors_match_the_library():
    """The CLI spells out a few library values so that parsing imports nothing heavy; keep them equal."""
    from icl_retriever.embedders import EMBEDDER_KINDS, EmbedderKind
    from icl_retriever import generators, store
    from icl_retriever.generators import Backend
    from icl_retriever.pool import DEFAULT_MAX_FIELD_CHARS
    from icl_retriever.tasks import DEFAULT_THRESHOLD, SampleMethod

    assert cli_tasks.DEFAULT_THRESHOLD == DEFAULT_THRESHOLD
    assert get_args(cli_tasks.SampleMethod) == get_args(SampleMethod)
    assert get_args(_app.EmbedderKind) == get_args(EmbedderKind) == EMBEDDER_KINDS
    assert get_args(_app.Backend) == get_args(Backend)
    assert _app.DEFAULT_MAX_FIELD_CHARS == DEFAULT_MAX_FIELD_CHARS
    assert _app.DEFAULT_TIMEOUT == store.DEFAULT_TIMEOUT == generators.DEFAULT_TIMEOUT


def test_package_imports_lazily():
    code = (
        "import json, sys, icl_retriever; from icl_retriever import IclRetrieverError, Example; "
        f"print(json.dumps(sorted(m for m in {list(HEAVY) + ['chromadb', 'numpy']!r} if m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(done.stdout) == []
