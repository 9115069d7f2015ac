import json

import pytest
from typer.testing import CliRunner

from icl_retriever.cli import app
from icl_retriever.errors import IclRetrieverError
from icl_retriever.pool import load_pool
from tests.conftest import BUILTIN_POOL

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    store = tmp_path_factory.mktemp("stores")
    result = invoke("index", BUILTIN_POOL, "--store", store, "--embedder", "pie-minilm", "--json")
    assert result.exit_code == 0, result.stderr
    return store, json.loads(result.stdout)


def test_index_json_summary_and_idempotence(indexed):
    store, summary = indexed
    assert summary == {
        "store": str(store / "pool"), "name": "pool", "added": 96, "updated": 0, "unchanged": 0, "invalid": 0, "count": 96,
    }
    again = json.loads(invoke("index", BUILTIN_POOL, "--store", store, "--json").stdout)
    assert (again["added"], again["unchanged"], again["count"]) == (0, 96, 96)


def test_select_json_and_where(indexed):
    store, _ = indexed
    result = invoke("select", "Is the writer of this comment pleased or unhappy? Reply with one label.",
                    "--input", "The soup was cold and the bread was stale.", "--store", store, "-k", "2", "--json")
    assert result.exit_code == 0, result.stderr
    demos = json.loads(result.stdout)["demonstrations"]
    assert [set(d) for d in demos] == [{"id", "instruction", "input", "output", "task", "score", "task_score"}] * 2
    assert [d["task_score"] for d in demos] == [None, None]  # the task selector's alone
    assert demos[0]["score"] <= demos[1]["score"]
    assert {d["task"] for d in demos} == {"classify|sentiment"}
    filtered = invoke("select", "Translate to French", "--input", "Hello", "--store", store,
                      "--where", '{"topic": "sports"}', "--json")
    assert filtered.exit_code == 0, filtered.stderr
    sports = {e.key for e in load_pool(BUILTIN_POOL).examples if e.metadata.get("topic") == "sports"}
    chosen = {d["id"] for d in json.loads(filtered.stdout)["demonstrations"]}
    assert len(chosen) == 2 and chosen <= sports


def test_info(indexed):
    store, _ = indexed
    data = json.loads(invoke("info", "--store", store, "--json").stdout)
    assert data["count"] == 96 and data["dimension"] == 384
    assert data["embedder"] == {"kind": "pie-minilm", "model": None}
    assert data["fingerprint"].startswith("PIEEmbedder:")


def test_bad_pool_exits_1_and_writes_nothing(tmp_path, indexed):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x", "output": "y"}\n{"instruction": "x"}\n')
    result = invoke("index", bad, "--store", tmp_path, "--embedder", "pie-minilm")
    assert result.exit_code == 1
    assert "bad.jsonl:2: field 'output': required field is missing" in result.stderr
    assert not (tmp_path / "bad").exists()
    skipped = invoke("index", bad, "--store", tmp_path, "--embedder", "pie-minilm", "--skip-invalid", "--json")
    assert skipped.exit_code == 0
    assert json.loads(skipped.stdout)["invalid"] == 1 and "skipped" in skipped.stderr


def test_user_errors_exit_1_flag_errors_exit_2(tmp_path, indexed):
    store, _ = indexed
    missing = invoke("select", "x", "--store", tmp_path, "--name", "nope")
    assert missing.exit_code == 1 and "No index named 'nope'" in missing.stderr
    bad_where = invoke("select", "x", "--store", store, "--where", "[1]")
    assert bad_where.exit_code == 1 and "--where must be a JSON object" in bad_where.stderr
    mismatch = invoke("index", BUILTIN_POOL, "--store", store, "--embedder", "semantic")
    assert mismatch.exit_code == 1 and "--rebuild" in mismatch.stderr
    assert invoke("select", "x", "--nope").exit_code == 2
    assert invoke("index", BUILTIN_POOL, "--embedder", "other").exit_code == 2


@pytest.fixture(scope="module")
def task_store(tmp_path_factory):
    """A task-embedder index of the first 40 built-in examples."""
    folder = tmp_path_factory.mktemp("task-stores")
    pool = folder / "small.jsonl"
    pool.write_text("\n".join(BUILTIN_POOL.read_text(encoding="utf-8").splitlines()[:40]) + "\n", encoding="utf-8")
    result = invoke("index", pool, "--store", folder, "--embedder", "task", "--json")
    assert result.exit_code == 0, result.stderr
    return folder


REQUEST = ("Is the writer of this comment pleased or unhappy? Reply with one label.",
           "--input", "The soup was cold and the bread was stale.")


