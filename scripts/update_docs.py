"""Regenerate what is derived from the live server: the README's tool, resource and prompt
tables, and the committed snapshot in tests/snapshots/tool_surface.json. Run after changing a
tool, resource or prompt on purpose:

    python scripts/update_docs.py
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio

from onepin_mcp.surface import (
    live_surfaces,
    model_view_bytes,
    readme_tables,
    render_readme,
    snapshot,
)

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SNAPSHOT = ROOT / "tests" / "snapshots" / "tool_surface.json"


async def main() -> None:
    full, default = await live_surfaces()
    readme = render_readme(README.read_text(encoding="utf-8"), readme_tables(full, default))
    README.write_text(readme, encoding="utf-8")
    SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
    SNAPSHOT.write_text(
        json.dumps(snapshot(full.tools), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    print(
        f"{len(default)} default tools ({model_view_bytes(default)} bytes as a model sees them), "
        f"{len(full.tools)} in all ({model_view_bytes(full.tools)} bytes)"
    )


if __name__ == "__main__":
    anyio.run(main)
