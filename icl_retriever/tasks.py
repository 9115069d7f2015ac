"""Know your pool: the tasks an indexed pool holds, found without labels, and samples that cover them.

How tasks are found (task labels are never read for it):
1. Every stored vector is read from the store in pages. With the task embedder the *task view*
   is clustered (`TaskEmbedder.split`); with any other embedder, the stored vector.
2. Examples with the identical task wording (`Hit.task_text`: the instruction, or the template
   skeleton of a whole prompt) form one group: the same instruction or template asks for the same
   task. Without task wordings (other embedders) each example is its own group.
3. Two groups are as far apart as the smaller of the cosine distance of their mean vectors and
   one minus the word overlap (Jaccard) of their wordings: wordings sharing most words ask for one
   task even where content words left in a template skeleton move the embedding.
4. The groups are clustered agglomeratively (average linkage) until the closest clusters are
   further apart than `threshold`, so the number of tasks is found, not given. Two clusters whose
   outputs disagree never merge: their answer forms (yes/no, a letter, a number, text) mostly
   differ, or one has a closed answer space (8 or more outputs taking few values: "yes/no",
   "increase/decrease", "A/B/C") that the other's outputs mostly lie outside, or their typical
   answers differ in length (a few words against sentences). Nor do two clusters that hold the same
   items (one review asked about in two wordings) and answer them differently. Sibling tasks over
   the same texts are worded alike but answer differently. Memory grows with the square of the
   number of groups (distinct wordings).

A cluster of one example is not counted as a task: all of them are listed as one entry, named
`SINGLETONS`. Where the pool carries `task`, the map reports its agreement with it (adjusted Rand
index, each singleton a cluster of its own).

Example:
    >>> store = ExampleStore.open("pool")                                  # doctest: +SKIP
    >>> task_map = discover_tasks(store)                                   # doctest: +SKIP
    >>> [(t.name, t.size) for t in task_map.tasks[:2]]                     # doctest: +SKIP
    [('classify|sentiment', 6), ('translate|sentence', 6)]
    >>> sample_examples(store, 20).ids[:3]                                 # doctest: +SKIP
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from icl_retriever.errors import IclRetrieverError
from icl_retriever.example import Example, shorten
from icl_retriever.lexical import GAP, normalize_answer, tokens
from icl_retriever.task_embedder import TaskEmbedder
from icl_retriever.vectorstore import ExampleVectorStore

#: Distance (`_group_distances`, average linkage) beyond which clusters stay apart; chosen on the built-in pool
#: and IEB `eft_test.json` (README, "Know your pool"), never on iclmix.
DEFAULT_THRESHOLD = 0.45
#: Name of the entry that holds the examples no other example joined.
SINGLETONS = "(singletons: no task found)"
#: Content-view cosine at or above which two examples of one task are near-duplicates.
DUPLICATE_SIMILARITY = 0.98
#: Label balance is reported for tasks whose outputs take at most this many distinct values (and at
#: most one per two members).
MAX_OUTPUT_VALUES = 10
#: Answer agreement two clusters need to merge: the overlap of their answer forms, and the share of
#: one's outputs inside the other's closed answer space. With ANSWER_SPACE_MIN, chosen on iclmix
#: restricted to the tasks of its dev query ids (README, "Know your pool").
ANSWER_AGREEMENT = 0.5
#: Fewest outputs a cluster needs before its few distinct values count as a closed answer space.
ANSWER_SPACE_MIN = 8
#: Clusters whose median answer lengths (in words) differ by more than this factor never merge.
ANSWER_LENGTH_RATIO = 3.0
#: A word names an item (not the template) where at most this share of the pool's examples hold it.
ITEM_WORD_SHARE = 0.1
#: Fewest items two clusters must share before their answers to them can keep the clusters apart.
SHARED_ITEMS_MIN = 2
#: Share of their shared items two clusters must answer alike to merge. With ANSWER_LENGTH_RATIO,
#: ITEM_WORD_SHARE and SHARED_ITEMS_MIN, chosen on the built-in pool, IEB eft_test and the iclmix
#: dev-query tasks together (best mean ARI; README, "Know your pool").
ITEM_AGREEMENT = 0.25
_YES_NO = frozenset({"yes", "no", "true", "false"})
_WORD = re.compile(r"\w")
_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")
#: How many of a task's most central members the verb|noun labeler reads to name it.
_LABELED_MEMBERS = 10
_CHUNK = 1024
SampleMethod = Literal["round-robin", "farthest"]


@dataclass(frozen=True)
class Task:
    """A discovered task (or the singletons entry)."""

    name: str
    """The verb|noun labeler's majority over the most central members (made unique), or the
    representative instruction; `SINGLETONS` for the entry of unclustered examples."""
    size: int
    ids: list[str]
    """Member ids, the most central (nearest the task-view centroid) first."""
    representative: str
    """The instruction of the member nearest the centroid."""
    outputs: dict[str, int] | None
    """Output counts, most frequent first, where outputs take few distinct values (a label
    balance); None otherwise."""


@dataclass(frozen=True)
class TaskMap:
    """The tasks of a pool, largest first, with the singletons entry (if any) last."""

    tasks: list[Task]
    ari: float | None
    """Adjusted Rand index against the pool's `task` field (examples that have one); None without."""
    gold_tasks: int | None
    """How many distinct `task` values the pool carries; None without."""
    duplicates: list[list[str]]
    """Groups of near-duplicate examples (same task, content-view cosine >= DUPLICATE_SIMILARITY)."""
    centroids: np.ndarray
    """Unit task-view centroid of each task (singletons excluded), in `tasks` order."""
    threshold: float

    @property
    def n_tasks(self) -> int:
        """Discovered tasks (clusters of two or more examples)."""
        return len(self.centroids)

    def assignment(self) -> dict[str, int]:
        """Example id -> cluster number; each singleton gets a number of its own."""
        out = {key: number for number, task in enumerate(self.tasks[: self.n_tasks]) for key in task.ids}
        if len(self.tasks) > self.n_tasks:
            out.update({key: self.n_tasks + i for i, key in enumerate(self.tasks[-1].ids)})
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: `{"tasks": [...], "n_tasks", "agreement": {"ari", "gold_tasks"}, ...}`."""
        return {
            "tasks": [asdict(task) for task in self.tasks],
            "n_tasks": self.n_tasks,
            "agreement": {"ari": self.ari, "gold_tasks": self.gold_tasks},
            "duplicates": self.duplicates,
            "threshold": self.threshold,
        }


@dataclass(frozen=True)
class Coverage:
    """How many tasks a sample reaches."""

    tasks: float
    """Discovered tasks (of `SampleReport.n_tasks`) with at least one sampled example."""
    gold_tasks: float | None
    """Distinct `task` values among the sampled examples; None when the pool has none."""


@dataclass(frozen=True)
class SampleReport:
    """A task-covering sample and its coverage against random samples of the same size."""

    examples: list[Example]
    """The chosen examples, in the order chosen."""
    method: SampleMethod
    coverage: Coverage
    random: Coverage
    """Mean coverage of `random_draws` seeded random samples of the same size."""
    n_tasks: int
    gold_tasks: int | None
    random_draws: int

    @property
    def ids(self) -> list[str]:
        return [example.key for example in self.examples]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ids (not the examples), method, coverage and the random baseline."""
        return {"ids": self.ids, **{k: v for k, v in asdict(self).items() if k != "examples"}}


