"""The write path in one place: which write asks first, the question, the audit record, and the
at-most-once start with its budget check.

A write tool body reads, in full:

    async def delete_workflow(
        workflow_id: WorkflowId,
        ctx: Context[AppState, Any],
        confirmation: Annotated[Outcome, Resolve(asks("Delete workflow {}? …", workflow_label))],
    ) -> DeletedWorkflow:
        async with confirmed_write(
            ctx, confirmation, action=f"delete workflow {workflow_id}", workflow_id=workflow_id
        ):
            await onepin(ctx).delete_workflow(workflow_id)

The tool's name and confirmation class are never typed in the body: the request says which
tool is called, and the tool's record (`ToolSpec.confirm`, through `AppState`) says whether
it asks first under the server's policy.

- `policy`: which tool is called, and whether the policy wants a question before it;
- `confirmation`: the one resolver factory (`asks`), the form, the user's answer checked;
- `audit`: one record per write tool call, whatever its outcome;
- `guard`: `confirmed_write`, the block a write body runs in (recorded, then confirmed);
- `start`: the budget check before a start, and the start sent at most once.
"""

from __future__ import annotations

from onepin_mcp.writes.audit import AuditEntry, WriteRefused, audited, check_writable
from onepin_mcp.writes.confirmation import (
    NOT_ASKED,
    Confirmation,
    Outcome,
    Question,
    UserDeclined,
    asks,
    quoted,
    require,
    workflow_label,
    workflow_name,
)
from onepin_mcp.writes.guard import confirmed_write
from onepin_mcp.writes.policy import called_tool, policy_asks
from onepin_mcp.writes.start import RunsBefore, check_budget, start_once

__all__ = [
    "NOT_ASKED",
    "AuditEntry",
    "Confirmation",
    "Outcome",
    "Question",
    "RunsBefore",
    "UserDeclined",
    "WriteRefused",
    "asks",
    "audited",
    "called_tool",
    "check_budget",
    "check_writable",
    "confirmed_write",
    "policy_asks",
    "quoted",
    "require",
    "start_once",
    "workflow_label",
    "workflow_name",
]
