"""What a server builds at start is left out of garbage collection while it serves, over HTTP
and over stdio.

A full collection walks every object the collector tracks; the ~110,000 a server builds before
its first request (modules, tools, schemas, the app) live as long as the process, so walking
them again every few hundred calls is pure cost. `serving.freeze_startup_heap` collects once
and freezes what is left, just before serving.
"""

from __future__ import annotations

import gc
import re
import weakref
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client

from onepin_mcp.serving import freeze_startup_heap
from tests.transports.served import start_server, stdio_params, stop_server

FROZEN = re.compile(r"(\d+) objects built at start left out of garbage collection")
# Far below what a server holds at start (about 110,000), far above what a freeze of nothing
# but the interpreter's own objects would count.
MIN_FROZEN_AT_START = 20_000


class _Node:
    """A container the collector tracks, which can be part of a cycle and weakly referenced."""

    peer: _Node | None = None


def _walked_by_collections(obj: object) -> bool:
    # `gc.get_objects()` lists the three generations a collection walks, not the frozen ones.
    return any(tracked is obj for tracked in gc.get_objects())


@pytest.fixture
def thawed() -> Iterator[None]:
    """The test process's heap is given back to the collector afterwards."""
    try:
        yield
    finally:
        gc.unfreeze()


@pytest.mark.usefixtures("thawed")
def test_objects_alive_when_serving_begins_are_never_walked_by_a_collection_again() -> None:
    built_at_start = _Node()
    assert _walked_by_collections(built_at_start)

    frozen = freeze_startup_heap()
    made_by_a_request = _Node()

    assert frozen >= 1
    assert not _walked_by_collections(built_at_start)
    assert _walked_by_collections(made_by_a_request)


@pytest.mark.usefixtures("thawed")
def test_garbage_left_from_start_is_collected_first_not_kept_for_ever() -> None:
    # A cycle only the collector can free: frozen, it would never be freed.
    first, second = _Node(), _Node()
    first.peer, second.peer = second, first
    gone = weakref.ref(first)
    del first, second

    freeze_startup_heap()

    assert gone() is None


def test_a_server_freezes_its_start_up_heap_before_it_announces_its_url(tmp_path: Path) -> None:
    served = start_server(
        "--sandbox", "--transport", "streamable-http", "--log-level", "debug", home=tmp_path
    )
    try:
        # The freeze comes before the announcement start_server waited for.
        found = FROZEN.search(served.stderr_text())
        assert found is not None, served.stderr_text()
        assert int(found.group(1)) >= MIN_FROZEN_AT_START
        # And it serves (which also means it is ready for a clean stop by signal).
        httpx.get(f"{served.base}/healthz", timeout=30).raise_for_status()
    finally:
        assert stop_server(served) == 0


@pytest.mark.anyio
async def test_a_stdio_server_freezes_its_start_up_heap_before_it_serves(tmp_path: Path) -> None:
    stderr = tmp_path / "stderr.txt"
    params = stdio_params(tmp_path, "--sandbox", "--log-level", "debug", stderr_to=stderr)
    with anyio.fail_after(60):
        async with Client(params) as client:
            tools = (await client.list_tools()).tools

    assert tools
    found = FROZEN.search(stderr.read_text())
    assert found is not None, stderr.read_text()
    assert int(found.group(1)) >= MIN_FROZEN_AT_START
