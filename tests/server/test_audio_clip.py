"""get_audio_clip and the clip resource: a line in one locale as audio a client can play, with
its text and scores; a link instead past the size cap; failures worded for the agent; and a
presigned-file request that never carries the API key."""

from __future__ import annotations

import base64
import io
import json
import wave
from typing import Any

import httpx
import pytest
from mcp import Client, MCPError
from mcp.types import (
    INVALID_PARAMS,
    AudioContent,
    BlobResourceContents,
    CallToolResult,
    ResourceTemplateReference,
    TextContent,
)

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.models import DataCard, DataRow
from onepin_mcp.sandbox import Sandbox, seed
from onepin_mcp.sandbox.requestlog import key_id_of
from onepin_mcp.views.runs import audio_mime_type

from .conftest import SANDBOX_URL, ServerFactory, error_text, sandbox_settings, structured

pytestmark = pytest.mark.anyio

COMPLETED = {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "run_id": seed.RUN_COMPLETED_ID}
AUDIO_TEMPLATE = "onepin://workflows/{workflow_id}/runs/{run_id}/audio/{audio_id}"
UNKNOWN_AUDIO_ID = "0123456789abcdef"


def clip_uri(workflow_id: str, run_id: str, audio_id: str) -> str:
    return AUDIO_TEMPLATE.format(workflow_id=workflow_id, run_id=run_id, audio_id=audio_id)


async def first_line(api: OnePinClient) -> DataRow:
    data = await api.get_run_data(seed.WORKFLOW_COMPLETES_ID, seed.RUN_COMPLETED_ID, limit=1)
    return data.rows[0]


def audio_block(result: CallToolResult) -> AudioContent:
    audio = [block for block in result.content if isinstance(block, AudioContent)]
    assert len(audio) == 1, result.content
    return audio[0]


def wav_duration_ms(data: bytes) -> tuple[float, float]:
    """A WAV's duration and the length of one of its frames, both in milliseconds."""
    with wave.open(io.BytesIO(data), "rb") as wav:
        rate = wav.getframerate()
        return wav.getnframes() * 1000 / rate, 1000 / rate


def reported_scores(card: DataCard) -> dict[str, Any]:
    return {
        v.kind: v.score if v.score is not None and v.status == "available" else v.status
        for v in card.validations
    }


# --- the tool -------------------------------------------------------------------------------------


async def test_a_clip_comes_back_as_wav_as_long_as_the_api_says_with_its_text_and_scores(
    mcp_client: Client, api: OnePinClient
) -> None:
    row = await first_line(api)
    assert len(row.cards) == 2  # en-us and ko-kr: both locales of the line
    for card in row.cards:
        assert card.audio_id is not None
        assert card.audio is not None
        assert card.audio.duration_ms is not None
        result = await mcp_client.call_tool(
            "get_audio_clip", {**COMPLETED, "audio_id": card.audio_id}
        )
        clip = structured(result)
        audio = audio_block(result)
        assert audio.mime_type == "audio/wav"
        wav = base64.b64decode(audio.data)
        duration_ms, frame_ms = wav_duration_ms(wav)
        # The whole take, to within one sample: what the API reports is what a person hears.
        assert abs(duration_ms - card.audio.duration_ms) <= frame_ms, card.locale_code
        assert clip["audio_id"] == card.audio_id
        assert clip["line_index"] == row.line_index
        assert clip["locale"] == card.locale_code
        assert clip["text"] == card.script
        assert clip["duration_s"] == round(card.audio.duration_ms / 1000, 1)
        assert clip["scores"] == reported_scores(card)
        assert clip["transcript"] == next(v.transcript for v in card.validations if v.transcript)
        assert clip["size_bytes"] == len(wav)
        assert clip["attached"] is True
        assert "url" not in clip  # the audio is here: no link to spend tokens on
        # The text twin says the same as the structured result, for clients that read text only.
        texts = [block for block in result.content if isinstance(block, TextContent)]
        assert [json.loads(block.text) for block in texts] == [clip]


async def test_the_clip_matches_what_get_run_data_shows_for_it(mcp_client: Client) -> None:
    data = structured(await mcp_client.call_tool("get_run_data", {**COMPLETED, "limit": 1}))
    card = data["rows"][0]["cards"][1]
    clip = structured(
        await mcp_client.call_tool("get_audio_clip", {**COMPLETED, "audio_id": card["audio_id"]})
    )
    assert clip["locale"] == card["locale"]
    assert clip["scores"] == card["scores"]
    assert clip["duration_s"] == card["duration_s"]
    assert clip["status"] == card["status"]


