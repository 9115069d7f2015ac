"""IEB intrinsic metrics for an embedder: instruction clustering (ICT), intention similarity (IIS)
and task-match retrieval.

- ICT: k-means (k = number of tasks, fixed seed) over `eft_test.json` instructions; ARI, purity,
  homogeneity against the gold task keys.
- IIS: Spearman correlation of cosine similarity with the same-task label of
  `intention_similarity_test.json` pairs (the ceiling for a binary label is about 0.848).
- Retrieval: leave-one-out over `ift_test_alpaca_style.json` for queries whose task has another
  example: match@1 (the nearest other instruction has the query's label), hit@2 (one of the two
  nearest has it). 193 of its 1,336 instructions occur in `eft_train_unsup.json` (ignoring case
  and spacing), which a trained embedder has seen: `retrieval_unseen` is the same measure over the
  other rows alone (the seen rows are neither queries nor candidates).

Every text goes through `embedder.text_for(instruction, input)`, so PIE embeds the instruction
and the semantic baseline instruction + input; the task embedder gets both of its views.

Example:
    >>> from icl_retriever.embedders import load_embedder
    >>> evaluate_ieb(load_embedder("semantic"), "../shared/data/ieb")["ict"]["ari"]  # doctest: +SKIP
    0.48
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from icl_retriever.embedders import Embedder
from icl_retriever.errors import IclRetrieverError

SEED = 0
ICT_FILE = "eft_test.json"
IIS_FILE = "intention_similarity_test.json"
RETRIEVAL_FILE = "ift_test_alpaca_style.json"
#: The unlabeled training instructions (`icl-retriever train`), read to find test rows seen in training.
TRAIN_FILE = "eft_train_unsup.json"


def _read(data_dir: Path, name: str) -> Any:
    path = data_dir / name
    if not path.is_file():
        raise IclRetrieverError(f"IEB file {path} is missing; pass --data with the folder that holds {name}.")
    return json.loads(path.read_text())


def _embed(embedder: Embedder, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    from icl_retriever.lexical import task_text
    from icl_retriever.task_embedder import TaskEmbedder

    texts = [embedder.text_for(instruction, inp) for instruction, inp in pairs]
    if isinstance(embedder, TaskEmbedder):
        # IEB has no pool to find templates in: the task view is the instruction (tokenised).
        return embedder.embed_views([task_text(instruction, inp) for instruction, inp in pairs], texts)
    return embedder.embed_documents(texts)


def clustering_metrics(vectors: np.ndarray, labels: Sequence[str], seed: int = SEED) -> dict[str, float]:
    """k-means with k = number of distinct labels; ARI, purity and homogeneity."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, homogeneity_score
    from sklearn.metrics.cluster import contingency_matrix

    k = len(set(labels))
    clusters = KMeans(n_clusters=k, random_state=seed, n_init=10).fit_predict(vectors)
    table = contingency_matrix(labels, clusters)
    return {
        "ari": float(adjusted_rand_score(labels, clusters)),
        "purity": float(table.max(axis=0).sum() / table.sum()),
        "homogeneity": float(homogeneity_score(labels, clusters)),
    }


