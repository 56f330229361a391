"""Sandbox audio agrees with what the API says about it: every clip plays for exactly the
`duration_ms` reported for it, a run's ZIP holds exactly the clips its data lists, and the
clips add up to the run's reported audio total. With either voice: espeak-ng speech or tones.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from onepin_mcp.sandbox import Sandbox, seed
from onepin_mcp.sandbox.speech import VoiceChoice
from tests.sandbox.clips import loudness_variation, open_clip, require_voice

pytestmark = pytest.mark.anyio

BASE_URL = "http://sandbox.onepin.test"
PRODUCT_TOUR = (seed.WORKFLOW_COMPLETES_ID, seed.RUN_COMPLETED_ID)  # EN+KO, 4 lines
SUPPORT_LINE = (seed.WORKFLOW_IVR_ID, seed.RUN_IVR_COMPLETED_ID)  # EN/FR/ES, 4 lines
SANDBOX_STEP_S = 5
MAX_STEPS = 200


@dataclass(frozen=True)
class Card:
    """One delivered clip as the run's data describes it."""

    audio_id: str
    locale: str
    line_index: int
    duration_ms: int
    playback_url: str

    @property
    def archive_name(self) -> str:
        return f"{self.locale}/line-{self.line_index + 1:03d}_{self.audio_id}.wav"


@pytest.fixture(params=["tone", "espeak"])
def voice(request: pytest.FixtureRequest) -> VoiceChoice:
    chosen: VoiceChoice = request.param
    return require_voice(chosen)


@pytest.fixture
def voiced_sandbox(voice: VoiceChoice) -> Sandbox:
    sandbox = Sandbox(manual_clock=True, voice=voice)
    assert sandbox.voice.name == voice
    return sandbox


@pytest.fixture
async def voiced(voiced_sandbox: Sandbox, anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {voiced_sandbox.example_key}"}
    async with httpx.AsyncClient(
        transport=voiced_sandbox.transport(), base_url=BASE_URL, headers=headers
    ) as http:
        yield http


def run_path(workflow_id: str, run_id: str) -> str:
    return f"/api/v1/workflows/{workflow_id}/runs/{run_id}"


async def data(client: httpx.AsyncClient, path: str, suffix: str) -> Any:
    answer = await client.get(path + suffix)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


async def delivered_cards(client: httpx.AsyncClient, path: str) -> list[Card]:
    answer = await client.get(path + "/data", params={"limit": 100})
    assert answer.json()["pagination"]["total"] <= 100, "one page holds every line"
    return [
        Card(
            audio_id=card["id"].rsplit(":", 1)[1],
            locale=card["locale_code"],
            line_index=card["line_index"],
            duration_ms=card["audio"]["duration_ms"],
            playback_url=card["audio"]["playback_url"],
        )
        for row in answer.json()["data"]["rows"]
        for card in row["cards"]
        if card["status"] == "delivered"
    ]


async def completed_onboarding_run(client: httpx.AsyncClient, sandbox: Sandbox) -> str:
    """A fresh run of "Onboarding welcome KO/JA" (EN, KO, JA), driven to completion by the clock
    (its seeded active run cancelled first: a workflow runs once at a time)."""
    runs = f"/api/v1/workflows/{seed.WORKFLOW_ONBOARDING_ID}/runs"
    active = await client.get(runs, params={"status": "pending,running,paused"})
    for run in active.json()["data"]:
        await client.post(f"{runs}/{run['id']}/cancel")
    started = await client.post(runs)
    run_id: str = started.json()["data"]["id"]
    path = run_path(seed.WORKFLOW_ONBOARDING_ID, run_id)
    for _ in range(MAX_STEPS):
        if (await data(client, path, "/status"))["status"] == "completed":
            return run_id
        sandbox.advance(SANDBOX_STEP_S)
    raise AssertionError("the onboarding run did not complete")


async def check_run_audio(client: httpx.AsyncClient, workflow_id: str, run_id: str) -> int:
    """Every check of this module on one completed run; returns how many clips it checked."""
    path = run_path(workflow_id, run_id)
    cards = await delivered_cards(client, path)
    assert cards, "a completed run delivers clips"

    # Each playback URL plays for exactly the card's duration_ms.
    for card in cards:
        answer = await client.get(card.playback_url)
        assert answer.headers["content-type"] == "audio/wav"
        clip = open_clip(answer.content)
        assert (clip.rate, clip.channels, clip.sample_width) == (16000, 1, 2)
        assert clip.duration_ms == card.duration_ms, card

    # The outputs list the same clips with the same durations.
    outputs = await data(client, path, "/outputs")
    listed = {
        (file["audio_id"], file["locale_code"], file["duration_ms"])
        for node in outputs["outputs"]
        for line in node["lines"]
        for file in line["audio_files"]
    }
    assert listed == {(c.audio_id, c.locale, c.duration_ms) for c in cards}

    # The ZIP holds exactly those clips, named by locale, line and audio id, each as long as
    # the data says.
    link = await data(client, path, "/download")
    archive = await client.get(link["url"])
    with zipfile.ZipFile(io.BytesIO(archive.content)) as opened:
        assert opened.testzip() is None
        assert sorted(opened.namelist()) == sorted(card.archive_name for card in cards)
        zipped_ms = {name: open_clip(opened.read(name)).duration_ms for name in opened.namelist()}
    assert zipped_ms == {card.archive_name: card.duration_ms for card in cards}

    # And they add up to the run's reported audio totals.
    total_ms = sum(zipped_ms.values())
    detail = await data(client, path, "")
    assert detail["usage_summary"]["audio_ms"] == total_ms
    assert (await data(client, path, "/analysis"))["audio"]["delivered_total_ms"] == total_ms
    return len(cards)


@pytest.mark.parametrize(
    ("workflow_id", "run_id"),
    [
        pytest.param(*PRODUCT_TOUR, id="product-tour"),
        pytest.param(*SUPPORT_LINE, id="support-line"),
    ],
)
async def test_every_clip_of_a_seeded_run_is_exactly_as_long_as_the_api_reports(
    voiced: httpx.AsyncClient, workflow_id: str, run_id: str
) -> None:
    checked = await check_run_audio(voiced, workflow_id, run_id)
    assert checked == (8 if run_id == seed.RUN_COMPLETED_ID else 12)


async def test_a_fresh_three_language_run_downloads_clips_as_long_as_its_data_says(
    voiced: httpx.AsyncClient, voiced_sandbox: Sandbox
) -> None:
    run_id = await completed_onboarding_run(voiced, voiced_sandbox)
    assert await check_run_audio(voiced, seed.WORKFLOW_ONBOARDING_ID, run_id) == 6


async def test_with_espeak_every_clip_sounds_like_speech_and_each_line_differently(
    voiced: httpx.AsyncClient, voice: VoiceChoice
) -> None:
    cards = await delivered_cards(voiced, run_path(*PRODUCT_TOUR))
    contents = [(await voiced.get(card.playback_url)).content for card in cards]
    variations = [loudness_variation(open_clip(content)) for content in contents]
    if voice == "espeak":
        # Loudness rises and falls with the syllables; and no two lines sound alike.
        assert min(variations) > 0.3, variations
        assert len(set(contents)) == len(contents)
    else:
        # A steady tone, the same for every line of a locale that lasts as long.
        assert max(variations) < 0.1, variations