@dataclass(frozen=True)
class StoredPool:
    """An index read into memory once, for several analyses: examples, vectors, task wordings."""

    examples: list[Example]
    task_vectors: np.ndarray
    """Unit task-view vectors (the stored vectors for embedders other than the task embedder)."""
    content_vectors: np.ndarray
    task_texts: list[str | None]

    @classmethod
    def read(cls, store: ExampleVectorStore, batch: int = 1000) -> StoredPool:
        """Every example of `store`, `batch` at a time (`ExampleVectorStore.iter_records`)."""
        hits = [hit for page in store.iter_records(batch) for hit in page]
        if not hits:
            raise IclRetrieverError(
                f"Index '{store.name}' at {store.location} is empty: add examples with "
                f"`icl-retriever index POOL --name {store.name}`."
            )
        vectors = np.asarray([hit.vector for hit in hits], dtype=np.float32)
        if isinstance(store.embedder, TaskEmbedder):
            task, content = store.embedder.split(vectors)
        else:
            task = content = vectors
        return cls([hit.example for hit in hits], task, content, [hit.task_text for hit in hits])

    def clusters(self, threshold: float) -> np.ndarray:
        """`cluster` of this pool: its task vectors and wordings, its outputs and its whole texts."""
        outputs = [e.output for e in self.examples]
        texts = [e.instruction + "\n" + e.input for e in self.examples]
        return cluster(self.task_vectors, self.task_texts, outputs, threshold, texts=texts)


