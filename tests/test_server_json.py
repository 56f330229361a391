"""server.json, the MCP Registry entry, is valid against the registry's schema and in step with
the package it describes: its versions, and every environment variable the code reads, each
described truthfully (defaults, formats, choices and placeholders are checked against what the
code does with them)."""

from __future__ import annotations

import ast
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema

from onepin_mcp import __version__
from onepin_mcp.api.settings import ENV_API_KEY, ConfigError, load_settings
from onepin_mcp.http import STREAMABLE_HTTP_PATH
from onepin_mcp.options import (
    AUTH_MODES,
    CONFIRM_POLICIES,
    ENV_AUTH,
    ENV_CONFIRM,
    ENV_HTTP_TOKEN,
    ENV_LOG_LEVEL,
    ENV_REQUEST_STATE_KEY,
    ENV_TRANSPORT,
    ENV_WORKERS,
    LOG_LEVELS,
    TRANSPORTS,
    ServeOptions,
    parse_command,
)
from onepin_mcp.selection import ToolSelection, resolve_selection

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "onepin_mcp"
# A copy of the registry's published schema (2025-12-11), so the check runs offline.
SCHEMA = ROOT / "tests" / "schemas" / "mcp-registry-server-2025-12-11.schema.json"
# A variable name: ONEPIN_ and capitals, digits or underscores, not ending in an underscore
# (so that a prose mention such as "ONEPIN_MCP_*" is not taken for a variable).
VARIABLE = re.compile(r"ONEPIN_[A-Z0-9_]*[A-Z0-9]")
TEMPLATE = re.compile(r"\{([^{}]+)\}")
SECRETS = {ENV_API_KEY, ENV_HTTP_TOKEN, ENV_REQUEST_STATE_KEY}


def environment_variables_read_by_the_code() -> set[str]:
    """Every ONEPIN_* name in a string literal of the package, the sandbox aside (it is a
    stand-in for the OnePin API and reads no configuration of the server)."""
    names: set[str] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        if (PACKAGE / "sandbox") in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.update(VARIABLE.findall(node.value))
    return names


def _server_json() -> dict[str, Any]:
    return dict(json.loads((ROOT / "server.json").read_text(encoding="utf-8")))


def _package() -> dict[str, Any]:
    packages = _server_json()["packages"]
    assert isinstance(packages, list)
    assert len(packages) == 1
    return dict(packages[0])


def _variables() -> dict[str, dict[str, Any]]:
    listed = _package()["environmentVariables"]
    names = [variable["name"] for variable in listed]
    assert len(names) == len(set(names)), "a variable is listed twice"
    return {variable["name"]: variable for variable in listed}


# Variables refused outside stateless Streamable HTTP.
ONLY_STATELESS = frozenset({ENV_WORKERS})


def _effect(env: Mapping[str, str]) -> tuple[object, ...]:
    """What `env` makes the server do, served over stdio and over Streamable HTTP (the tool
    selection as the tools it resolves to), and the OnePin settings. Raises what the code
    raises for a value it refuses."""
    effects: list[object] = []
    stateless = ["--transport", "streamable-http", "--stateless"]
    for argv in ([], ["--transport", "streamable-http"], stateless):
        # A variable refused outside one HTTP mode is left out of the others.
        applies = {n: v for n, v in env.items() if n not in ONLY_STATELESS or argv == stateless}
        options = parse_command(argv, applies)
        assert isinstance(options, ServeOptions)
        enabled, refused = resolve_selection(options.selection)
        effects.append(
            (
                replace(options, selection=ToolSelection()),
                [spec.name for spec in enabled],
                sorted(refused),
            )
        )
    # Where a value came from (environment or default) is provenance, not effect.
    effects.append(load_settings(env, None).model_dump(exclude={"key_source", "base_url_source"}))
    return tuple(effects)


def _accepts(name: str, value: str) -> bool:
    try:
        _effect({name: value})
    except (ValueError, ConfigError):
        return False
    return True


# --- the schema and the package ---------------------------------------------------------------


def test_server_json_is_valid_against_the_registry_schema() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(schema).validate(_server_json())


def test_the_description_fits_the_registry_limit() -> None:
    description = _server_json()["description"]
    assert isinstance(description, str)
    assert 0 < len(description) <= 100


def test_server_json_versions_are_the_package_version() -> None:
    entry = _server_json()
    assert entry["version"] == __version__
    assert _package()["version"] == __version__
    # The package takes its version from the same place: onepin_mcp/__init__.py.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["hatch"]["version"]["path"] == "onepin_mcp/__init__.py"


def test_the_package_is_the_pypi_distribution_launched_over_stdio() -> None:
    package = _package()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert package["registryType"] == "pypi"
    assert package["registryBaseUrl"] == "https://pypi.org"
    assert package["identifier"] == pyproject["project"]["name"]
    assert package["runtimeHint"] == "uvx"
    assert package["transport"] == {"type": "stdio"}
    # `uvx onepin-mcp` runs the console script of that name.
    assert "onepin-mcp" in pyproject["project"]["scripts"]


def test_the_readme_carries_the_registry_ownership_marker() -> None:
    # PyPI ownership check of the MCP Registry: `mcp-name: <server name>` in the README.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"mcp-name: {_server_json()['name']}" in readme


