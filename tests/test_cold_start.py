"""What a start does before its first `tools/list`: nothing that answer doesn't need.

`bench/cold_start.py` measures the time; these tests pin the work a start skips, in a fresh
interpreter (a module imported or a cache filled by another test would hide it here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

# A start as `onepin-mcp` makes it, up to its first tools/list: logging configured, its first
# warning written, the server created with the default tools and listed; then what was built.
START_THEN_REPORT = """\
import json, logging
import anyio
from onepin_mcp.__main__ import configure_logging
from onepin_mcp.api.settings import load_settings
from onepin_mcp.server import create_server
from onepin_mcp import text
from onepin_mcp.views import View

configure_logging("info")
logging.getLogger("onepin_mcp").warning("No OnePin API key configured: the server starts")
server = create_server(load_settings({}, None))
tools = anyio.run(server.list_tools)

def views(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from views(sub)

print(json.dumps({
    "tools": len(tools),
    "with_output_schema": sum(tool.output_schema is not None for tool in tools),
    "views": len(set(views(View))),
    "views_built": sorted({v.__qualname__ for v in views(View) if v.__pydantic_complete__}),
    "unicode_table_built": text._droppable.cache_info().currsize > 0,
}))
"""


def start_and_report(tmp_path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", START_THEN_REPORT],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONPATH": str(REPO)},
        check=True,
    )
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_a_start_lists_its_tools_without_building_any_view_or_the_unicode_table(
    tmp_path: Path,
) -> None:
    report = start_and_report(tmp_path)
    # The answer is whole: every default tool, each with the output schema of the view it
    # returns (the SDK derives those schemas without the views' own validators).
    assert report["tools"] == report["with_output_schema"]
    assert report["tools"] >= 15
    assert report["views"] >= 40
    # Views are built when a tool first makes one; the table of invisible characters when the
    # first non-ASCII text is cleaned (the start's log lines are ASCII).
    assert report["views_built"] == []
    assert report["unicode_table_built"] is False
