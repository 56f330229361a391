"""Presigned files: fetched without the key or any OnePin header, stopped at a size cap, and
failures that name neither the link nor its signature."""

from __future__ import annotations

import io
import wave

import httpx
import pytest

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.errors import OnePinFileError
from onepin_mcp.failures import explain
from onepin_mcp.sandbox import Sandbox, seed

from .conftest import MakeClient, RecordingTransport

pytestmark = pytest.mark.anyio

RUN = (seed.WORKFLOW_COMPLETES_ID, seed.RUN_COMPLETED_ID)
MiB = 1024 * 1024


class NoLengthTransport(httpx.AsyncBaseTransport):
    """The sandbox, with `Content-Length` taken off file responses: storage that streams a body
    of undeclared length (chunked), so only counting the bytes can enforce a cap."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if not request.url.path.startswith("/files/"):
            return response
        headers = [(k, v) for k, v in response.headers.raw if k.lower() != b"content-length"]
        return httpx.Response(response.status_code, headers=headers, stream=response.stream)


async def clip_url(client: OnePinClient) -> str:
    data = await client.get_run_data(*RUN, limit=1)
    audio_id = data.rows[0].cards[0].audio_id
    assert audio_id is not None
    return (await client.get_audio_url(*RUN, audio_id)).url


async def test_a_presigned_file_is_fetched_without_the_key_or_any_onepin_header(
    make_client: MakeClient, sandbox: Sandbox
) -> None:
    recorder = RecordingTransport(sandbox.transport())
    client = make_client(transport=recorder, workspace_id=seed.WORKSPACE_ID)
    url = await clip_url(client)
    api_request = recorder.sent[-1]
    assert api_request.headers["authorization"] == f"Bearer {sandbox.example_key}"
    assert api_request.headers["x-workspace-id"] == seed.WORKSPACE_ID

    fetched = await client.fetch_presigned(url, max_bytes=2 * MiB)

    file_request = recorder.sent[-1]
    assert file_request.url == httpx.URL(url)
    assert "authorization" not in file_request.headers
    assert "x-workspace-id" not in file_request.headers
    assert not any(sandbox.example_key in value for value in file_request.headers.values())
    assert fetched.content is not None
    assert not fetched.over_cap
    assert fetched.size_bytes == len(fetched.content)
    assert fetched.content_type == "audio/wav"
    with wave.open(io.BytesIO(fetched.content), "rb") as wav:
        assert wav.getnframes() > 0


async def test_a_file_at_the_cap_is_read_and_one_past_it_is_not(client: OnePinClient) -> None:
    url = await clip_url(client)
    size = len((await client.fetch_presigned(url, max_bytes=2 * MiB)).content or b"")
    assert size > 0

    exactly = await client.fetch_presigned(url, max_bytes=size)
    assert exactly.content is not None
    assert len(exactly.content) == size

    over = await client.fetch_presigned(url, max_bytes=size - 1)
    assert over.over_cap
    assert over.content is None
    assert over.size_bytes == size  # storage declared it, so the caller can say how large


async def test_an_undeclared_length_is_capped_by_counting_the_bytes(
    make_client: MakeClient, sandbox: Sandbox
) -> None:
    client = make_client(transport=NoLengthTransport(sandbox.transport()))
    url = await clip_url(client)
    whole = await client.fetch_presigned(url, max_bytes=2 * MiB)
    assert whole.content is not None

    over = await client.fetch_presigned(url, max_bytes=len(whole.content) - 1)
    assert over.over_cap
    assert over.content is None
    assert over.size_bytes is None  # unknown: the transfer stopped at the cap


async def test_an_expired_link_is_a_file_error_that_says_to_ask_again(
    client: OnePinClient, sandbox: Sandbox
) -> None:
    url = await clip_url(client)
    sandbox.advance(16 * 60)  # links live 15 minutes
    with pytest.raises(OnePinFileError) as caught:
        await client.fetch_presigned(url, max_bytes=2 * MiB)
    error = caught.value
    assert (error.status, error.code) == (403, "AccessDenied")
    text = explain(error)
    assert text.startswith("OnePin's storage answered 403 AccessDenied")
    assert "get_audio_clip again" in text
    # Not the API's "key lacks the scope" advice: storage's 403 is about the link, not the key.
    assert "scope" not in text
    token = httpx.URL(url).path.split("/")[2]
    assert token not in str(error)
    assert token not in text


async def test_a_dropped_connection_names_the_host_but_not_the_link(
    client: OnePinClient, sandbox: Sandbox
) -> None:
    url = await clip_url(client)
    sandbox.faults.add({"path": "/files/*", "drop": "before"})
    with pytest.raises(OnePinFileError) as caught:
        await client.fetch_presigned(url, max_bytes=2 * MiB)
    assert caught.value.status is None
    text = explain(caught.value)
    assert "sandbox.onepin.test was unreachable" in text
    assert "/files/" not in text


@pytest.mark.parametrize(
    "link", ["file:///etc/passwd", "ftp://sandbox.onepin.test/a.wav", "http://u:p@host/a.wav"]
)
async def test_a_link_that_is_not_a_plain_http_url_is_refused_unsent(
    make_client: MakeClient, sandbox: Sandbox, link: str
) -> None:
    recorder = RecordingTransport(sandbox.transport())
    client = make_client(transport=recorder)
    with pytest.raises(OnePinFileError):
        await client.fetch_presigned(link, max_bytes=MiB)
    assert recorder.sent == []
