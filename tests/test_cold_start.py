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
import json, logging, sys
import anyio
from mcp.server.mcpserver.tools import Tool
from onepin_mcp.__main__ import configure_logging
from onepin_mcp.api.settings import load_settings
from onepin_mcp.server import create_server
from onepin_mcp import text
from onepin_mcp.views import View

# Every tool the SDK derives from its function (at registration, or on a first call).
derived = []
derive = Tool.from_function

def counted(*args, **kwargs):
    derived.append(kwargs.get("name"))
    return derive(*args, **kwargs)

Tool.from_function = counted

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
    "tools_derived": len(derived),
    # Asked of the server directly, not through a request (which would register them).
    "templates_registered": len(anyio.run(server.list_resource_templates)),
    "prompts_registered": len(anyio.run(server.list_prompts)),
    "httpx_imported": "httpx" in sys.modules,
}))
"""


def report_of(script: str, tmp_path: Path) -> dict[str, Any]:
    """What `script`, run in a fresh interpreter on this tree, prints as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONPATH": str(REPO)},
        check=True,
    )
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def start_and_report(tmp_path: Path) -> dict[str, Any]:
    return report_of(START_THEN_REPORT, tmp_path)


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


def test_a_start_lists_the_stored_tool_schemas_and_imports_no_http_client(tmp_path: Path) -> None:
    report = start_and_report(tmp_path)
    # Resource templates and prompts wait for the first request that reads them
    # (tests/server/test_deferred_at_start.py): tools/list needs neither.
    assert report["templates_registered"] == report["prompts_registered"] == 0
    # The schemas stored with the package are listed as they are: no tool's argument model or
    # schemas are derived before its first call (stale schemas: see tests/test_tool_schemas.py).
    assert report["tools"] >= 15
    assert report["tools_derived"] == 0
    # httpx is imported for the first OnePin request; the SDK itself doesn't import it.
    assert report["httpx_imported"] is False


# `main` as the console script runs it, stopped by --version once the options are parsed (the
# SDK and the package are imported by then): is the collector on again, with what the imports
# made frozen?
MAIN_THEN_REPORT = """\
import contextlib, gc, json, sys
from onepin_mcp.__main__ import main

with contextlib.redirect_stdout(sys.stderr), contextlib.suppress(SystemExit):
    main(["--version"])
print(json.dumps({"collecting": gc.isenabled(), "frozen": gc.get_freeze_count()}))
"""


def test_a_start_imports_without_collecting_then_freezes_what_it_imported(tmp_path: Path) -> None:
    report = report_of(MAIN_THEN_REPORT, tmp_path)
    assert report["collecting"] is True
    # The SDK's and the package's objects, out of every later collection.
    assert report["frozen"] > 100_000


def test_the_secrets_masked_from_the_start_include_the_http_token_variable() -> None:
    from onepin_mcp.__main__ import SECRET_VARIABLES
    from onepin_mcp.options import ENV_HTTP_TOKEN

    assert ENV_HTTP_TOKEN in SECRET_VARIABLES