def test_task_selector_flags_reach_the_selector(task_store):
    from icl_retriever.selectors import TaskExampleSelector
    from icl_retriever.store import ExampleStore

    options = {
        "content_weight": 0.0, "overlap_weight": 0.2, "answer_weight": 0.1, "group_size": 0, "fetch_k": 7, "token_budget": 40
    }
    flags = [arg for key, value in options.items() for arg in (f"--{key.replace('_', '-')}", value)]
    result = invoke("select", *REQUEST, "--store", task_store, "--name", "small", "-k", "3", *flags, "--json")
    assert result.exit_code == 0, result.stderr
    chosen = json.loads(result.stdout)["demonstrations"]
    selector = TaskExampleSelector(store=ExampleStore.open("small", task_store), k=3, **options)
    expected = selector.select_examples({"instruction": REQUEST[0], "input": REQUEST[2]})
    assert [(d["id"], round(d["score"], 5)) for d in chosen] == [(d["id"], round(d["score"], 5)) for d in expected]
    assert sum(len(" ".join((d["instruction"], d["input"], d["output"])).split()) for d in chosen) <= 40
    default = json.loads(invoke("select", *REQUEST, "--store", task_store, "--name", "small", "-k", "3", "--json").stdout)
    assert [d["score"] for d in default["demonstrations"]] != [d["score"] for d in chosen]


def test_task_selector_flags_on_another_index_exit_1(indexed):
    store, _ = indexed
    result = invoke("select", *REQUEST, "--store", store, "--content-weight", "0.3", "--group-size", "2")
    assert result.exit_code == 1
    assert "--content-weight, --group-size tune the task selector, but index 'pool' uses PIEEmbedder" in result.stderr
    assert "--embedder task --rebuild" in result.stderr


def test_ask_where_and_token_budget_reach_the_selector(indexed):
    from icl_retriever.generators import make_generator

    store, _ = indexed
    result = invoke("ask", *REQUEST, "--store", store, "--backend", "transformers", "--where", '{"topic": "movies"}',
                    "--token-budget", "60", "-k", "4", "--temperature", "0", "--max-tokens", "4", "--json")
    assert result.exit_code == 0, result.stderr
    demos = json.loads(result.stdout)["demonstrations"]
    movies = {e.key for e in load_pool(BUILTIN_POOL).examples if e.metadata.get("topic") == "movies"}
    assert demos and {d["id"] for d in demos} <= movies
    tokenizer = make_generator("transformers").tokenizer
    used = sum(len(tokenizer.encode("\n".join((d["instruction"], d["input"], d["output"])), add_special_tokens=False))
               for d in demos)
    assert used <= 60


def test_ask_engine_flags_reach_vllm(indexed, monkeypatch):
    import vllm

    seen = {}

    def engine(**kwargs):
        seen.update(kwargs)
        raise IclRetrieverError("recorded; no engine started")

    monkeypatch.setattr(vllm, "LLM", engine)
    store, _ = indexed
    result = invoke("ask", *REQUEST, "--store", store, "--backend", "vllm",
                    "--dtype", "float32", "--gpu-memory", "0.25", "--no-enforce-eager")
    assert result.exit_code == 1 and "recorded; no engine started" in result.stderr
    assert (seen["dtype"], seen["gpu_memory_utilization"], seen["enforce_eager"]) == ("float32", 0.25, False)


def test_engine_flags_with_another_backend_exit_1(indexed):
    store, _ = indexed
    result = invoke("ask", *REQUEST, "--store", store, "--backend", "openai", "--dtype", "float32")
    assert result.exit_code == 1
    assert "dtype configure the in-process vLLM engine; --backend openai has none" in result.stderr


@pytest.mark.parametrize(
    "command", [["select", "x"], ["info"], ["tasks"], ["sample", "--n", "3"]], ids=lambda command: command[0]
)
def test_every_index_reader_takes_timeout(command):
    """`--store`, `--name`, `--url` and `--timeout` come together (`Target`): a Chroma server that never
    answers fails every reader within its --timeout, `tasks` and `sample` included."""
    import socket
    import time

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        start = time.monotonic()
        result = invoke(*command, "--url", url, "--timeout", "1")
        assert time.monotonic() - start < 10
    assert result.exit_code == 1, result.output
    assert f"The Chroma server at {url} did not answer within 1 s" in result.stderr


@pytest.mark.parametrize("command", ["abstention", "balance"])
def test_bench_dev_commands_pass_their_dev_queries(command, tmp_path, monkeypatch):
    """`bench abstention` and `bench balance` read --queries and --requests and pass them, --pool,
    --cache and -k to their run (`DevQueries`)."""
    from icl_retriever.bench import abstention

    seen = {}

    def run(pool, query_ids, **kwargs):
        seen.update(pool=pool, query_ids=query_ids, **kwargs)
        raise IclRetrieverError("recorded; nothing run")

    monkeypatch.setattr(abstention, f"run_{command}", run)
    (tmp_path / "ids.txt").write_text("q1\n# a comment\nq2\n", encoding="utf-8")
    (tmp_path / "fresh.jsonl").write_text('{"id": "q1", "instruction": "Reworded?", "input": "x"}\n', encoding="utf-8")
    result = invoke("bench", command, "--pool", tmp_path / "pool.jsonl", "--queries", tmp_path / "ids.txt",
                    "--requests", tmp_path / "fresh.jsonl", "--cache", tmp_path / "cache", "-k", "3")
    assert result.exit_code == 1 and "recorded; nothing run" in result.stderr, result.output
    assert (seen["pool"], seen["query_ids"], seen["requests"]) == (tmp_path / "pool.jsonl", ["q1", "q2"], {"q1": ("Reworded?", "x")})
    assert (seen["cache"], seen["k"]) == (tmp_path / "cache", 3)