def discover_tasks(
    pool: ExampleVectorStore | StoredPool, *, threshold: float = DEFAULT_THRESHOLD, name_tasks: bool = True
) -> TaskMap:
    """The tasks of an indexed pool, found without its labels (see the module docstring).

    Args:
        pool: an open index (any embedder; the task embedder's task view is used when present),
            or one already read with `StoredPool.read`.
        threshold: cosine distance at which clusters stop merging; lower finds more, finer tasks.
        name_tasks: name tasks with the verb|noun labeler (spaCy); otherwise by their representative.
    """
    pool = pool if isinstance(pool, StoredPool) else StoredPool.read(pool)
    labels = pool.clusters(threshold)
    members = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    groups = sorted((m for m in members if len(m) > 1), key=lambda m: (-len(m), int(m[0])))
    singletons = np.sort(np.concatenate([m for m in members if len(m) == 1] or [np.zeros(0, dtype=np.int64)]))
    dimension = pool.task_vectors.shape[1]
    centroids = np.array([_unit(pool.task_vectors[m].mean(axis=0)) for m in groups]).reshape(len(groups), dimension)
    ordered = [m[np.argsort(-(pool.task_vectors[m] @ c), kind="stable")] for m, c in zip(groups, centroids)]
    names = _names(pool, ordered) if name_tasks else [shorten(pool.examples[m[0]].instruction, 60) for m in ordered]
    tasks = [_task(pool, name, m) for name, m in zip(names, ordered)]
    if len(singletons):
        tasks.append(_task(pool, SINGLETONS, singletons))
    ari, gold_tasks = _agreement(pool.examples, labels)
    return TaskMap(tasks, ari, gold_tasks, _near_duplicates(pool, ordered), centroids, threshold)


def sample_examples(
    pool: ExampleVectorStore | StoredPool,
    n: int,
    *,
    method: SampleMethod = "round-robin",
    task_map: TaskMap | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    seed: int = 0,
    random_draws: int = 20,
) -> SampleReport:
    """`n` examples that cover the pool's tasks evenly, and their coverage against random samples.

    `round-robin` takes the most central example of every discovered task (largest tasks first,
    then the singletons), then the second most central, and so on; `farthest` is farthest-point
    sampling on the task vectors (start nearest the pool's mean, then always the example furthest
    from everything chosen). Coverage counts the tasks of `task_map` (discovered with `threshold`
    when not given).
    """
    pool = pool if isinstance(pool, StoredPool) else StoredPool.read(pool)
    if not 0 < n <= len(pool.examples):
        raise IclRetrieverError(f"--n must be between 1 and the pool size ({len(pool.examples)}), got {n}.")
    if task_map is None:
        task_map = discover_tasks(pool, threshold=threshold, name_tasks=False)
    keys = [e.key for e in pool.examples]
    chosen = _round_robin(task_map, n) if method == "round-robin" else [keys[i] for i in _farthest(pool.task_vectors, n)]
    by_key = dict(zip(keys, pool.examples))
    cluster_of, labelled = task_map.assignment(), task_map.gold_tasks is not None

    def coverage(ids: Sequence[str]) -> tuple[int, int]:
        tasks = {cluster_of[key] for key in ids if cluster_of[key] < task_map.n_tasks}
        return len(tasks), len({by_key[key].task for key in ids} - {None})

    rng = random.Random(seed)
    draws = np.array([coverage(rng.sample(keys, n)) for _ in range(random_draws)], dtype=float).mean(axis=0)
    found = coverage(chosen)
    return SampleReport(
        examples=[by_key[key] for key in chosen],
        method=method,
        coverage=Coverage(tasks=float(found[0]), gold_tasks=float(found[1]) if labelled else None),
        random=Coverage(tasks=float(draws[0]), gold_tasks=float(draws[1]) if labelled else None),
        n_tasks=task_map.n_tasks,
        gold_tasks=task_map.gold_tasks,
        random_draws=random_draws,
    )


