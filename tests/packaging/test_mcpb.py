"""The MCP Bundle: its manifest passes the official CLI, describes the server that really runs,
maps every user setting onto a value the server accepts, and the built .mcpb starts with uv
exactly as the manifest tells the desktop app to start it.

The official CLI runs pinned through npx (the npm registry is reachable wherever the tests run).
The bundle is built by scripts/build_mcpb.py into a temporary directory.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.types import TextContent
from uv import find_uv_bin

from onepin_mcp import __version__
from onepin_mcp.api.settings import (
    ENV_API_KEY,
    ENV_BASE_URL,
    ENV_WORKSPACE_ID,
    Settings,
    load_settings,
)
from onepin_mcp.options import ServeOptions, parse_command
from onepin_mcp.sandbox import seed
from onepin_mcp.selection import ToolSelection, resolve_selection
from onepin_mcp.server import create_server
from onepin_mcp.surface import list_tools
from tests.packaging.conftest import ROOT, BuiltDistributions, uv_env
from tests.support.sandbox_process import ServedSandbox

# The official CLI, pinned: `mcpb validate` of this version is what the manifest must pass.
MCPB_CLI = "@anthropic-ai/mcpb@2.1.2"
# The newest manifest version that CLI knows, and the first with the "uv" server type.
MANIFEST_VERSION = "0.4"
CLI_TIMEOUT_S = 300.0  # bounds a first download of the CLI into an empty npm cache
# A bound, not a measurement: the first start in a fresh uv cache downloads the dependencies.
BUNDLE_START_DEADLINE_S = 300.0
CALL_DEADLINE_S = 60.0

MANIFEST_PATH = ROOT / "packaging" / "mcpb" / "manifest.json"
PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")
# Settings the server reads from the environment, for the names used in mcp_config.env.
SERVER_VARIABLES_PATTERN = re.compile(r"ONEPIN_[A-Z0-9_]+")
EXAMPLE_KEY = "op_live_0123456789abcdefghijABCDEFGHIJ01"


def _load_build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_mcpb", ROOT / "scripts" / "build_mcpb.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_mcpb = _load_build_script()


def committed_manifest() -> Any:
    return json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))


def mcpb(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The official CLI, pinned, through npx."""
    npx = shutil.which("npx")
    assert npx is not None, "npx (Node.js) is needed to run the official MCPB CLI"
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false"}
    return subprocess.run(
        [npx, "--yes", MCPB_CLI, *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        cwd=cwd,
        env=env,
        check=False,
    )


def substitute(value: Any, variables: Mapping[str, str]) -> Any:
    """What the desktop app does to mcp_config: `${name}` replaced where `name` is known, left
    as it is where it isn't (an optional setting without a default stays a literal `${…}`)."""
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: variables.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [substitute(item, variables) for item in value]
    if isinstance(value, dict):
        return {key: substitute(item, variables) for key, item in value.items()}
    return value


def user_config_variables(
    manifest: Mapping[str, Any], answers: Mapping[str, Any]
) -> dict[str, str]:
    """`user_config.<key>` values as the app passes them: the defaults, then what the user set;
    booleans as "true"/"false"."""
    merged = {
        key: option["default"]
        for key, option in manifest["user_config"].items()
        if "default" in option
    }
    merged.update(answers)
    return {
        f"user_config.{key}": ("true" if value else "false")
        if isinstance(value, bool)
        else str(value)
        for key, value in merged.items()
    }


def server_environment(manifest: Mapping[str, Any], answers: Mapping[str, Any]) -> dict[str, str]:
    env = substitute(
        manifest["server"]["mcp_config"]["env"], user_config_variables(manifest, answers)
    )
    assert isinstance(env, dict)
    return env


# --- the manifest -------------------------------------------------------------------------------


def test_the_committed_manifest_is_what_the_build_script_generates_from_the_code() -> None:
    assert MANIFEST_PATH.read_text(encoding="utf-8") == build_mcpb.expected_manifest_text(), (
        "packaging/mcpb/manifest.json is out of date: run python scripts/build_mcpb.py"
    )


@pytest.mark.anyio
async def test_the_manifest_lists_exactly_the_tools_the_server_serves_by_default() -> None:
    manifest = committed_manifest()
    served = await list_tools(create_server(Settings()))
    listed = manifest["tools"]
    assert [tool["name"] for tool in listed] == [tool.name for tool in served]
    for entry, tool in zip(listed, served, strict=True):
        full = " ".join((tool.description or "").split())
        assert entry["description"], tool.name
        assert full.startswith(entry["description"]), tool.name
    # More tools can be switched on in the settings, which is what tools_generated says.
    everything = await list_tools(create_server(Settings(), selection=ToolSelection(("all",))))
    assert {tool.name for tool in everything} > {tool.name for tool in served}
    assert manifest["tools_generated"] is True


def test_the_manifest_names_the_version_the_server_and_its_uv_runtime() -> None:
    manifest = committed_manifest()
    assert manifest["manifest_version"] == MANIFEST_VERSION
    assert manifest["version"] == __version__
    assert manifest["name"] == "onepin-mcp"
    server = manifest["server"]
    assert server["type"] == "uv"
    assert server["entry_point"] == "server/main.py"
    config = server["mcp_config"]
    assert config["command"] == "uv"
    assert config["args"][-1] == "${__dirname}/" + server["entry_point"]
    pyproject = build_mcpb.tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert (
        manifest["compatibility"]["runtimes"]["python"] == pyproject["project"]["requires-python"]
    )


def test_every_setting_maps_onto_a_variable_the_server_reads() -> None:
    manifest = committed_manifest()
    settings = manifest["user_config"]
    env = manifest["server"]["mcp_config"]["env"]
    read_by_code = set()
    for path in (ROOT / "onepin_mcp").rglob("*.py"):
        if "sandbox" not in path.relative_to(ROOT).parts:
            read_by_code |= set(SERVER_VARIABLES_PATTERN.findall(path.read_text(encoding="utf-8")))
    assert set(env) <= read_by_code

    used = set()
    for value in env.values():
        names = PLACEHOLDER.findall(value)
        assert names, value
        assert all(name.startswith("user_config.") for name in names), value
        used |= {name.removeprefix("user_config.") for name in names}
    assert used == set(settings), "a setting that reaches no variable, or a variable with none"

    key = settings["api_key"]
    assert env[ENV_API_KEY] == "${user_config.api_key}"
    assert (key["type"], key["sensitive"], key["required"]) == ("string", True, True)
    for name, option in settings.items():
        if name != "api_key":
            # The app leaves `${user_config.x}` as it is for an unset setting with no default:
            # every optional setting has one, so the server never receives a placeholder.
            assert option["required"] is False, name
            assert "default" in option, name


def test_the_default_settings_give_the_servers_own_defaults() -> None:
    manifest = committed_manifest()
    env = server_environment(manifest, {"api_key": EXAMPLE_KEY})
    assert not any(PLACEHOLDER.search(value) for value in env.values()), env
    options = parse_command([], env)
    assert isinstance(options, ServeOptions)
    # The toolsets setting names the default toolsets; everything else is left at its default.
    assert resolve_selection(options.selection) == resolve_selection(ToolSelection())
    assert dataclasses.replace(options, selection=ToolSelection()) == ServeOptions()
    settings = load_settings(env, None)
    default = load_settings({ENV_API_KEY: EXAMPLE_KEY}, None)
    assert (settings.api_key, settings.base_url, settings.workspace_id) == (
        default.api_key,
        default.base_url,
        default.workspace_id,
    )


def test_every_setting_reaches_the_server_when_set() -> None:
    manifest = committed_manifest()
    workspace = "5b0d7a3e-2f4c-4e8a-9c1d-3a6f8b2e4d71"
    answers = {
        "api_key": EXAMPLE_KEY,
        "base_url": "https://onepin.example.com/",
        "workspace_id": workspace,
        "read_only": True,
        "max_run_credits": "250",
        "confirm": "writes",
        "toolsets": "all",
    }
    assert set(answers) == set(manifest["user_config"])
    env = server_environment(manifest, answers)
    options = parse_command([], env)
    assert isinstance(options, ServeOptions)
    assert options.selection == ToolSelection(toolsets=("all",), read_only=True)
    assert (options.policy.max_run_credits, options.policy.confirm) == (250, "writes")
    settings = load_settings(env, None)
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == EXAMPLE_KEY
    assert (settings.base_url, settings.workspace_id) == ("https://onepin.example.com", workspace)
    assert {ENV_API_KEY, ENV_BASE_URL, ENV_WORKSPACE_ID} <= set(env)


# --- the official CLI ---------------------------------------------------------------------------


def test_the_official_cli_validates_the_manifest(tmp_path: Path) -> None:
    done = mcpb("validate", str(MANIFEST_PATH), cwd=tmp_path)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "Manifest schema validation passes" in done.stdout


def test_the_official_cli_refuses_a_manifest_that_breaks_its_schema(tmp_path: Path) -> None:
    # The control for the test above: the same manifest with one setting of a type the schema
    # doesn't have must fail, so a pass there means something.
    broken = committed_manifest()
    broken["user_config"]["api_key"]["type"] = "password"
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(broken), encoding="utf-8")
    done = mcpb("validate", str(path), cwd=tmp_path)
    assert done.returncode != 0
    assert "user_config.api_key.type" in done.stdout


