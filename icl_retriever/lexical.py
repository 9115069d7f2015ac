"""The task wording of an example: its instruction, or the template part of a whole prompt.

A request states its task in the instruction and gives the content (a review, a story, a list of
numbers) in the input. Many pools, though, hold whole prompts with the instruction written around
the content ("Review: ... Is this product review negative?"). There the task is the *template*:
the words that many of the pool's examples repeat. Content belongs to one example, or to the few
sibling examples that ask other questions about the same text. This module separates the two
without task labels:

- `TemplateStats`: document frequencies of word 4-grams (hashed into a fixed array, so memory does
  not grow with the pool). `skeleton(text)` keeps the words covered by frequent 4-grams and turns
  the rest into "...": "Review: ... Is this product review negative?". The index computes each
  example's skeleton once, when it is written.
- `strip_shared_content(request, neighbours)`: a request phrased in new words has no frequent
  4-grams to keep, but its content is usually in the pool: the same passage asked about in another
  way. The 5-grams it shares with the content of its nearest pool examples (their text outside
  their skeleton) are cut out, and what remains is the request's own wording of its task.
- `word_overlap`: Jaccard overlap of two task texts' words, which keeps answer cues that sentence
  embeddings blur ("- A: more - B: less" against "more, less or no effect").
- `answer_match`: whether a request names, or asks for, the answer an example gives: the same
  task worded freshly still states its answer space ('Reply with one of: more, less or no effect',
  'Answer "positive" or "negative"', 'Would you describe it as negative?'), and a sibling task
  over the same texts answers in another one ("B", "Positive", "Negative").

Example:
    >>> stats = TemplateStats()
    >>> stats.add(["Review: great stuff. Is this product review negative?"] * 3)
    >>> stats.skeleton("Review: awful, it broke. Is this product review negative?")
    '... . is this product review negative ?'
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import string
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

_TOKEN = re.compile(r"\w+|[^\w\s]")
GAP = "..."
#: Length of the n-grams counted for templates (4 words: content rarely repeats one by chance).
TEMPLATE_N = 4
#: Length of the n-grams a request must share with a neighbour's content to count as content.
CONTENT_N = 5
#: Candidates' (task text, n) pairs whose n-gram sets `word_overlap` remembers, the least recently
#: used forgotten first (a few kB each for a template skeleton).
REMEMBERED_GRAM_SETS = 4096


def tokens(text: str) -> list[str]:
    """Lower-cased words and punctuation marks."""
    return _TOKEN.findall(text.lower())


def _ngrams(words: Sequence[str], n: int) -> list[str]:
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


def _render(words: Sequence[str], keep: np.ndarray) -> str:
    """The kept words, each run of dropped words shown once as '...'."""
    out: list[str] = []
    for word, kept in zip(words, keep):
        if kept:
            out.append(word)
        elif not out or out[-1] != GAP:
            out.append(GAP)
    return " ".join(out)


class TemplateStats:
    """Document frequencies of word 4-grams over a pool, hashed into `buckets` counters.

    Args:
        min_share: a 4-gram is template wording when at least this share of the pool's texts
            contain it, and at least `min_count` texts (the floor for small pools).
        buckets: size of the counter array (a power of two; collisions only add counts, and at
            2^22 they stay far below the threshold for pools of 100k examples).
    """

    def __init__(self, *, min_share: float = 0.003, min_count: int = 3, buckets: int = 1 << 22) -> None:
        self.min_share = min_share
        self.min_count = min_count
        self.counts = np.zeros(buckets, dtype=np.uint32)
        self.documents = 0
        self.seen: set[int] = set()
        """Ids of the texts counted so far (first 64 bits of each hex id given to `add`)."""

    @property
    def threshold(self) -> int:
        """How many texts must contain a 4-gram for it to count as template wording."""
        return max(self.min_count, math.ceil(self.min_share * self.documents))

    def _buckets(self, text: str) -> np.ndarray:
        from sklearn.utils import murmurhash3_32

        grams = _ngrams(tokens(text), TEMPLATE_N)
        return np.array([murmurhash3_32(g, positive=True) % len(self.counts) for g in grams], dtype=np.int64)

    def add(self, texts: Iterable[str], ids: Iterable[str] | None = None) -> None:
        """Count each text's distinct 4-grams once.

        With `ids` (hex digests such as `Example.content_hash`, one per text), a text whose id was
        counted before is skipped: a resumed indexing run counts nothing twice.
        """
        for text, text_id in zip(texts, ids if ids is not None else itertools.repeat(None)):
            if text_id is not None:
                digest = int(text_id[:16], 16)
                if digest in self.seen:
                    continue
                self.seen.add(digest)
            np.add.at(self.counts, np.unique(self._buckets(text)), 1)
            self.documents += 1

    def skeleton(self, text: str) -> str:
        """The text's template wording: words covered by a frequent 4-gram, the rest as '...'.

        A text with no frequent 4-gram (a pool too small to show templates, or a one-off
        prompt) is returned whole, lower-cased and tokenised like a skeleton.
        """
        words = tokens(text)
        frequent = self.counts[self._buckets(text)] >= self.threshold
        keep = np.zeros(len(words), dtype=bool)
        for i in np.flatnonzero(frequent):
            keep[i : i + TEMPLATE_N] = True
        return _render(words, keep) if keep.any() else " ".join(words)

    def save(self, path: Path) -> None:
        """Write the counts atomically (a temporary file renamed over the old one)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as fh:
            seen = np.array(sorted(self.seen), dtype=np.uint64)
            np.savez_compressed(fh, counts=self.counts, documents=np.array(self.documents), seen=seen)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> TemplateStats:
        """Counts written by `save`; a missing file gives empty statistics."""
        stats = cls()
        if path.is_file():
            with np.load(path) as data:
                stats.counts = data["counts"].astype(np.uint32)
                stats.documents = int(data["documents"])
                stats.seen = {int(x) for x in data["seen"]} if "seen" in data else set()
        return stats


