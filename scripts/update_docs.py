"""Regenerate what is derived from the live tool surface: the README's tool table and the
committed snapshot in tests/snapshots/tool_surface.json. Run after changing a tool on purpose:

    python scripts/update_docs.py
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio

from onepin_mcp.config import Settings
from onepin_mcp.selection import ToolSelection
from onepin_mcp.server import create_server
from onepin_mcp.surface import list_tools, markdown_table, model_view_bytes, replace_table, snapshot

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SNAPSHOT = ROOT / "tests" / "snapshots" / "tool_surface.json"


async def main() -> None:
    settings = Settings()
    full = await list_tools(create_server(settings, selection=ToolSelection(toolsets=("all",))))
    default = await list_tools(create_server(settings))
    table = markdown_table(full, {tool.name for tool in default})
    README.write_text(replace_table(README.read_text(encoding="utf-8"), table), encoding="utf-8")
    SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
    SNAPSHOT.write_text(json.dumps(snapshot(full), indent=2, ensure_ascii=False) + "\n")
    print(
        f"{len(default)} default tools ({model_view_bytes(default)} bytes as a model sees them), "
        f"{len(full)} in all ({model_view_bytes(full)} bytes)"
    )


if __name__ == "__main__":
    anyio.run(main)
