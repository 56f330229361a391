"""The sandbox's control API under `/_sandbox`: no auth, never faulted, never logged.

Tests and demos use it to read the request log, install faults, move a manual clock and reset
the world, over HTTP when the sandbox runs in another process.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .clock import Clock
from .faults import FaultRuleError, FaultRules
from .requestlog import RequestLog, isoformat


class Controllable(Protocol):
    """What the control API needs from a sandbox."""

    clock: Clock
    faults: FaultRules

    @property
    def request_log(self) -> RequestLog: ...

    @property
    def manual(self) -> bool: ...

    def advance(self, seconds: float) -> datetime: ...

    def reset(self) -> None: ...


def _detail(loc: Sequence[str | int], msg: str, kind: str) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": list(loc), "msg": msg, "type": kind}]}, status_code=422)


async def _json(request: Request) -> Any:
    raw = await request.body()
    return json.loads(raw) if raw.strip() else None


def control_routes(sandbox: Controllable) -> list[BaseRoute]:
    async def list_requests(request: Request) -> Response:
        raw = request.query_params.get("since", "0")
        if not raw.isdigit():
            return _detail(
                ["query", "since"], "since must be a non-negative integer", "int_parsing"
            )
        return JSONResponse({"data": [r.to_json() for r in sandbox.request_log.since(int(raw))]})

    async def clear_requests(request: Request) -> Response:
        sandbox.request_log.clear()
        return JSONResponse({"data": []})

    async def add_faults(request: Request) -> Response:
        try:
            payload = await _json(request)
            installed = sandbox.faults.add_json(payload)
        except ValueError as exc:
            if isinstance(exc, FaultRuleError):
                return JSONResponse({"detail": exc.errors}, status_code=422)
            return _detail(["body"], "JSON decode error", "json_invalid")
        return JSONResponse({"data": [fault.to_json() for fault in installed]}, status_code=201)

    async def list_faults(request: Request) -> Response:
        return JSONResponse({"data": [fault.to_json() for fault in sandbox.faults.active()]})

    async def clear_faults(request: Request) -> Response:
        sandbox.faults.clear()
        return JSONResponse({"data": []})

    def clock_state() -> dict[str, Any]:
        return {"now": isoformat(sandbox.clock.now()), "manual": sandbox.manual}

    async def read_clock(request: Request) -> Response:
        return JSONResponse({"data": clock_state()})

    async def advance_clock(request: Request) -> Response:
        try:
            payload = await _json(request)
        except ValueError:
            return _detail(["body"], "JSON decode error", "json_invalid")
        seconds = payload.get("advance_s") if isinstance(payload, dict) else None
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            return _detail(["body", "advance_s"], "advance_s must be a number", "float_type")
        if not math.isfinite(seconds) or seconds < 0:
            return _detail(["body", "advance_s"], "advance_s must be >= 0", "greater_than_equal")
        if not sandbox.manual:
            return JSONResponse(
                {
                    "error": {
                        "code": "CONFLICT",
                        "message": "The clock is not manual; start the sandbox with one.",
                    }
                },
                status_code=409,
            )
        sandbox.advance(float(seconds))
        return JSONResponse({"data": clock_state()})

    async def reset(request: Request) -> Response:
        sandbox.reset()
        return JSONResponse({"data": {"reset": True, **clock_state()}})

    return [
        Route("/_sandbox/requests", list_requests, methods=["GET"]),
        Route("/_sandbox/requests", clear_requests, methods=["DELETE"]),
        Route("/_sandbox/faults", add_faults, methods=["POST"]),
        Route("/_sandbox/faults", list_faults, methods=["GET"]),
        Route("/_sandbox/faults", clear_faults, methods=["DELETE"]),
        Route("/_sandbox/clock", read_clock, methods=["GET"]),
        Route("/_sandbox/clock", advance_clock, methods=["POST"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
    ]
