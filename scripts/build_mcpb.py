"""Build the MCP Bundle (MCPB), Claude Desktop's one-click install: dist/onepin-mcp-<version>.mcpb

    python scripts/build_mcpb.py            # refresh packaging/mcpb/manifest.json, then build
    python scripts/build_mcpb.py --check    # only say whether the committed manifest is current

The manifest's hand-written parts live in packaging/mcpb/manifest.json. What the code decides is
filled in from the live code on every build, so that the bundle can't describe another server:
the version (`onepin_mcp.__version__`), the tool list (names and first sentences of the
descriptions of the default tool set, read through `tools/list` from a server built the way the
bundle runs it), and the defaults and valid values of the settings that mirror options.

The bundle is a zip of:

    manifest.json        the manifest (server type "uv": the app's uv provides Python and the
                         dependencies)
    pyproject.toml       the package's runtime dependencies, for uv (not an installable project)
    server/main.py       the entry point
    server/onepin_mcp/   the package's own files, as the wheel has them
    LICENSE

Entries are sorted and carry fixed timestamps and permissions, so the same sources always give
the same bytes. See docs/bundle.md.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from anywhere, against this checkout

from onepin_mcp import __version__  # noqa: E402
from onepin_mcp.api.settings import DEFAULT_BASE_URL, Settings  # noqa: E402
from onepin_mcp.options import CONFIRM_POLICIES  # noqa: E402
from onepin_mcp.server import create_server  # noqa: E402
from onepin_mcp.state import WritePolicy  # noqa: E402
from onepin_mcp.surface import list_tools  # noqa: E402
from onepin_mcp.tools.registry import DEFAULT_TOOLSETS, TOOLSETS  # noqa: E402

SOURCE = ROOT / "packaging" / "mcpb"
MANIFEST = SOURCE / "manifest.json"
ENTRY_POINT = SOURCE / "server" / "main.py"
PACKAGE = ROOT / "onepin_mcp"
PYPROJECT = ROOT / "pyproject.toml"
LICENSE = ROOT / "LICENSE"
DIST = ROOT / "dist"

# 1980-01-01, the earliest time a zip entry can carry: the same for every build.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
SUMMARY_MIN_CHARS = 40


def bundle_name(version: str = __version__) -> str:
    return f"onepin-mcp-{version}.mcpb"


# --- the manifest -------------------------------------------------------------------------------


def summary(description: str) -> str:
    """The opening of a tool description, on one line, for the app's tool list: its first
    sentence, or more while that is shorter than `SUMMARY_MIN_CHARS` ("One workflow.")."""
    flat = " ".join(description.split())
    end = flat.find(". ")
    while 0 <= end < SUMMARY_MIN_CHARS:
        end = flat.find(". ", end + 1)
    return flat if end < 0 else flat[: end + 1]


async def default_tools() -> list[dict[str, str]]:
    """Name and summary of every tool the bundle serves with its default settings, in
    `tools/list` order, read from a live server over the MCP protocol."""
    tools = await list_tools(create_server(Settings()))
    return [{"name": tool.name, "description": summary(tool.description or "")} for tool in tools]


def generated_manifest(current: Mapping[str, Any], tools: Sequence[Mapping[str, str]]) -> Any:
    """`current` with every part the code decides set from the code."""
    manifest = json.loads(json.dumps(current))  # a deep copy
    manifest["version"] = __version__
    manifest["tools"] = [dict(tool) for tool in tools]
    settings = manifest["user_config"]
    settings["base_url"]["default"] = DEFAULT_BASE_URL
    settings["confirm"]["default"] = WritePolicy().confirm
    settings["confirm"]["description"] = (
        f"One of {', '.join(CONFIRM_POLICIES)}. destructive asks you before cancelling a run or "
        "deleting a workflow; writes asks before every change, starting runs included; never "
        "doesn't ask. Only where the app can show the server's questions."
    )
    settings["toolsets"]["default"] = ",".join(DEFAULT_TOOLSETS)
    off = [name for name in TOOLSETS if name not in DEFAULT_TOOLSETS]
    settings["toolsets"]["description"] = (
        f"Comma-separated toolsets to turn on, from {', '.join(TOOLSETS)}; or all. "
        f"Off by default: {', '.join(off)}."
    )
    return manifest


def render_manifest(manifest: Any) -> str:
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


def current_manifest() -> Any:
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


def expected_manifest_text() -> str:
    """What packaging/mcpb/manifest.json should hold for the code as it is."""
    tools = anyio.run(default_tools)
    return render_manifest(generated_manifest(current_manifest(), tools))


# --- the bundle's files -------------------------------------------------------------------------


def bundle_pyproject() -> str:
    """A pyproject.toml holding the package's runtime dependencies, for the app's uv to install.

    It describes an environment, not a package: `[tool.uv] package = false`, and no build
    system, so uv installs the dependencies and runs the entry point as a script."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    dependencies = "".join(
        f"    {json.dumps(dependency)},\n" for dependency in project["dependencies"]
    )
    return (
        "# The environment the onepin-mcp bundle runs in, installed by the app's uv.\n"
        "# Generated by scripts/build_mcpb.py from the package's pyproject.toml.\n"
        "[project]\n"
        'name = "onepin-mcp-bundle"\n'
        f'version = "{__version__}"\n'
        f"requires-python = {json.dumps(project['requires-python'])}\n"
        "dependencies = [\n"
        f"{dependencies}"
        "]\n"
        "\n"
        "[tool.uv]\n"
        "package = false\n"
    )


