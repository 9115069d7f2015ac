"""Reading pool files (JSONL or a JSON array) into validated examples.

Every problem is reported with file, line, field and reason. By default one bad record fails the
whole load, so nothing partial reaches the store; `skip_invalid=True` keeps the good records and
lists the rest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from icl_retriever.errors import PoolFormatError
from icl_retriever.example import Example

DEFAULT_MAX_FIELD_CHARS = 20_000
_MAX_ISSUES_IN_MESSAGE = 20


@dataclass(frozen=True)
class PoolIssue:
    """One rejected record."""

    path: str
    line: int
    field: str | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}"
        return f"{where}: field '{self.field}': {self.reason}" if self.field else f"{where}: {self.reason}"


@dataclass
class PoolLoad:
    """The examples read from a pool, and the records skipped (only with skip_invalid)."""

    examples: list[Example]
    skipped: list[PoolIssue] = field(default_factory=list)
    duplicates: int = 0


def load_pool(
    path: str | Path, *, skip_invalid: bool = False, max_field_chars: int = DEFAULT_MAX_FIELD_CHARS
) -> PoolLoad:
    """Read and validate a pool file.

    Raises:
        PoolFormatError: the file is missing or unreadable, or (without `skip_invalid`) any record
            is invalid. The message lists each bad record as `file:line: field 'x': reason`.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PoolFormatError(f"Cannot read pool file {path}: {exc.strerror}.") from exc

    records, issues = _parse_records(raw, str(path))
    examples: list[Example] = []
    seen: dict[str, tuple[int, str]] = {}
    duplicates = 0
    for line, record in records:
        example, issue = _validate(record, str(path), line, max_field_chars)
        if issue is not None:
            issues.append(issue)
            continue
        assert example is not None
        previous = seen.get(example.key)
        if previous is not None:
            if previous[1] == example.content_hash:
                duplicates += 1
                continue
            issues.append(
                PoolIssue(str(path), line, "id", f"duplicate id '{example.key}' (first on line {previous[0]})")
            )
            continue
        seen[example.key] = (line, example.content_hash)
        examples.append(example)

    issues.sort(key=lambda issue: issue.line)
    if issues and not skip_invalid:
        shown = "\n".join(f"  {issue}" for issue in issues[:_MAX_ISSUES_IN_MESSAGE])
        more = len(issues) - _MAX_ISSUES_IN_MESSAGE
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise PoolFormatError(
            f"{path} has {len(issues)} invalid record(s); nothing was indexed.\n{shown}{tail}\n"
            "Fix these records, or pass --skip-invalid to index the valid ones."
        )
    if not examples and not issues:
        raise PoolFormatError(f"{path} contains no records.")
    return PoolLoad(examples=examples, skipped=issues, duplicates=duplicates)


def _parse_records(raw: bytes, path: str) -> tuple[list[tuple[int, Any]], list[PoolIssue]]:
    """Split the file into (line number, parsed JSON value) pairs."""
    if raw.lstrip()[:1] == b"[":
        return _parse_json_array(raw, path)
    records: list[tuple[int, Any]] = []
    issues: list[PoolIssue] = []
    for number, line_bytes in enumerate(raw.split(b"\n"), start=1):
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            issues.append(PoolIssue(path, number, None, f"not valid UTF-8 (byte {exc.start})"))
            continue
        if not line.strip():
            continue
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            issues.append(PoolIssue(path, number, None, f"invalid JSON: {exc.msg} at column {exc.colno}"))
    return records, issues


def _parse_json_array(raw: bytes, path: str) -> tuple[list[tuple[int, Any]], list[PoolIssue]]:
    """Parse a JSON array element by element so each record keeps its line number."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return [], [PoolIssue(path, line, None, f"not valid UTF-8 (byte {exc.start})")]
    decoder = json.JSONDecoder()
    records: list[tuple[int, Any]] = []
    position = text.index("[") + 1

    def skip_space(index: int) -> int:
        while index < len(text) and text[index].isspace():
            index += 1
        return index

    position = skip_space(position)
    if position < len(text) and text[position] == "]":
        return [], []
    while True:
        line = text.count("\n", 0, position) + 1
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            return records, [PoolIssue(path, exc.lineno, None, f"invalid JSON: {exc.msg} at column {exc.colno}")]
        records.append((line, value))
        position = skip_space(position)
        if position < len(text) and text[position] == ",":
            position = skip_space(position + 1)
            continue
        if position < len(text) and text[position] == "]":
            return records, []
        line = text.count("\n", 0, position) + 1
        return records, [PoolIssue(path, line, None, "invalid JSON array: expected ',' or ']'")]


def _validate(record: Any, path: str, line: int, max_field_chars: int) -> tuple[Example | None, PoolIssue | None]:
    if not isinstance(record, dict):
        return None, PoolIssue(path, line, None, f"expected a JSON object, got {type(record).__name__}")
    for name, value in record.items():
        if isinstance(value, str) and len(value) > max_field_chars:
            return None, PoolIssue(
                path, line, name, f"{len(value)} characters, over the limit of {max_field_chars}"
            )
    try:
        return Example.model_validate(record), None
    except ValidationError as exc:
        error = exc.errors()[0]
        field_name = ".".join(str(part) for part in error["loc"]) or None
        reason = {
            "missing": "required field is missing",
            "extra_forbidden": "unknown field",
        }.get(error["type"], error["msg"])
        return None, PoolIssue(path, line, field_name, reason)
