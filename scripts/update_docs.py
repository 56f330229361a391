"""Regenerate what is derived from the live server: the README's tool, resource and prompt
tables, and the committed snapshot in tests/snapshots/tool_surface.json; and the module map in
docs/architecture.md, from the table in tests/module_map.py. Run after changing a tool, resource
or prompt on purpose, or after adding, moving or removing a module:

    python scripts/update_docs.py                # everything
    python scripts/update_docs.py --module-map   # only the module map (no server is built)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import anyio

from onepin_mcp.surface import (
    live_surfaces,
    model_view_bytes,
    readme_tables,
    render_readme,
    replace_table,
    snapshot,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from anywhere, against this checkout

from tests.module_map import MAP_MARKER, render_map  # noqa: E402 - after the path is set

README = ROOT / "README.md"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
SNAPSHOT = ROOT / "tests" / "snapshots" / "tool_surface.json"


def write_module_map() -> None:
    architecture = ARCHITECTURE.read_text(encoding="utf-8")
    ARCHITECTURE.write_text(replace_table(architecture, render_map(), MAP_MARKER), encoding="utf-8")


async def main() -> None:
    write_module_map()
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
    if parser.parse_args().module_map:
        write_module_map()
    else:
        anyio.run(main)
