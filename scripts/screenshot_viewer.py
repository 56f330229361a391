"""Take the README's screenshot of the run viewer: a finished "Product tour EN+KO" run, as a
host renders it, in headless Chromium. Rerun after changing the viewer:

    python scripts/screenshot_viewer.py [--out docs/images/run-viewer.png]

It starts the browser tests' host (tests/browser/harness.py): a real `onepin-mcp --sandbox`
over stdio, a host page on a loopback port, and Debian's `chromium`. It starts a run, lets the
viewer follow it to the end, loads the first clip, and saves the viewer's frame as a PNG.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from anywhere, against this checkout

from onepin_mcp.sandbox import seed  # noqa: E402
from tests.browser.harness import (  # noqa: E402
    chromium,
    chromium_path,
    screenshot_viewer,
    viewer_host,
)

# Sandbox time runs this much faster than real time: the run takes about 4 s.
SPEED = 4.0
WAIT_MS = 60_000
# The top of the viewer: status, progress, facts, steps, scores and the first line's players.
MAX_HEIGHT = 690


async def take(out: Path) -> None:
    workflow_id = seed.WORKFLOW_COMPLETES_ID
    with tempfile.TemporaryDirectory() as scratch, anyio.fail_after(120):
        home, profile = Path(scratch) / "home", Path(scratch) / "profile"
        home.mkdir()
        async with viewer_host(home, mode="auto", speed=SPEED) as host:
            started = await host.call_tool("start_run", {"workflow_id": workflow_id})
            async with chromium(profile) as context:
                page, frame = await host.open(
                    context, arguments={"workflow_id": workflow_id}, result=started
                )
                await (
                    frame.locator("#status").filter(has_text="completed").wait_for(timeout=WAIT_MS)
                )
                await frame.locator("button.play").first.click()
                await frame.wait_for_function(
                    "() => { const a = document.querySelector('audio');"
                    " return a !== null && a.duration > 0; }",
                    timeout=WAIT_MS,
                )
                out.parent.mkdir(parents=True, exist_ok=True)
                size = await screenshot_viewer(page, out, max_height=MAX_HEIGHT)
    print(f"wrote {out} ({size} bytes)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "run-viewer.png")
    args = parser.parse_args()
    if chromium_path() is None:
        print("chromium is not installed (Debian package `chromium`)", file=sys.stderr)
        return 1
    anyio.run(take, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
