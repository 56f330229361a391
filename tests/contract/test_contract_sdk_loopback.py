"""The official `onepin` Python client, unchanged, against `onepin-mcp sandbox` over a socket.

`AsyncOnepinClient` is the SDK's recommended entry point: it resolves the key, installs the
version-gate response hook (`X-OnePin-Required-Version`) and sends the SDK's real requests
(query encoding, optional bodies, datetimes) through its generated HTTP layer. Sandbox time is
moved with `POST /_sandbox/clock`; nothing waits on the wall clock.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest
from onepin import AsyncOnepinClient
from onepin._version_gate import _async_response_hook
from onepin.core.api_error import ApiError
from onepin.types import WorkflowRunStartIn

from onepin_mcp.sandbox import seed
from tests.support.sandbox_process import ServedSandbox

pytestmark = pytest.mark.anyio

TERMINAL = frozenset({"completed", "failed", "cancelled"})


@asynccontextmanager
async def _client(served: ServedSandbox, *, deadline_s: float) -> AsyncIterator[AsyncOnepinClient]:
    """The SDK's async client for `served`, usable for at most `deadline_s` seconds."""
    # The SDK has no close(); a caller that cares about its sockets passes its own httpx client.
    # This one is configured as the SDK's default is, version-gate hook included.
    with anyio.fail_after(deadline_s):
        async with httpx.AsyncClient(
            timeout=30, follow_redirects=True, event_hooks={"response": [_async_response_hook]}
        ) as http:
            yield AsyncOnepinClient(api_key=served.key, base_url=served.base_url, httpx_client=http)


async def _advance_until_terminal(
    client: AsyncOnepinClient, served: ServedSandbox, wf: str, run: str
) -> str:
    for _ in range(600):
        status = (await client.workflows.runs.status(wf, run)).data.status
        if status in TERMINAL:
            return status
        await anyio.to_thread.run_sync(served.advance, 2.0)
    raise AssertionError(f"run {run} did not end within 1200 s of sandbox time")


async def test_the_official_async_client_reads_the_account_and_workflows(
    loopback: ServedSandbox,
) -> None:
    async with _client(loopback, deadline_s=60) as client:
        whoami = await client.auth.whoami()
        assert whoami.data.auth_kind == "api_key"
        assert whoami.data.workspace_id == seed.WORKSPACE_ID

        listed = await client.workflows.list(limit=50, sort=["name"], order=["asc"])
        ids = [w.id for w in listed.data]
        assert seed.WORKFLOW_COMPLETES_ID in ids
        assert listed.pagination.total >= len(ids)
        names = [w.name for w in listed.data]
        assert names == sorted(names, key=str.casefold) or names == sorted(names)

        workflow = await client.workflows.get(seed.WORKFLOW_COMPLETES_ID)
        assert workflow.data.id == seed.WORKFLOW_COMPLETES_ID
        assert workflow.data.definition["graph"]["nodes"]

        estimate = await client.workflows.preview_run(seed.WORKFLOW_COMPLETES_ID)
        assert estimate.data.min_credits <= estimate.data.max_credits
        priced = await client.workflows.preview_run(
            seed.WORKFLOW_COMPLETES_ID,
            request=WorkflowRunStartIn(script_text="A line to price.\nAnd another."),
        )
        assert priced.data.expected_credits >= 0

        # The generated client maps only 422 for this endpoint; a 404 is a plain ApiError.
        with pytest.raises(ApiError) as missing:
            await client.workflows.get("00000000-0000-4000-8000-000000000000")
        assert missing.value.status_code == 404
        assert missing.value.body["error"]["code"] == "NOT_FOUND"


async def test_the_official_async_client_runs_a_workflow_to_completion_and_downloads_it(
    loopback: ServedSandbox,
) -> None:
    wf = seed.WORKFLOW_COMPLETES_ID
    async with _client(loopback, deadline_s=120) as client:
        started = await client.workflows.runs.start(wf)
        run = started.data.id
        assert started.data.status in ("pending", "running")
        assert (await client.workflows.runs.status(wf, run)).data.id == run

        assert await _advance_until_terminal(client, loopback, wf, run) == "completed"

        detail = await client.workflows.runs.get(wf, run)
        assert detail.data.has_export is True
        steps = await client.workflows.runs.steps(wf, run)
        assert steps.data, "a completed run has steps"
        assert all(
            step.status == "completed" for step in steps.data if step.node_type == "sink_preview"
        )
        data = await client.workflows.get_run_data(wf, run, limit=10)
        assert data.data.run_id == run
        assert data.data.rows, "a completed run has data rows"
        overview = await client.workflows.get_run_overview(wf, run)
        assert overview.data.run.status == "completed"
        summary = await client.workflows.runs_summary(
            wf,
            from_=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc),
            to=dt.datetime(2035, 1, 1, tzinfo=dt.timezone.utc),
        )
        assert summary.data.completed >= 1
        runs = await client.workflows.runs.list(wf, status="completed")
        assert run in [r.id for r in runs.data]

        link = await client.workflows.download_run(wf, run)
        assert link.data.url.startswith(loopback.base_url)
        async with httpx.AsyncClient(timeout=30) as plain:
            archive = await plain.get(link.data.url)
        assert archive.status_code == 200
        with zipfile.ZipFile(io.BytesIO(archive.content)) as opened:
            assert opened.testzip() is None
            assert any(n.endswith((".wav", ".mp3")) for n in opened.namelist())


async def test_the_official_async_client_starts_with_a_script_and_cancels_a_run(
    loopback: ServedSandbox,
) -> None:
    wf = seed.WORKFLOW_LONG_ID
    async with _client(loopback, deadline_s=60) as client:
        # The SDK sends the unset `source_language` as an explicit null: the API accepts that.
        started = await client.workflows.runs.start(
            wf, request=WorkflowRunStartIn(script_text="Only this line.")
        )
        run = started.data.id
        await anyio.to_thread.run_sync(loopback.advance, 5.0)
        with pytest.raises(ApiError) as conflict:
            await client.workflows.runs.start(wf, request_options={"max_retries": 0})
        assert conflict.value.status_code == 409
        cancelled = await client.workflows.runs.cancel(wf, run)
        assert cancelled.data.status == "cancelled"
        assert (await client.workflows.runs.status(wf, run)).data.status == "cancelled"
        again = await client.workflows.runs.cancel(wf, run)
        assert again.data.status == "cancelled", "cancelling a cancelled run changes nothing"