def package_files() -> dict[str, bytes]:
    """The package's files as the wheel holds them: everything under onepin_mcp/ except caches."""
    files: dict[str, bytes] = {}
    for path in sorted(PACKAGE.rglob("*")):
        relative = path.relative_to(ROOT)
        if not path.is_file() or "__pycache__" in relative.parts:
            continue
        if path.suffix in (".pyc", ".pyo"):
            continue
        files[f"server/{relative.as_posix()}"] = path.read_bytes()
    return files


def bundle_files(manifest_text: str) -> dict[str, bytes]:
    """Every entry of the bundle: its path inside the zip and its bytes."""
    files = {
        "manifest.json": manifest_text.encode("utf-8"),
        "pyproject.toml": bundle_pyproject().encode("utf-8"),
        "server/main.py": ENTRY_POINT.read_bytes(),
        **package_files(),
    }
    if LICENSE.is_file():
        files["LICENSE"] = LICENSE.read_bytes()
    return files


def zip_bytes(files: Mapping[str, bytes]) -> bytes:
    """A zip of `files`, the same bytes for the same files: sorted, fixed times and modes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so that the mode below is read
            info.external_attr = (0o100000 | FILE_MODE) << 16  # a regular file, rw-r--r--
            archive.writestr(info, files[name], compresslevel=9)
    return buffer.getvalue()


def build(out_dir: Path, manifest_text: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / bundle_name()
    target.write_bytes(zip_bytes(bundle_files(manifest_text)))
    return target


# --- the command --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if packaging/mcpb/manifest.json is not what the code gives; build nothing",
    )
    parser.add_argument(
        "--out", type=Path, default=DIST, help="directory for the .mcpb (default: dist/)"
    )
    args = parser.parse_args(argv)

    expected = expected_manifest_text()
    committed = MANIFEST.read_text(encoding="utf-8")
    if args.check:
        if committed != expected:
            print(
                f"{MANIFEST.relative_to(ROOT)} is out of date with the code; run "
                "python scripts/build_mcpb.py",
                file=sys.stderr,
            )
            return 1
        print(f"{MANIFEST.relative_to(ROOT)} is up to date")
        return 0
    if committed != expected:
        MANIFEST.write_text(expected, encoding="utf-8")
        print(f"updated {MANIFEST.relative_to(ROOT)}")
    target = build(args.out, expected)
    data = target.read_bytes()
    tools = len(json.loads(expected)["tools"])
    print(
        f"{target} ({len(data):,} bytes, {tools} tools, sha256 {hashlib.sha256(data).hexdigest()})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
