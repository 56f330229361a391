"""Asking the user before a write: one resolver factory, the form, and the answer checked.

A confirming tool takes a parameter `Annotated[Outcome, Resolve(asks(question, label))]`.
`asks` builds its resolver: when the policy wants a question for the tool this request calls
(`writes.policy`) and the client can answer one, it words the question from a label, such as
the workflow's name (`workflow_label`), and returns it as `Elicit`; otherwise `NOT_ASKED`, and
the call proceeds. A label of None means there is nothing to ask about (an unknown workflow,
whose 404 the body explains; a run that nothing will be sent for), and no question is asked.

The question is asked only where the client can answer it (it declared form elicitation and,
on the legacy protocol, the connection can carry a server-to-client request). Where it can't,
the call proceeds as the tool's annotations describe: a client without elicitation is expected
to gate destructive tools itself, from `destructiveHint`.

Both protocol eras through one form. On 2026-07-28 the SDK turns the question into an
`InputRequiredResult` and runs the tool body on the client's retry; on older protocols it sends
`elicitation/create` mid-call. Either way the body receives the outcome (`Outcome` is the union,
so decline and cancel reach the body instead of aborting the call), and the write guard
(`writes.guard`) calls `require`, which raises `UserDeclined` unless the user said yes. Nothing
is sent to OnePin before that.

On 2026 a resolver runs again on the retry and its question must render identically, so
questions are built only from stable facts (names, numbers, ids), never from a run's state.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Final

from mcp.server.mcpserver import Context, Elicit
from mcp.server.mcpserver.resolve import (
    AcceptedElicitation,
    CancelledElicitation,
    DeclinedElicitation,
)
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.errors import OnePinAPIError, OnePinError
from onepin_mcp.state import AppState
from onepin_mcp.text import MAX_NAME_CHARS, clean_text
from onepin_mcp.writes.audit import WriteRefused
from onepin_mcp.writes.policy import policy_asks

# From this protocol revision on, a question travels inside the tool call's result
# (InputRequiredResult) instead of as a server-to-client request.
_INPUT_REQUIRED_VERSION: Final = "2026-07-28"


class Confirmation(BaseModel):
    """The form the user sees: one checkbox."""

    confirm: bool = Field(
        title="Confirm", description="Check to go ahead; leave unchecked to stop."
    )


class NotAsked(Confirmation):
    """What a resolver returns when no question is asked (policy, or a client that can't)."""

    confirm: bool = True


NOT_ASKED: Final = NotAsked()

Outcome = AcceptedElicitation[Confirmation] | DeclinedElicitation | CancelledElicitation
"""The annotation of a tool's confirmation parameter: every answer reaches the body."""

Question = Confirmation | Elicit[Confirmation]
"""What a confirmation resolver returns: the question, or `NOT_ASKED`."""

Label = Callable[..., Awaitable[str | None]]
"""What a question is about, in words (None: nothing to ask about). Its parameters are the
tool's arguments it needs, by name, and `ctx`, as for any resolver."""


class UserDeclined(WriteRefused):
    """The user said no (declined, cancelled, or left the box unchecked); nothing was sent."""

    outcome = "declined"


def asks(question: str, label: Label) -> Callable[..., Awaitable[Question]]:
    """The confirmation resolver of a tool: `question` with its `{}` filled by `label`.

    The resolver takes `label`'s own parameters (the SDK fills them by name), so one factory
    serves every tool. The label is computed only when a question will be asked: wording an
    unasked question is not worth a read from OnePin.
    """
    if "ctx" not in inspect.signature(label).parameters:
        raise TypeError(f"{label.__qualname__} must take ctx, to tell whether to ask at all")

    @functools.wraps(label)
    async def resolve(**arguments: Any) -> Question:
        ctx: Context[AppState, Any] = arguments["ctx"]
        if not (policy_asks(ctx) and client_can_answer(ctx)):
            return NOT_ASKED
        about = await label(**arguments)
        if about is None:
            return NOT_ASKED
        return Elicit(question.format(about), Confirmation)

    return resolve


async def workflow_label(workflow_id: str, ctx: Context[AppState, Any]) -> str | None:
    """A workflow, by its name, for a question (see `workflow_name`)."""
    state = ctx.request_context.lifespan_context
    return await workflow_name(state.clients.client_for(ctx), workflow_id)


async def workflow_name(client: OnePinClient, workflow_id: str) -> str | None:
    """The workflow's name, quoted, for a question; None when it doesn't exist (the body then
    explains the 404). When it can't be read the id stands in: a question must still be asked
    before a write."""
    try:
        return quoted((await client.get_workflow(workflow_id)).name)
    except OnePinAPIError as error:
        return None if error.status == 404 else workflow_id
    except OnePinError:
        return workflow_id


def client_can_answer(ctx: Context[AppState, Any]) -> bool:
    """Whether this client can be asked: it declared form elicitation (a bare `elicitation: {}`
    predates modes and means form) and, before 2026-07-28, the connection can carry a
    server-to-client request (a stateless legacy HTTP call cannot)."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    if elicitation is None or (elicitation.form is None and elicitation.url is not None):
        return False
    version = ctx.protocol_version
    if version is not None and is_version_at_least(version, _INPUT_REQUIRED_VERSION):
        return True
    return bool(ctx.session.can_send_request)


def quoted(name: str | None) -> str:
    """A user-chosen name, made safe to show in a question (invisible characters removed, long
    names cut): the user must see what the model saw, with nothing hidden in it."""
    return "'" + clean_text(name or "", MAX_NAME_CHARS) + "'" if name else "(unnamed)"


def require(outcome: Outcome, *, action: str) -> bool | None:
    """Go ahead only on a yes: True when the user said yes, None when nobody was asked (for the
    audit record's `confirmed`). `action` completes "asked to …" (e.g. "cancel run <id>")."""
    if isinstance(outcome, AcceptedElicitation):
        if isinstance(outcome.data, NotAsked):
            return None
        if outcome.data.confirm:
            return True
        how = "left the confirmation unchecked"
    elif isinstance(outcome, DeclinedElicitation):
        how = "declined"
    else:
        how = "dismissed the question"
    raise UserDeclined(
        f"Not done: asked to {action}, the user {how}. Nothing was sent to OnePin. Do not "
        "repeat the call unless the user asks for it again."
    )