async def test_a_clip_over_the_size_cap_comes_back_as_its_link_and_says_so(
    make_server: ServerFactory, mode: str, sandbox: Sandbox, api: OnePinClient
) -> None:
    audio_id = (await first_line(api)).cards[0].audio_id
    server = make_server(settings=sandbox_settings(sandbox, max_clip_bytes=1000))
    async with Client(server, mode=mode) as client:  # type: ignore[arg-type]
        result = await client.call_tool("get_audio_clip", {**COMPLETED, "audio_id": audio_id})
    clip = structured(result)
    assert not [block for block in result.content if isinstance(block, AudioContent)]
    assert clip["attached"] is False
    assert clip["size_bytes"] > 1000
    assert clip["url"].startswith(SANDBOX_URL)
    assert f"{audio_id}.wav" in clip["url"]
    assert clip["expires_at"]
    assert f"{clip['size_bytes']} bytes, over this server's 1000-byte cap" in clip["next"]
    assert "url" in clip["next"]
    # The link it gives is a working one, and what it serves is the size it says.
    async with httpx.AsyncClient(transport=sandbox.transport()) as storage:
        served = await storage.get(clip["url"])
    assert served.status_code == 200
    assert len(served.content) == clip["size_bytes"]
    # The line's text and scores come with the link all the same.
    assert clip["text"]
    assert clip["scores"]


async def test_the_presigned_file_request_carries_no_api_key(
    mcp_client: Client, sandbox: Sandbox, api: OnePinClient
) -> None:
    audio_id = (await first_line(api)).cards[0].audio_id
    before = len(sandbox.requests)
    structured(await mcp_client.call_tool("get_audio_clip", {**COMPLETED, "audio_id": audio_id}))
    made = sandbox.requests.since(before)
    files = [record for record in made if record.path.startswith("/files/")]
    api_calls = [record for record in made if record.path.startswith("/api/")]
    assert len(files) == 1
    assert files[0].status == 200
    assert files[0].key_id is None  # no bearer token of any kind on the storage request
    # ...while the API calls around it did carry the server's key: the log would have seen it.
    assert api_calls
    assert {r.key_id for r in api_calls} == {key_id_of(sandbox.example_key)}


async def test_an_unknown_audio_id_points_to_get_run_data(mcp_client: Client) -> None:
    text = error_text(
        await mcp_client.call_tool("get_audio_clip", {**COMPLETED, "audio_id": UNKNOWN_AUDIO_ID})
    )
    assert text.startswith("OnePin answered 404")
    assert "Call get_run_data to see the run's audio ids" in text
    assert "still" not in text  # the run is over: nothing more will appear

    malformed = error_text(
        await mcp_client.call_tool("get_audio_clip", {**COMPLETED, "audio_id": "clip-1"})
    )
    assert malformed.startswith("Invalid argument audio_id")
    assert "get_run_data" in malformed


async def test_a_clip_of_an_unknown_run_points_to_list_runs(mcp_client: Client) -> None:
    unknown_run = "0f6c2b8e-4a1d-4c9f-b3e7-000000000000"
    text = error_text(
        await mcp_client.call_tool(
            "get_audio_clip",
            {
                "workflow_id": seed.WORKFLOW_COMPLETES_ID,
                "run_id": unknown_run,
                "audio_id": UNKNOWN_AUDIO_ID,
            },
        )
    )
    assert f"No run {unknown_run}" in text
    assert "list_runs" in text


async def test_a_clip_not_generated_yet_says_to_wait_and_comes_once_it_is(
    mcp_client: Client, sandbox: Sandbox, api: OnePinClient
) -> None:
    run = await api.start_run(seed.WORKFLOW_COMPLETES_ID)
    # The id the run's last take will have (OnePin's ids are stable per take), before it exists.
    last = sandbox.store.runs[run.id].plan.takes[-1]
    ids = {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "run_id": run.id, "audio_id": last.audio_id}

    text = error_text(await mcp_client.call_tool("get_audio_clip", ids))
    assert "The run is still" in text
    assert "wait_for_run, then get_run_data" in text

    for _ in range(100):  # sandbox time, in steps, until the take is generated (never a real wait)
        state = await api.get_run_status(seed.WORKFLOW_COMPLETES_ID, run.id)
        if state.is_terminal:
            break
        sandbox.advance(2)
    clip = structured(await mcp_client.call_tool("get_audio_clip", ids))
    assert clip["attached"] is True
    assert clip["line_index"] == last.line_index
    assert clip["locale"] == last.locale


