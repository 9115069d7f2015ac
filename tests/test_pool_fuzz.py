"""Malformed pool files: every one must fail with a PoolFormatError naming the file and the line.

A corpus of bad records is placed at each position of JSONL and JSON-array files, whole files are
truncated at every byte, and (when `hypothesis` is installed) random bytes and random edits of a valid
pool are loaded. Valid variants (BOM, CRLF, blank lines) must load exactly the right records.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from icl_retriever.errors import PoolFormatError
from icl_retriever.example import Example
from icl_retriever.pool import DEFAULT_MAX_FIELD_CHARS, load_pool

GOOD = [
    {"instruction": "Classify the sentiment.", "input": "Nice.", "output": "positive", "metadata": {"lang": "en"}},
    {"instruction": "Classify the sentiment.", "input": "Awful.", "output": "negative", "id": "n1"},
]
BASE = {"instruction": "Translate x.", "output": "y"}
TEXT_FIELDS = ["instruction", "input", "output", "id", "task"]
HUGE = "x" * (DEFAULT_MAX_FIELD_CHARS + 1)


def dumps(record: Any) -> bytes:
    return json.dumps(record).encode()


def bad_records() -> list[tuple[str, bytes, str]]:
    """(case id, one bad line, a fragment its issue must contain)."""
    cases: list[tuple[str, bytes, str]] = []
    good = dumps(GOOD[0])
    for cut in range(1, len(good), 4):  # truncated JSON
        cases.append((f"truncated-{cut}", good[:cut], "invalid JSON"))
    wrong_types: list[tuple[str, Any]] = [("int", 5), ("float", 1.5), ("list", ["a"]), ("object", {"a": 1})]
    wrong_types.append(("bool", True))
    for field in TEXT_FIELDS:
        for kind, value in wrong_types:
            cases.append((f"type-{field}-{kind}", dumps({**BASE, field: value}), f"field '{field}'"))
    for field in ["instruction", "input", "output"]:
        cases.append((f"type-{field}-null", dumps({**BASE, field: None}), f"field '{field}'"))
    places = [
        ("instruction", '{"instruction": %s, "output": "y"}'),
        ("output", '{"instruction": "x", "output": %s}'),
        ("id", '{"instruction": "x", "output": "y", "id": %s}'),
        ("metadata.v", '{"instruction": "x", "output": "y", "metadata": {"v": %s}}'),
        ("metadata.a.b", '{"instruction": "x", "output": "y", "metadata": {"a": {"b": %s}}}'),
        ("extra.1", '{"instruction": "x", "output": "y", "extra": [1, %s]}'),
    ]
    for constant in ["NaN", "Infinity", "-Infinity"]:
        for field, template in places:
            cases.append((f"{constant}-{field}", (template % constant).encode(), f"field '{field}': {constant} "))
    cases += [
        ("overflow-float", b'{"instruction": "x", "output": "y", "metadata": {"v": 1e999}}', "Infinity (or a number"),
        ("digits-5000", b'{"instruction": "x", "output": "y", "metadata": {"v": ' + b"7" * 5000 + b"}}", "4300 digits"),
        ("big-int", dumps({**BASE, "metadata": {"v": 2**53 + 1}}), "beyond ±2^53"),
        ("big-negative-int", dumps({**BASE, "metadata": {"v": -(2**63)}}), "beyond ±2^53"),
        ("deep-list", b"[" * 50_000, "nested too deeply"),
        ("deep-object", b'{"a":' * 50_000, "nested too deeply"),
        ("deep-metadata", dumps({**BASE, "metadata": {"a": {"b": {"c": [1, {"d": 2}]}}}}), "got an object"),
        ("metadata-list-value", dumps({**BASE, "metadata": {"a": [1, 2]}}), "got a list"),
        ("metadata-null-value", dumps({**BASE, "metadata": {"a": None}}), "got null"),
        ("metadata-not-object", dumps({**BASE, "metadata": [1]}), "field 'metadata'"),
        ("metadata-string", dumps({**BASE, "metadata": "lang=en"}), "field 'metadata'"),
        ("empty-key", dumps({**BASE, "metadata": {"": 1}}), "empty metadata key"),
        ("key-_example", dumps({**BASE, "metadata": {"_example": "{}"}}), "'_example' is reserved"),
        ("key-_hash", dumps({**BASE, "metadata": {"_hash": "0"}}), "'_hash' is reserved"),
        ("key-_private", dumps({**BASE, "metadata": {"_private": True}}), "rename it, e.g. to 'private'"),
        ("nul-metadata-key", dumps({**BASE, "metadata": {"a\x00": 1}}), "NUL character"),
        ("nul-metadata-value", dumps({**BASE, "metadata": {"a": "\x00"}}), "NUL character"),
        ("surrogate-metadata-value", dumps({**BASE, "metadata": {"a": "\udfff"}}), "unpaired surrogate"),
        ("huge-metadata-value", dumps({**BASE, "metadata": {"a": HUGE}}), "over the limit"),
        ("unknown-field", dumps({**BASE, "colour": "red"}), "unknown field"),
        ("missing-output", dumps({"instruction": "x"}), "required field is missing"),
        ("blank-instruction", dumps({**BASE, "instruction": "  "}), "must not be empty"),
        ("blank-id", dumps({**BASE, "id": " "}), "must not be empty"),
        ("record-list", b'[{"instruction": "x", "output": "y"}]', "got a list"),
        ("record-string", b'"instruction"', "got a string"),
        ("record-number", b"42", "got a number"),
        ("record-null", b"null", "got null"),
        ("record-true", b"true", "got a boolean"),
        ("two-records-one-line", dumps(BASE) + b" " + dumps(BASE), "invalid JSON"),
        ("trailing-comma", b'{"instruction": "x", "output": "y",}', "invalid JSON"),
        ("single-quotes", b"{'instruction': 'x', 'output': 'y'}", "invalid JSON"),
        ("duplicate-id", dumps({**BASE, "id": "n1"}), "duplicate id 'n1'"),
    ]
    for field in TEXT_FIELDS:
        cases.append((f"nul-{field}", dumps({**BASE, field: "a\x00b"}), f"field '{field}': contains a NUL"))
        cases.append((f"surrogate-{field}", dumps({**BASE, field: "a\ud83d"}), f"field '{field}': contains an"))
        cases.append((f"huge-{field}", dumps({**BASE, field: HUGE}), f"field '{field}': {len(HUGE)} characters"))
    invalid_utf8 = [b"\xff", b"\xc3", b"\xc3(", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80"]
    for index, sequence in enumerate(invalid_utf8):
        cases.append((f"utf8-{index}", b'{"instruction": "x' + sequence + b'", "output": "y"}', "not valid UTF-8"))
    return cases


class Case(NamedTuple):
    content: bytes
    name: str  # file name
    line: int | None  # line the issue must name; None: a valid file
    fragment: str = ""
    kept: int = 2  # records a valid file loads, or skip_invalid keeps
    skip_raises: bool = False  # a broken JSON array fails even with skip_invalid


def placements(case_id: str, bad: bytes, fragment: str) -> list[tuple[str, Case]]:
    """The bad record at each line of a JSONL file, in a CRLF file, and inside a pretty-printed array."""
    out = []
    for position in range(3):
        lines = [dumps(GOOD[0]), dumps(GOOD[1])]
        lines.insert(position, bad)
        # A broken first line that starts with '[' makes the file a broken JSON array.
        broken_array = position == 0 and bad.lstrip().startswith(b"[") and not parses(bad)
        # The id 'n1' is only a duplicate when it follows the first 'n1'.
        line = 3 if case_id == "duplicate-id" and position < 2 else position + 1
        content = b"\n".join(lines)
        out.append((f"line-{position + 1}", Case(content, "p.jsonl", line, fragment, 2, broken_array)))
    crlf = b"\r\n".join([dumps(GOOD[0]), bad, b"", dumps(GOOD[1])]) + b"\r\n"
    out.append(("crlf", Case(crlf, "p.jsonl", 4 if case_id == "duplicate-id" else 2, fragment)))
    array = b"[\n" + dumps(GOOD[0]) + b",\n" + bad + b",\n" + dumps(GOOD[1]) + b"\n]\n"
    if parses(bad):  # the element on line 3
        out.append(("array", Case(array, "p.json", 4 if case_id == "duplicate-id" else 3, fragment)))
    else:  # invalid JSON inside the array: the parser stops on line 3, or at the start of line 4
        out.append(("array", Case(array, "p.json", -1, fragment, 0, True)))
    return out


def truncated_array_files() -> list[tuple[str, Case]]:
    array = json.dumps(GOOD, indent=2).encode()
    cuts = [array[:cut] for cut in range(1, len(array) - 1, 3)]  # everything before the closing ']'
    return [(f"cut-{len(text)}", Case(text, "p.json", text.count(b"\n") + 1, "invalid JSON", 0, True)) for text in cuts]


def truncated_jsonl_files() -> list[tuple[str, Case]]:
    out = []
    jsonl = dumps(GOOD[0]) + b"\n" + dumps(GOOD[1]) + b"\n"
    for cut in range(1, len(jsonl), 3):
        text = jsonl[:cut]
        last, complete = text.rsplit(b"\n", 1)[-1], text.count(b"\n")
        if not last or parses(last):
            out.append((f"cut-{cut}", Case(text, "p.jsonl", None, "", complete + (1 if last else 0))))
        else:
            out.append((f"cut-{cut}", Case(text, "p.jsonl", complete + 1, "invalid JSON", complete)))
    return out


def structural_cases() -> list[tuple[str, Case]]:
    bom = b"\xef\xbb\xbf"
    array = json.dumps(GOOD, indent=2).encode()
    jsonl = dumps(GOOD[0]) + b"\n" + dumps(GOOD[1])
    no_comma = array.replace(b"},", b"}", 1)
    bad_utf8 = bom + array.replace(b"Nice.", b"Nic\xff.")
    return [
        ("array-then-jsonl", Case(dumps([GOOD[0]]) + b"\n" + dumps(GOOD[1]), "p.jsonl", 1, "got a list", 1)),
        ("jsonl-then-array", Case(dumps(GOOD[0]) + b"\n" + dumps([GOOD[1]]), "p.jsonl", 2, "got a list", 1)),
        ("pretty-array-then-jsonl", Case(array + b"\n" + dumps(BASE), "p.json", array.count(b"\n") + 2,
                                         "more content after the closing ']'", 0, True)),
        ("array-twice", Case(array + array, "p.json", array.count(b"\n") + 1, "more content", 0, True)),
        ("array-missing-comma", Case(no_comma, "p.json", no_comma[: no_comma.rindex(b"  {")].count(b"\n") + 1,
                                     "expected ',' or ']'", 0, True)),
        ("array-open-only", Case(b"[\n" + jsonl, "p.json", 3, "expected ',' or ']'", 0, True)),
        ("array-bom-bad-utf8", Case(bad_utf8, "p.json", 4, "not valid UTF-8", 0, True)),
        ("bom-jsonl-bad-second", Case(bom + dumps(GOOD[0]) + b"\n{", "p.jsonl", 2, "invalid JSON", 1)),
        ("bom-on-second-line", Case(dumps(GOOD[0]) + b"\n" + bom + dumps(GOOD[1]), "p.jsonl", 2, "invalid JSON", 1)),
        ("object-not-array", Case(json.dumps(GOOD[0], indent=2).encode(), "p.jsonl", 1, "invalid JSON", 0)),
        ("valid-bom-array", Case(bom + array, "p.json", None)),
        ("valid-bom-jsonl", Case(bom + jsonl, "p.jsonl", None)),
        ("valid-crlf-array", Case(array.replace(b"\n", b"\r\n"), "p.json", None)),
        ("valid-crlf-jsonl", Case(jsonl.replace(b"\n", b"\r\n") + b"\r\n", "p.jsonl", None)),
        ("valid-bom-crlf-jsonl", Case(bom + jsonl.replace(b"\n", b"\r\n\r\n"), "p.jsonl", None)),
        ("valid-one-line-array", Case(b"  " + dumps(GOOD) + b"\n\n", "p.json", None)),
        ("valid-exact-duplicates", Case(jsonl + b"\n" + jsonl, "p.jsonl", None)),
    ]


def parses(line: bytes) -> bool:
    try:
        json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):
        return False
    return True


# Groups of (case id, pool file), one test each.
GROUPS: list[tuple[str, list[tuple[str, Case]]]] = [
    *((case_id, placements(case_id, bad, fragment)) for case_id, bad, fragment in bad_records()),
    ("truncated-array-file", truncated_array_files()),
    ("truncated-jsonl-file", truncated_jsonl_files()),
    *((case_id, [(case_id, case)]) for case_id, case in structural_cases()),
]
MALFORMED = [case for _, group in GROUPS for _, case in group if case.line is not None]


def test_the_corpus_is_large():
    assert len(MALFORMED) >= 200


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.parametrize("group_id, group", GROUPS, ids=[group_id for group_id, _ in GROUPS])
def test_malformed_pools_fail_with_file_and_line(folder: Path, group_id: str, group: list[tuple[str, Case]]) -> None:
    for case_id, case in group:
        pool = folder / group_id / case_id / case.name
        pool.parent.mkdir(parents=True)
        pool.write_bytes(case.content)
        check(pool, case, f"{group_id}/{case_id}")


def check(pool: Path, case: Case, where: str) -> None:
    if case.line is None:
        examples = load_pool(pool).examples
        assert examples == [Example.model_validate(record) for record in GOOD[: case.kept]], where
        return
    with pytest.raises(PoolFormatError) as info:
        load_pool(pool)
    message = str(info.value)
    lines = re.findall(rf"{re.escape(case.name)}:(\d+): ", message)
    assert lines, (where, message)
    expected = {"3", "4"} if case.line == -1 else {str(case.line)}
    assert expected & set(lines), (where, message)
    assert case.fragment in message, (where, message)
    if case.skip_raises:
        with pytest.raises(PoolFormatError, match="is not a valid JSON array"):
            load_pool(pool, skip_invalid=True)
    else:
        loaded = load_pool(pool, skip_invalid=True)
        assert (len(loaded.examples), len(loaded.skipped)) == (case.kept, len(lines)), where


try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    HAVE_HYPOTHESIS = True
except ImportError:  # `pip install -e .[dev]` installs it
    HAVE_HYPOTHESIS = False

if HAVE_HYPOTHESIS:
    SETTINGS = settings(
        max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    VALID = (dumps(GOOD[0]) + b"\n" + dumps(GOOD[1]), json.dumps(GOOD, indent=2).encode())

    def check_any_file(path: Path, content: bytes) -> None:
        path.write_bytes(content)
        try:
            load_pool(path)
        except PoolFormatError as exc:
            message = str(exc)
            if "contains no records" not in message:
                lines = [int(n) for n in re.findall(rf"{re.escape(path.name)}:(\d+): ", message)]
                assert lines and all(1 <= n <= content.count(b"\n") + 1 for n in lines), message

    @SETTINGS
    @given(content=st.binary(max_size=200))
    def test_random_bytes_fail_cleanly(tmp_path: Path, content: bytes) -> None:
        check_any_file(tmp_path / "p.jsonl", content)

    @SETTINGS
    @given(
        which=st.sampled_from(VALID),
        edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 3), st.binary(max_size=4)), min_size=1, max_size=4),
    )
    def test_edited_pools_fail_cleanly(tmp_path: Path, which: bytes, edits: list[tuple[float, int, bytes]]) -> None:
        content = which
        for where, drop, insert in edits:  # replace `drop` bytes at a relative position with `insert`
            at = int(where * len(content))
            content = content[:at] + insert + content[at + drop :]
        check_any_file(tmp_path / "p.json", content)

    TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
    METADATA_VALUE = st.one_of(
        TEXT,
        st.integers(-(2**53), 2**53),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
    )
    RECORD = st.fixed_dictionaries(
        {"instruction": TEXT.filter(str.strip), "output": TEXT},
        optional={
            "input": TEXT,
            "task": TEXT,
            "metadata": st.dictionaries(TEXT.filter(lambda k: k and not k.startswith("_")), METADATA_VALUE, max_size=3),
        },
    )

    @settings(SETTINGS, max_examples=40)
    @given(
        records=st.lists(RECORD, min_size=1, max_size=5),
        as_array=st.booleans(),
        bom=st.booleans(),
        newline=st.sampled_from(["\n", "\r\n"]),
        ascii_only=st.booleans(),
    )
    def test_valid_pools_load_every_record(
        tmp_path: Path, records: list[dict[str, Any]], as_array: bool, bom: bool, newline: str, ascii_only: bool
    ) -> None:
        records = [{**record, "id": f"r{index}"} for index, record in enumerate(records)]
        if as_array:
            text = json.dumps(records, indent=1, ensure_ascii=ascii_only)
        else:
            text = "\n".join(json.dumps(record, ensure_ascii=ascii_only) for record in records)
        path = tmp_path / "p.jsonl"
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.replace("\n", newline).encode("utf-8"))
        assert load_pool(path).examples == [Example.model_validate(record) for record in records]
