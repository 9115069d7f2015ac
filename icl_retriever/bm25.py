"""Okapi BM25 over instruction + input through an inverted index (`bm25s`), built at index time.

The store builds the index from its pages after every `index` run and saves it in the index folder
(`ExampleStore.bm25_path`); a selector memory-maps the saved index and scores a request by
reading only the postings of the request's words, never the pool.

The scores are rank_bm25's `BM25Okapi` (k1 = 1.5, b = 0.75, lowercase `\\w+` tokens) with one
difference: a word found in more than half of the pool gets idf 0 here (bm25s's Robertson idf),
where rank_bm25 gives it 0.25 x the mean idf. Scores of requests whose words all occur in fewer than
half of the examples are equal (`tests/test_bm25.py`).
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

_WORD = re.compile(r"\w+")
_IDS_FILE = "ids.npy"
_META_FILE = "meta.json"
#: rank_bm25's defaults.
K1, B = 1.5, 0.75


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def content_text(instruction: str, text_input: str) -> str:
    """The text BM25 indexes and queries: instruction and input."""
    return f"{instruction}\n{text_input}"


class BM25Index:
    """A saved BM25 index: the `bm25s` model, the example id of each document, the store revision
    it was built from."""

    def __init__(self, model: Any, ids: np.ndarray, revision: str) -> None:
        self._model = model
        self.ids = ids
        self.revision = revision

    @classmethod
    def build(cls, documents: Iterable[tuple[str, str]], revision: str) -> BM25Index:
        """Index `(id, text)` pairs; the whole tokenised pool is held while building."""
        import bm25s

        ids, corpus = [], []
        for key, text in documents:
            ids.append(key)
            corpus.append(tokens(text))
        model = bm25s.BM25(k1=K1, b=B, method="robertson")
        model.index(corpus, show_progress=False)
        return cls(model, np.array(ids), revision)

    def save(self, folder: Path) -> None:
        """Write the index to `folder`, replacing any earlier one (written beside it, then swapped in)."""
        unique = uuid.uuid4().hex[:12]  # concurrent `index` runs each write their own
        tmp, old = folder.with_name(f"{folder.name}.tmp-{unique}"), folder.with_name(f"{folder.name}.old-{unique}")
        self._model.save(str(tmp))
        np.save(tmp / _IDS_FILE, self.ids)
        (tmp / _META_FILE).write_text(json.dumps({"revision": self.revision}))
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path) -> BM25Index:
        """The index saved in `folder`, memory-mapped (the vocabulary is read into memory)."""
        import bm25s

        model = bm25s.BM25.load(str(folder), mmap=True)
        return cls(model, np.load(folder / _IDS_FILE, mmap_mode="r"), saved_revision(folder) or "")

    def ranked(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """Document positions, best first (ties in index order), and every document's score."""
        scores = self.scores(query)
        return np.argsort(-scores, kind="stable"), scores

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every document for `query` (words outside the pool add nothing)."""
        # bm25s's Robertson term weight leaves out BM25's constant factor (k1 + 1): put it back so
        # scores read as rank_bm25's.
        return (K1 + 1) * self._model.get_scores_from_ids(self._model.get_tokens_ids(tokens(query)))


def saved_revision(folder: Path) -> str | None:
    """The store revision a saved index was built from; None when there is none."""
    meta = folder / _META_FILE
    return json.loads(meta.read_text())["revision"] if meta.is_file() else None


def remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)