def plot_task_similarity(task_map: TaskMap, path: str | Path, *, top: int = 25) -> Path:
    """A heatmap PNG of the cosine similarity between the centroids of the `top` largest tasks."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, safe in servers and threads

    count = min(top, task_map.n_tasks)
    if count == 0:
        raise IclRetrieverError("No task has two or more examples: there is nothing to plot.")
    centroids = task_map.centroids[:count]
    names = [shorten(task.name, 40) for task in task_map.tasks[:count]]
    side = 2.5 + 0.32 * count
    figure = Figure(figsize=(side + 1.5, side))
    axes = figure.subplots()
    image = axes.imshow(centroids @ centroids.T, cmap="viridis", vmin=0.0, vmax=1.0)
    axes.set_xticks(range(count), names, rotation=90, fontsize=7)
    axes.set_yticks(range(count), names, fontsize=7)
    axes.set_title(f"Task similarity (task-view centroid cosine), {count} largest of {task_map.n_tasks} tasks")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, format="png")
    return path


# ------------------------------------------------------------------------------------- internals


def cluster(
    vectors: np.ndarray,
    wordings: Sequence[str | None],
    outputs: Sequence[str],
    threshold: float,
    *,
    texts: Sequence[str] | None = None,
) -> np.ndarray:
    """A cluster number per row: identical wordings grouped, then the groups clustered.

    Average linkage over `_group_distances`, closest pair first, until the closest pair is further
    apart than `threshold`; a pair whose answers disagree (`_answers_agree`) is never merged, nor,
    given the rows' whole `texts`, a pair that answers the items it shares differently
    (`_shared_items`, `_items_agree`). A None wording is a group of its own. Rows of `vectors` must
    be unit length.
    """
    groups: dict[tuple[bool, str | int], int] = {}
    group_of = np.array(
        [groups.setdefault((True, w) if w is not None else (False, i), len(groups)) for i, w in enumerate(wordings)]
    )
    if len(groups) == 1:
        return np.zeros(len(vectors), dtype=np.int64)
    group_wordings: list[str | None] = [w if known else None for known, w in groups]
    answers: list[Counter[str]] = [Counter() for _ in groups]
    forms: list[Counter[str]] = [Counter() for _ in groups]
    normalized = [normalize_answer(output) for output in outputs]
    for group, answer in zip(group_of, normalized):
        answers[group][answer] += 1
        forms[group][_form(answer)] += 1
    # cluster -> other cluster -> [shared items answered alike, answered differently]; one list per pair
    shared: list[dict[int, list[int]]] = [{} for _ in groups]
    for r, s in _shared_items(texts, wordings, group_of) if texts is not None else ():
        g, h = group_of[r], group_of[s]
        counts = shared[g].setdefault(h, [0, 0])
        counts[normalized[r] != normalized[s]] += 1
        shared[h][g] = counts
    distances = _group_distances(vectors, group_of, group_wordings)
    np.fill_diagonal(distances, np.inf)
    rows = np.arange(len(groups))
    weight = np.ones(len(groups))  # groups per cluster: each group counts once, as its mean vector did
    label = np.arange(len(groups))
    nearest = distances.argmin(axis=1)
    while True:
        i = int(np.argmin(distances[rows, nearest]))
        j = int(nearest[i])
        if not distances[i, j] <= threshold:
            break
        if _answers_agree(answers[i], answers[j], forms[i], forms[j]) and _items_agree(shared[i].get(j)):
            merged = (weight[i] * distances[i] + weight[j] * distances[j]) / (weight[i] + weight[j])
            distances[i], distances[:, i] = merged, merged
            distances[j], distances[:, j] = np.inf, np.inf
            distances[i, i] = np.inf
            weight[i] += weight[j]
            answers[i] += answers[j]
            forms[i] += forms[j]
            _merge_shared(shared, i, j)
            label[label == j] = i
        else:
            distances[i, j] = distances[j, i] = np.inf  # and so for every cluster either joins later
        stale = (nearest == i) | (nearest == j)
        stale[[i, j]] = True
        nearest[stale] = distances[stale].argmin(axis=1)
        nearest[distances[:, i] < distances[rows, nearest]] = i
    return np.unique(label, return_inverse=True)[1][group_of]


def _group_distances(vectors: np.ndarray, group_of: np.ndarray, texts: Sequence[str | None]) -> np.ndarray:
    """Between two groups: the smaller of the cosine distance of their mean vectors and one minus
    the word overlap (Jaccard; '...' ignored) of their wordings. Wordings that share most of their
    words ask for one task even where content left in a template skeleton moves the embedding."""
    from scipy.sparse import csr_matrix

    means = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
    np.add.at(means, group_of, vectors)
    means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    distances = 1.0 - means @ means.T
    vocabulary: dict[str, int] = {}
    cells = [(row, vocabulary.setdefault(word, len(vocabulary)))
             for row, text in enumerate(texts) if text is not None
             for word in set(text.split()) - {GAP}]
    if not cells:
        return distances
    rows, cols = np.array(cells, dtype=np.int64).T
    words = csr_matrix((np.ones(len(cells), dtype=np.float32), (rows, cols)), shape=(len(texts), len(vocabulary)))
    counts = np.asarray(words.sum(axis=1), dtype=np.float32).ravel()
    overlap = (words @ words.T).toarray()  # shared words, then Jaccard, in place (memory: 3 n^2 floats)
    union = np.add.outer(counts, counts)
    union -= overlap
    np.divide(overlap, union, out=overlap, where=union > 0)
    del union
    return np.minimum(distances, 1.0 - overlap, out=distances)


def _answers_agree(a: Counter[str], b: Counter[str], forms_a: Counter[str], forms_b: Counter[str]) -> bool:
    """Whether two clusters' outputs (normalised answer -> count) may come from one task.

    No, when their answer forms (`_form`: yes/no, a letter, a number, text) overlap by under
    `ANSWER_AGREEMENT` (histogram intersection of the forms' shares), when both have at least
    `ANSWER_SPACE_MIN` outputs and their median answer lengths in words differ by more than
    `ANSWER_LENGTH_RATIO` times, or when one of them has a closed answer space (at least
    `ANSWER_SPACE_MIN` examples, outputs as few as a label balance: `_closed`) that the other's
    outputs mostly lie outside (fewer than `ANSWER_AGREEMENT` of them in it).
    """
    na, nb = a.total(), b.total()
    if sum(min(forms_a[f] / na, forms_b[f] / nb) for f in forms_a) < ANSWER_AGREEMENT:
        return False
    if min(na, nb) >= ANSWER_SPACE_MIN:
        short, long = sorted((_median_words(a), _median_words(b)))
        if long > ANSWER_LENGTH_RATIO * short:
            return False
    for space, other, n in ((a, b, nb), (b, a, na)):
        if _closed(space) and sum(other[answer] for answer in space) < ANSWER_AGREEMENT * n:
            return False
    return True


def _median_words(answers: Counter[str]) -> float:
    """The median length in words (at least 1) of a cluster's answers."""
    lengths = [max(1, len(answer.split())) for answer in answers]
    return float(np.median(np.repeat(lengths, list(answers.values()))))


def _shared_items(
    texts: Sequence[str], wordings: Sequence[str | None], group_of: np.ndarray
) -> list[tuple[int, int]]:
    """Pairs of rows of different groups that hold the same item (one review asked about in two ways).

    A row's item words are the words of its text outside its own wording that at most
    `ITEM_WORD_SHARE` of the rows hold (so template words a skeleton missed do not count); two rows
    hold the same item when each one's item words all occur in the other's text. A passage asked
    two different questions does not: each question's words are missing from the other.
    """
    words = [set(tokens(text)) for text in texts]
    frequency = Counter(word for row in words for word in row)
    most = max(2.0, ITEM_WORD_SHARE * len(texts))
    items = [
        {word for word in row - set((wording or "").split()) if frequency[word] <= most and _WORD.match(word)}
        for row, wording in zip(words, wordings)
    ]
    holders: dict[str, list[int]] = {}
    for r, row in enumerate(words):
        for word in row:
            if frequency[word] <= most:
                holders.setdefault(word, []).append(r)
    pairs = set()
    for r, item in enumerate(items):
        if not item:
            continue
        rarest = min(item, key=lambda word: (frequency[word], word))
        for s in holders[rarest]:
            if group_of[s] != group_of[r] and items[s] and item <= words[s] and items[s] <= words[r]:
                pairs.add((min(r, s), max(r, s)))
    return sorted(pairs)


def _items_agree(counts: list[int] | None) -> bool:
    """Whether two clusters may merge given [shared items answered alike, answered differently]:
    yes under `SHARED_ITEMS_MIN` shared items, else when `ITEM_AGREEMENT` of them are answered alike."""
    if counts is None or sum(counts) < SHARED_ITEMS_MIN:
        return True
    return counts[0] >= ITEM_AGREEMENT * sum(counts)


def _merge_shared(shared: list[dict[int, list[int]]], i: int, j: int) -> None:
    """Cluster j joins cluster i: j's shared-item counts with every other cluster become i's."""
    for k, counts in shared[j].items():
        del shared[k][j]
        if k == i:
            continue
        if k in shared[i]:
            shared[i][k][0] += counts[0]
            shared[i][k][1] += counts[1]
        else:
            shared[i][k] = shared[k][i] = counts
    shared[j] = {}


def _closed(answers: Counter[str]) -> bool:
    """At least `ANSWER_SPACE_MIN` outputs taking as few values as a label balance (`_task`)."""
    total = answers.total()
    return total >= ANSWER_SPACE_MIN and len(answers) <= min(MAX_OUTPUT_VALUES, total // 2)


def _form(answer: str) -> str:
    """The form of a normalised answer: yes/no, a letter, a number, or text."""
    if answer in _YES_NO:
        return "yes/no"
    if len(answer) == 1 and answer.isalpha():
        return "letter"
    return "number" if _NUMBER.fullmatch(answer) else "text"


def _task(pool: StoredPool, name: str, members: np.ndarray) -> Task:
    outputs = Counter(pool.examples[i].output for i in members)
    few = len(outputs) <= min(MAX_OUTPUT_VALUES, len(members) // 2)
    return Task(
        name=name,
        size=len(members),
        ids=[pool.examples[i].key for i in members],
        representative=pool.examples[members[0]].instruction,
        outputs=dict(outputs.most_common()) if few else None,
    )


def _names(pool: StoredPool, ordered: Sequence[np.ndarray]) -> list[str]:
    """Majority verb|noun label of each task's most central members, numbered where repeated."""
    from icl_retriever.labels import TaskLabeler

    texts = [_wording(pool, i) for m in ordered for i in m[:_LABELED_MEMBERS]]
    labels = iter([label.key for label in TaskLabeler().label_many(texts)])
    seen: Counter[str] = Counter()
    names = []
    for m in ordered:
        name = Counter(next(labels) for _ in m[:_LABELED_MEMBERS]).most_common(1)[0][0]
        seen[name] += 1
        names.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return names


def _wording(pool: StoredPool, i: int) -> str:
    """The text to label: a whole prompt's template words (its content would be parsed instead of
    its request), else the instruction."""
    text = pool.task_texts[i]
    if text is None or GAP not in text:
        return pool.examples[i].instruction
    return " ".join(part.strip(" .,:;") for part in text.split(GAP) if part.strip(" .,:;"))


def _agreement(examples: Sequence[Example], labels: np.ndarray) -> tuple[float | None, int | None]:
    from sklearn.metrics import adjusted_rand_score

    labeled = [i for i, e in enumerate(examples) if e.task is not None]
    if not labeled:
        return None, None
    gold = [examples[i].task for i in labeled]
    return float(adjusted_rand_score(gold, labels[labeled])), len(set(gold))


def _near_duplicates(pool: StoredPool, ordered: Sequence[np.ndarray]) -> list[list[str]]:
    """Groups of members of one task whose content vectors are near-identical (chunked, per task)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    found = []
    for members in ordered:
        vectors = pool.content_vectors[members]
        rows, cols = [], []
        for start in range(0, len(members), _CHUNK):
            close = np.triu(vectors[start : start + _CHUNK] @ vectors.T >= DUPLICATE_SIMILARITY, k=start + 1)
            r, c = np.nonzero(close)
            rows.append(r + start)
            cols.append(c)
        r, c = np.concatenate(rows), np.concatenate(cols)
        if not len(r):
            continue
        graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(len(members), len(members)))
        _, component = connected_components(graph, directed=False)
        for number in np.flatnonzero(np.bincount(component) > 1):
            found.append(sorted(pool.examples[members[i]].key for i in np.flatnonzero(component == number)))
    return sorted(found)


def _round_robin(task_map: TaskMap, n: int) -> list[str]:
    """The r-th most central member of every task in round r; singletons join the first round."""
    queues = [task.ids for task in task_map.tasks[: task_map.n_tasks]]
    if len(task_map.tasks) > task_map.n_tasks:
        queues += [[key] for key in task_map.tasks[-1].ids]
    order = [queue[r] for r in range(max(map(len, queues))) for queue in queues if r < len(queue)]
    return order[:n]


def _farthest(vectors: np.ndarray, n: int) -> list[int]:
    """Farthest-point sampling under cosine distance, from the row nearest the mean direction."""
    chosen = [int(np.argmax(vectors @ _unit(vectors.mean(axis=0))))]
    nearest = vectors @ vectors[chosen[0]]  # similarity to the closest chosen row
    for _ in range(n - 1):
        nearest[chosen[-1]] = np.inf  # never pick a row twice, even among identical vectors
        pick = int(np.argmin(nearest))
        chosen.append(pick)
        nearest = np.maximum(nearest, vectors @ vectors[pick])
    return chosen


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)
