"""The store under crashes and concurrent use, with real processes on a real Chroma folder.

Indexing runs in a child process (`_worker`, the library calls that `icl-retriever index` makes)
with the toy embedder, so that Chroma's writes, not MiniLM, set the pace on a 2-core machine.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from icl_retriever.errors import DamagedIndexError, StoreNotFoundError
from icl_retriever.example import Example
from icl_retriever.selectors import BM25ExampleSelector, RandomExampleSelector, SimilarityExampleSelector
from icl_retriever.store import INDEX_CHUNK, ExampleStore
from tests.conftest import ROOT, ToyEmbedder
from tests.test_store import _collections, _snapshot

NAME = "pool"
TOPICS = ["food", "films", "sport", "music", "travel"]


def durable_pool(rows: int, version: int) -> list[Example]:
    """`rows` examples over 40 tasks; `version` changes every output (same ids)."""
    return [
        Example(
            id=f"r{i:05d}",
            instruction=f"Task {i % 40}: answer about {TOPICS[i % 5]} item {i % 97}.",
            input=f"item {i} of {TOPICS[(i // 5) % 5]}",
            output=f"answer {i} v{version}",
            metadata={"topic": TOPICS[i % 5]},
        )
        for i in range(rows)
    ]


def _worker() -> None:
    """`python -c '...; _worker()' MODE FOLDER ROWS VERSION`: index or rebuild the pool."""
    mode, folder, rows, version = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    examples = durable_pool(rows, version)
    if mode == "rebuild":
        ExampleStore.rebuild(ToyEmbedder(), NAME, examples, folder)
    else:
        ExampleStore(ToyEmbedder(), NAME, folder).index(examples)


def _start(mode: str, folder: Path, rows: int, version: int) -> subprocess.Popen:
    code = "from tests.test_store_durability import _worker; _worker()"
    return subprocess.Popen(
        [sys.executable, "-c", code, mode, str(folder), str(rows), str(version)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE, text=True,
    )


def _run(mode: str, folder: Path, rows: int, version: int, *, damaged_ok: bool = False) -> bool:
    """Run `index` or `rebuild` to the end; True when it succeeded, False when it stopped on a
    damaged index (allowed with `damaged_ok`)."""
    process = _start(mode, folder, rows, version)
    _, err = process.communicate(timeout=600)
    if damaged_ok and process.returncode != 0 and "DamagedIndexError" in err:
        return False
    assert process.returncode == 0, err
    return True


def _timed_run(mode: str, folder: Path, rows: int, version: int) -> float:
    start = time.monotonic()
    _run(mode, folder, rows, version)
    return time.monotonic() - start


def _as_a_new_process() -> None:
    """Read the folder as a new process (the next `select`) would: Chroma's embedded client keeps
    the vectors it loaded in memory and does not see another process's later writes."""
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()


def _contents(folder: Path) -> list[Example] | None:
    """What a reader sees now: the examples (after one real selection), or None for 'no index yet'."""
    _as_a_new_process()
    try:
        store = ExampleStore.open(NAME, folder, embedder=ToyEmbedder())
    except StoreNotFoundError as exc:
        assert "Create it with" in str(exc) or "holds no examples yet" in str(exc)
        return None
    request = {"instruction": "Task 3: answer about sport item 5.", "input": "item 7"}
    assert len(SimilarityExampleSelector(store=store, k=2).select_examples(request)) == 2
    seen = store.examples()
    _as_a_new_process()  # this reader exits before the next run, as `select` does
    return seen


