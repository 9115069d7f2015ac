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
        (b"[1, 2]", r"p\.jsonl:2: expected a JSON object, got list"),
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
