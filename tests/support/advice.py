"""Reading an answer the way an agent would: does it invite another start_run?

An invitation is a sentence that names start_run together with "again" or "safe" and no
negation. Sentences are split at `.`, `;` and `:` so that "Do not call start_run again: check
list_runs" reads as the refusal it is. Shared by the start tests and the fault matrix, which
both assert that no answer after an ambiguous failure invites a second, possibly billed, start.
"""

from __future__ import annotations

import re

_SENTENCES = re.compile(r"(?<=[.;:!?])\s+")
_INVITES = re.compile(r"\bagain\b|\bsafe\b|\bsafely\b", re.IGNORECASE)
_NEGATED = re.compile(r"\b(do not|don't|never|must not|not now)\b", re.IGNORECASE)


def invitations(text: str) -> list[str]:
    """The sentences of `text` that invite another start_run."""
    return [
        sentence
        for sentence in _SENTENCES.split(text)
        if "start_run" in sentence and _INVITES.search(sentence) and not _NEGATED.search(sentence)
    ]


def invites_a_second_start(text: str) -> bool:
    return bool(invitations(text))
