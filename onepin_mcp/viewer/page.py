"""The run viewer's HTML document, assembled once from the files beside this module.

The page is one self-contained document: its stylesheet and script are inlined here, and its
Content-Security-Policy names each by its SHA-256 hash instead of allowing `'unsafe-inline'`, so
that nothing but these exact bytes can run or style it. It may load nothing from anywhere
(`default-src 'none'`, `connect-src 'none'`); audio arrives as `data:` URLs built from tool
results (`media-src data: blob:`).

The script's refresh pace is written into it from `watch.PollSchedule`, the schedule
`wait_for_run` polls on, so the viewer can never poll faster than the tool it stands beside.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from dataclasses import asdict
from importlib.resources import files

from onepin_mcp import __version__
from onepin_mcp.watch import PollSchedule

# The ext-apps protocol revision the page speaks (`ui/initialize`'s protocolVersion).
APP_PROTOCOL_VERSION = "2026-01-26"

# How long the page waits for the host to answer one request before it gives up on it.
REQUEST_TIMEOUT_MS = 30_000
# Run data is read in pages of this many lines, at most this many pages (a run's first 500
# lines); a longer run says so and points to get_run_data.
DATA_PAGE_LIMIT = 100
DATA_MAX_PAGES = 5


def _asset(name: str) -> str:
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


def _sha256_source(text: str) -> str:
    """A CSP hash source for an inline element whose content is exactly `text`."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def page_config() -> dict[str, object]:
    """What the script is told at build time: protocol, identity, pace and limits."""
    return {
        "protocolVersion": APP_PROTOCOL_VERSION,
        "appName": "onepin-run-viewer",
        "appVersion": __version__,
        "poll": asdict(PollSchedule()),
        "requestTimeoutMs": REQUEST_TIMEOUT_MS,
        "dataPageLimit": DATA_PAGE_LIMIT,
        "dataMaxPages": DATA_MAX_PAGES,
    }


def content_security_policy(script: str, style: str) -> str:
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {_sha256_source(script)}",
            f"style-src {_sha256_source(style)}",
            "media-src data: blob:",
            "img-src 'none'",
            "font-src 'none'",
            "connect-src 'none'",
            "frame-src 'none'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )


@functools.cache
def run_viewer_html() -> str:
    """The page, with its script, stylesheet and policy in place."""
    script = _asset("run_viewer.js").replace("__CONFIG__", json.dumps(page_config()))
    style = _asset("run_viewer.css")
    # An inline element ends at the first closing tag, whatever the quoting around it.
    if "</script" in script.lower() or "</style" in style.lower():
        raise ValueError("an inlined asset holds a closing tag")
    template = _asset("run_viewer.html")
    return (
        template.replace("__CSP__", content_security_policy(script, style))
        .replace("__STYLE__", style)
        .replace("__SCRIPT__", script)
    )
