"""The release artefacts hold what they must and nothing else, and the wheel works on its own.

The wheel and sdist come from `uv build` (conftest.py). The wheel is then installed, alone, into
a fresh virtual environment with pip (its dependencies from PyPI) and launched the way client
configurations launch it (`uvx --from <wheel> onepin-mcp`); in both, `onepin-mcp --sandbox`
must serve the same tools over stdio as the source tree does. The commands run from a temporary
directory, so the source tree can't stand in for the installed package.
"""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from email.parser import Parser
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.types import Implementation, TextContent, Tool
from packaging.requirements import Requirement
from uv import find_uv_bin

from onepin_mcp import __version__
from onepin_mcp.api.settings import Settings
from onepin_mcp.sandbox import seed
from onepin_mcp.server import create_server
from onepin_mcp.surface import list_tools, snapshot
from tests.packaging.conftest import ROOT, BuiltDistributions, uv_env
from tests.transports.served import child_env

DIST_INFO = f"onepin_mcp-{__version__}.dist-info"
SDIST_PREFIX = f"onepin_mcp-{__version__}/"
# What the package needs at run time, and nothing it doesn't (the SDK, the HTTP client, the models
# and the async layer the server is built on, plus the two servers the sandbox uses directly and
# the TOML reader Python 3.10 lacks).
RUNTIME_DEPENDENCIES = {"mcp", "httpx", "pydantic", "anyio", "starlette", "uvicorn", "h11"}
PY310_ONLY_DEPENDENCIES = {"tomli"}
# Directories and files at the top of the sdist: the package, its tests and what they read.
SDIST_TREES = ("onepin_mcp", "tests", "docs", "bench", "scripts")
SDIST_FILES = (
    "pyproject.toml",
    "README.md",
    "CHANGELOG.md",
    "LICENSE",
    "SECURITY.md",
    "server.json",
)
# The bundle and container definitions: shipped, with their tests, wherever they exist.
SDIST_IF_PRESENT = ("packaging", "deploy", "Dockerfile", ".dockerignore")
# Written by the build backend itself.
SDIST_GENERATED = ("PKG-INFO", ".gitignore")
DEVELOPMENT_STATE = {
    ".git",
    ".venv",
    ".ci",
    "dist",
    "build",
    "node_modules",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
}

VENV_TIMEOUT_S = 120.0
INSTALL_TIMEOUT_S = 600.0
COMMAND_TIMEOUT_S = 120.0
# A bound, not a measurement: the first uvx launch in a fresh cache downloads the dependencies.
SESSION_DEADLINE_S = 300.0


