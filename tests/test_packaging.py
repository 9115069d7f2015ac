"""The wheel installs the `icl_retriever` namespace and nothing else (no top-level `benchmarks` or `training`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from tests.conftest import ROOT


def test_wheel_ships_only_icl_retriever(tmp_path):
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = tmp_path / "src"
    shutil.copytree(
        ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "stores", "out", "build", "dist", "*.egg-info", "__pycache__")
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", tmp_path / "dist", source],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("icl_retriever-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"icl_retriever", wheel.name.split("-py3")[0] + ".dist-info"}
    assert {"icl_retriever/training/run.py", "icl_retriever/bench/ieb.py", "icl_retriever/py.typed"} <= set(names)
