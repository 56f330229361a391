"""A real MCP Apps host for the run viewer: headless Chromium, a host page, a real onepin-mcp.

The test's side holds an MCP client session (with Apps negotiated) to a child
`onepin-mcp --sandbox` over stdio, launched like any client launches it. A loopback HTTP server
serves the host page (`host.html`), the viewer's HTML as `resources/read` returned it, and
`/call`, where the host page sends the viewer's `tools/call` requests; each is made on the MCP
session and recorded with its arrival time. Chromium (Debian's, driven by Playwright, on a
fresh profile) loads the host page, which frames the viewer in a sandboxed iframe.

Used by the browser tests and by `scripts/screenshot_viewer.py`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextResourceContents
from playwright.async_api import BrowserContext, Frame, Page, async_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from onepin_mcp.viewer.app import VIEWER_URI
from tests.support.loopback import serving
from tests.transports.served import stdio_params

HOST_PAGE = Path(__file__).with_name("host.html")
APPS = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
# Flags for a quiet, self-contained headless run: no GPU, no sandbox (containers), and nothing
# that phones home (QUIC, component updates, sync, background networking).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
VIEWPORT = {"width": 800, "height": 600}


def chromium_path() -> str | None:
    """Debian's Chromium, if installed (never a browser Playwright downloaded)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[BrowserContext]:
    """Headless Chromium on a fresh profile directory `profile`."""
    executable = chromium_path()
    assert executable is not None, "chromium is not installed"
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            headless=True,
            args=list(CHROMIUM_FLAGS),
            viewport=VIEWPORT,  # type: ignore[arg-type]
        )
        try:
            yield context
        finally:
            await context.close()


@dataclass(frozen=True)
class ProxiedCall:
    """One `tools/call` the viewer made through the host."""

    name: str
    arguments: dict[str, Any]
    at: float  # time.monotonic() when it reached the test's server


@dataclass
class ViewerHost:
    client: Client
    base_url: str
    viewer_html: str
    calls: list[ProxiedCall] = field(default_factory=list)

    def calls_to(self, name: str) -> list[ProxiedCall]:
        return [call for call in self.calls if call.name == name]

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        """A call made as the model would make it: the result the host shows the viewer."""
        result = await self.client.call_tool(name, arguments)
        assert not result.is_error, result.content
        return result

    async def open(
        self,
        context: BrowserContext,
        *,
        arguments: dict[str, Any],
        result: CallToolResult,
    ) -> tuple[Page, Frame]:
        """A host page showing the viewer for one tool call; returns the page and the viewer's
        frame once the viewer has initialized."""
        page = await context.new_page()
        await page.goto(f"{self.base_url}/")
        scenario = {
            "arguments": arguments,
            "result": result.model_dump(mode="json", by_alias=True, exclude_none=True),
        }
        await page.evaluate("scenario => window.hostStart(scenario)", scenario)
        await page.wait_for_function(
            "() => window.hostLog.some(m => m.method === 'ui/notifications/initialized')"
        )
        frame = page.main_frame.child_frames[0]
        return page, frame

    async def _call(self, request: Request) -> Response:
        params = await request.json()
        name, arguments = str(params["name"]), dict(params.get("arguments") or {})
        self.calls.append(ProxiedCall(name, arguments, time.monotonic()))
        try:
            result = await self.client.call_tool(name, arguments)
        except MCPError as exc:
            return JSONResponse({"error": {"code": exc.error.code, "message": exc.error.message}})
        return JSONResponse(
            {"result": result.model_dump(mode="json", by_alias=True, exclude_none=True)}
        )

    def app(self) -> Starlette:
        async def host_page(request: Request) -> Response:
            return HTMLResponse(HOST_PAGE.read_text(encoding="utf-8"))

        async def viewer(request: Request) -> Response:
            return HTMLResponse(self.viewer_html)

        return Starlette(
            routes=[
                Route("/", host_page),
                Route("/viewer.html", viewer),
                Route("/call", self._call, methods=["POST"]),
            ]
        )


async def screenshot_viewer(page: Page, path: Path, *, max_height: int | None = None) -> int:
    """A PNG of the viewer's frame, from its top, at most `max_height` pixels tall; returns its
    size in bytes. The frame is as tall as the viewer said (size-changed), and Chromium paints
    only what is in the viewport, so the viewport is made that tall first."""
    height = int(await page.locator("#app").evaluate("frame => frame.offsetHeight"))
    width = VIEWPORT["width"]
    await page.set_viewport_size({"width": width, "height": height})
    await page.evaluate("() => window.scrollTo(0, 0)")
    clip = {"x": 0, "y": 0, "width": width, "height": min(height, max_height or height)}
    png = await page.screenshot(path=str(path), clip=clip)  # type: ignore[arg-type]
    return len(png)


@asynccontextmanager
async def viewer_host(home: Path, *, mode: str, speed: float) -> AsyncIterator[ViewerHost]:
    """A real `onepin-mcp --sandbox` (sandbox time `speed` times real time) behind a host page
    on a loopback port."""
    params = stdio_params(home, "--sandbox", "--sandbox-speed", str(speed))
    async with Client(params, mode=mode, extensions=[APPS], read_timeout_seconds=60) as client:  # type: ignore[arg-type]
        read = await client.read_resource(VIEWER_URI)
        page = read.contents[0]
        assert isinstance(page, TextResourceContents)
        assert page.mime_type == APP_MIME_TYPE
        host = ViewerHost(client, "", page.text)
        async with serving(host.app()) as url:
            host.base_url = url
            yield host
