"""The tools' schemas stored with the package are the ones its sources derive, and a start uses
them only while its sources are the ones they were derived from."""

from __future__ import annotations

import json
from pathlib import Path

from onepin_mcp.server import derive_tool_schemas
from onepin_mcp.tool_schemas import STORED, ToolSchemas, store_schemas, stored_schemas

REGENERATE = "run `python scripts/update_docs.py --tool-schemas` and commit the file"


def test_the_stored_schemas_are_those_the_sources_derive() -> None:
    stored = stored_schemas()
    assert stored is not None, f"{STORED.name} was stored from other sources: {REGENERATE}"
    # Compared as JSON, as a client receives them (the file holds lists where pydantic may
    # have made tuples).
    derived = json.loads(json.dumps(derive_tool_schemas()))
    assert list(stored) == list(derived), REGENERATE
    assert {name: list(schemas) for name, schemas in stored.items()} == derived, REGENERATE


def _package(root: Path) -> Path:
    package = root / "pkg"
    (package / "views").mkdir(parents=True)
    (package / "sandbox").mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "views" / "runs.py").write_text("class RunView: ...\n", encoding="utf-8")
    (package / "sandbox" / "seed.py").write_text("RUNS = 3\n", encoding="utf-8")
    (package / "viewer.html").write_text("<p>page</p>\n", encoding="utf-8")
    return package


SCHEMAS = {"get_run": ToolSchemas({"type": "object", "properties": {}}, None)}


def test_stored_schemas_go_stale_when_a_source_of_the_package_changes(tmp_path: Path) -> None:
    package = _package(tmp_path)
    stored = tmp_path / "tool_schemas.json"
    store_schemas(SCHEMAS, stored, package)
    assert stored_schemas(stored, package) == SCHEMAS

    (package / "views" / "runs.py").write_text("class RunView: x: int\n", encoding="utf-8")
    assert stored_schemas(stored, package) is None
    store_schemas(SCHEMAS, stored, package)
    (package / "views" / "extra.py").write_text("", encoding="utf-8")
    assert stored_schemas(stored, package) is None


def test_the_sandbox_and_files_other_than_sources_leave_them_fresh(tmp_path: Path) -> None:
    package = _package(tmp_path)
    stored = tmp_path / "tool_schemas.json"
    store_schemas(SCHEMAS, stored, package)
    (package / "sandbox" / "seed.py").write_text("RUNS = 4\n", encoding="utf-8")
    (package / "viewer.html").write_text("<p>another page</p>\n", encoding="utf-8")
    assert stored_schemas(stored, package) == SCHEMAS


def test_a_missing_or_unreadable_file_means_no_stored_schemas(tmp_path: Path) -> None:
    package = _package(tmp_path)
    stored = tmp_path / "tool_schemas.json"
    assert stored_schemas(stored, package) is None
    stored.write_text("not json", encoding="utf-8")
    assert stored_schemas(stored, package) is None
    stored.write_text("[]", encoding="utf-8")
    assert stored_schemas(stored, package) is None