# --- the built bundle ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mcpb")
    return Path(build_mcpb.build(out, MANIFEST_PATH.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def unpacked(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle as the official CLI unpacks it."""
    target = tmp_path_factory.mktemp("unpacked")
    done = mcpb("unpack", str(bundle), str(target), cwd=target)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return target


def test_the_bundle_is_named_for_the_version_and_built_the_same_every_time(
    bundle: Path, tmp_path: Path
) -> None:
    assert bundle.name == f"onepin-mcp-{__version__}.mcpb"
    again = Path(build_mcpb.build(tmp_path, MANIFEST_PATH.read_text(encoding="utf-8")))
    assert again.read_bytes() == bundle.read_bytes()
    with zipfile.ZipFile(bundle) as archive:
        entries = archive.infolist()
    assert [entry.filename for entry in entries] == sorted(entry.filename for entry in entries)
    assert {entry.date_time for entry in entries} == {(1980, 1, 1, 0, 0, 0)}


def test_the_official_cli_reads_the_bundle_and_validates_what_it_unpacks(
    bundle: Path, unpacked: Path
) -> None:
    info = mcpb("info", str(bundle), cwd=bundle.parent)
    assert info.returncode == 0, f"{info.stdout}\n{info.stderr}"
    assert f"File: {bundle.name}" in info.stdout
    done = mcpb("validate", str(unpacked / "manifest.json"), cwd=unpacked)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert (unpacked / "manifest.json").read_bytes() == MANIFEST_PATH.read_bytes()


def test_the_bundle_holds_the_wheels_package_the_entry_point_and_the_dependencies(
    unpacked: Path, built_wheel: BuiltDistributions
) -> None:
    with zipfile.ZipFile(built_wheel.wheel) as wheel:
        package = {
            name: wheel.read(name) for name in wheel.namelist() if name.startswith("onepin_mcp/")
        }
    bundled = {
        path.relative_to(unpacked / "server").as_posix(): path.read_bytes()
        for path in (unpacked / "server" / "onepin_mcp").rglob("*")
        if path.is_file()
    }
    assert sorted(bundled) == sorted(package)
    assert bundled == package
    assert (unpacked / "server" / "main.py").is_file()
    assert (unpacked / "LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes()

    bundle_project = build_mcpb.tomllib.loads((unpacked / "pyproject.toml").read_text("utf-8"))
    source_project = build_mcpb.tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    assert bundle_project["project"]["dependencies"] == source_project["project"]["dependencies"]
    assert (
        bundle_project["project"]["requires-python"] == source_project["project"]["requires-python"]
    )
    assert bundle_project["tool"]["uv"]["package"] is False
    assert "build-system" not in bundle_project


@pytest.mark.anyio
async def test_the_bundle_starts_with_uv_as_the_manifest_says_and_serves_its_tools(
    unpacked: Path, sandbox: ServedSandbox, uv_cache: Path, tmp_path: Path
) -> None:
    """The manifest's own command, with `${__dirname}` and the settings filled in as the app
    fills them, run from an unrelated directory: uv installs the dependencies from PyPI into an
    environment of the bundle's own, and the server it starts is the bundled copy, talking to
    OnePin (here the sandbox, over HTTP) with the key from the settings."""
    # A copy of its own: running the bundle writes into it (uv's environment, bytecode).
    installed = tmp_path / "installed bundle"
    shutil.copytree(unpacked, installed)
    manifest = json.loads((installed / "manifest.json").read_text(encoding="utf-8"))
    answers = {"api_key": sandbox.key, "base_url": sandbox.base_url}
    variables = {"__dirname": str(installed), **user_config_variables(manifest, answers)}
    config = substitute(manifest["server"]["mcp_config"], variables)
    assert config["command"] == "uv"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    params = StdioServerParameters(
        command=find_uv_bin(),
        args=config["args"],
        env=uv_env(uv_cache, {**config["env"], "HOME": str(elsewhere)}),
        cwd=elsewhere,
    )
    with anyio.fail_after(BUNDLE_START_DEADLINE_S):
        async with Client(params, read_timeout_seconds=CALL_DEADLINE_S) as client:
            assert client.server_info is not None
            assert client.server_info.version == __version__
            tools = (await client.list_tools()).tools
            assert [tool.name for tool in tools] == [tool["name"] for tool in manifest["tools"]]
            account = await client.call_tool("get_account", {})
    assert not account.is_error, account
    text = " ".join(part.text for part in account.content if isinstance(part, TextContent))
    assert seed.WORKSPACE_ID in text
    # uv made the bundle's environment inside the bundle, from the bundle's pyproject.toml.
    assert (installed / ".venv").is_dir()
    requests = sandbox.control("GET", "/_sandbox/requests").json()["data"]
    assert any(request["path"] == "/api/v1/auth/whoami" for request in requests), requests