# --- the environment variables ----------------------------------------------------------------


def test_the_scan_finds_the_variables_the_code_reads() -> None:
    # Guards the scan itself: an empty or partial result would make the next test vacuous.
    found = environment_variables_read_by_the_code()
    assert {ENV_API_KEY, ENV_HTTP_TOKEN, ENV_TRANSPORT, "ONEPIN_BASE_URL"} <= found
    assert not any(name.endswith("_") for name in found)


def test_server_json_lists_every_environment_variable_the_code_reads_and_no_other() -> None:
    listed = set(_variables())
    read = environment_variables_read_by_the_code()
    assert sorted(read - listed) == [], "read by the code but missing from server.json"
    assert sorted(listed - read) == [], "in server.json but never read by the code"


def test_every_variable_is_described_with_whether_it_is_required_or_secret() -> None:
    for name, variable in _variables().items():
        assert isinstance(variable.get("description"), str), name
        assert variable["description"].strip(), name
        assert isinstance(variable.get("isRequired"), bool), name
        assert isinstance(variable.get("isSecret"), bool), name
        assert variable.get("format") in {"string", "number", "boolean", "filepath"}, name


def test_only_the_api_key_the_http_token_and_the_request_state_key_are_secret() -> None:
    secret = {name for name, variable in _variables().items() if variable["isSecret"]}
    assert secret == SECRETS


def test_no_variable_is_required_since_the_server_starts_without_any() -> None:
    required = {name for name, variable in _variables().items() if variable["isRequired"]}
    assert required == set()
    _effect({})  # an empty environment is a working configuration


def test_every_stated_default_is_what_the_code_does_when_the_variable_is_unset() -> None:
    baseline = _effect({})
    defaults = {name: v["default"] for name, v in _variables().items() if "default" in v}
    assert defaults, "no defaults to check"
    for name, default in defaults.items():
        assert _effect({name: default}) == baseline, f"{name}={default!r} is not the default"


def test_formats_mark_exactly_the_variables_that_take_numbers_or_booleans() -> None:
    variables = _variables()
    # Told apart by behaviour: a number variable takes "12" but not "twelve"; a boolean one
    # takes "true" and "false" but not "maybe".
    numbers = {name for name in variables if _accepts(name, "12") and not _accepts(name, "twelve")}
    booleans = {
        name
        for name in variables
        if _accepts(name, "true") and _accepts(name, "false") and not _accepts(name, "maybe")
    }
    assert numbers, "no number variable found: the check would be vacuous"
    assert booleans, "no boolean variable found: the check would be vacuous"
    assert {n for n, v in variables.items() if v["format"] == "number"} == numbers
    assert {n for n, v in variables.items() if v["format"] == "boolean"} == booleans


def test_choices_are_the_values_the_code_accepts() -> None:
    choices = {name: v["choices"] for name, v in _variables().items() if "choices" in v}
    assert choices == {
        ENV_TRANSPORT: list(TRANSPORTS),
        ENV_AUTH: list(AUTH_MODES),
        ENV_LOG_LEVEL: list(LOG_LEVELS),
        ENV_CONFIRM: list(CONFIRM_POLICIES),
    }
    for name, values in choices.items():
        default = _variables()[name].get("default")
        assert default is None or default in values, name


def test_every_placeholder_is_a_value_the_code_accepts() -> None:
    placeholders = {
        name: v["placeholder"] for name, v in _variables().items() if "placeholder" in v
    }
    assert placeholders
    for name, placeholder in placeholders.items():
        assert _accepts(name, placeholder), f"{name}={placeholder!r} is refused"


# --- the remote template ----------------------------------------------------------------------


def _remote() -> dict[str, Any]:
    remotes = _server_json()["remotes"]
    assert isinstance(remotes, list)
    assert len(remotes) == 1
    return dict(remotes[0])


def _fill(template: str, variables: Mapping[str, Mapping[str, Any]]) -> str:
    return TEMPLATE.sub(lambda m: str(variables[m.group(1)]["placeholder"]), template)


def test_the_remote_is_a_streamable_http_template_for_a_deployed_server() -> None:
    remote = _remote()
    assert remote["type"] == "streamable-http"
    variables = remote["variables"]
    # Every {name} in the URL is a declared variable, and every declared variable is used.
    assert set(TEMPLATE.findall(remote["url"])) == set(variables)
    for name, variable in variables.items():
        assert variable["isRequired"] is True, name
        assert variable["description"].strip(), name
        assert "placeholder" in variable, name
    url = urlsplit(_fill(remote["url"], variables))
    assert url.scheme == "https"
    assert url.hostname
    assert url.path == STREAMABLE_HTTP_PATH


def test_the_remote_sends_a_secret_bearer_credential() -> None:
    headers = {header["name"]: header for header in _remote()["headers"]}
    assert set(headers) == {"Authorization"}
    authorization = headers["Authorization"]
    assert authorization["isRequired"] is True
    assert authorization["isSecret"] is True
    value = authorization["value"]
    assert value.startswith("Bearer {")
    used = set(TEMPLATE.findall(value))
    assert used == set(authorization["variables"])
    for name in used:
        assert authorization["variables"][name]["isSecret"] is True, name
        assert authorization["variables"][name]["isRequired"] is True, name
