import json

import pytest

from icl_retriever.errors import PoolFormatError
from icl_retriever.pool import load_pool

GOOD = {"instruction": "Classify the sentiment.", "input": "Nice.", "output": "positive"}


def write_lines(path, lines):
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines))
    return path


def test_jsonl_with_blank_lines(tmp_path):
    pool = write_lines(tmp_path / "p.jsonl", [json.dumps(GOOD), "", "   ", json.dumps({**GOOD, "input": "Bad."})])
    loaded = load_pool(pool)
    assert [e.input for e in loaded.examples] == ["Nice.", "Bad."]
    assert loaded.skipped == []


def test_json_array_reports_element_line(tmp_path):
    pool = tmp_path / "p.json"
    pool.write_text(json.dumps([GOOD, {"instruction": "x"}], indent=2))
    with pytest.raises(PoolFormatError, match=r"p\.json:7: field 'output': required field is missing"):
        load_pool(pool)
    pool.write_text(json.dumps([GOOD, {**GOOD, "input": "Other."}]))
    assert len(load_pool(pool).examples) == 2


@pytest.mark.parametrize(
    "line, expected",
    [
        (b'{"instruction": "x", "output": "y"\xff}', r"p\.jsonl:2: not valid UTF-8"),
        (b"[1, 2]", r"p\.jsonl:2: expected a JSON object, got a list"),
        (b'{"instruction": "x"', r"p\.jsonl:2: invalid JSON"),
        (b'{"input": "x", "output": "y"}', r"p\.jsonl:2: field 'instruction': required field is missing"),
        (b'{"instruction": "x", "output": 5}', r"p\.jsonl:2: field 'output': Input should be a valid string"),
        (b'{"instruction": "x", "output": "y", "metadata": {"a": {"b": 1}}}', r"p\.jsonl:2: field 'metadata\.a"),
        (b'{"instruction": "", "output": "y"}', r"p\.jsonl:2: field 'instruction': Value error, must not be empty"),
    ],
)
def test_bad_records_fail_the_whole_load(tmp_path, line, expected):
    pool = write_lines(tmp_path / "p.jsonl", [json.dumps(GOOD), line, json.dumps({**GOOD, "input": "z"})])
    with pytest.raises(PoolFormatError, match=expected) as info:
        load_pool(pool)
    assert "nothing was indexed" in str(info.value)
    assert "--skip-invalid" in str(info.value)


def test_over_long_field_uses_configurable_limit(tmp_path):
    pool = write_lines(tmp_path / "p.jsonl", [json.dumps({**GOOD, "input": "x" * 50})])
    assert len(load_pool(pool).examples) == 1
    with pytest.raises(PoolFormatError, match=r"p\.jsonl:1: field 'input': 50 characters, over the limit of 30"):
        load_pool(pool, max_field_chars=30)


def test_skip_invalid_keeps_the_rest_and_lists_skipped(tmp_path):
    pool = write_lines(tmp_path / "p.jsonl", [json.dumps(GOOD), "nope", json.dumps({**GOOD, "input": "z"}), "[]"])
    loaded = load_pool(pool, skip_invalid=True)
    assert len(loaded.examples) == 2
    assert [(issue.line, issue.field) for issue in loaded.skipped] == [(2, None), (4, None)]


