"""Code says why in its own words: no pointer to a document a reader of the repository can't open
(a section of the design notes, an issue number, a numbered item of either), in the package, the
tests, the scripts or the benchmarks. A section sign is fine after a public standard's name (an
RFC, JSON-RPC), which anyone can look up."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECTION = "\u00a7"
# The public standards a section number may point into.
STANDARD_BEFORE_SECTION = re.compile(r"(?:RFC \d{3,5}|JSON-RPC \d(?:\.\d)*) ?$")
OUTSIDE_REFERENCES = [
    re.compile(r"\bissues?\s*#?\d+", re.IGNORECASE),
    re.compile(r"\b(?:the|per|see) design\b(?! of)", re.IGNORECASE),
    re.compile(r"\bdesign\s*\(?\s*" + SECTION, re.IGNORECASE),
    re.compile(r"\bdesign (?:brief|doc|document|notes)\b", re.IGNORECASE),
    re.compile(r"\b(?:design|mcp-sdk-notes|onepin-api)\.md\b"),
    re.compile(r"/work/shared\b"),
]


def _sources() -> list[Path]:
    package = [
        p
        for p in (ROOT / "onepin_mcp").rglob("*")
        if p.suffix in {".py", ".js", ".html", ".css"} and "__pycache__" not in p.parts
    ]
    others = [p for folder in ("tests", "scripts", "bench") for p in (ROOT / folder).rglob("*.py")]
    # This file is left out: its examples of what the check catches must spell the forms.
    return sorted(p for p in package + others if p != Path(__file__).resolve())


def outside_references(text: str) -> list[str]:
    """Each line of `text` that points outside the repository, with its number."""
    found: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        bare_sections = [
            m
            for m in re.finditer(SECTION, line)
            if not STANDARD_BEFORE_SECTION.search(line[: m.start()])
        ]
        if bare_sections or any(pattern.search(line) for pattern in OUTSIDE_REFERENCES):
            found.append(f"{number}: {line.strip()}")
    return found


@pytest.mark.parametrize("path", _sources(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_source_points_to_a_document_outside_the_repository(path: Path) -> None:
    found = outside_references(path.read_text(encoding="utf-8"))
    assert not found, "say the reason in plain words instead:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "line",
    [
        "# Asking the user before a write (design " + SECTION + "4).",
        '"""The import rules of the design (' + SECTION + '7)."""',
        "# See the OnePin API reference " + SECTION + "2.3 for scopes.",
        '"""HTTP sessions (issue 11, finding 1)."""',
        "# Fixed in Issue #12.",
        "# per the design, writes are not retried",
        "# the design brief's list of dependencies",
        "# as /work/shared/design.md says",
    ],
)
def test_the_check_catches_each_kind_of_outside_reference(line: str) -> None:
    assert outside_references(line)


@pytest.mark.parametrize(
    "line",
    [
        "# A Host header value (RFC 9110 " + SECTION + "7.2): a name or an IP literal.",
        "JSON-RPC 2.0 " + SECTION + "5 says such a request gets an error with its id.",
        "# Best effort by design: a closed stream is dropped quietly.",
        "# an issue with the upstream server",
        "# the design of the retry schedule is adaptive",
    ],
)
def test_the_check_leaves_public_standards_and_plain_words_alone(line: str) -> None:
    assert not outside_references(line)
