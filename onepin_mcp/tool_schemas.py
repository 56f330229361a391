"""The tools' input and output schemas as `tools/list` shows them, stored with the package.

Deriving them (pydantic builds an argument model per tool and generates both JSON schemas from
the signature and the view it returns) was most of what a start did on its own account before it
could answer its first `tools/list`. `tool_schemas.json` beside this module holds them as the
server last derived and shaped them, with a fingerprint of the package's sources; a start uses
them only while the fingerprint still matches, so an edited tree derives them afresh, as before,
until `python scripts/update_docs.py` stores them again (`tests/test_tool_schemas.py` fails
meanwhile, naming that command).

The fingerprint covers every module of the package but the sandbox: a schema depends on tool
signatures, the views, the parameter types and the shaping in `server`, and which modules those
reach is not worth tracking by hand. Library versions are left out on purpose: the stored schemas
are the surface the tests pin (`tests/snapshots/tool_surface.json`), and what any pydantic in the
supported range derives from the same models validates the same answers.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

PACKAGE = Path(__file__).resolve().parent
STORED = PACKAGE / "tool_schemas.json"
# Bumped when the file's layout changes, so that an old file reads as stale.
FORMAT = 1
# Directories of the package whose sources no tool schema depends on.
_NOT_HASHED = frozenset({"sandbox", "__pycache__"})


class ToolSchemas(NamedTuple):
    """One tool's schemas as listed: its input schema, and its output schema (None: none)."""

    input: dict[str, Any]
    output: dict[str, Any] | None


def source_fingerprint(package: Path = PACKAGE) -> str:
    """A hash of every source file of the package but the sandbox's: names and contents."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"format {FORMAT}\0".encode())
    # os.walk rather than Path.rglob: this runs on every start, and walking is twice as fast.
    for directory, subdirectories, files in os.walk(package):
        subdirectories[:] = sorted(name for name in subdirectories if name not in _NOT_HASHED)
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = Path(directory, name)
            content = path.read_bytes()
            digest.update(path.relative_to(package).as_posix().encode() + b"\0")
            digest.update(len(content).to_bytes(8, "big") + content)
    return digest.hexdigest()


def stored_schemas(path: Path = STORED, package: Path = PACKAGE) -> dict[str, ToolSchemas] | None:
    """The stored schemas of every tool, by name; None when there are none, or when they were
    stored from other sources than these (then the caller derives them)."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        fresh = stored.get("fingerprint") == source_fingerprint(package)
    except (OSError, ValueError, AttributeError):
        return None
    if not fresh:
        return None
    return {
        name: ToolSchemas(entry["input"], entry["output"])
        for name, entry in stored["tools"].items()
    }


def store_schemas(
    schemas: Mapping[str, ToolSchemas], path: Path = STORED, package: Path = PACKAGE
) -> None:
    """Write `schemas` (every tool's, in registration order) with the current fingerprint."""
    document = {
        "fingerprint": source_fingerprint(package),
        "tools": {
            name: {"input": entry.input, "output": entry.output} for name, entry in schemas.items()
        },
    }
    # Compact: it ships in the wheel, and nobody reads it but a start.
    path.write_text(
        json.dumps(document, separators=(",", ":"), ensure_ascii=False) + "\n", encoding="utf-8"
    )
