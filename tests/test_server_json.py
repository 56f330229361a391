"""server.json, the MCP Registry entry, is valid against the registry's schema and in step with
the package it describes."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from onepin_mcp import __version__

ROOT = Path(__file__).resolve().parent.parent
# A copy of the registry's published schema (2025-12-11), so the check runs offline.
SCHEMA = ROOT / "tests" / "schemas" / "mcp-registry-server-2025-12-11.schema.json"


def _server_json() -> dict[str, object]:
    return dict(json.loads((ROOT / "server.json").read_text(encoding="utf-8")))


def test_server_json_is_valid_against_the_registry_schema() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(schema).validate(_server_json())


def test_server_json_versions_are_the_package_version() -> None:
    entry = _server_json()
    assert entry["version"] == __version__
    packages = entry["packages"]
    assert isinstance(packages, list)
    assert [p["version"] for p in packages] == [__version__]
    assert [p["identifier"] for p in packages] == ["onepin-mcp"]


def test_the_readme_carries_the_registry_ownership_marker() -> None:
    # PyPI ownership check of the MCP Registry: `mcp-name: <server name>` in the README.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"mcp-name: {_server_json()['name']}" in readme
