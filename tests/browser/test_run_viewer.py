"""The run viewer in a real browser: headless Chromium, a host page speaking the host side of
MCP Apps, and a real `onepin-mcp --sandbox` answering the viewer's tool calls (harness.py).

Each test runs in both protocol eras of the host's MCP session. Screenshots are kept under
`artifacts/browser/` (gitignored) for a person to look at.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from playwright.async_api import ConsoleMessage, Frame, Page, expect

from onepin_mcp.sandbox import seed
from onepin_mcp.watch import PollSchedule
from tests.browser.harness import (
    ViewerHost,
    chromium,
    chromium_path,
    screenshot_viewer,
    viewer_host,
)

pytestmark = pytest.mark.anyio

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"
# Sandbox time runs this many times faster than real time: a Product tour run (16.5 s of
# sandbox time) takes about 4 s.
SPEED = 4.0
DEADLINE_S = 90.0
WAIT_MS = 45_000


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def host(tmp_path: Path, mode: str) -> AsyncIterator[ViewerHost]:
    if chromium_path() is None:
        pytest.skip("chromium is not installed (Debian package `chromium`; see .ci/run)")
    home = tmp_path / "home"
    home.mkdir()
    with anyio.fail_after(DEADLINE_S):
        async with viewer_host(home, mode=mode, speed=SPEED) as served:
            yield served


def _console_errors(page: Page) -> list[str]:
    """Console errors of the page and its frames (a CSP refusal is one)."""
    errors: list[str] = []

    def record(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", record)
    return errors


async def _screenshot(page: Page, request: pytest.FixtureRequest) -> None:
    name = request.node.name.replace("[", "-").replace("]", "")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await screenshot_viewer(page, ARTIFACTS / f"{name}.png")


async def _progress(frame: Frame, name: str) -> list[float]:
    return list(await frame.locator(f"#{name}-progress").evaluate("bar => [bar.value, bar.max]"))


async def test_a_product_tour_run_is_followed_to_the_end_and_a_clip_plays(
    host: ViewerHost, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    workflow_id = seed.WORKFLOW_COMPLETES_ID
    with anyio.fail_after(DEADLINE_S):
        started = await host.call_tool("start_run", {"workflow_id": workflow_id})
        async with chromium(tmp_path / "profile") as context:
            page, frame = await host.open(
                context, arguments={"workflow_id": workflow_id}, result=started
            )
            errors = _console_errors(page)
            status = frame.locator("#status")
            await expect(status).to_have_text("completed", timeout=WAIT_MS)
            # Followed live: more than one status read, paced like wait_for_run's polling.
            reads = host.calls_to("get_run_status")
            assert len(reads) >= 2
            gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(reads)]
            assert min(gaps) >= PollSchedule().min_s * 0.99, gaps
            # The status shows "completed" before the last reads finish; then refreshing stops.
            await expect(frame.locator("html")).to_have_attribute(
                "data-refresh", "stopped", timeout=WAIT_MS
            )

            assert await _progress(frame, "nodes") == [6, 6]
            assert await _progress(frame, "steps") == [8, 8]
            await expect(frame.locator("#steps li")).to_have_count(8)
            await expect(frame.locator("#validators")).to_contain_text("Word accuracy")
            await expect(frame.locator("#facts")).to_contain_text("Credits")
            # Four lines, each in English and Korean: eight clips to play.
            buttons = frame.locator("button.play")
            await expect(buttons).to_have_count(8)

            await buttons.first.click()
            audio = frame.locator("audio").first
            await expect(audio).to_have_count(1, timeout=WAIT_MS)
            await frame.wait_for_function(
                "() => { const a = document.querySelector('audio');"
                " return a !== null && a.readyState >= 1 && a.duration > 0; }",
                timeout=WAIT_MS,
            )
            duration = await audio.evaluate("a => a.duration")
            assert duration > 0
            assert (await audio.get_attribute("src") or "").startswith("data:audio/")
            assert [call.arguments for call in host.calls_to("get_audio_clip")] == [
                {
                    "workflow_id": workflow_id,
                    "run_id": started.structured_content["id"],  # type: ignore[index]
                    "audio_id": await _first_audio_id(host),
                }
            ]
            await _screenshot(page, request)
            assert not [e for e in errors if "Content Security Policy" in e], errors


async def _first_audio_id(host: ViewerHost) -> str:
    """The first clip of the run the viewer showed, as get_run_data lists it."""
    data = host.calls_to("get_run_data")[0].arguments
    result = await host.call_tool("get_run_data", data)
    assert result.structured_content is not None
    return str(result.structured_content["rows"][0]["cards"][0]["audio_id"])


async def test_a_failed_release_notes_run_shows_the_failed_step_and_its_reason(
    host: ViewerHost, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    arguments = {"workflow_id": seed.WORKFLOW_FAILS_ID, "run_id": seed.RUN_FAILED_ID}
    with anyio.fail_after(DEADLINE_S):
        status = await host.call_tool("get_run_status", arguments)
        async with chromium(tmp_path / "profile") as context:
            page, frame = await host.open(context, arguments=arguments, result=status)
            await expect(frame.locator("#status")).to_have_text("failed", timeout=WAIT_MS)
            failed = frame.locator("#steps li.failed")
            await expect(failed).to_have_count(1, timeout=WAIT_MS)
            await expect(failed).to_contain_text("Pronunciation check")
            await expect(failed.locator(".reason")).to_contain_text(
                "'kubectl', 'Kubernetes' mispronounced"
            )
            # The other six steps completed, and are not marked as failures.
            await expect(frame.locator("#steps li:not(.failed)")).to_have_count(6)
            assert await _progress(frame, "nodes") == [5, 6]
            await expect(frame.locator("#error")).to_contain_text("Pronunciation check")
            await expect(frame.locator("#validators")).to_contain_text("Pronunciation check")
            await _screenshot(page, request)
            # A terminal run is read once, not polled.
            await expect(frame.locator("html")).to_have_attribute(
                "data-refresh", "stopped", timeout=WAIT_MS
            )
            assert len(host.calls_to("get_run_status")) == 1


async def test_the_viewer_stops_refreshing_when_the_host_tears_it_down(
    host: ViewerHost, tmp_path: Path
) -> None:
    # A run with about 24 minutes of sandbox time to go: it stays active through the test.
    arguments = {"workflow_id": seed.WORKFLOW_COURSE_ID, "run_id": seed.RUN_RUNNING_ID}
    with anyio.fail_after(DEADLINE_S):
        status = await host.call_tool("get_run_status", arguments)
        async with chromium(tmp_path / "profile") as context:
            page, frame = await host.open(context, arguments=arguments, result=status)
            await expect(frame.locator("#status")).to_have_text("running", timeout=WAIT_MS)
            root = frame.locator("html")
            await expect(root).to_have_attribute("data-refresh", "active")
            await expect(root).to_have_attribute(
                "data-next-refresh-ms", str(int(PollSchedule().first_s * 1000))
            )
            answer = await page.evaluate("() => window.hostTeardown()")
            assert answer == {}
            assert await root.get_attribute("data-refresh") == "stopped"
            assert await root.get_attribute("data-next-refresh-ms") is None
            # The viewer told the host its size, for the host to fit the frame.
            sizes = await page.evaluate(
                "() => window.hostLog.filter(m => m.method === 'ui/notifications/size-changed')"
            )
            assert sizes
            assert sizes[-1]["params"]["height"] > 0
