"""The release artefacts, built once per test session the way a release builds them.

`uv build` builds the sdist from the source tree and then the wheel from that sdist, each in an
isolated environment with the build backend fetched from PyPI: so the wheel under test is the
one a release uploads, and the sdist is proven complete enough to build it. uv's cache lives in
a temporary directory, so a developer's cache or configuration can't make a test pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from uv import find_uv_bin

from tests.support.sandbox_process import ServedSandbox, start_sandbox, stop_sandbox

ROOT = Path(__file__).resolve().parents[2]
# Generous: the first build in a fresh cache downloads the build backend.
BUILD_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class BuiltDistributions:
    wheel: Path
    sdist: Path


def uv_env(cache: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a uv command: the caller's (network settings, PATH), without any
    OnePin setting, with uv's cache in `cache`, no uv configuration file, and this interpreter
    as the Python to use (never one downloaded)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEPIN_")}
    env.pop("VIRTUAL_ENV", None)
    env.update(
        {
            "UV_CACHE_DIR": str(cache),
            "UV_NO_CONFIG": "1",
            "UV_PYTHON": sys.executable,
            "UV_PYTHON_DOWNLOADS": "never",
            "NO_COLOR": "1",
        }
    )
    env.update(extra or {})
    return env


@pytest.fixture(scope="session")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uv-cache")


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory, uv_cache: Path) -> BuiltDistributions:
    """The wheel and the sdist of the source tree, built into a temporary directory."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [find_uv_bin(), "build", "--out-dir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        env=uv_env(uv_cache),
        cwd=out,
        check=False,
    )
    assert done.returncode == 0, f"uv build failed:\n{done.stdout}\n{done.stderr}"
    wheels = sorted(out.glob("*.whl"))
    sdists = sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1, wheels
    assert len(sdists) == 1, sdists
    return BuiltDistributions(wheel=wheels[0], sdist=sdists[0])


@pytest.fixture
def sandbox() -> Iterator[ServedSandbox]:
    """A sandbox in its own process on loopback, for launches that must reach OnePin."""
    served = start_sandbox()
    try:
        yield served
    finally:
        stop_sandbox(served)