def retrieval_metrics(vectors: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """Leave-one-out match@1 / hit@2 over items whose label occurs at least twice."""
    label_array = np.asarray(labels)
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    queries = np.array([i for i, label in enumerate(labels) if counts[label] > 1])
    sims = vectors[queries] @ vectors.T
    sims[np.arange(len(queries)), queries] = -np.inf  # leave the query out
    top = np.argsort(-sims, axis=1)[:, :2]
    same = label_array[top] == label_array[queries][:, None]
    return {"match@1": float(same[:, 0].mean()), "hit@2": float(same.any(axis=1).mean()), "queries": int(len(queries))}


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def unseen_mask(instructions: Sequence[str], training: Sequence[str]) -> np.ndarray:
    """True for each instruction that does not occur in `training`, ignoring case and spacing."""
    seen = {_normalise(text) for text in training}
    return np.array([_normalise(text) not in seen for text in instructions], dtype=bool)


def evaluate_ieb(embedder: Embedder, data_dir: str | Path, seed: int = SEED) -> dict[str, Any]:
    """All IEB metrics of an embedder: {"ict", "iis", "retrieval", "retrieval_unseen"}, each a dict."""
    from scipy.stats import spearmanr

    data_dir = Path(data_dir)
    ict = _read(data_dir, ICT_FILE)
    samples = [(key, s) for key, task in ict.items() for s in task["samples"]]
    # ICT embeds the instruction alone: eft_test inputs repeat the instruction text.
    ict_vectors = _embed(embedder, [(s["instruction"], "") for _, s in samples])
    ict_metrics = clustering_metrics(ict_vectors, [key for key, _ in samples], seed)

    pairs = _read(data_dir, IIS_FILE)
    left = _embed(embedder, [(p["instruction1"], "") for p in pairs])
    right = _embed(embedder, [(p["instruction2"], "") for p in pairs])
    cosine = (left * right).sum(axis=1)
    spearman = float(spearmanr(cosine, [p["label"] for p in pairs]).statistic)

    rows = _read(data_dir, RETRIEVAL_FILE)
    vectors = _embed(embedder, [(r["instruction"], r.get("input", "")) for r in rows])
    labels = [str(r["label"]) for r in rows]
    unseen = unseen_mask([r["instruction"] for r in rows], _read(data_dir, TRAIN_FILE))
    return {
        "ict": ict_metrics,
        "iis": {"spearman": spearman},
        "retrieval": retrieval_metrics(vectors, labels),
        "retrieval_unseen": {
            **retrieval_metrics(vectors[unseen], [label for label, keep in zip(labels, unseen) if keep]),
            "rows_seen_in_training": int((~unseen).sum()),
        },
    }


def results_markdown(results: dict[str, dict[str, Any]]) -> str:
    """One row per embedder: ICT ARI / purity / homogeneity, IIS Spearman, match@1, hit@2 (all ift
    rows, then the rows not seen in training)."""
    from icl_retriever.bench._report import format_value, markdown_table

    headers = [
        "embedder", "ICT ARI", "purity", "homogeneity", "IIS Spearman",
        "match@1", "hit@2", "match@1 unseen", "hit@2 unseen",
    ]
    rows = [
        [
            name,
            format_value(m["ict"]["ari"]),
            format_value(m["ict"]["purity"]),
            format_value(m["ict"]["homogeneity"]),
            format_value(m["iis"]["spearman"]),
            format_value(m["retrieval"]["match@1"]),
            format_value(m["retrieval"]["hit@2"]),
            format_value(m["retrieval_unseen"]["match@1"]),
            format_value(m["retrieval_unseen"]["hit@2"]),
        ]
        for name, m in results.items()
    ]
    return markdown_table(headers, rows)


def write_results(out: str | Path, results: dict[str, dict[str, Any]], header: dict[str, Any]) -> list[Path]:
    """results.json (with provenance) and results.md in `out`."""
    from icl_retriever.bench._report import provenance_markdown, write_json, write_markdown

    out = Path(out)
    json_path = write_json(out / "results.json", {**header, "results": results})
    seen = {m["retrieval_unseen"]["rows_seen_in_training"] for m in results.values()}
    note = (
        f"match@1 / hit@2: leave-one-out over {RETRIEVAL_FILE}; *unseen*: the same without its "
        f"{', '.join(map(str, sorted(seen)))} rows whose instruction occurs in {TRAIN_FILE} (ignoring case and spacing)."
    )
    md = "# IEB\n\n" + results_markdown(results) + "\n\n" + note + "\n\n" + provenance_markdown(header)
    return [json_path, write_markdown(out / "results.md", md)]
