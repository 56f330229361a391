"""Regenerate what is derived from the live server: the tools' schemas stored with the package
(onepin_mcp/tool_schemas.json, which a start lists instead of deriving them), the README's tool,
resource and prompt tables, and the committed snapshot in tests/snapshots/tool_surface.json; and
the module map in docs/architecture.md, from the table in tests/module_map.py. Run after changing
a tool, resource or prompt on purpose, or after adding, moving or removing a module:

    python scripts/update_docs.py                 # everything
    python scripts/update_docs.py --module-map    # only the module map (no server is built)
    python scripts/update_docs.py --tool-schemas  # only the stored schemas (after any change
                                                  # to the package's code)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import anyio

from onepin_mcp.server import derive_tool_schemas
from onepin_mcp.surface import (
    live_surfaces,
    model_view_bytes,
    readme_tables,
    render_readme,
    replace_table,
    snapshot,
)
from onepin_mcp.tool_schemas import store_schemas

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from anywhere, against this checkout

from tests.module_map import MAP_MARKER, render_map  # noqa: E402 - after the path is set

README = ROOT / "README.md"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
SNAPSHOT = ROOT / "tests" / "snapshots" / "tool_surface.json"


def write_module_map() -> None:
    architecture = ARCHITECTURE.read_text(encoding="utf-8")
    ARCHITECTURE.write_text(replace_table(architecture, render_map(), MAP_MARKER), encoding="utf-8")


def write_tool_schemas() -> None:
    schemas = derive_tool_schemas()
    store_schemas(schemas)
    print(f"stored the schemas of {len(schemas)} tools")


async def main() -> None:
    write_module_map()
    # First: the surface read below is listed from them.
    write_tool_schemas()
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
    parser = argparse.ArgumentParser(description="Regenerate the derived docs and snapshot.")
    parser.add_argument("--module-map", action="store_true", help="only the module map")
    parser.add_argument("--tool-schemas", action="store_true", help="only the stored schemas")
    args = parser.parse_args()
    if args.module_map or args.tool_schemas:
        if args.module_map:
            write_module_map()
        if args.tool_schemas:
            write_tool_schemas()
    else:
        anyio.run(main)
