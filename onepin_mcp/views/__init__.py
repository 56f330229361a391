"""What tools return: small views trimmed to what an agent decides on, with the ids for the next
step, built from the API models. One module per toolset; the shared pieces live here.

Text that comes from OnePin users (names, descriptions, scripts, error texts) is untrusted: it
may carry control or bidirectional-override characters meant to hide or reorder what a model
reads, or be long enough to flood a context. `clean_text` strips those characters and caps the
length, and every view field holding such text goes through it.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

MAX_TEXT_CHARS = 2000
MAX_NAME_CHARS = 200

# C0/C1 controls except tab and newline, and every bidi control (the Arabic letter mark,
# left-to-right and right-to-left marks, embeddings, overrides, isolates).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean_text(value: str, limit: int = MAX_TEXT_CHARS) -> str:
    """Untrusted text made safe to show a model: no control or bidi characters, capped."""
    text = _UNSAFE.sub("", unicodedata.normalize("NFC", value))
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _clean_name(value: str) -> str:
    return clean_text(value, MAX_NAME_CHARS)


CleanText = Annotated[str, AfterValidator(clean_text)]
CleanName = Annotated[str, AfterValidator(_clean_name)]


class View(BaseModel):
    """Base of every tool result: frozen, and no field that wasn't declared."""

    model_config = ConfigDict(frozen=True, extra="forbid")
