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