def task_text(instruction: str, text_input: str, stats: TemplateStats | None = None) -> str:
    """An example's task wording, tokenised: the instruction when the input is separate, else the
    skeleton of the whole prompt (the whole prompt when no pool statistics are given)."""
    if text_input.strip() or stats is None:
        return " ".join(tokens(instruction))
    return stats.skeleton(instruction)


def strip_shared_content(request: str, neighbours: Iterable[tuple[str, str]]) -> str:
    """The request without the content it shares with pool examples.

    Args:
        request: the request's whole text.
        neighbours: (full text, task text) of pool examples near the request by content. A
            5-gram of a neighbour's full text that its task text does not hold is content.
    """
    content: set[str] = set()
    template: set[str] = set()
    for full, their_template in neighbours:
        theirs = set(_ngrams(their_template.split(), CONTENT_N))
        template |= theirs
        content |= set(_ngrams(tokens(full), CONTENT_N)) - theirs
    words = tokens(request)
    is_content = np.zeros(len(words), dtype=bool)
    is_template = np.zeros(len(words), dtype=bool)
    for i, gram in enumerate(_ngrams(words, CONTENT_N)):
        if gram in template:  # wins where a content n-gram runs into the template
            is_template[i : i + CONTENT_N] = True
        elif gram in content:
            is_content[i : i + CONTENT_N] = True
    keep = ~is_content | is_template
    return _render(words, keep) if keep.any() else " ".join(words)


def word_overlap(query: str, candidates: Sequence[str], n: int = 1) -> np.ndarray:
    """Jaccard overlap of the query's word n-grams with each candidate's, in [0, 1] ('...' ignored).

    The candidates' n-gram sets are remembered (`REMEMBERED_GRAM_SETS`): a pool's task wordings
    recur among the candidates of request after request.
    """
    mine = _gram_set(query, n)
    overlap: dict[str, float] = {}  # candidates of one task share their wording: each counted once
    for text in candidates:
        if text not in overlap:
            theirs = _remembered_gram_set(text, n)
            shared = len(mine & theirs)
            union = len(mine) + len(theirs) - shared
            overlap[text] = shared / union if union else 0.0
    return np.array([overlap[text] for text in candidates], dtype=np.float64)


def _gram_set(text: str, n: int) -> frozenset[str]:
    """A task text's word n-grams; they never span a gap: "a ... b" has no bigram "a b"."""
    return frozenset(gram for part in text.split(GAP) for gram in _ngrams(part.split(), n))


_remembered_gram_set = functools.lru_cache(maxsize=REMEMBERED_GRAM_SETS)(_gram_set)


#: Longest output (in words) that can be an answer a request names; longer ones are free text.
ANSWER_WORDS = 3
_AUXILIARY = frozenset(
    "is are was were am do does did can could will would shall should may might must has have had".split()
)
_YES_NO = frozenset({"yes", "no", "true", "false"})
_EDGE_PUNCTUATION = re.compile(r"^[\W_]+|[\W_]+$")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def _yes_no_question(request: str) -> bool:
    """Whether the request's last question is a yes/no one: it opens with an auxiliary verb ("Is",
    "Would", "Does" ...) and offers no alternatives ("... satisfied or dissatisfied?" does)."""
    questions = [part.strip() for part in _SENTENCE.split(request) if part.strip().endswith("?")]
    if not questions:
        return False
    words = re.findall(r"[A-Za-z']+", questions[-1])
    return bool(words) and words[0].lower() in _AUXILIARY and " or " not in questions[-1]


def answer_match(request: str, outputs: Sequence[str]) -> np.ndarray:
    """1.0 for each output that the request names as an answer, else 0.0.

    An output of at most `ANSWER_WORDS` words (punctuation at its ends dropped) is named when the
    request contains it as a whole phrase in the same case ("positive" names "positive", not
    "Positive": the case is part of the answer format), or when it is yes/no/true/false and the
    request ends on a yes/no question. Longer outputs are free text and never match.

    >>> answer_match('How does it sound? Answer "positive" or "negative".', ["positive", "Positive", "B", "Yes."]).tolist()
    [1.0, 0.0, 0.0, 0.0]
    >>> answer_match("Would you describe the review as negative?", ["No", "Negative"]).tolist()
    [1.0, 0.0]
    """
    yes_no = _yes_no_question(request)
    # Once per distinct output: a classification task's candidates repeat a few.
    match = {output: _names(request, output, yes_no) for output in set(outputs)}
    return np.array([match[output] for output in outputs], dtype=np.float64)


def _names(request: str, output: str, yes_no: bool) -> float:
    """`answer_match` for one output."""
    answer = _EDGE_PUNCTUATION.sub("", output.strip())
    if not answer or len(answer.split()) > ANSWER_WORDS:
        return 0.0
    named = re.search(r"(?<!\w)" + re.escape(answer) + r"(?!\w)", request) is not None
    return float(named or (yes_no and answer.lower() in _YES_NO))


# Surrounding characters that never change an answer: ASCII punctuation plus typographic quotes.
_STRIP_CHARS = string.punctuation + string.whitespace + "\u2018\u2019\u201c\u201d\u00ab\u00bb"
_SPACES = re.compile(r"\s+")


def normalize_answer(text: str) -> str:
    """Lower-case, collapse white space and strip surrounding punctuation and quotes.

    Example:
        >>> normalize_answer('  "Yes."  ')
        'yes'
    """
    return _SPACES.sub(" ", text.lower()).strip(_STRIP_CHARS)
