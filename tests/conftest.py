"""Shared fixtures: real MiniLM embedders (loaded once), a toy embedder for selector logic."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from icl_retriever.embedders import PIEEmbedder, SemanticEmbedder
from icl_retriever.example import Example
from icl_retriever.task_embedder import TaskEmbedder

ROOT = Path(__file__).resolve().parents[1]
BUILTIN_POOL = ROOT / "examples" / "pool.jsonl"
SHARED_DATA = ROOT.parent / "shared" / "data"


class ToyEmbedder:
    """Deterministic bag-of-words embedder: texts sharing words are close. For selector logic only."""

    dimension = 64
    fingerprint = "toy:bow64"
    spec: dict[str, Any] = {"kind": "toy", "model": None}

    def text_for(self, instruction: str, input: str) -> str:
        return f"{instruction} {input}"

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


def record_passes(embedder: Any, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The texts of each encoder pass `embedder` (a `TransformerEmbedder`) makes from now on, as
    its tokenizer reads them back (`read_back`)."""
    passes: list[list[str]] = []
    encode = embedder._embed_batch

    def recording(batch: dict[str, Any]) -> np.ndarray:
        passes.append(embedder.tokenizer.batch_decode(batch["input_ids"], skip_special_tokens=True))
        return encode(batch)

    monkeypatch.setattr(embedder, "_embed_batch", recording)
    return passes


def read_back(embedder: Any, text: str) -> str:
    """`text` as `record_passes` shows it: tokenized and decoded (lower-cased by MiniLM)."""
    return embedder.tokenizer.decode(embedder.tokenizer(text)["input_ids"], skip_special_tokens=True)


@pytest.fixture(scope="session")
def pie_untrained() -> PIEEmbedder:
    return PIEEmbedder()


@pytest.fixture(scope="session")
def semantic() -> SemanticEmbedder:
    return SemanticEmbedder()


@pytest.fixture(scope="session")
def task_embedder() -> TaskEmbedder:
    return TaskEmbedder()


@pytest.fixture()
def toy() -> ToyEmbedder:
    return ToyEmbedder()


@pytest.fixture(scope="session")
def builtin_examples() -> list[Example]:
    return [Example.model_validate(json.loads(line)) for line in BUILTIN_POOL.read_text().splitlines() if line]


def make_examples() -> list[Example]:
    """A small pool with two tasks on one topic, and metadata for filters."""
    rows = [
        ("Classify the sentiment of this review.", "The pasta was wonderful.", "positive", "sent", "food"),
        ("Classify the sentiment of this review.", "The film was boring.", "negative", "sent", "movies"),
        ("Is this review positive or negative?", "Great soundtrack and acting.", "positive", "sent", "movies"),
        ("Translate this sentence into French.", "The pasta was wonderful.", "Les pâtes étaient délicieuses.", "trans", "food"),
        ("Translate this sentence into French.", "I like the film.", "J'aime le film.", "trans", "movies"),
        ("Translate the text to French.", "Good morning.", "Bonjour.", "trans", "general"),
    ]
    return [
        Example(instruction=i, input=x, output=o, id=f"ex{n}", task=t, metadata={"topic": topic, "n": n})
        for n, (i, x, o, t, topic) in enumerate(rows)
    ]


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under CI a missing `../shared/data` is an error: the tests that read it must not skip silently."""
    import os

    needed = [SHARED_DATA / "iclmix" / "pool.jsonl", SHARED_DATA / "ieb" / "eft_test.json"]
    missing = [str(path) for path in needed if not path.is_file()]
    if os.environ.get("CI") == "true" and missing:
        raise pytest.UsageError(
            f"CI=true but shared data is missing ({', '.join(missing)}): CI runs with ../shared beside the project."
        )
