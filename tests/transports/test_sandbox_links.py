"""`onepin-mcp --sandbox` hands out links that work: a real process starts a run, follows it,
and the ZIP behind `get_download_url` downloads over loopback with a plain HTTP client, holding
one playable WAV per delivered clip, as long as the run's data says. Over stdio and Streamable
HTTP; the links stop answering when the server stops."""

from __future__ import annotations

import io
import re
import wave
import zipfile
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client

from onepin_mcp.sandbox import seed
from tests.transports.sequence import ok
from tests.transports.served import start_server, stdio_params, stopping

pytestmark = pytest.mark.anyio

DEADLINE_S = 90.0
# Product tour takes about 16.5 s of sandbox time; at 20x it completes within a second.
FAST = ("--sandbox", "--sandbox-speed", "20")
PRODUCT_TOUR = seed.WORKFLOW_COMPLETES_ID
LOOPBACK_LINK = re.compile(r"^http://127\.0\.0\.1:\d+/files/[\w-]+/[\w.-]+$")
VOICES_LINE = re.compile(r"sandbox voices: (espeak-ng|tones \(install espeak-ng for speech\))")


async def fetch(url: str) -> httpx.Response:
    # A plain client, as a browser on the same machine: no key, no proxy from the environment.
    async with httpx.AsyncClient(trust_env=False, timeout=30) as plain:
        return await plain.get(url)


def wav_ms(data: bytes) -> float:
    with wave.open(io.BytesIO(data), "rb") as clip:
        assert (clip.getnchannels(), clip.getsampwidth()) == (1, 2)
        return 1000 * clip.getnframes() / clip.getframerate()


async def delivered_cards(client: Client, run_id: str) -> dict[str, dict[str, Any]]:
    """audio_id → card, for every delivered clip of the run (one page holds them all)."""
    args = {"workflow_id": PRODUCT_TOUR, "run_id": run_id, "limit": 100}
    page = ok(await client.call_tool("get_run_data", args), "get_run_data")
    assert page["next_offset"] is None
    return {
        card["audio_id"]: card
        for row in page["rows"]
        for card in row["cards"]
        if card["status"] == "delivered"
    }


async def check_zip(url: str, cards: dict[str, dict[str, Any]]) -> None:
    """The ZIP at `url` holds one WAV per card, each as long as the card says."""
    assert LOOPBACK_LINK.match(url), url
    answer = await fetch(url)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        by_audio_id = {name.rsplit("_", 1)[1].removesuffix(".wav"): name for name in names}
        assert len(by_audio_id) == len(names) == len(cards)
        assert set(by_audio_id) == set(cards)
        for audio_id, name in by_audio_id.items():
            card = cards[audio_id]
            assert name.startswith(f"{card['locale']}/")
            played_ms = wav_ms(archive.read(name))
            assert played_ms == int(played_ms), "a whole number of milliseconds"
            # The tool reports seconds to a tenth; the sandbox's own API test checks the ms.
            assert round(played_ms / 1000, 1) == card["duration_s"], (name, card)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_run_started_over_stdio_downloads_as_a_zip_of_clips_over_loopback(
    tmp_path: Path, mode: str
) -> None:
    log = tmp_path / "stderr.txt"
    with anyio.fail_after(DEADLINE_S):
        async with Client(
            stdio_params(tmp_path, *FAST, stderr_to=log), mode=mode, read_timeout_seconds=60
        ) as client:
            started = ok(
                await client.call_tool("start_run", {"workflow_id": PRODUCT_TOUR}), "start_run"
            )
            run = {"workflow_id": PRODUCT_TOUR, "run_id": started["id"]}
            waited = ok(
                await client.call_tool("wait_for_run", {**run, "timeout_s": 30}), "wait_for_run"
            )
            assert (waited["done"], waited["status"]) == (True, "completed"), waited

            cards = await delivered_cards(client, started["id"])
            assert len(cards) == 8, "four lines in English and Korean"
            link = ok(await client.call_tool("get_download_url", run), "get_download_url")
            await check_zip(link["url"], cards)

            # One clip's own link plays too, as long as its card says.
            audio_id, card = next(iter(cards.items()))
            clip_link = ok(
                await client.call_tool("get_download_url", {**run, "audio_id": audio_id}),
                "get_download_url",
            )
            clip = await fetch(clip_link["url"])
            assert clip.headers["content-type"] == "audio/wav"
            assert round(wav_ms(clip.content) / 1000, 1) == card["duration_s"]

        # The server is gone, and its links with it.
        with pytest.raises(httpx.ConnectError):
            await fetch(link["url"])

    stderr = log.read_text(encoding="utf-8")
    assert len(VOICES_LINE.findall(stderr)) == 1, stderr
    assert "Traceback" not in stderr


async def test_a_link_from_a_streamable_http_server_downloads_over_loopback(
    tmp_path: Path,
) -> None:
    served = start_server("--sandbox", "--transport", "streamable-http", home=tmp_path)
    with stopping(served), anyio.fail_after(DEADLINE_S):
        async with Client(served.url, read_timeout_seconds=30) as client:
            cards = await delivered_cards(client, seed.RUN_COMPLETED_ID)
            run = {"workflow_id": PRODUCT_TOUR, "run_id": seed.RUN_COMPLETED_ID}
            link = ok(await client.call_tool("get_download_url", run), "get_download_url")
            await check_zip(link["url"], cards)
    assert len(VOICES_LINE.findall(served.stderr_text())) == 1
    assert "Traceback" not in served.stderr_text()
