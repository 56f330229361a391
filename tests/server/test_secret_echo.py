"""A key pasted into a tool argument is never echoed back: not in the error the agent reads,
whether the client refused the argument or the input schema did."""

from __future__ import annotations

import pytest
from mcp import Client

from onepin_mcp.sandbox import seed

from .conftest import error_text

pytestmark = pytest.mark.anyio

PASTED_KEY = "op_live_" + "PastedByMistake0123456789abcdefg"[:32]


async def test_a_key_given_as_an_id_is_redacted_from_the_error(mcp_client: Client) -> None:
    result = await mcp_client.call_tool(
        "get_run_status", {"workflow_id": seed.WORKFLOW_COMPLETES_ID, "run_id": PASTED_KEY}
    )
    text = error_text(result)
    assert "run_id" in text
    assert PASTED_KEY not in text
    assert "[redacted]" in text


async def test_a_key_given_where_a_number_belongs_is_redacted_from_the_schema_error(
    mcp_client: Client,
) -> None:
    result = await mcp_client.call_tool("list_workflows", {"limit": PASTED_KEY})
    text = error_text(result)
    assert "limit" in text
    assert PASTED_KEY not in text