def test_duplicates_collapse_but_conflicting_ids_are_errors(tmp_path):
    pool = write_lines(tmp_path / "p.jsonl", [json.dumps(GOOD), json.dumps(GOOD)])
    loaded = load_pool(pool)
    assert len(loaded.examples) == 1 and loaded.duplicates == 1
    pool = write_lines(
        tmp_path / "q.jsonl", [json.dumps({**GOOD, "id": "a"}), json.dumps({**GOOD, "id": "a", "output": "negative"})]
    )
    with pytest.raises(PoolFormatError, match=r"q\.jsonl:2: field 'id': duplicate id 'a' \(first on line 1\)"):
        load_pool(pool)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(PoolFormatError, match="Cannot read pool file .*missing.jsonl"):
        load_pool(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(PoolFormatError, match="contains no records"):
        load_pool(tmp_path / "empty.jsonl")


def load_error(pool, **kwargs):
    with pytest.raises(PoolFormatError) as info:
        load_pool(pool, **kwargs)
    return str(info.value)


NAN = 'NaN is not allowed: it cannot be indexed or filtered on; write it as a string ("NaN") or leave the value out'
INF = (
    "Infinity (or a number too large for a float) is not allowed: it cannot be indexed or filtered on; "
    'write it as a string ("Infinity") or leave the value out'
)


@pytest.mark.parametrize(
    "line, issue",
    [
        ('{"instruction": "Translate x.", "output": "y", "metadata": {"v": NaN}}', f"field 'metadata.v': {NAN}"),
        ('{"instruction": "Translate x.", "output": "y", "metadata": {"v": Infinity}}', f"field 'metadata.v': {INF}"),
        ('{"instruction": "Translate x.", "output": "y", "metadata": {"v": 1e400}}', f"field 'metadata.v': {INF}"),
        ('{"instruction": "Translate x.", "output": -Infinity}', "field 'output': -Infinity (or a number too large"),
        ('{"instruction": "Translate x.", "output": "y", "colour": [1, NaN]}', f"field 'colour.1': {NAN}"),
        (
            '{"instruction": "Translate x.", "output": "y", "metadata": {"n": 9007199254740993}}',
            "field 'metadata.n': integer 9007199254740993 is beyond ±2^53 and would come back from the store as a "
            "float; store it as a string",
        ),
        (
            '{"instruction": "Translate x.", "output": "y", "metadata": {"_example": "z"}}',
            "field 'metadata._example': metadata key '_example' is reserved: keys starting with '_' are used by the "
            "store (such as '_example' and '_hash'); rename it, e.g. to 'example'",
        ),
        (
            '{"instruction": "Translate x.", "output": "y", "metadata": {"": "z"}}',
            "field 'metadata.\"\"': empty metadata key is not allowed; give the value a name such as \"source\"",
        ),
        (
            '{"instruction": "Translate\\u0000 x.", "output": "y"}',
            "field 'instruction': contains a NUL character (\\u0000) at position 9; remove it",
        ),
        (
            '{"instruction": "Translate x.", "output": "y", "metadata": {"k\\u0000": "z"}}',
            "field 'metadata.k\\x00': contains a NUL character (\\u0000) at position 1; remove it",
        ),
        (
            '{"instruction": "Translate x.", "output": "\\ud800"}',
            "field 'output': contains an unpaired surrogate (\\ud800) at position 0, which is not valid Unicode",
        ),
        ('{"instruction": "x", "output": "y", "metadata": {"n": ' + "9" * 5000 + "}}",
         "invalid JSON: Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits; "
         "store such a number as a string"),
        ("[" * 100_000, "invalid JSON: nested too deeply"),
    ],
)
def test_values_the_store_cannot_keep_are_reported_with_line_and_field(tmp_path, line, issue):
    pool = write_lines(tmp_path / "pool.jsonl", [json.dumps(GOOD), json.dumps({**GOOD, "input": "z"}), line])
    assert f"pool.jsonl:3: {issue}" in load_error(pool)


def test_array_followed_by_jsonl_lines_is_jsonl_and_keeps_every_row(tmp_path):
    other = {**GOOD, "input": "Other."}
    third = {**GOOD, "input": "Third."}
    pool = write_lines(tmp_path / "p.jsonl", [json.dumps([GOOD]), json.dumps(other), json.dumps(third)])
    message = load_error(pool)
    assert "p.jsonl has 1 invalid record(s)" in message
    assert (
        "p.jsonl:1: expected a JSON object, got a list; a file is read as a JSON array only when the whole file "
        "is one array, otherwise each line must hold one object"
    ) in message
    loaded = load_pool(pool, skip_invalid=True)
    assert [e.input for e in loaded.examples] == ["Other.", "Third."]
    assert [(issue.line, issue.field) for issue in loaded.skipped] == [(1, None)]


@pytest.mark.parametrize(
    "text, issue",
    [
        (
            '[\n{"instruction": "a", "output": "b"}\n]\n{"instruction": "c", "output": "d"}\n',
            "p.json:4: invalid JSON array: more content after the closing ']' (column 1)",
        ),
        (
            '[\n  {"instruction": "a", "output": "b"}\n  {"instruction": "c", "output": "d"}\n]',
            "p.json:3: invalid JSON array: expected ',' or ']' (column 3)",
        ),
        ('[\n  {"instruction": "a", "output": "b"},\n]', "p.json:3: invalid JSON array: Expecting value (column 1)"),
        (
            '[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c", "out',
            "p.json:3: invalid JSON array: Unterminated string starting at (column 24)",
        ),
    ],
)
def test_broken_json_array_fails_even_with_skip_invalid(tmp_path, text, issue):
    pool = tmp_path / "p.json"
    pool.write_text(text)
    for skip_invalid in (False, True):
        message = load_error(pool, skip_invalid=skip_invalid)
        assert "p.json starts with '[' but is not a valid JSON array; nothing was indexed." in message
        assert issue in message
        assert "write one JSON object per line (JSONL)" in message


def test_bom_and_crlf_are_accepted(tmp_path):
    other = {**GOOD, "input": "Other."}
    bom = b"\xef\xbb\xbf"
    pool = tmp_path / "p.json"
    pool.write_bytes(bom + json.dumps([GOOD, other], indent=2).replace("\n", "\r\n").encode())
    assert [e.input for e in load_pool(pool).examples] == ["Nice.", "Other."]
    pool = write_lines(tmp_path / "p.jsonl", [bom + json.dumps(GOOD).encode(), json.dumps(other)])
    assert [e.input for e in load_pool(pool).examples] == ["Nice.", "Other."]
    pool.write_bytes(f"{json.dumps(GOOD)}\r\n\r\n{json.dumps(other)}\r\n".encode())
    assert [e.input for e in load_pool(pool).examples] == ["Nice.", "Other."]


def test_invalid_utf8_names_the_line(tmp_path):
    pool = write_lines(tmp_path / "p.jsonl", [json.dumps(GOOD), b'{"instruction": "\xff"}'])
    assert "p.jsonl:2: not valid UTF-8 (byte 0xff at column 18); save the file as UTF-8" in load_error(pool)
    pool = tmp_path / "p.json"
    pool.write_bytes(b'[\n  {"instruction": "x", "output": "y"},\n  {"instruction": "\xc3("}\n]')
    assert "p.json:3: not valid UTF-8 (byte 0xc3 at column 20); save the file as UTF-8" in load_error(pool)
