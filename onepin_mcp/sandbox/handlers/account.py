"""Account endpoints: who the key is (`/auth/whoami`), the credit balance and the plan limits."""

from __future__ import annotations

from starlette.responses import Response

from onepin_mcp.sandbox import render
from onepin_mcp.sandbox.call import ApiCall
from onepin_mcp.sandbox.store import ALL_SCOPES


def whoami(call: ApiCall) -> Response:
    assert call.caller is not None
    return call.single(
        {
            "auth_kind": "api_key",
            "user_id": call.store.user.id,
            "workspace_id": call.workspace_id,
            "api_key_id": call.caller.key_id,
            "scopes": sorted(call.caller.key.scopes & ALL_SCOPES),
        },
    )


def credits(call: ApiCall) -> Response:
    return call.single(render.balance(call.store.account))


def limits(call: ApiCall) -> Response:
    return call.single(render.plan_limits(call.store.limits))
