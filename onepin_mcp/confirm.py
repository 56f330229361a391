"""Asking the user before a write: the mechanics every confirming write tool shares.

Which tools ask is `WritePolicy.confirm` against each tool's confirmation class, declared on
its record (`ToolSpec.confirm`, handed to this module through `AppState.confirm_classes`):

- policy `never`: no tool asks.
- policy `destructive` (the default): tools of class `destructive` (`cancel_run` and
  `delete_workflow`, the two writes that lose something for good).
- policy `writes`: every write tool: class `destructive` and class `writes`.

`update_workflow` carries the destructive hint (a new graph overwrites the old one) but is of
class `writes`: an agent editing a workflow calls it over and over, and a question per edit
would teach the user to click "yes" without reading.

The question is asked only where the client can answer it (it declared form elicitation and,
on the legacy protocol, the connection can carry a server-to-client request). Where it can't,
the call proceeds as the tool's annotations describe: a client without elicitation is expected
to gate destructive tools itself, from `destructiveHint`.

Both protocol eras through one form: a tool takes a parameter
`Annotated[Outcome, Resolve(resolver)]` whose resolver returns `ask(...)`. On 2026-07-28 the SDK
turns the question into an `InputRequiredResult` and runs the tool body on the client's retry;
on older protocols it sends `elicitation/create` mid-call. Either way the body receives the
outcome (`Outcome` is the union, so decline and cancel reach the body instead of aborting the
call) and calls `require(...)`, which raises `UserDeclined` unless the user said yes. Nothing is
sent to OnePin before that.

On 2026 a resolver runs again on the retry and its question must render identically, so
questions are built only from stable facts (names, numbers, ids), never from a run's state.
"""

from __future__ import annotations

from typing import Any, Final

from mcp.server.mcpserver import Context, Elicit
from mcp.server.mcpserver.resolve import (
    AcceptedElicitation,
    CancelledElicitation,
    DeclinedElicitation,
)
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field

from onepin_mcp.audit import WriteRefused
from onepin_mcp.state import AppState, ConfirmClass, ConfirmPolicy
from onepin_mcp.text import MAX_NAME_CHARS, clean_text

# The policies under which a tool of each confirmation class asks first.
ASKED_UNDER: Final[dict[ConfirmClass, frozenset[ConfirmPolicy]]] = {
    "never": frozenset(),
    "destructive": frozenset({"destructive", "writes"}),
    "writes": frozenset({"writes"}),
}

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


class UserDeclined(WriteRefused):
    """The user said no (declined, cancelled, or left the box unchecked); nothing was sent."""

    outcome = "declined"


def policy_asks(ctx: Context[AppState, Any], tool: str) -> bool:
    """Whether the server's policy wants a question before `tool`. A tool without a class is a
    bug, not a reason to skip the question: the lookup fails loudly."""
    state = ctx.request_context.lifespan_context
    return state.policy.confirm in ASKED_UNDER[state.confirm_classes[tool]]


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


def ask(
    ctx: Context[AppState, Any], tool: str, question: str
) -> Confirmation | Elicit[Confirmation]:
    """What a tool's resolver returns: the question when policy and client allow asking, else
    `NOT_ASKED` so that the call proceeds."""
    if policy_asks(ctx, tool) and client_can_answer(ctx):
        return Elicit(question, Confirmation)
    return NOT_ASKED


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
