import pytest
from pydantic import ValidationError

from icl_retriever.example import Example


def test_key_is_id_when_given_else_content_hash():
    with_id = Example(instruction="Sum.", input="1 2", output="3", id="a1")
    without = Example(instruction="Sum.", input="1 2", output="3")
    same_content = Example(instruction="Sum.", input="1 2", output="3", metadata={"x": 1})
    assert with_id.key == "a1"
    assert len(without.key) == 32
    # Duplicates collapse: the key ignores metadata, the content hash does not.
    assert without.key == same_content.key
    assert without.content_hash != same_content.content_hash


def test_prompt_dict_has_the_template_keys():
    example = Example(instruction="Sum.", input="1 2", output="3", id="a1", task="add|number")
    assert example.to_prompt_dict() == {
        "id": "a1", "instruction": "Sum.", "input": "1 2", "output": "3", "task": "add|number",
    }


@pytest.mark.parametrize(
    "record, field",
    [
        ({"instruction": " ", "output": "x"}, "instruction"),
        ({"instruction": "Do.", "output": 3}, "output"),
        ({"instruction": "Do.", "output": "x", "metadata": {"a": [1]}}, "metadata.a"),
        ({"instruction": "Do.", "output": "x", "colour": "red"}, "colour"),
        ({"instruction": "Do."}, "output"),
    ],
)
def test_invalid_records_name_the_field(record, field):
    with pytest.raises(ValidationError) as info:
        Example.model_validate(record)
    locations = {".".join(str(p) for p in error["loc"]) for error in info.value.errors()}
    assert any(location.startswith(field) for location in locations)


def only_error(record):
    with pytest.raises(ValidationError) as info:
        Example.model_validate(record)
    error = info.value.errors()[0]
    return error["loc"], error["msg"]


BASE = {"instruction": "Do.", "output": "x"}


@pytest.mark.parametrize(
    "value, message",
    [
        (float("nan"), 'NaN is not allowed: it cannot be indexed or filtered on; write it as a string ("NaN") or '
         "leave the value out"),
        (float("inf"), 'Infinity (or a number too large for a float) is not allowed: it cannot be indexed or '
         'filtered on; write it as a string ("Infinity") or leave the value out'),
        (float("-inf"), '-Infinity (or a number too large for a float) is not allowed: it cannot be indexed or '
         'filtered on; write it as a string ("-Infinity") or leave the value out'),
        (2**53 + 1, "integer 9007199254740993 is beyond ±2^53 and would come back from the store as a float; "
         "store it as a string"),
        (-(2**53) - 1, "integer -9007199254740993 is beyond ±2^53 and would come back from the store as a float; "
         "store it as a string"),
        ({"b": 1}, "expected a string, number or boolean, got an object; metadata must be flat (no nested objects "
         "or lists): flatten it into separate keys or store it as a JSON string"),
        (None, "expected a string, number or boolean, got null; metadata must be flat (no nested objects "
         "or lists): flatten it into separate keys or store it as a JSON string"),
        ("a\x00b", "contains a NUL character (\\u0000) at position 1; remove it"),
    ],
)
def test_metadata_values_that_do_not_survive_the_store_are_rejected(value, message):
    assert only_error({**BASE, "metadata": {"v": value}}) == (("metadata", "v"), message)


def test_metadata_edge_values_that_round_trip_are_kept():
    metadata = {"max": 2**53, "min": -(2**53), "flag": True, "ratio": -1.5, "text": "é ✓"}
    assert Example(**BASE, metadata=metadata).metadata == metadata


@pytest.mark.parametrize(
    "key, message",
    [
        ("", 'empty metadata key is not allowed; give the value a name such as "source"'),
        ("_example", "metadata key '_example' is reserved: keys starting with '_' are used by the store "
         "(such as '_example' and '_hash'); rename it, e.g. to 'example'"),
        ("_hash", "metadata key '_hash' is reserved: keys starting with '_' are used by the store "
         "(such as '_example' and '_hash'); rename it, e.g. to 'hash'"),
        ("__", "metadata key '__' is reserved: keys starting with '_' are used by the store "
         "(such as '_example' and '_hash'); rename it, e.g. to 'x'"),
    ],
)
def test_empty_and_reserved_metadata_keys_are_rejected(key, message):
    assert only_error({**BASE, "metadata": {key: 1}}) == (("metadata", key, "[key]"), message)


@pytest.mark.parametrize("field", ["instruction", "input", "output", "id", "task"])
def test_nul_and_unpaired_surrogates_are_rejected_in_every_text_field(field):
    nul = "contains a NUL character (\\u0000) at position 2; remove it"
    assert only_error({**BASE, field: "ab\x00"}) == ((field,), nul)
    assert only_error({**BASE, field: "a\ud800"}) == (
        (field,),
        "contains an unpaired surrogate (\\ud800) at position 1, which is not valid Unicode; remove it or fix the "
        "text's encoding",
    )