async def test_a_link_storage_refuses_is_explained_with_the_way_to_a_fresh_one(
    mcp_client: Client, sandbox: Sandbox, api: OnePinClient
) -> None:
    audio_id = (await first_line(api)).cards[0].audio_id
    sandbox.faults.add({"path": "/files/*", "status": 403})
    text = error_text(
        await mcp_client.call_tool("get_audio_clip", {**COMPLETED, "audio_id": audio_id})
    )
    assert text.startswith("OnePin's storage answered 403")
    assert "expire about 15 minutes" in text
    assert "Call get_audio_clip again" in text
    assert "/files/" not in text  # the link's signature is a credential while it lives


# --- the resource ---------------------------------------------------------------------------------


async def test_the_clip_resource_is_listed_as_wav(mcp_client: Client) -> None:
    listed = await mcp_client.list_resource_templates()
    template = next(t for t in listed.resource_templates if t.uri_template == AUDIO_TEMPLATE)
    assert template.mime_type == "audio/wav"
    assert "get_audio_clip" in (template.description or "")


async def test_the_clip_resource_serves_the_same_bytes_as_the_tool(
    mcp_client: Client, sandbox: Sandbox, api: OnePinClient
) -> None:
    audio_id = (await first_line(api)).cards[1].audio_id
    assert audio_id is not None
    uri = clip_uri(seed.WORKFLOW_COMPLETES_ID, seed.RUN_COMPLETED_ID, audio_id)
    before = len(sandbox.requests)
    read = await mcp_client.read_resource(uri)
    assert len(read.contents) == 1
    blob = read.contents[0]
    assert isinstance(blob, BlobResourceContents)
    assert blob.mime_type == "audio/wav"
    assert str(blob.uri) == uri
    files = [r for r in sandbox.requests.since(before) if r.path.startswith("/files/")]
    assert [r.key_id for r in files] == [None]

    tool = await mcp_client.call_tool("get_audio_clip", {**COMPLETED, "audio_id": audio_id})
    assert base64.b64decode(blob.blob) == base64.b64decode(audio_block(tool).data)


async def test_the_clip_resource_refuses_a_clip_over_the_cap_and_names_the_tool(
    make_server: ServerFactory, mode: str, sandbox: Sandbox, api: OnePinClient
) -> None:
    audio_id = (await first_line(api)).cards[0].audio_id
    assert audio_id is not None
    server = make_server(settings=sandbox_settings(sandbox, max_clip_bytes=1000))
    async with Client(server, mode=mode) as client:  # type: ignore[arg-type]
        with pytest.raises(MCPError) as caught:
            await client.read_resource(clip_uri(*COMPLETED.values(), audio_id))
    assert "1000-byte cap" in caught.value.error.message
    assert "get_audio_clip" in caught.value.error.message


async def test_an_unknown_clip_resource_is_not_found_and_points_to_get_run_data(
    mcp_client: Client,
) -> None:
    with pytest.raises(MCPError) as caught:
        await mcp_client.read_resource(clip_uri(*COMPLETED.values(), UNKNOWN_AUDIO_ID))
    assert caught.value.error.code == INVALID_PARAMS
    assert "get_run_data" in caught.value.error.message


async def test_audio_ids_complete_from_the_chosen_run(
    mcp_client: Client, api: OnePinClient
) -> None:
    data = await api.get_run_data(*COMPLETED.values(), limit=100)
    every = [card.audio_id for row in data.rows for card in row.cards]
    ref = ResourceTemplateReference(type="ref/resource", uri=AUDIO_TEMPLATE)
    chosen = dict(COMPLETED)
    offered = await mcp_client.complete(ref, {"name": "audio_id", "value": ""}, chosen)
    assert offered.completion.values == every
    prefix = every[-1]
    assert prefix is not None
    narrowed = await mcp_client.complete(ref, {"name": "audio_id", "value": prefix[:6]}, chosen)
    assert prefix in narrowed.completion.values
    assert all(value.startswith(prefix[:6]) for value in narrowed.completion.values)
    # Without the run chosen, there is nothing to offer yet.
    alone = await mcp_client.complete(
        ref, {"name": "audio_id", "value": ""}, {"workflow_id": seed.WORKFLOW_COMPLETES_ID}
    )
    assert alone.completion.values == []


def test_only_a_plain_audio_media_type_from_storage_is_passed_on() -> None:
    assert audio_mime_type("audio/mpeg; codecs=mp3") == "audio/mpeg"
    assert audio_mime_type("text/html", "audio/ogg") == "audio/ogg"  # the card's type next
    # Storage's header is untrusted: an invisible character or another type falls back to WAV.
    assert audio_mime_type("audio/wav\u200b<script>") == "audio/wav"
    assert audio_mime_type(None, None) == "audio/wav"
