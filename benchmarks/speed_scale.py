"""Speed at pool scale for `python -m benchmarks.speed --sizes ...`, and its cold-start child.

For each pool size, icl-retriever's task index and LangChain's `SemanticSimilarityExampleSelector`
on langchain-chroma (same MiniLM weights, through `LangChainEmbeddings`) are measured on the same
examples:

- index: examples/s of building each index, and of the raw encoder alone on the same texts (two
  calls, one half before the build and one after, `index_between_raw_halves`; on pools past
  `raw_sample` examples, an evenly spaced sample of them);
- select p50/p95: latency of one selection, the systems timed in turn on each request;
- cold start: from before a fresh Python process is spawned to its first selection printed (after
  every pool is indexed, every pool and system in turn: `measure_cold_starts`), and
  that process's peak RSS (its `VmHWM`, read by the child after that selection: `ru_maxrss` of a
  child is not used because Linux carries the parent's high-water mark over fork and exec);

the last two both on the embedded Chroma files and through a `chroma run` server on loopback.

Pools are the first N of one deterministic mix (`mixed_examples`), past its 29,466 rows filled with
`recombined` ones; the requests are rows held out of every pool. This module imports only the standard library at the top: the cold-start child
(`python -m benchmarks.speed_scale SPEC_JSON`) imports it, and its start-up must cost what the
system under test costs.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TASK = "icl-retriever task"
LANGCHAIN = "langchain SemanticSimilarityExampleSelector"
SYSTEMS = (TASK, LANGCHAIN)
MODES = ("embedded", "server")
#: Demonstrations per selection, and the request fields LangChain's selector embeds.
K = 2
#: Recombined pairs drawn per new example; the one closest in length to a mix example is kept.
LENGTH_DRAWS = 8
INPUT_KEYS = ["instruction", "input"]
LANGCHAIN_COLLECTION = "langchain"
TASK_INDEX = "task"
SERVER_START_TIMEOUT = 120.0


class LangChainEmbeddings:
    """Our MiniLM embedder behind LangChain's `Embeddings` interface, so both sides use the same model."""

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed_documents(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed_query(text).tolist()


def limit_threads(threads: int | None) -> None:
    """Run torch (here and in every child started after this) on `threads` threads; None: its default.

    On a shared, oversubscribed machine torch's default (one thread per core) spin-waits: a single
    MiniLM query took ~490 ms on 2 threads against ~23 ms on 1 while other jobs held both cores.
    """
    if threads is None:
        return
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch on `threads` threads inside the block (None: as it is)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --- pools and requests ---------------------------------------------------------------------


def mixed_examples(iclmix: Path, ieb: Path, seed: int) -> list[Any]:
    """Every iclmix row (output: its first accepted answer) and every IEB training instruction
    (no reference output: output is the empty string), shuffled together with `seed`."""
    from icl_retriever.bench.icl_data import load_rows
    from icl_retriever.example import Example

    examples = [row.example for row in load_rows(iclmix).values()]
    instructions = json.loads(Path(ieb).read_text("utf-8"))
    examples += [
        Example(instruction=text, output="", id=f"ieb-{number:05d}", metadata={"collection": "IEB"})
        for number, text in enumerate(instructions)
        if text.strip()
    ]
    random.Random(seed).shuffle(examples)
    return examples


class PoolTooSmall(ValueError):
    """The mix holds too few rows for the held-out requests."""


def split_pool(
    examples: Sequence[Any], largest: int, n_requests: int, seed: int = 0
) -> tuple[list[Any], list[dict[str, str]]]:
    """The examples the pools are prefixes of, and `n_requests` requests made of rows held out of
    every pool: the rows right after the largest pool. A pool larger than the mix holds every row
    but the requests (the last `n_requests`), then `recombined` ones up to `largest`."""
    if n_requests >= len(examples):
        raise PoolTooSmall(f"{n_requests} held-out requests need more rows than the mix's {len(examples)}.")
    cut = min(largest, len(examples) - n_requests)
    held_out = examples[cut : cut + n_requests]
    pool = list(examples[:cut]) + recombined(examples[:cut], largest - cut, seed)
    return pool, [{"instruction": e.instruction, "input": e.input} for e in held_out]


def recombined(examples: Sequence[Any], count: int, seed: int) -> list[Any]:
    """`count` more examples past the mix's size: the instruction of one example that has a
    separate input, with the input and output of another (seeded), each pair's text new to the pool.
    Instructions the pool already holds over other inputs, as in a pool that grows by new inputs to
    its templates; of `LENGTH_DRAWS` pairs the one closest in length to a random example's is kept,
    so that the texts keep the mix's lengths (what the encoder's cost follows)."""
    from icl_retriever.example import Example

    with_input = [e for e in examples if e.input.strip()]
    seen = {(e.instruction, e.input) for e in examples}
    instructions, inputs = {e.instruction for e in with_input}, {e.input for e in with_input}
    new = len(instructions) * len(inputs) - sum(1 for pair in seen if pair[0] in instructions and pair[1] in inputs)
    if count > new:
        raise PoolTooSmall(f"{count} recombined rows asked; the mix's rows with a separate input make {new} new texts.")
    rng = random.Random(seed)
    out: list[Any] = []
    while len(out) < count:
        like = rng.choice(examples)
        target = len(like.instruction) + len(like.input)
        pairs = [(rng.choice(with_input), rng.choice(with_input)) for _ in range(LENGTH_DRAWS)]
        a, b = min(pairs, key=lambda pair: abs(len(pair[0].instruction) + len(pair[1].input) - target))
        if (a.instruction, b.input) not in seen:
            seen.add((a.instruction, b.input))
            out.append(Example(instruction=a.instruction, input=b.input, output=b.output, id=f"recombined-{len(out):06d}",
                               metadata={"collection": "recombined"}))
    return out


def langchain_example(example: Any) -> dict[str, str]:
    """An example as LangChain's selector stores it (a flat dict of strings)."""
    return example.to_prompt_dict() | {"task": example.task or ""}


def composition(examples: Sequence[Any]) -> dict[str, int]:
    counts = Counter((e.id or "").split("-")[0] for e in examples)
    return {"iclmix": len(examples) - counts["ieb"] - counts["recombined"], "ieb": counts["ieb"], "recombined": counts["recombined"]}


# --- indexing ---------------------------------------------------------------------------------


def seconds(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def index_task(examples: Sequence[Any], folder: Path, embedder: Any) -> tuple[Any, float]:
    """icl-retriever's task index of the examples in `folder/task`: the store and the seconds."""
    from icl_retriever.store import ExampleStore

    start = time.perf_counter()
    store = ExampleStore(embedder, TASK_INDEX, folder)
    store.index(examples)
    return store, time.perf_counter() - start


def task_views(examples: Sequence[Any], embedder: Any) -> tuple[list[str], list[str]]:
    """What the task index embeds: each example's task wording under the pool's template
    statistics (counted as `ExampleStore.index` counts them for a new index) and its content."""
    from icl_retriever.lexical import TemplateStats, task_text

    contents = [embedder.text_for(e.instruction, e.input) for e in examples]
    stats = TemplateStats()
    stats.add(contents, [e.content_hash for e in examples])
    return [task_text(e.instruction, e.input, stats) for e in examples], contents


def check_task_views(store: Any, examples: Sequence[Any], task_texts: Sequence[str], sample: int = 200) -> None:
    """The raw encoder was timed on the texts the index holds (checked on a sample)."""
    stored = {hit.example.key: hit.task_text for hit in store.get([e.key for e in examples[:sample]])}
    for example, text in zip(examples[:sample], task_texts):
        if stored[example.key] != text:
            raise RuntimeError(f"Task wording of {example.key} differs from the index's: {stored[example.key]!r} != {text!r}")


def chroma_settings() -> Any:
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False)  # as icl-retriever's own clients


def index_langchain(examples: Sequence[Any], folder: Path, embeddings: LangChainEmbeddings) -> tuple[Any, float]:
    """LangChain's selector built the way its documentation shows, persisted in `folder`."""
    from langchain_chroma import Chroma
    from langchain_core.example_selectors import SemanticSimilarityExampleSelector

    start = time.perf_counter()
    selector = SemanticSimilarityExampleSelector.from_examples(
        [langchain_example(e) for e in examples],
        embeddings,
        Chroma,
        k=K,
        input_keys=INPUT_KEYS,
        collection_name=LANGCHAIN_COLLECTION,
        persist_directory=str(folder),
        client_settings=chroma_settings(),
    )
    return selector, time.perf_counter() - start


def langchain_texts(examples: Sequence[Any]) -> list[str]:
    """The texts LangChain's selector embeds for the examples."""
    from langchain_core.example_selectors import SemanticSimilarityExampleSelector

    return [SemanticSimilarityExampleSelector._example_to_text(langchain_example(e), INPUT_KEYS) for e in examples]


def index_between_raw_halves(
    build: Callable[[], tuple[Any, float]], encode: Callable[[Sequence[int]], Any], n: int, raw_sample: int
) -> tuple[Any, float, float]:
    """Build an index between the raw encoder's two halves of the same texts: the built index, its
    seconds, and the raw encoder's examples/s (first half before the build + second half after, so
    that a load change on the shared machine weighs on both alike). Past `raw_sample` texts the raw
    encoder times that many, evenly spaced over the pool."""
    m = min(n, raw_sample)
    positions = [i * n // m for i in range(m)]
    half = m // 2
    raw_s = seconds(lambda: encode(positions[:half]))
    built, index_s = build()
    raw_s += seconds(lambda: encode(positions[half:]))
    return built, index_s, m / raw_s


def index_row(n: int, index_s: float, raw_examples_per_s: float) -> dict[str, float]:
    return {
        "index_seconds": index_s,
        "index_examples_per_s": n / index_s,
        "raw_encoder_examples_per_s": raw_examples_per_s,
        "index_x_raw_encoder": (n / index_s) / raw_examples_per_s,
    }


# --- selection latency ------------------------------------------------------------------------


def interleaved_samples_ms(
    selectors: dict[str, Callable[[dict[str, str]], Any]], requests: Sequence[dict[str, str]], rounds: int
) -> dict[str, list[float]]:
    """Latency samples per selector, timing the systems in turn on each request.

    Interleaving spreads the shared machine's load changes evenly over the systems compared; an
    untimed first call per selector pays for lazy initialisation.
    """
    for select in selectors.values():
        select(requests[0])
    samples: dict[str, list[float]] = {name: [] for name in selectors}
    for _ in range(rounds):
        for request in requests:
            for name, select in selectors.items():
                start = time.perf_counter()
                select(request)
                samples[name].append((time.perf_counter() - start) * 1000)
    return samples


def percentiles(values: Sequence[float]) -> dict[str, float]:
    return {
        "select_p50_ms": statistics.median(values),
        "select_p95_ms": statistics.quantiles(values, n=100, method="inclusive")[94],
    }


def server_selectors(task_folder: Path, urls: dict[str, str], embedders: dict[str, Any]) -> dict[str, Any]:
    """Both selectors reading through Chroma servers at `urls` (icl-retriever's side files stay local)."""
    from icl_retriever.selectors import selector_for_store
    from icl_retriever.store import ExampleStore

    task_store = ExampleStore.open(TASK_INDEX, task_folder, urls[TASK], embedder=embedders[TASK])
    return {
        TASK: selector_for_store(task_store, k=K).select_examples,
        LANGCHAIN: langchain_selector(embedders[LANGCHAIN], url=urls[LANGCHAIN]).select_examples,
    }


def langchain_selector(embedder: Any, *, folder: str | None = None, url: str | None = None) -> Any:
    """LangChain's selector over an existing Chroma collection: persisted in `folder`, or on a server."""
    from langchain_chroma import Chroma
    from langchain_core.example_selectors import SemanticSimilarityExampleSelector

    client = None
    if url is not None:
        import chromadb
        from urllib.parse import urlparse

        parsed = urlparse(url)
        client = chromadb.HttpClient(host=parsed.hostname, port=parsed.port, settings=chroma_settings())
    vectorstore = Chroma(
        collection_name=LANGCHAIN_COLLECTION,
        embedding_function=LangChainEmbeddings(embedder),  # type: ignore[arg-type]
        persist_directory=folder,
        client=client,
        client_settings=chroma_settings() if client is None else None,
    )
    return SemanticSimilarityExampleSelector(vectorstore=vectorstore, k=K, input_keys=INPUT_KEYS)


# --- cold start -------------------------------------------------------------------------------


def cold_start_spec(system: str, folder: Path, url: str | None, request: dict[str, str]) -> dict[str, Any]:
    """What the child opens: `folder` is the task index's parent folder or LangChain's persist folder."""
    return {"system": system, "folder": str(folder), "url": url, "request": request}


def cold_start_once(spec: dict[str, Any]) -> dict[str, Any]:
    """One fresh process opening the index and making one selection.

    `cold_start_s` runs from just before the spawn to the child's printed result; `peak_rss_mib`
    is the child's own high-water RSS (not a Chroma server's).
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.speed_scale", json.dumps(spec)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
        assert child.stdout is not None
        line = child.stdout.readline()
        elapsed = time.perf_counter() - start
        child.stdout.read()
        child.wait()
        if child.returncode != 0 or not line.strip():
            stderr.seek(0)
            tail = stderr.read().decode("utf-8", "replace")[-3000:]
            raise RuntimeError(f"Cold-start child for {spec['system']} failed ({child.returncode}):\n{tail}")
    return {"cold_start_s": elapsed, **json.loads(line)}


def cold_starts(specs: dict[Any, dict[str, Any]], runs: int) -> dict[Any, dict[str, Any]]:
    """`runs` cold starts per spec, the specs in turn in each round; medians and every run."""
    samples: dict[Any, list[dict[str, Any]]] = {name: [] for name in specs}
    for _ in range(runs):
        for name, spec in specs.items():
            samples[name].append(cold_start_once(spec))
    return {
        name: {
            "cold_start_s": statistics.median(run["cold_start_s"] for run in runs_),
            "peak_rss_mib": statistics.median(run["peak_rss_mib"] for run in runs_),
            "cold_start_runs": runs_,
        }
        for name, runs_ in samples.items()
    }


def child_main(spec: dict[str, Any]) -> None:
    """The cold-start child: import, open the index, select once, print one JSON line (the lazy
    imports of torch and chromadb fall in `child_open_s`)."""
    started = time.perf_counter()
    if spec["system"] == TASK:
        from icl_retriever.selectors import selector_for_store
        from icl_retriever.store import ExampleStore

        imported = time.perf_counter()
        store = ExampleStore.open(TASK_INDEX, spec["folder"], spec["url"])
        select = selector_for_store(store, k=K).select_examples
    else:
        from icl_retriever.embedders import load_embedder

        imported = time.perf_counter()
        url = spec["url"]
        select = langchain_selector(load_embedder("semantic"), folder=None if url else spec["folder"], url=url).select_examples
    opened = time.perf_counter()
    selected = select(spec["request"])
    done = time.perf_counter()
    print(json.dumps({
        "peak_rss_mib": peak_rss_mib(os.getpid()),
        "child_import_s": imported - started,
        "child_open_s": opened - imported,
        "child_select_s": done - opened,
        "selected": [str(e["instruction"])[:80] for e in selected],
    }), flush=True)


# --- Chroma server ----------------------------------------------------------------------------


def chroma_cli() -> str:
    """The `chroma` command installed beside this Python (chromadb's CLI), else on PATH."""
    beside = Path(sys.executable).parent / "chroma"
    found = str(beside) if beside.exists() else shutil.which("chroma")
    if found is None:
        raise RuntimeError("No `chroma` command (chromadb's CLI) beside this Python or on PATH; run with --no-server.")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def chroma_server(path: Path, log: Path) -> Iterator[tuple[str, int]]:
    """A `chroma run` server on loopback over the persistent folder `path`: its URL and pid.
    Always stopped on leaving."""
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as output:
        server = subprocess.Popen(
            [chroma_cli(), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
            stdout=output, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"`chroma run` exited with {server.returncode}:\n{log.read_text()[-3000:]}")
            try:
                httpx.get(f"{url}/api/v2/heartbeat", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"`chroma run` did not answer within {SERVER_START_TIMEOUT:g} s") from None
                time.sleep(0.2)
        yield url, server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def peak_rss_mib(pid: int) -> float | None:
    """A live process's high-water RSS (Linux `VmHWM`), None where /proc does not say."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# --- one pool size ----------------------------------------------------------------------------


def index_folders(work: Path) -> dict[str, Path]:
    """Where one pool's indexes live: the task index's parent folder and LangChain's persist folder."""
    return {TASK: work / "icl-retriever", LANGCHAIN: work / "langchain"}


def measure_size(
    examples: Sequence[Any],
    requests: Sequence[dict[str, str]],
    embedders: dict[str, Any],
    work: Path,
    *,
    rounds: int,
    server: bool,
    raw_sample: int,
    index_threads: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Index both systems on one pool and time their selections (embedded, then through servers);
    cold starts come later, with every pool's (`measure_cold_starts`)."""
    n = len(examples)
    folders = index_folders(work)
    task_folder, langchain_folder = folders[TASK], folders[LANGCHAIN]
    log(f"[{n}] indexing: icl-retriever")
    task_embedder, semantic = embedders[TASK], embedders[LANGCHAIN]
    task_texts, contents = task_views(examples, task_embedder)
    with torch_threads(index_threads):
        task_store, task_s, task_raw = index_between_raw_halves(
            lambda: index_task(examples, task_folder, task_embedder),
            lambda at: task_embedder.embed_views([task_texts[i] for i in at], [contents[i] for i in at]),
            n,
            raw_sample,
        )
        check_task_views(task_store, examples, task_texts)
        log(f"[{n}] indexing: LangChain")
        texts = langchain_texts(examples)
        langchain, langchain_s, langchain_raw = index_between_raw_halves(
            lambda: index_langchain(examples, langchain_folder, LangChainEmbeddings(semantic)),
            lambda at: semantic.embed_documents([texts[i] for i in at]),
            n,
            raw_sample,
        )
    result: dict[str, Any] = {
        "n_examples": n,
        "composition": composition(examples),
        "index": {TASK: index_row(n, task_s, task_raw), LANGCHAIN: index_row(n, langchain_s, langchain_raw)},
    }
    from icl_retriever.selectors import selector_for_store

    log(f"[{n}] embedded: select")
    selectors = {TASK: selector_for_store(task_store, k=K).select_examples, LANGCHAIN: langchain.select_examples}
    result["embedded"] = latencies(selectors, requests, rounds)
    if server:
        log(f"[{n}] server: select")
        with pool_servers(work) as (urls, _):
            result["server"] = latencies(server_selectors(task_folder, urls, embedders), requests, rounds)
    return result


def latencies(
    selectors: dict[str, Callable[[dict[str, str]], Any]], requests: Sequence[dict[str, str]], rounds: int
) -> dict[str, dict[str, float]]:
    """Select p50/p95 per system, timed in turn in this process (which also warms a server)."""
    return {name: percentiles(values) for name, values in interleaved_samples_ms(selectors, requests, rounds).items()}


@contextmanager
def pool_servers(work: Path) -> Iterator[tuple[dict[str, str], dict[str, int]]]:
    """A `chroma run` server over each of one pool's indexes: their URLs and pids by system."""
    folders = index_folders(work)
    with ExitStack() as stack:
        task_url, task_pid = stack.enter_context(chroma_server(folders[TASK] / TASK_INDEX, work / "chroma-task.log"))
        lc_url, lc_pid = stack.enter_context(chroma_server(folders[LANGCHAIN], work / "chroma-langchain.log"))
        yield {TASK: task_url, LANGCHAIN: lc_url}, {TASK: task_pid, LANGCHAIN: lc_pid}


def measure_cold_starts(
    runs: dict[str, dict[str, Any]],
    works: dict[str, Path],
    requests: Sequence[dict[str, str]],
    embedders: dict[str, Any],
    *,
    cold_runs: int,
    server: bool,
    log: Callable[[str], None] = print,
) -> None:
    """Cold starts of every pool (`works`: size -> folder, all indexed) and system, added to `runs`.

    Each round starts every (pool, system) in turn, so a pool's cold start is compared with the
    smallest pool's from the same minutes: on a shared machine a phase 40 minutes later can be
    slower as a whole (one run's server-mode children, which read nothing of the pool when they
    open it, took 1.5x longer to open in its 100k phase than in its 1k phase). Servers run for every
    pool at once, each warmed by one pass of the requests before the cold starts.
    """
    log("cold starts, embedded: every pool and system in turn")
    _cold_starts_into(runs, "embedded", works, {size: {} for size in works}, requests, cold_runs)
    if not server:
        return
    log("cold starts, server: every pool and system in turn")
    with ExitStack() as stack:
        served = {size: stack.enter_context(pool_servers(work)) for size, work in works.items()}
        for size, (urls, _) in served.items():
            for select in server_selectors(index_folders(works[size])[TASK], urls, embedders).values():
                for request in requests:
                    select(request)
        _cold_starts_into(runs, "server", works, {size: urls for size, (urls, _) in served.items()}, requests, cold_runs)
        for size, (_, pids) in served.items():
            for name, pid in pids.items():
                runs[size]["server"][name]["server_peak_rss_mib"] = peak_rss_mib(pid)


def _cold_starts_into(
    runs: dict[str, dict[str, Any]],
    mode: str,
    works: dict[str, Path],
    urls: dict[str, dict[str, str]],
    requests: Sequence[dict[str, str]],
    cold_runs: int,
) -> None:
    """`cold_starts` of every (pool, system), each opening its index directly or at `urls[size][system]`."""
    specs = {
        (size, name): cold_start_spec(name, folder, urls[size].get(name), requests[0])
        for size, work in works.items()
        for name, folder in index_folders(work).items()
    }
    for (size, name), row in cold_starts(specs, cold_runs).items():
        runs[size][mode][name].update(row)


# --- ratios and targets -----------------------------------------------------------------------


def add_ratios(runs: dict[str, dict[str, Any]]) -> None:
    """Ratios within one run: each system against LangChain at the same size and mode, against
    itself on the smallest pool, and index throughput against LangChain's."""
    smallest = runs[min(runs, key=int)]
    for run in runs.values():
        for name, row in run["index"].items():
            row["index_x_langchain"] = row["index_examples_per_s"] / run["index"][LANGCHAIN]["index_examples_per_s"]
        for mode in MODES:
            if mode not in run:
                continue
            for name, row in run[mode].items():
                baseline, first = run[mode][LANGCHAIN], smallest[mode][name]
                for key in ("select_p50_ms", "select_p95_ms", "cold_start_s", "peak_rss_mib"):
                    row[f"{key}_x_langchain"] = row[key] / baseline[key]
                    row[f"{key}_x_smallest"] = row[key] / first[key]


def targets(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets for icl-retriever's task index, checked on this run's numbers."""
    sizes = sorted(runs, key=int)
    largest, smallest = sizes[-1], sizes[0]
    out = []

    def check(target: str, size: str, value: float, limit: float, at_most: bool = True) -> None:
        holds = value <= limit if at_most else value >= limit
        out.append({"target": target, "pool": int(size), "value": value, "limit": limit,
                    "at_most": at_most, "holds": holds})

    for mode in MODES:
        if mode not in runs[largest]:
            continue
        row = runs[largest][mode][TASK]
        check(f"{mode}: cold start ≤ 1.2× the {smallest} pool's", largest, row["cold_start_s_x_smallest"], 1.2)
        check(f"{mode}: cold start ≤ 1.2× LangChain's", largest, row["cold_start_s_x_langchain"], 1.2)
        check(f"{mode}: peak RSS ≤ 1.3× the {smallest} pool's", largest, row["peak_rss_mib_x_smallest"], 1.3)
        for size in sizes:
            check(f"{mode}: select p50 ≤ 1.2× LangChain's", size, runs[size][mode][TASK]["select_p50_ms_x_langchain"], 1.2)
    for size in sizes:
        check("index ≥ 0.9× the raw encoder's examples/s", size, runs[size]["index"][TASK]["index_x_raw_encoder"], 0.9, False)
    return out


# --- the whole run ----------------------------------------------------------------------------


def run_scale(
    sizes: Sequence[int],
    iclmix: Path,
    ieb: Path,
    *,
    n_requests: int,
    rounds: int,
    cold_runs: int,
    seed: int,
    server: bool,
    raw_sample: int = 10_000,
    index_threads: int | None = None,
    work_dir: Path | None = None,
    log: Callable[[str], None] = lambda line: print(time.strftime("%H:%M:%S"), line, flush=True),
) -> dict[str, Any]:
    """Every size in one process (ratios come from one run); results as written to results.json."""
    import torch

    from icl_retriever.embedders import load_embedder

    sizes = sorted(set(sizes))
    pool, requests = split_pool(mixed_examples(iclmix, ieb, seed), sizes[-1], n_requests, seed)
    embedders = {TASK: load_embedder("task"), LANGCHAIN: load_embedder("semantic")}
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        warm_up(pool[:2], Path(tmp) / "warm-up", embedders)
        works = {str(size): Path(tmp) / str(size) for size in sizes}
        for size in sizes:
            runs[str(size)] = measure_size(
                pool[:size], requests, embedders, works[str(size)],
                rounds=rounds, server=server, raw_sample=raw_sample, index_threads=index_threads, log=log,
            )
        measure_cold_starts(runs, works, requests, embedders, cold_runs=cold_runs, server=server, log=log)
    add_ratios(runs)
    return {
        "sizes": sizes,
        "data": {"iclmix": str(iclmix), "ieb": str(ieb), "seed": seed,
                 "mix": "iclmix rows (output: first answer) + IEB training instructions (output: empty), "
                        "shuffled with the seed; pool N = the first N, requests = the next n_requests; past the "
                        "mix's rows (but the requests), recombined rows: an instruction with another row's input "
                        "and output (rows with a separate input only)"},
        "n_requests": len(requests),
        "raw_sample": raw_sample,
        "rounds": rounds,
        "cold_runs": cold_runs,
        "k": K,
        "server": server,
        "torch_threads": torch.get_num_threads(),
        "index_threads": index_threads or torch.get_num_threads(),
        "runs": runs,
        "targets": targets(runs),
    }


def warm_up(examples: Sequence[Any], folder: Path, embedders: dict[str, Any]) -> None:
    """Untimed: the process's first Chroma client, encoder calls and lazy imports."""
    index_task(examples, folder / "icl-retriever", embedders[TASK])
    index_langchain(examples, folder / "langchain", LangChainEmbeddings(embedders[LANGCHAIN]))


if __name__ == "__main__":
    child_main(json.loads(sys.argv[1]))
