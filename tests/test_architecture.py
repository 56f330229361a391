"""The import rules of docs/architecture.md, checked over the source so that a shortcut fails CI.

Imports point down: `__main__` → server → tools/resources → watch → the `api` package (client →
models/errors/settings). The `api` package never imports `mcp`; only `__main__` imports the
sandbox; the sandbox is an independent reading of the API and imports nothing of the `api`
package; nothing imports the official SDK.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.module_map import layers

PACKAGE = Path(__file__).resolve().parent.parent / "onepin_mcp"
API = "onepin_mcp.api"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str | None = None) -> set[str]:
    """Absolute names of every module that `path` imports, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module or _module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join([*base, node.module] if node.module else base)
            else:
                stem = node.module or ""
            found.add(stem)
            found.update(f"{stem}.{alias.name}" for alias in node.names)
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def _is_under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_the_import_scanner_resolves_relative_and_absolute_imports(tmp_path: Path) -> None:
    # The rules below are only as good as the scanner, so it is checked on a known file.
    probe = tmp_path / "app.py"
    probe.write_text(
        "import mcp.server\nfrom ..client import OnePinClient\nfrom . import store\n"
        "def later():\n    from onepin import types\n",
        encoding="utf-8",
    )
    names = _imports(probe, module="onepin_mcp.sandbox.app")
    assert {"mcp.server", "onepin_mcp.client", "onepin_mcp.client.OnePinClient"} <= names
    assert {"onepin_mcp.sandbox", "onepin_mcp.sandbox.store", "onepin.types"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: _module_name(p))
def test_no_module_imports_the_official_onepin_sdk(path: Path) -> None:
    assert not any(_is_under(n, "onepin") for n in _imports(path))


@pytest.mark.parametrize(
    "path",
    [p for p in SOURCES if _is_under(_module_name(p), API)],
    ids=lambda p: _module_name(p),
)
def test_the_api_package_imports_neither_mcp_nor_the_sandbox(path: Path) -> None:
    bad = {n for n in _imports(path) if _is_under(n, "mcp") or _is_under(n, "onepin_mcp.sandbox")}
    assert not bad, f"{_module_name(path)} imports {sorted(bad)}"


@pytest.mark.parametrize(
    "path",
    [p for p in SOURCES if _is_under(_module_name(p), "onepin_mcp.sandbox")],
    ids=lambda p: _module_name(p),
)
def test_the_sandbox_is_an_independent_reading_of_the_api(path: Path) -> None:
    forbidden = [API, "mcp"]
    bad = {n for n in _imports(path) for f in forbidden if _is_under(n, f)}
    assert not bad, f"{_module_name(path)} imports {sorted(bad)}"


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in SOURCES
        if not _is_under(_module_name(p), "onepin_mcp.sandbox")
        and _module_name(p) != "onepin_mcp.__main__"
    ],
    ids=lambda p: _module_name(p),
)
def test_only_the_command_line_imports_the_sandbox(path: Path) -> None:
    assert not any(_is_under(n, "onepin_mcp.sandbox") for n in _imports(path))


# Layers of the package, lowest first: a module may import its own layer or lower ones, never
# higher ones. (The sandbox and the official SDK are covered by the rules above.)
# Every module's layer comes from the one table in tests/module_map.py, which also writes the
# module map in docs/architecture.md: place a new module there.
LAYERS: dict[str, int] = layers("server")


def _layer(module: str) -> int | None:
    """The layer of a module: its own entry, or its package's (views.runs is a view)."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in LAYERS and (end > 1 or module == "onepin_mcp"):
            return LAYERS[name]
    return None


SERVER_SIDE = [
    p
    for p in SOURCES
    if not _is_under(_module_name(p), "onepin_mcp.sandbox")
    and _module_name(p) != "onepin_mcp.__main__"
]


@pytest.mark.parametrize("path", SERVER_SIDE, ids=lambda p: _module_name(p))
def test_imports_point_down_the_layers(path: Path) -> None:
    module = _module_name(path)
    own = _layer(module)
    assert own is not None, f"{module} has no layer in LAYERS: place it"
    upward = {
        name
        for name in _imports(path)
        if _is_under(name, "onepin_mcp") and (layer := _layer(name)) is not None and layer > own
    }
    assert not upward, f"{module} (layer {own}) imports higher layers: {sorted(upward)}"


@pytest.mark.parametrize(
    "path",
    [PACKAGE / "resources.py", PACKAGE / "prompts.py"],
    ids=lambda p: _module_name(p),
)
def test_resources_and_prompts_do_not_depend_on_tools(path: Path) -> None:
    # The failure wording they share with tools lives below both, in `failures`.
    assert not any(_is_under(n, "onepin_mcp.tools") for n in _imports(path))


def test_the_layer_map_catches_an_upward_import(tmp_path: Path) -> None:
    probe = tmp_path / "client.py"
    probe.write_text("from onepin_mcp.server import create_server\n", encoding="utf-8")
    names = _imports(probe, module="onepin_mcp.api.client")
    assert any((_layer(n) or 0) > (_layer("onepin_mcp.api.client") or 0) for n in names)


# The sandbox's own layers, lowest first: the facade (`app`) routes to handlers; handlers read
# requests (`parsing`, `auth`), check definitions and render records; below them sit the store,
# the engine and the errors. A module may import its own layer or lower ones.
SANDBOX = "onepin_mcp.sandbox"
SANDBOX_LAYERS: dict[str, int] = layers("sandbox")  # from tests/module_map.py, as above


def _sandbox_layer(module: str) -> int | None:
    """The layer of a sandbox module: its own entry, or its closest package's."""
    parts = module.split(".")
    for end in range(len(parts), 1, -1):
        layer = SANDBOX_LAYERS.get(".".join(parts[:end]))
        if layer is not None:
            return layer
    return None


def _upward_sandbox_imports(path: Path, module: str) -> set[str]:
    own = _sandbox_layer(module)
    assert own is not None, f"{module} has no layer in SANDBOX_LAYERS: place it"
    return {
        name
        for name in _imports(path, module=module)
        # The bare package is only the stem of `from . import x`; `x` itself is checked.
        if _is_under(name, SANDBOX)
        and name != SANDBOX
        and (layer := _sandbox_layer(name)) is not None
        and layer > own
    }


@pytest.mark.parametrize(
    "path",
    [p for p in SOURCES if _is_under(_module_name(p), SANDBOX)],
    ids=lambda p: _module_name(p),
)
def test_sandbox_imports_point_from_the_facade_down_to_the_store(path: Path) -> None:
    module = _module_name(path)
    upward = _upward_sandbox_imports(path, module)
    assert not upward, f"{module} imports higher sandbox layers: {sorted(upward)}"


def test_the_sandbox_layer_map_catches_an_upward_import(tmp_path: Path) -> None:
    probe = tmp_path / "render.py"
    probe.write_text("from .handlers import runs\nfrom .app import Sandbox\n", encoding="utf-8")
    upward = _upward_sandbox_imports(probe, f"{SANDBOX}.render")
    assert {f"{SANDBOX}.handlers.runs", f"{SANDBOX}.app"} <= upward