def _source_files(top: str) -> set[str]:
    """Files under ROOT/top as posix paths relative to ROOT, without bytecode or caches."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / top).rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and path.suffix not in {".pyc", ".pyo"}
    }


def _wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def _wheel_text(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(name).decode("utf-8")


def _metadata(wheel: Path) -> Message:
    return Parser().parsestr(_wheel_text(wheel, f"{DIST_INFO}/METADATA"))


def _run(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float = COMMAND_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


# --- the wheel's contents ---------------------------------------------------------------------


@pytest.mark.network
def test_the_wheel_holds_the_whole_package_and_nothing_else(
    built_wheel: BuiltDistributions,
) -> None:
    names = _wheel_names(built_wheel.wheel)
    package = {name for name in names if not name.startswith(f"{DIST_INFO}/")}
    # Every module and data file of the package, the sandbox and its seed included...
    for needed in (
        "onepin_mcp/__main__.py",
        "onepin_mcp/py.typed",
        "onepin_mcp/sandbox/__init__.py",
        "onepin_mcp/sandbox/seed.py",
        "onepin_mcp/sandbox/app.py",
    ):
        assert needed in package
    # ...and nothing that isn't part of it: no tests, benchmarks, bytecode or environments.
    for name in names:
        assert not name.startswith(("tests/", "bench/", "docs/", "scripts/", ".venv/")), name
        assert "__pycache__" not in name, name
        assert not name.endswith((".pyc", ".pyo")), name
    assert package == _source_files("onepin_mcp")
    assert names - package == {
        f"{DIST_INFO}/METADATA",
        f"{DIST_INFO}/WHEEL",
        f"{DIST_INFO}/entry_points.txt",
        f"{DIST_INFO}/RECORD",
        f"{DIST_INFO}/licenses/LICENSE",
    }
    license_text = _wheel_text(built_wheel.wheel, f"{DIST_INFO}/licenses/LICENSE")
    assert license_text == (ROOT / "LICENSE").read_text(encoding="utf-8")


@pytest.mark.network
def test_the_wheel_is_pure_python_for_every_platform(built_wheel: BuiltDistributions) -> None:
    assert built_wheel.wheel.name == f"onepin_mcp-{__version__}-py3-none-any.whl"
    wheel = Parser().parsestr(_wheel_text(built_wheel.wheel, f"{DIST_INFO}/WHEEL"))
    assert wheel["Root-Is-Purelib"] == "true"
    assert wheel.get_all("Tag") == ["py3-none-any"]


@pytest.mark.network
def test_the_wheel_metadata_names_the_version_license_and_runtime_dependencies(
    built_wheel: BuiltDistributions,
) -> None:
    metadata = _metadata(built_wheel.wheel)
    assert metadata["Name"] == "onepin-mcp"
    assert metadata["Version"] == __version__
    assert metadata["Requires-Python"] == ">=3.10"
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert metadata.get_all("Provides-Extra") == ["dev"]

    runtime: set[str] = set()
    py310_only: set[str] = set()
    for line in metadata.get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None:
            runtime.add(requirement.name)
        elif marker.evaluate({"extra": "dev"}) and not marker.evaluate({"extra": ""}):
            continue  # development only
        else:
            assert not marker.evaluate({"python_version": "3.11", "extra": ""}), line
            assert marker.evaluate({"python_version": "3.10", "extra": ""}), line
            py310_only.add(requirement.name)
    assert runtime == RUNTIME_DEPENDENCIES
    assert py310_only == PY310_ONLY_DEPENDENCIES


@pytest.mark.network
def test_the_wheel_declares_the_console_script(built_wheel: BuiltDistributions) -> None:
    entry_points = configparser.ConfigParser()
    entry_points.read_string(_wheel_text(built_wheel.wheel, f"{DIST_INFO}/entry_points.txt"))
    assert dict(entry_points["console_scripts"]) == {"onepin-mcp": "onepin_mcp.__main__:main"}
    assert set(entry_points.sections()) == {"console_scripts"}


@pytest.mark.network
def test_the_pypi_description_carries_the_registry_ownership_line(
    built_wheel: BuiltDistributions,
) -> None:
    # The MCP Registry checks that the PyPI package belongs to the server by finding
    # `mcp-name: <server name>` in the package's description on PyPI, which is the README.
    metadata = _metadata(built_wheel.wheel)
    assert metadata["Description-Content-Type"] == "text/markdown"
    description = str(metadata.get_payload())
    assert "mcp-name: ai.onepin/onepin-mcp" in description
    assert description.strip() == (ROOT / "README.md").read_text(encoding="utf-8").strip()


# --- the sdist --------------------------------------------------------------------------------


@pytest.mark.network
def test_the_sdist_holds_the_source_its_tests_and_no_development_state(
    built_wheel: BuiltDistributions,
) -> None:
    with tarfile.open(built_wheel.sdist) as archive:
        members = [m.name for m in archive.getmembers() if m.isfile()]
        pkg_info = archive.extractfile(f"{SDIST_PREFIX}PKG-INFO")
        assert pkg_info is not None
        version = Parser().parsestr(pkg_info.read().decode("utf-8"))["Version"]
    assert version == __version__
    assert all(name.startswith(SDIST_PREFIX) for name in members), members
    names = {name.removeprefix(SDIST_PREFIX) for name in members}

    for name in names:
        parts = name.split("/")
        assert not DEVELOPMENT_STATE.intersection(parts), name
        assert not name.endswith((".pyc", ".pyo")), name
    top_level = {name.split("/")[0] for name in names}
    allowed = {*SDIST_TREES, *SDIST_FILES, *SDIST_IF_PRESENT, *SDIST_GENERATED}
    assert top_level <= allowed, top_level - allowed

    expected = {*SDIST_FILES, "PKG-INFO"}
    for tree in SDIST_TREES:
        expected |= _source_files(tree)
    for extra in SDIST_IF_PRESENT:
        path = ROOT / extra
        if path.is_dir():
            expected |= _source_files(extra)
        elif path.is_file():
            expected.add(extra)
    assert expected <= names, sorted(expected - names)


# --- the changelog ----------------------------------------------------------------------------


def test_the_changelog_has_an_entry_for_this_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    heading = re.compile(rf"^## \[{re.escape(__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", re.M)
    assert heading.search(changelog), f"CHANGELOG.md has no '## [{__version__}] - <date>' entry"


# --- the wheel installed alone into a fresh virtual environment ---------------------------------


@dataclass(frozen=True)
class Installed:
    bin: Path
    python: Path
    # Where commands run: outside the source tree, so `python -m` can't find the sources.
    workdir: Path
    env: dict[str, str]


def _install_env() -> dict[str, str]:
    """The caller's environment (network and pip settings), without OnePin settings or anything
    that would point Python at the source tree or the development environment."""
    dropped = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"}
    return {k: v for k, v in os.environ.items() if not k.startswith("ONEPIN_") and k not in dropped}


@pytest.fixture(scope="module")
def installed(
    built_wheel: BuiltDistributions, tmp_path_factory: pytest.TempPathFactory
) -> Installed:
    venv = tmp_path_factory.mktemp("fresh-venv")
    workdir = tmp_path_factory.mktemp("fresh-venv-home")
    env = _install_env()
    created = _run(
        [sys.executable, "-m", "venv", str(venv)], env=env, cwd=workdir, timeout=VENV_TIMEOUT_S
    )
    assert created.returncode == 0, created.stderr
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    done = _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-input",
            "--disable-pip-version-check",
            str(built_wheel.wheel),
        ],
        env=env,
        cwd=workdir,
        timeout=INSTALL_TIMEOUT_S,
    )
    assert done.returncode == 0, f"pip install failed:\n{done.stdout}\n{done.stderr}"
    return Installed(bin=bin_dir, python=python, workdir=workdir, env=child_env(workdir))


@pytest.mark.network
def test_the_fresh_install_is_the_wheel_with_consistent_dependencies(
    installed: Installed,
) -> None:
    where = _run(
        [str(installed.python), "-c", "import onepin_mcp; print(onepin_mcp.__file__)"],
        env=installed.env,
        cwd=installed.workdir,
    )
    assert where.returncode == 0, where.stderr
    module = Path(where.stdout.strip()).resolve()
    assert module.is_relative_to(installed.bin.parent.resolve()), module
    checked = _run(
        [str(installed.python), "-m", "pip", "check", "--disable-pip-version-check"],
        env=_install_env(),
        cwd=installed.workdir,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.network
def test_the_installed_command_prints_help_and_version(installed: Installed) -> None:
    command = str(installed.bin / "onepin-mcp")
    helped = _run([command, "--help"], env=installed.env, cwd=installed.workdir)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: onepin-mcp")
    for word in ("--sandbox", "--transport", "doctor", "sandbox"):
        assert word in helped.stdout
    for argv in (
        [command, "--version"],
        [str(installed.python), "-m", "onepin_mcp", "--version"],
    ):
        done = _run(argv, env=installed.env, cwd=installed.workdir)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"onepin-mcp {__version__}\n"


# --- the stdio session both launches must serve -------------------------------------------------


@dataclass(frozen=True)
class StdioSession:
    server_info: Implementation
    tools: list[Tool]
    workflows_text: str


async def _stdio_session(params: StdioServerParameters, mode: str) -> StdioSession:
    with anyio.fail_after(SESSION_DEADLINE_S):
        async with Client(params, mode=mode, read_timeout_seconds=SESSION_DEADLINE_S) as client:
            tools = (await client.list_tools()).tools
            listed = await client.call_tool("list_workflows", {})
            assert not listed.is_error, listed.content
            text = "".join(c.text for c in listed.content if isinstance(c, TextContent))
            return StdioSession(client.server_info, tools, text)


async def _assert_serves_the_default_tools_on_the_sandbox(session: StdioSession) -> None:
    assert session.server_info.version == __version__
    expected = await list_tools(create_server(Settings()))
    # The whole surface (names, descriptions, schemas, hints), not just the count.
    assert snapshot(session.tools) == snapshot(expected)
    # The sandbox and its seed data came with the wheel.
    assert seed.WORKFLOW_COMPLETES_ID in session.workflows_text


@pytest.mark.network
@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_fresh_install_serves_the_default_tools_over_stdio(
    installed: Installed, mode: str
) -> None:
    params = StdioServerParameters(
        command=str(installed.bin / "onepin-mcp"),
        args=["--sandbox"],
        env=installed.env,
        cwd=installed.workdir,
    )
    await _assert_serves_the_default_tools_on_the_sandbox(await _stdio_session(params, mode))


# --- the wheel launched by uvx, as client configurations do ------------------------------------


@dataclass(frozen=True)
class UvxLaunch:
    argv: list[str]
    workdir: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def uvx(
    built_wheel: BuiltDistributions, uv_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> UvxLaunch:
    uvx_bin = Path(find_uv_bin()).with_name("uvx.exe" if os.name == "nt" else "uvx")
    assert uvx_bin.is_file(), f"the uv package installs uvx beside uv: {uvx_bin}"
    workdir = tmp_path_factory.mktemp("uvx-home")
    return UvxLaunch(
        argv=[str(uvx_bin), "--from", str(built_wheel.wheel)],
        workdir=workdir,
        env=uv_env(uv_cache, {"HOME": str(workdir), "PYTHONUNBUFFERED": "1"}),
    )


@pytest.mark.network
def test_uvx_runs_the_wheel_in_an_environment_of_its_own(uvx: UvxLaunch) -> None:
    where = _run(
        [*uvx.argv, "python", "-c", "import onepin_mcp; print(onepin_mcp.__file__)"],
        env=uvx.env,
        cwd=uvx.workdir,
        timeout=SESSION_DEADLINE_S,
    )
    assert where.returncode == 0, where.stderr
    module = Path(where.stdout.strip()).resolve()
    assert not module.is_relative_to(ROOT.resolve()), module
    assert module.is_relative_to(Path(uvx.env["UV_CACHE_DIR"]).resolve()), module

    done = _run([*uvx.argv, "onepin-mcp", "--version"], env=uvx.env, cwd=uvx.workdir)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"onepin-mcp {__version__}\n"


@pytest.mark.network
@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_uvx_serves_the_default_tools_over_stdio(uvx: UvxLaunch, mode: str) -> None:
    params = StdioServerParameters(
        command=uvx.argv[0],
        args=[*uvx.argv[1:], "onepin-mcp", "--sandbox"],
        env=uvx.env,
        cwd=uvx.workdir,
    )
    await _assert_serves_the_default_tools_on_the_sandbox(await _stdio_session(params, mode))
