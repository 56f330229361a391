"""The write guard every write tool body runs in: recorded, then confirmed, then done.

    async with confirmed_write(ctx, confirmation, action=f"delete workflow {workflow_id}",
                               workflow_id=workflow_id) as record:
        await client.delete_workflow(workflow_id)

opens the audit record of this call (the tool is the one the request calls), then goes ahead
only if the user said yes or was not asked (`require`); a refusal, a decline or any failure in
the block is recorded with its outcome. The body only adds what it learns on the way to
`record` (the run a start created, the workflow a create made).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import Context

from onepin_mcp.state import AppState
from onepin_mcp.writes.audit import AuditEntry, WriteRefused, audited
from onepin_mcp.writes.confirmation import Outcome, require


@asynccontextmanager
async def confirmed_write(
    ctx: Context[AppState, Any],
    confirmation: Outcome,
    *,
    action: str,
    workflow_id: str | None = None,
    run_id: str | None = None,
    refusal: str | None = None,
) -> AsyncIterator[AuditEntry]:
    """Record this write and go ahead only on the user's yes (or when nobody was asked).

    `action` completes "asked to …" when the user says no. `refusal`, given, refuses the call
    before the user's answer is consulted (arguments that can't make a write): recorded as
    refused, nothing sent.
    """
    async with audited(ctx, workflow_id=workflow_id, run_id=run_id) as record:
        if refusal is not None:
            raise WriteRefused(refusal)
        record.confirmed = require(confirmation, action=action)
        yield record
