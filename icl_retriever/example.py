"""The worked example: one record of a demonstration pool."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

MetadataValue = str | int | float | bool


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
    metadata: dict[str, MetadataValue] = Field(
        default_factory=dict, description="Flat metadata usable in `where` filters."
    )

    @field_validator("instruction")
    @classmethod
    def _instruction_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

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
