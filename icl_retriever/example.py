"""The worked example: one record of a demonstration pool."""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

# Integers beyond this come back from the store as floats, so they would not round-trip.
MAX_SAFE_INT = 2**53
_SURROGATE = re.compile("[\ud800-\udfff]")


def non_finite_message(value: float) -> str:
    """Why NaN / Infinity / -Infinity is rejected, and what to write instead."""
    if math.isnan(value):
        name, cause = "NaN", ""
    else:
        name, cause = ("Infinity" if value > 0 else "-Infinity"), " (or a number too large for a float)"
    return (
        f"{name}{cause} is not allowed: it cannot be indexed or filtered on; "
        f'write it as a string ("{name}") or leave the value out'
    )


def json_type_name(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    names = {str: "a string", list: "a list", dict: "an object"}
    return next((name for kind, name in names.items() if isinstance(value, kind)), type(value).__name__)


def shorten(text: str, limit: int = 160) -> str:
    """The text on one line, cut to `limit` characters (ending in '...' when cut)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_text(value: str) -> str:
    """Reject characters the store cannot keep: NUL and unpaired surrogates (not valid Unicode)."""
    position = value.find("\x00")
    if position >= 0:
        raise PydanticCustomError(
            "nul_character", f"contains a NUL character (\\u0000) at position {position}; remove it"
        )
    surrogate = _SURROGATE.search(value)
    if surrogate is not None:
        raise PydanticCustomError(
            "unpaired_surrogate",
            f"contains an unpaired surrogate (\\u{ord(surrogate.group()):04x}) at position {surrogate.start()}, "
            "which is not valid Unicode; remove it or fix the text's encoding",
        )
    return value


def _check_metadata_key(key: str) -> str:
    if key == "":
        raise PydanticCustomError(
            "empty_metadata_key", "empty metadata key is not allowed; give the value a name such as \"source\""
        )
    if key.startswith("_"):
        raise PydanticCustomError(
            "reserved_metadata_key",
            f"metadata key '{key}' is reserved: keys starting with '_' are used by the store "
            f"(such as '_example' and '_hash'); rename it, e.g. to '{key.lstrip('_') or 'x'}'",
        )
    return _check_text(key)


def _check_metadata_value(value: Any) -> Any:
    """Only flat, finite values that survive the store's round trip."""
    if not isinstance(value, str | int | float):  # bool is an int
        raise PydanticCustomError(
            "metadata_type",
            f"expected a string, number or boolean, got {json_type_name(value)}; metadata must be flat "
            "(no nested objects or lists): flatten it into separate keys or store it as a JSON string",
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("non_finite_number", non_finite_message(value))
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INT:
        raise PydanticCustomError(
            "unsafe_integer",
            f"integer {value} is beyond ±2^53 and would come back from the store as a float; "
            "store it as a string",
        )
    if isinstance(value, str):
        _check_text(value)
    return value


MetadataKey = Annotated[str, AfterValidator(_check_metadata_key)]
MetadataValue = Annotated[str | int | float | bool, BeforeValidator(_check_metadata_value)]


class Example(BaseModel):
    """An instruction with its input and the expected output.

    Example:
        >>> Example(instruction="Classify the sentiment.", input="Great film!", output="positive").key[:8]
        'c5a1de0e'
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    instruction: str = Field(description="What the example asks for; may hold the whole prompt.")
    input: str = Field(default="", description="The content the instruction applies to.")
    output: str = Field(description="The expected answer.")
    id: str | None = Field(default=None, description="Stable identifier; defaults to a content hash.")
    task: str | None = Field(default=None, description="Optional task label such as 'classify|sentiment'.")
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict, description="Flat metadata usable in `where` filters."
    )

    @field_validator("instruction")
    @classmethod
    def _instruction_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("instruction", "input", "output", "id", "task")
    @classmethod
    def _text_is_storable(cls, value: str | None) -> str | None:
        return value if value is None else _check_text(value)

    @field_validator("id")
    @classmethod
    def _id_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty when given")
        return value

    @property
    def content_hash(self) -> str:
        """SHA-256 of the whole record; changes whenever any field changes."""
        canonical = json.dumps(self.model_dump(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def key(self) -> str:
        """Store id: the user's `id`, else a hash of instruction, input and output.

        Hashing only the content fields makes exact duplicates collapse to one entry.
        """
        if self.id is not None:
            return self.id
        content = json.dumps([self.instruction, self.input, self.output], ensure_ascii=False)
        return hashlib.sha256(content.encode("utf-8")).hexdigest()[:32]

    def to_prompt_dict(self) -> dict[str, Any]:
        """The keys a few-shot example prompt may use."""
        return {
            "id": self.key,
            "instruction": self.instruction,
            "input": self.input,
            "output": self.output,
            "task": self.task,
        }
