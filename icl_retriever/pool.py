"""Reading pool files (JSONL or a JSON array) into validated examples.

Every problem is reported with file, line, field and reason. By default one bad record fails the
whole load, so nothing partial reaches the store; `skip_invalid=True` keeps the good records and
lists the rest. A file is a JSON array only if the whole file parses as one array; otherwise each
line holds one JSON object (JSONL). A leading UTF-8 BOM and CRLF line endings are accepted.
"""

from __future__ import annotations

import codecs
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from icl_retriever.errors import PoolFormatError
from icl_retriever.example import Example, json_type_name, non_finite_message

DEFAULT_MAX_FIELD_CHARS = 20_000
_MAX_ISSUES_IN_MESSAGE = 20
_JSON_SPACE = b" \t\r\n"
_JSON_SPACE_CHARS = " \t\r\n"


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
            is invalid. The message lists each bad record as `file:line: field 'x': reason`. A file
            that starts with '[' but is neither a JSON array nor JSONL fails even with `skip_invalid`,
            since its records cannot be told apart.
    """
    path = Path(path)
    records, issues = _parse_records(_read_bytes(path, "pool file"), str(path))
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


def read_records(path: str | Path, kind: str = "pool file") -> list[tuple[int, Any]]:
    """(line number, parsed JSON value) of each record of a JSONL or JSON-array file, read as
    `load_pool` reads it, for files whose records are not pool examples (the ICL benchmark's rows).

    Raises:
        PoolFormatError: the file is unreadable, or records are not JSON (each as `file:line: reason`).
    """
    path = Path(path)
    records, issues = _parse_records(_read_bytes(path, kind), str(path))
    if issues:
        shown = "\n".join(f"  {issue}" for issue in issues[:_MAX_ISSUES_IN_MESSAGE])
        raise PoolFormatError(f"{path} has {len(issues)} line(s) that are not JSON:\n{shown}")
    return records


def _read_bytes(path: Path, kind: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PoolFormatError(f"Cannot read {kind} {path}: {exc.strerror}.") from exc


def write_pool(path: str | Path, examples: Sequence[Example]) -> None:
    """Write examples as JSONL that `load_pool` reads back (fields left unset are omitted)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(json.dumps(example.model_dump(exclude_none=True), ensure_ascii=False) + "\n")


def _parse_records(raw: bytes, path: str) -> tuple[list[tuple[int, Any]], list[PoolIssue]]:
    """Split the file into (line number, parsed JSON value) pairs.

    The file is a JSON array only if the whole file parses as one; otherwise it is JSONL. A file that
    starts with '[' but is neither (say a pretty-printed array with a missing comma) is a broken array.
    """
    raw = raw.removeprefix(codecs.BOM_UTF8)
    if raw.lstrip(_JSON_SPACE)[:1] == b"[":
        records, issue = _parse_json_array(raw, path)
        if issue is None:
            return records, []
        if not _first_line_is_json(raw):
            raise PoolFormatError(
                f"{path} starts with '[' but is not a valid JSON array; nothing was indexed.\n  {issue}\n"
                "Fix the JSON there, or write one JSON object per line (JSONL)."
            )
    return _parse_jsonl(raw, path)


def _parse_jsonl(raw: bytes, path: str) -> tuple[list[tuple[int, Any]], list[PoolIssue]]:
    records: list[tuple[int, Any]] = []
    issues: list[PoolIssue] = []
    for number, line_bytes in enumerate(raw.split(b"\n"), start=1):
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            issues.append(PoolIssue(path, number, None, _utf8_reason(exc, exc.start + 1)))
            continue
        if not line.strip():
            continue
        try:
            records.append((number, json.loads(line)))
        except (ValueError, RecursionError) as exc:
            issues.append(PoolIssue(path, number, None, _json_reason(exc)))
    return records, issues


def _parse_json_array(raw: bytes, path: str) -> tuple[list[tuple[int, Any]], PoolIssue | None]:
    """Parse a whole-file JSON array element by element so each record keeps its line number.

    Returns the records, and the first problem that stops the file from being one JSON array.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = raw.count(b"\n", 0, exc.start) + 1, exc.start - raw.rfind(b"\n", 0, exc.start)
        return [], PoolIssue(path, line, None, _utf8_reason(exc, column))
    decoder = json.JSONDecoder()
    records: list[tuple[int, Any]] = []
    line, counted = 1, 0  # line number of text[counted]

    def line_at(index: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, index)
        counted = index
        return line

    def issue_at(index: int, reason: str) -> PoolIssue:
        column = index - text.rfind("\n", 0, index)
        return PoolIssue(path, line_at(index), None, f"invalid JSON array: {reason} (column {column})")

    position = _skip_space(text, text.index("[") + 1)
    if text.startswith("]", position):
        position += 1
    else:
        while True:
            start = position
            try:
                value, position = decoder.raw_decode(text, position)
            except json.JSONDecodeError as exc:
                return records, issue_at(exc.pos, exc.msg)
            except (ValueError, RecursionError) as exc:
                return records, PoolIssue(path, line_at(start), None, _json_reason(exc))
            records.append((line_at(start), value))
            position = _skip_space(text, position)
            if text.startswith(",", position):
                position = _skip_space(text, position + 1)
            elif text.startswith("]", position):
                position += 1
                break
            else:
                return records, issue_at(position, "expected ',' or ']'")
    position = _skip_space(text, position)
    if position < len(text):
        return records, issue_at(position, "more content after the closing ']'")
    return records, None


def _first_line_is_json(raw: bytes) -> bool:
    """Whether the first non-blank line is a complete JSON value on its own (so the file may be JSONL)."""
    first = next(line for line in raw.split(b"\n") if line.strip(_JSON_SPACE))
    try:
        json.loads(first.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return False
    return True


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in _JSON_SPACE_CHARS:
        index += 1
    return index


def _utf8_reason(exc: UnicodeDecodeError, column: int) -> str:
    return f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at column {column}); save the file as UTF-8"


def _json_reason(exc: ValueError | RecursionError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} (column {exc.colno})"
    if isinstance(exc, RecursionError):
        return "invalid JSON: nested too deeply"
    # Integers with thousands of digits: Python refuses to convert them.
    return f"invalid JSON: {str(exc).split(';')[0]}; store such a number as a string"


def _find_bad_value(record: dict[str, Any], max_field_chars: int) -> tuple[str, str] | None:
    """The first (field path, reason) of a value no field may hold: NaN/Infinity, or an over-long string."""
    stack: list[tuple[str, Any]] = [(str(name), value) for name, value in reversed(record.items())]
    while stack:
        name, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return name, non_finite_message(value)
        if isinstance(value, str) and len(value) > max_field_chars:
            return name, f"{len(value)} characters, over the limit of {max_field_chars}"
        if isinstance(value, dict):
            stack.extend((f"{name}.{key}", item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{name}.{index}", item) for index, item in reversed(list(enumerate(value))))
    return None


def _field_name(loc: tuple[int | str, ...]) -> str | None:
    """'metadata.lang' from a pydantic location; dict-key errors end in '[key]', which is dropped."""
    parts = ['""' if part == "" else str(part) for part in loc if part != "[key]"]
    return _printable(".".join(parts)) or None


def _printable(text: str) -> str:
    """Escape NUL, control characters and unpaired surrogates so a message can always be printed."""
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode() for char in text)


def _validate(record: Any, path: str, line: int, max_field_chars: int) -> tuple[Example | None, PoolIssue | None]:
    if not isinstance(record, dict):
        hint = (
            "; a file is read as a JSON array only when the whole file is one array, otherwise each line "
            "must hold one object"
            if isinstance(record, list)
            else ""
        )
        return None, PoolIssue(path, line, None, f"expected a JSON object, got {json_type_name(record)}{hint}")
    bad = _find_bad_value(record, max_field_chars)
    if bad is not None:
        return None, PoolIssue(path, line, _printable(bad[0]), bad[1])
    try:
        return Example.model_validate(record), None
    except ValidationError as exc:
        error = exc.errors()[0]
        reason = {
            "missing": "required field is missing",
            "extra_forbidden": "unknown field",
        }.get(error["type"], error["msg"])
        return None, PoolIssue(path, line, _field_name(error["loc"]), reason)
