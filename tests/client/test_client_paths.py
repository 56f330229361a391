"""No argument can steer a request to another path: ids are validated, free text is encoded."""

from __future__ import annotations

from urllib.parse import unquote

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from onepin_mcp.api.client import OnePinClient, _node_segment
from onepin_mcp.api.errors import OnePinAPIError, OnePinInputError
from onepin_mcp.sandbox import Sandbox, seed

pytestmark = pytest.mark.anyio

WF, RUN = seed.WORKFLOW_COMPLETES_ID, seed.RUN_COMPLETED_ID
RUN_PREFIX = f"/api/v1/workflows/{WF}/runs/{RUN}"

NOT_UUIDS = [
    "",
    "abc",
    "../../auth/whoami",
    f"{WF}/runs",
    f"{WF}?limit=1",
    f"{WF}#x",
    f"{WF}/../{WF}",
    f"{WF} ",
    f"%2e%2e/{WF}",
    WF.replace("-", ""),
]


@pytest.mark.parametrize("workflow_id", NOT_UUIDS)
async def test_a_workflow_id_that_is_not_a_uuid_never_reaches_the_api(
    client: OnePinClient, sandbox: Sandbox, workflow_id: str
) -> None:
    with pytest.raises(OnePinInputError) as caught:
        await client.get_workflow(workflow_id)
    assert caught.value.argument == "workflow_id"
    assert "UUID" in str(caught.value)
    assert len(sandbox.requests) == 0


@pytest.mark.parametrize("run_id", NOT_UUIDS)
async def test_a_run_id_that_is_not_a_uuid_never_reaches_the_api(
    client: OnePinClient, sandbox: Sandbox, run_id: str
) -> None:
    with pytest.raises(OnePinInputError) as caught:
        await client.cancel_run(WF, run_id)
    assert caught.value.argument == "run_id"
    assert len(sandbox.requests) == 0


@pytest.mark.parametrize(
    "node_id",
    ["", ".", "..", "../download", "a/b", "sink-1?x=1", "sink-1#x", "%2e%2e", "a\\b", "a\nb"],
)
async def test_a_node_id_that_could_leave_its_segment_is_refused(
    client: OnePinClient, sandbox: Sandbox, node_id: str
) -> None:
    with pytest.raises(OnePinInputError) as caught:
        await client.get_node_download_url(WF, RUN, node_id)
    assert caught.value.argument == "node_id"
    assert len(sandbox.requests) == 0


@pytest.mark.parametrize("node_id", ["sink 1", "출력", "a..b", "sink-1;x=1", "a&b=c"])
async def test_an_unusual_node_id_stays_inside_its_own_segment(
    client: OnePinClient, sandbox: Sandbox, node_id: str
) -> None:
    with pytest.raises(OnePinAPIError) as caught:
        await client.get_node_download_url(WF, RUN, node_id)
    assert caught.value.status == 404
    [record] = sandbox.requests
    assert unquote(record.path) == f"{RUN_PREFIX}/nodes/{node_id}/download"
    assert record.query == ""


@pytest.mark.parametrize(
    "audio_id", ["", "../../download", "3f9a1c7e5b2d4a6", "3f9a1c7e5b2d4a600", "zzzzzzzzzzzzzzzz"]
)
async def test_an_audio_id_must_be_sixteen_hex_characters(
    client: OnePinClient, sandbox: Sandbox, audio_id: str
) -> None:
    with pytest.raises(OnePinInputError) as caught:
        await client.get_audio_url(WF, RUN, audio_id)
    assert caught.value.argument == "audio_id"
    assert len(sandbox.requests) == 0


async def test_query_values_cannot_add_parameters(client: OnePinClient, sandbox: Sandbox) -> None:
    page = await client.list_workflows(search="x&limit=1&offset=5#frag")
    assert page.items == []
    query = sandbox.requests[-1].query
    assert "&limit=1&" not in query
    assert "offset=5" not in query.replace("offset=0", "")


@given(st.text(min_size=1, max_size=40))
@example(".")
@example("..")
@example("a/../b")
@example("%2F")
def test_any_accepted_node_id_is_exactly_one_path_segment(node_id: str) -> None:
    try:
        segment = _node_segment(node_id)
    except OnePinInputError:
        return
    url = httpx.URL("http://sandbox.onepin.test").join(f"/api/v1/x/nodes/{segment}/download")
    parts = url.path.split("/")
    assert parts[-3:] == ["nodes", node_id, "download"]
    assert url.query == b""
    assert url.fragment == ""
