"""Pool statistics that split a request's wording into template and content.

The examples of one task repeat the same instruction or prompt template ("According to the above
context, choose the best option ...") around content that belongs to one example (a review, a
story, a list of numbers), or to the few examples of sibling tasks asked about the same text.
Word n-grams that recur in many of a pool's examples therefore spell out templates, and rare words
carry content. Both are measured on the pool alone, without task labels:

- `TemplateVocabulary.overlap`: Jaccard overlap of two texts' *frequent* word n-grams. Prompts built
  from one template share them; prompts that only share content do not. It separates sibling tasks
  whose prompts differ in a few template words (answer with the letter vs with the text), which an
  embedding of the whole prompt blurs.
- `ContentIndex.similarity`: TF-IDF cosine, dominated by rare words: how alike the contents are.

Example:
    >>> vocabulary = TemplateVocabulary(pool_texts)                  # doctest: +SKIP
    >>> vocabulary.overlap(request_text, candidate_texts)           # doctest: +SKIP
    array([0.73, 0.05])
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

_TOKEN = re.compile(r"\w+|[^\w\s]")


def word_ngrams(text: str, n: int) -> frozenset[int]:
    """The distinct word/punctuation n-grams of a lower-cased text, hashed."""
    tokens = _TOKEN.findall(text.lower())
    return frozenset(hash(tuple(tokens[i : i + n])) for i in range(len(tokens) - n + 1))


class TemplateVocabulary:
    """The word n-grams that a pool repeats across many of its texts: template wording.

    Args:
        texts: the pool's texts (their template n-grams are kept, so scoring them is a lookup).
        n: n-gram length (4 words: long enough that content rarely repeats one by chance).
        min_share: an n-gram is template wording when at least this share of the texts contain it,
            and at least `min_count` texts (the floor for small pools).
    """

    def __init__(self, texts: Sequence[str], *, n: int = 4, min_share: float = 0.003, min_count: int = 3) -> None:
        self.n = n
        self.min_count = max(min_count, math.ceil(min_share * len(texts)))
        pool_grams = [word_ngrams(text, n) for text in texts]
        hashes = np.concatenate([np.zeros(0, np.int64), *(np.fromiter(g, np.int64, len(g)) for g in pool_grams)])
        values, counts = np.unique(hashes, return_counts=True)
        self.grams = frozenset(values[counts >= self.min_count].tolist())
        self._pool = {text: grams & self.grams for text, grams in zip(texts, pool_grams)}

    def template_of(self, text: str) -> frozenset[int]:
        """The text's n-grams that are template wording in this pool."""
        found = self._pool.get(text)
        return found if found is not None else word_ngrams(text, self.n) & self.grams

    def overlap(self, query: str, candidates: Sequence[str]) -> np.ndarray:
        """Jaccard overlap of the query's template n-grams with each candidate's, in [0, 1]."""
        mine = self.template_of(query)
        out = np.zeros(len(candidates))
        for i, text in enumerate(candidates):
            theirs = self.template_of(text)
            union = len(mine | theirs)
            out[i] = len(mine & theirs) / union if union else 0.0
        return out


class ContentIndex:
    """TF-IDF vectors of a pool's texts, for comparing what texts are about."""

    def __init__(self, texts: Sequence[str]) -> None:
        self._tfidf: TfidfVectorizer | None = TfidfVectorizer(sublinear_tf=True)
        try:
            self._vectors = self._tfidf.fit_transform(texts)
        except ValueError:  # no words in the pool at all
            self._tfidf = None
        self._row = {text: i for i, text in enumerate(texts)}

    def similarity(self, query: str, candidates: Sequence[str]) -> np.ndarray:
        """TF-IDF cosine of the query with each candidate, in [0, 1]."""
        if self._tfidf is None or not candidates:
            return np.zeros(len(candidates))
        rows = [self._row.get(text) for text in candidates]
        if None in rows:  # a text from outside the pool: vectorise them all
            vectors = self._tfidf.transform(candidates)
        else:
            vectors = self._vectors[rows]
        return (vectors @ self._tfidf.transform([query]).T).toarray().ravel()