@pytest.mark.slow
def test_kill_9_during_index_and_rebuild_then_rerun_equals_a_clean_build(tmp_path):
    rows = 5000
    clean = {version: tmp_path / f"clean-v{version}" for version in (0, 1)}
    durations = {version: _timed_run("index", folder, rows, version) for version, folder in clean.items()}
    expected = {version: _snapshot(ExampleStore.open(NAME, folder, embedder=ToyEmbedder())) for version, folder in clean.items()}
    pools = {version: {e.key: e for e in durable_pool(rows, version)} for version in (0, 1)}
    rng = random.Random(12)
    states, damaged = [], 0
    for trial in range(10):
        mode = "index" if trial % 2 == 0 else "rebuild"
        folder = tmp_path / f"trial{trial}"
        if mode == "rebuild":  # replace a complete v0 index by v1
            shutil.copytree(clean[0], folder)
        process = _start(mode, folder, rows, 1)
        time.sleep(rng.uniform(0.0, durations[1] * 1.1))
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        # Between the kill and the next run the store is usable, never half-switched; or, rarely,
        # damaged by Chroma (see test_a_damaged_index_says_so_and_rebuild_restores_it): then it says
        # so, and the way out it names, `--rebuild` from the pool, must restore it.
        try:
            seen = _contents(folder)
        except DamagedIndexError:
            states.append((mode, "damaged"))
            seen, mode = None, "rebuild"
            damaged += 1
        else:
            states.append((mode, None if seen is None else len(seen)))
            if mode == "rebuild":
                assert seen is not None and len(seen) == rows
                versions = {e.output.rsplit(" ", 1)[1] for e in seen}
                assert len(versions) == 1  # all old or all new
                assert seen == sorted(pools[int(versions.pop()[1:])].values(), key=lambda e: e.key)
            elif seen is not None:
                assert len(seen) % INDEX_CHUNK == 0 or len(seen) == rows  # whole chunks only
                assert all(pools[1][e.key] == e for e in seen)
        if not _run(mode, folder, rows, 1, damaged_ok=mode == "index"):  # damaged during the resumed write
            states.append(("index", "damaged on resuming"))
            mode = "rebuild"
            damaged += 1
            _run(mode, folder, rows, 1)
        _as_a_new_process()
        store = ExampleStore.open(NAME, folder, embedder=ToyEmbedder())
        ids, vectors, metadatas = _snapshot(store)
        assert ids == expected[1][0] and np.array_equal(vectors, expected[1][1]) and metadatas == expected[1][2]
        live = {"pool"} if mode == "index" else {"pool-alias", store._collection.name}
        assert _collections(folder / NAME) == live  # no leftovers
    print("crash trials (mode, rows visible after the kill, or damaged):", states)
    assert damaged <= 3, f"Chroma damaged the index in {damaged} of 10 kills: {states}"


def _damage_vectors(index_folder: Path) -> None:
    """What Chroma sometimes leaves after a kill mid-write: a vector segment it cannot load."""
    (segment,) = [p for p in index_folder.iterdir() if p.is_dir() and (p / "header.bin").is_file()]
    (segment / "header.bin").write_bytes(bytes(100))
    _as_a_new_process()


def test_a_damaged_index_says_so_and_rebuild_restores_it(tmp_path):
    """Readers, `index` and `info` get one message naming the fix instead of Chroma's InternalError;
    `--rebuild` from the pool then equals a clean build and drops the damaged collection."""
    from typer.testing import CliRunner

    from icl_retriever.cli import app

    pool = durable_pool(1200, 0)  # past Chroma's first on-disk HNSW save (1,000 rows)
    ExampleStore(ToyEmbedder(), NAME, tmp_path / "clean").index(pool)
    expected = _snapshot(ExampleStore.open(NAME, tmp_path / "clean", embedder=ToyEmbedder()))
    ExampleStore(ToyEmbedder(), NAME, tmp_path).index(pool)
    _damage_vectors(tmp_path / NAME)
    for attempt in (
        lambda: ExampleStore.open(NAME, tmp_path, embedder=ToyEmbedder()),
        lambda: ExampleStore(ToyEmbedder(), NAME, tmp_path).index(pool),
    ):
        with pytest.raises(DamagedIndexError, match=rf"Index '{NAME}' at .* is damaged: Chroma cannot load its vectors"):
            attempt()
    result = CliRunner().invoke(app, ["info", "--store", str(tmp_path), "--name", NAME])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"icl-retriever index POOL --name {NAME} --rebuild" in " ".join(result.stderr.split())
    ExampleStore.rebuild(ToyEmbedder(), NAME, pool, tmp_path)
    _as_a_new_process()
    store = ExampleStore.open(NAME, tmp_path, embedder=ToyEmbedder())
    ids, vectors, metadatas = _snapshot(store)
    assert ids == expected[0] and np.array_equal(vectors, expected[1]) and metadatas == expected[2]
    assert _collections(tmp_path / NAME) == {"pool-alias", store._collection.name}


