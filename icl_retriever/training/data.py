"""Training data: task labels for `eft_train_unsup.json`, a dev split, and contrastive triplets.

Labels are computed once per (labeler version, file content) and cached under the run-time cache
(`icl_retriever.models.cache_dir()/labels/`), never in the repository.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from icl_retriever.labels import NONE, TaskLabeler
from icl_retriever.models import cache_dir


@dataclass(frozen=True)
class Labeled:
    """An instruction and its `verb|noun` task label."""

    instruction: str
    label: str


@dataclass(frozen=True)
class Triplet:
    """Anchor and positive share a label; the negative shares only its verb or its noun."""

    anchor: str
    positive: str
    negative: str
    label: str
    negative_label: str


def read_instructions(path: str | Path) -> list[str]:
    """The list of instruction strings in `eft_train_unsup.json` (or any JSON list of strings)."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise ValueError(f"{path} must hold a JSON list of instruction strings.")
    return data


def label_file(
    path: str | Path, labeler: TaskLabeler | None = None, *, limit: int | None = None, progress: bool = True
) -> list[Labeled]:
    """Label the instructions of a JSON list file (the first `limit` only, if given).

    The labels are cached, keyed by labeler version, file hash and limit.
    """
    path = Path(path)
    labeler = labeler or TaskLabeler()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    suffix = f"-first{limit}" if limit else ""
    cache = cache_dir() / "labels" / f"{path.stem}-v{labeler.version}-{digest}{suffix}.json"
    instructions = read_instructions(path)[:limit]
    if cache.is_file():
        labels = json.loads(cache.read_text())
    else:
        from tqdm.auto import tqdm

        labels = [
            label.key
            for label in tqdm(
                labeler.label_many(instructions), total=len(instructions), desc="labeling", disable=not progress
            )
        ]
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(labels))
        tmp.replace(cache)  # atomic: a killed run never leaves a half-written cache
    return [Labeled(text, label) for text, label in zip(instructions, labels, strict=True)]


def usable(examples: list[Labeled]) -> list[Labeled]:
    """Drop empty labels and duplicate instructions (duplicates would be trivial positives)."""
    seen: set[str] = set()
    out = []
    for ex in examples:
        key = " ".join(ex.instruction.lower().split())
        if ex.label == f"{NONE}|{NONE}" or ex.label.startswith(f"{NONE}|") or not key or key in seen:
            continue
        seen.add(key)
        out.append(ex)
    return out


def split_dev(examples: list[Labeled], n_dev: int, seed: int) -> tuple[list[Labeled], list[Labeled]]:
    """Hold out `n_dev` instructions for model selection, taken only from labels with >= 4 members
    so that every dev query has a same-label partner in dev and its label still trains."""
    by_label: dict[str, list[Labeled]] = defaultdict(list)
    for ex in examples:
        by_label[ex.label].append(ex)
    rng = random.Random(seed)
    big = sorted(label for label, members in by_label.items() if len(members) >= 4)
    rng.shuffle(big)
    dev: list[Labeled] = []
    for label in big:
        if len(dev) >= n_dev:
            break
        members = by_label[label][:]
        rng.shuffle(members)
        take = max(2, len(members) // 4)
        dev.extend(members[:take])
    dev_set = {id(ex) for ex in dev}
    return [ex for ex in examples if id(ex) not in dev_set], dev


def make_triplets(examples: list[Labeled], seed: int, *, max_per_label: int = 64) -> list[Triplet]:
    """One triplet per anchor whose label has another member.

    The hard negative shares the verb (other noun) or the noun (other verb), chosen at random
    between the two when both exist; else any other label. `max_per_label` caps frequent labels
    (`write|poem`...) so they do not dominate the batches.
    """
    rng = random.Random(seed)
    by_label: dict[str, list[str]] = defaultdict(list)
    for ex in examples:
        by_label[ex.label].append(ex.instruction)
    by_verb: dict[str, list[str]] = defaultdict(list)
    by_noun: dict[str, list[str]] = defaultdict(list)
    for label in by_label:
        verb, _, noun = label.partition("|")
        by_verb[verb].append(label)
        by_noun[noun].append(label)
    labels = sorted(by_label)
    triplets = []
    for label in labels:
        members = by_label[label]
        if len(members) < 2:
            continue
        verb, _, noun = label.partition("|")
        same_verb = [x for x in by_verb[verb] if x != label]
        same_noun = [x for x in by_noun[noun] if x != label and noun != NONE]
        anchors = members[:]
        rng.shuffle(anchors)
        for i, anchor in enumerate(anchors[:max_per_label]):
            positive = anchors[(i + 1 + rng.randrange(len(anchors) - 1)) % len(anchors)]
            pools = [p for p in (same_verb, same_noun) if p]
            negative_label = rng.choice(rng.choice(pools)) if pools else rng.choice(labels)
            while negative_label == label:
                negative_label = rng.choice(labels)
            negative = rng.choice(by_label[negative_label])
            triplets.append(Triplet(anchor, positive, negative, label, negative_label))
    rng.shuffle(triplets)
    return triplets
