"""`serve()` on a real loopback socket: announces itself on stderr, answers, stops on SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import httpx

SERVE = "from onepin_mcp.sandbox.serve import serve; serve(port=0, manual_clock=True)"


def test_serve_listens_on_a_free_port_announces_url_and_key_and_stops_cleanly() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    try:
        url = key = None
        for line in process.stderr:
            url = url or (m.group(1) if (m := re.search(r"ONEPIN_BASE_URL=(\S+)", line)) else None)
            key = key or (m.group(1) if (m := re.search(r"ONEPIN_API_KEY=(\S+)", line)) else None)
            if url and key:
                break
        assert url is not None
        assert key is not None
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        whoami = httpx.get(
            f"{url}/api/v1/auth/whoami", headers={"Authorization": f"Bearer {key}"}, timeout=10
        )
        assert whoami.status_code == 200
        assert whoami.json()["data"]["auth_kind"] == "api_key"
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
    assert process.returncode == 0
    assert stdout == ""