def _reader(folder: Path, stop: threading.Event | None, seconds: float, valid: dict[str, set[str]]) -> dict[str, int]:
    """Select in a loop until `stop` (or for `seconds`); every demonstration must be a whole
    record of one version. Returns counts of selections per selector."""
    store = ExampleStore.open(NAME, folder, embedder=ToyEmbedder())
    selectors = {
        "similarity": SimilarityExampleSelector(store=store, k=3),
        "bm25": BM25ExampleSelector(store=store, k=3),
        "random": RandomExampleSelector(store=store, k=3),
    }
    counts = dict.fromkeys(selectors, 0)
    end = time.monotonic() + seconds
    rng = random.Random(threading.get_ident())
    while (stop is None or not stop.is_set()) and time.monotonic() < end:
        for kind, selector in selectors.items():
            i = rng.randrange(2000)
            demos = selector.select_examples({"instruction": f"Task {i % 40}: answer about item {i % 97}.", "input": f"item {i}"})
            assert len(demos) == 3
            for demo in demos:
                record = json.dumps({key: demo[key] for key in ("id", "instruction", "input", "output", "task")})
                assert record in valid[demo["id"]], record
            counts[kind] += 1
    return counts


def _valid_records(*pools: list[Example]) -> dict[str, set[str]]:
    valid: dict[str, set[str]] = {}
    for pool in pools:
        for e in pool:
            valid.setdefault(e.key, set()).add(json.dumps({"id": e.key, **e.to_prompt_dict()}))
    return valid


def _reader_process() -> None:
    """`python -c '...; _reader_process()' FOLDER SECONDS`: print the reader's counts as JSON."""
    folder, seconds = Path(sys.argv[1]), float(sys.argv[2])
    valid = _valid_records(durable_pool(1000, 0), durable_pool(2000, 1))
    print(json.dumps(_reader(folder, None, seconds, valid)))


def test_select_from_8_threads_and_2_processes_while_indexing(tmp_path):
    """1000 examples indexed, then `index` updates them and adds 1000 more while 8 threads and 2
    processes select with the similarity, BM25 and random selectors: no errors, and every
    demonstration is a whole record, old or new."""
    ExampleStore(ToyEmbedder(), NAME, tmp_path).index(durable_pool(1000, 0))
    valid = _valid_records(durable_pool(1000, 0), durable_pool(2000, 1))
    writer = _start("index", tmp_path, 2000, 1)
    code = "from tests.test_store_durability import _reader_process; _reader_process()"
    readers = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path), "8"], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    stop, results, errors = threading.Event(), [], []

    def thread_main() -> None:
        try:
            results.append(_reader(tmp_path, stop, 60, valid))
        except BaseException as exc:  # reported below with the thread's failure
            errors.append(repr(exc))

    threads = [threading.Thread(target=thread_main) for _ in range(8)]
    for thread in threads:
        thread.start()
    _, err = writer.communicate(timeout=300)
    stop.set()
    for thread in threads:
        thread.join()
    outputs = [reader.communicate(timeout=120) for reader in readers]
    assert writer.returncode == 0, err
    assert errors == []
    for reader, (out, err) in zip(readers, outputs):
        assert reader.returncode == 0, err
        results.append(json.loads(out))
    assert all(sum(counts.values()) > 0 for counts in results)
    # After the write every selector, including the cached BM25 and random pools, sees the new records.
    final = _reader(tmp_path, None, 0.5, _valid_records(durable_pool(2000, 1)))
    assert sum(final.values()) > 0
    total = sum(sum(counts.values()) for counts in results)
    print(f"concurrent selections: {total} ({len(results)} readers)")
