"""The ICL benchmark's inputs: pool rows with their gold answers, query ids and reworded requests.

Files are read by the library's reader (`icl_retriever.pool.read_records`: JSONL or a JSON array,
errors with file and line); each row becomes the library `Example` the selectors see, plus what
only scoring and reporting read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from icl_retriever.bench.scoring import Metric
from icl_retriever.errors import IclRetrieverError, PoolFormatError
from icl_retriever.example import Example


@dataclass(frozen=True)
class IclRow:
    """A pool row: the example the selectors see, plus what only scoring and reporting read."""

    example: Example
    answers: tuple[str, ...]
    metric: Metric | None
    task: str
    family: str
    collection: str

    @property
    def id(self) -> str:
        return self.example.key


def row_to_example(record: dict[str, Any]) -> Example:
    """An iclmix row as a library Example: output = first accepted answer.

    T0/P3 rows carry their instruction inside `input` and leave `instruction` empty; Example
    requires an instruction, so the input moves there. Every strategy sees the same text either
    way: the embedders and BM25 look at instruction and input joined, PIE at the input when the
    instruction is empty.
    """
    instruction, text_input = record["instruction"], record.get("input", "")
    if not instruction.strip():
        instruction, text_input = text_input, ""
    return Example(
        instruction=instruction,
        input=text_input,
        output=record["answers"][0],
        id=record["id"],
        task=record.get("task"),
        metadata={name: record[name] for name in ("family", "collection", "role") if name in record},
    )


def load_rows(path: str | Path) -> dict[str, IclRow]:
    """Read an iclmix-style pool (JSONL or a JSON array, read by `icl_retriever.pool.read_records`)
    into rows keyed by id (file order kept).

    Raises:
        PoolFormatError: unreadable file, bad JSON, a missing field or a duplicate id, with the line.
    """
    from icl_retriever.pool import read_records

    rows: dict[str, IclRow] = {}
    for number, record in read_records(path):
        try:
            answers = record["answers"]
            if not isinstance(answers, list) or not answers:
                raise ValueError("'answers' must be a non-empty list of strings")
            row = IclRow(
                example=row_to_example(record),
                answers=tuple(answers),
                metric=record.get("metric"),
                task=record["task"],
                family=record.get("family", ""),
                collection=record.get("collection", ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise PoolFormatError(
                f"{path}:{number}: not an ICL benchmark row ({detail}). Expected a JSON object with "
                "id, task, instruction, input and answers (a list of accepted answers)."
            ) from exc
        if row.id in rows:
            raise PoolFormatError(f"{path}:{number}: duplicate id '{row.id}'.")
        rows[row.id] = row
    if not rows:
        raise PoolFormatError(f"{path} contains no rows.")
    return rows


def read_requests(path: str | Path) -> dict[str, tuple[str, str]]:
    """Other wordings of queries: JSONL (or a JSON array) `{id, instruction, input}` -> {id: (instruction, input)}.

    Raises:
        IclRetrieverError: unreadable file, bad JSON, a missing or non-string field, a repeated id.
    """
    from icl_retriever.pool import read_records

    requests: dict[str, tuple[str, str]] = {}
    for number, record in read_records(path, "requests file"):
        if not isinstance(record, dict):
            raise IclRetrieverError(f"{path}:{number}: expected a JSON object with id, instruction and input.")
        for field in ("id", "instruction", "input"):
            if not isinstance(record.get(field), str):
                raise IclRetrieverError(
                    f"{path}:{number}: field '{field}' must be a string, got {record.get(field)!r}. "
                    "Each line is {\"id\": ..., \"instruction\": ..., \"input\": ...}."
                )
        if record["id"] in requests:
            raise IclRetrieverError(f"{path}:{number}: duplicate id '{record['id']}'.")
        requests[record["id"]] = (record["instruction"], record["input"])
    return requests


def reworded(row: IclRow, instruction: str, text_input: str) -> IclRow:
    """The query row asked in other words: same id, answers and task; the request text replaced."""
    example = row_to_example(
        {"instruction": instruction, "input": text_input, "answers": [row.example.output], "id": row.id, "task": row.task}
    )
    return replace(row, example=example.model_copy(update={"metadata": row.example.metadata}))


def read_query_ids(path: str | Path) -> list[str]:
    """Query ids, one per line (blank lines and `#` comments ignored)."""
    try:
        lines = Path(path).read_text("utf-8").splitlines()
    except OSError as exc:
        raise IclRetrieverError(f"Cannot read query id file {path}: {exc.strerror}.") from exc
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def file_digest(path: str | Path) -> str:
    """Short SHA-256 of a file's bytes: the pool part of the embedding-cache key."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
