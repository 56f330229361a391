"""Download links: absolute URLs on the sandbox itself, serving real ZIPs of WAVs for 15 minutes."""

from __future__ import annotations

import io
import wave
import zipfile

import httpx
import pytest

from onepin_mcp.sandbox import Sandbox, seed

pytestmark = pytest.mark.anyio

RUN = f"/api/v1/workflows/{seed.WORKFLOW_COMPLETES_ID}/runs/{seed.RUN_COMPLETED_ID}"


async def test_a_completed_run_downloads_as_a_zip_of_wav_files(client: httpx.AsyncClient) -> None:
    link = (await client.get(RUN + "/download")).json()["data"]
    assert link["url"].startswith("http://sandbox.onepin.test/")
    assert link["filename"] == "product-tour-en-ko_run-2.zip"
    assert link["expires_at"] == "2026-03-12T09:15:00Z"
    archive = await client.get(link["url"], headers={"Authorization": ""})
    assert archive.status_code == 200
    assert archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as opened:
        assert opened.testzip() is None
        names = opened.namelist()
        assert len(names) == 8, "four lines in two languages"
        assert {name.split("/")[0] for name in names} == {"en-us", "ko-kr"}
        with wave.open(io.BytesIO(opened.read(names[0]))) as clip:
            assert clip.getnframes() > 0


async def test_a_download_link_expires_after_fifteen_minutes_of_sandbox_time(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    url = (await client.get(RUN + "/download")).json()["data"]["url"]
    sandbox.advance(14 * 60)
    assert (await client.get(url)).status_code == 200
    sandbox.advance(60)
    expired = await client.get(url)
    assert expired.status_code == 403
    assert b"Request has expired" in expired.content
    fresh = (await client.get(RUN + "/download")).json()["data"]["url"]
    assert fresh != url
    assert (await client.get(fresh)).status_code == 200


async def test_a_forged_or_unknown_file_token_is_404(client: httpx.AsyncClient) -> None:
    url = (await client.get(RUN + "/download")).json()["data"]["url"]
    token_part = url.rsplit("/", 2)[-2]
    assert (await client.get(url.replace(token_part, "forged"))).status_code == 404
    assert (await client.get(url.rsplit("/", 1)[0] + "/other.zip")).status_code == 404


async def test_the_output_node_downloads_and_other_nodes_are_404(client: httpx.AsyncClient) -> None:
    node = await client.get(RUN + "/nodes/sink-1/download")
    assert node.status_code == 200
    assert node.json()["data"]["filename"] == "product-tour-en-ko_run-2_export.zip"
    assert (await client.get(node.json()["data"]["url"])).status_code == 200
    assert (await client.get(RUN + "/nodes/gen-1/download")).status_code == 404
    assert (await client.get(RUN + "/nodes/nope/download")).status_code == 404


async def test_every_card_plays_and_its_audio_id_refreshes_a_url(client: httpx.AsyncClient) -> None:
    rows = (await client.get(RUN + "/data")).json()["data"]["rows"]
    card = rows[0]["cards"][1]
    assert card["locale_code"] == "ko-kr"
    assert card["source_line_id"] == "ln-0"
    assert card["status"] == "delivered"
    assert card["validations"][0]["kind"] == "wer"
    clip = await client.get(card["audio"]["playback_url"])
    assert clip.status_code == 200
    assert clip.content[:4] == b"RIFF"
    audio_id = card["id"].rsplit(":", 1)[1]
    fresh = (await client.get(f"{RUN}/audio/{audio_id}/url")).json()["data"]
    assert fresh["filename"] == f"{audio_id}.wav"
    assert (await client.get(fresh["url"])).content == clip.content
    assert (await client.get(f"{RUN}/audio/0123456789abcdef/url")).status_code == 404


async def test_retried_takes_show_as_dropped_cards_only_when_asked(
    client: httpx.AsyncClient,
) -> None:
    plain = (await client.get(RUN + "/data")).json()["data"]["rows"]
    with_dropped = (await client.get(RUN + "/data", params={"include_dropped": "true"})).json()
    dropped = [
        card
        for row in with_dropped["data"]["rows"]
        for card in row["cards"]
        if card["status"] == "dropped"
    ]
    assert len(dropped) == 1
    assert dropped[0]["dropped"]["verdicts"][0]["validator_kind"] == "wer"
    assert sum(len(r["cards"]) for r in plain) == 8
    only_korean = (await client.get(RUN + "/data", params={"language": "ko_KR"})).json()
    assert {c["locale_code"] for r in only_korean["data"]["rows"] for c in r["cards"]} == {"ko-kr"}
    assert only_korean["pagination"]["total"] == 4


async def test_downloads_before_completion_are_409(client: httpx.AsyncClient) -> None:
    runs = f"/api/v1/workflows/{seed.WORKFLOW_COMPLETES_ID}/runs"
    run = (await client.post(runs)).json()["data"]
    refused = await client.get(f"{runs}/{run['id']}/download")
    assert refused.status_code == 409
    assert refused.json()["error"] == {"code": "CONFLICT", "message": "Run is not completed."}


async def test_download_links_follow_the_host_the_client_used(sandbox: Sandbox) -> None:
    headers = {"Authorization": f"Bearer {sandbox.example_key}"}
    async with httpx.AsyncClient(
        transport=sandbox.transport(), base_url="http://127.0.0.1:8123", headers=headers
    ) as other:
        link = (await other.get(RUN + "/download")).json()["data"]["url"]
    assert link.startswith("http://127.0.0.1:8123/files/")
