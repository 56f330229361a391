"""What tools return: small views trimmed to what an agent decides on, with the ids for the next
step, built from the API models. One module per toolset; the shared pieces live here.

Text that comes from OnePin users (names, descriptions, scripts, error texts) is untrusted: it
may carry invisible characters meant to hide or reorder what a model reads, or be long enough to
flood a context. `clean_text` (the one cleaner, in `onepin_mcp.text`) strips them and caps the
length, and every view field holding such text goes through it.
"""

from __future__ import annotations

import functools
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    SerializerFunctionWrapHandler,
    model_serializer,
)

# Re-exported: the views' callers have always found the cleaner and its caps here.
from onepin_mcp.text import MAX_NAME_CHARS as MAX_NAME_CHARS
from onepin_mcp.text import MAX_TEXT_CHARS as MAX_TEXT_CHARS
from onepin_mcp.text import clean_text as clean_text


def _clean_name(value: str) -> str:
    return clean_text(value, MAX_NAME_CHARS)


CleanText = Annotated[str, AfterValidator(clean_text)]
CleanName = Annotated[str, AfterValidator(_clean_name)]


class View(BaseModel):
    """Base of every tool result: frozen, no field that wasn't declared, and optional fields
    left out while they are null."""

    # defer_build: a view's validator is built when the view is first made, not when its module
    # is imported. The start needs views only for the output schemas of the tools it registers,
    # which the SDK derives itself; building every view at import (those no tool returns
    # directly, those of tools not selected) cost a cold start about 30 ms.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    # A model reads every answer: `"error": null` and its like say nothing yet cost about a
    # fifth of a typical answer. Only fields that default to None go, so required fields (a
    # `next_offset` of null means "no more") and the output schema stay as they are. No return
    # annotation on purpose: with one, pydantic would publish that type as the output schema.
    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        data = handler(self)
        if not isinstance(data, dict):
            return data
        optional = _optional_fields(type(self))
        return {
            key: value for key, value in data.items() if value is not None or key not in optional
        }


@functools.cache
def _optional_fields(model: type[BaseModel]) -> frozenset[str]:
    """Names (as serialized) of the fields that default to None, computed once per model."""
    return frozenset(
        info.serialization_alias or info.alias or name
        for name, info in model.model_fields.items()
        if not info.is_required() and info.default is None
    )
