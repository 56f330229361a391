"""The module map can't drift: `tests/module_map.py` names every module of the package and
nothing else, and the map in docs/architecture.md is that table, as
`python scripts/update_docs.py` writes it."""

from __future__ import annotations

from pathlib import Path

from onepin_mcp.surface import markers, replace_table
from tests.module_map import MAP_MARKER, MODULES, modules_on_disk, render_map

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = ROOT / "onepin_mcp"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
REGENERATE = "run `python scripts/update_docs.py`"


def test_every_module_of_the_package_has_a_row_in_the_module_map() -> None:
    missing = modules_on_disk(PACKAGE_DIR) - {module.path for module in MODULES}
    assert not missing, (
        f"no row in tests/module_map.py for {sorted(missing)}: give each its layer and job, "
        f"then {REGENERATE}"
    )


def test_every_row_of_the_module_map_names_a_module_that_exists() -> None:
    gone = {module.path for module in MODULES} - modules_on_disk(PACKAGE_DIR)
    assert not gone, f"tests/module_map.py lists {sorted(gone)}, which don't exist: drop them"


def test_no_module_has_two_rows() -> None:
    paths = [module.path for module in MODULES]
    assert len(paths) == len(set(paths)), sorted(p for p in paths if paths.count(p) > 1)


def test_the_architecture_doc_shows_the_module_map_as_generated() -> None:
    doc = ARCHITECTURE.read_text(encoding="utf-8")
    start, end = markers(MAP_MARKER)
    assert doc.count(start) == 1, f"docs/architecture.md needs the marker {start!r} once"
    assert doc.count(end) == 1, f"docs/architecture.md needs the marker {end!r} once"
    assert doc == replace_table(doc, render_map(), MAP_MARKER), (
        f"the module map in docs/architecture.md is stale; {REGENERATE}"
    )


def test_every_job_is_one_line_of_prose() -> None:
    # A job is a table cell: a line break or a pipe would break the rendered table.
    bad = [m.path for m in MODULES if not m.job.strip() or "\n" in m.job or "|" in m.job]
    assert not bad, bad
