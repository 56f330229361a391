"""Fault rules: their JSON form, how uses are counted, and what each action does to a request.

The middleware is exercised in-process around a tiny stand-in API whose POST changes state, so
that "processed or not" is observable. Socket-level behaviour is in test_faults_socket.py.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message

from onepin_mcp.sandbox.faults import (
    MALFORMED_JSON_BODY,
    FaultMiddleware,
    FaultRule,
    FaultRuleError,
    FaultRules,
    LateRequests,
    find_transport,
    parse_fault_rules,
)
from onepin_mcp.sandbox.requestlog import RequestLog
from onepin_mcp.sandbox.transport import SandboxTransport

pytestmark = pytest.mark.anyio

BASE_URL = "http://sandbox.onepin.test"
RUNS = "/api/v1/workflows/wf-1/runs"
NOW = datetime(2026, 3, 12, 9, 0, 0, tzinfo=timezone.utc)
ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")


def tiny_api() -> tuple[Starlette, list[str]]:
    """A stand-in API: POST …/runs records a run (a state change), GET lists them."""
    runs: list[str] = []

    async def list_runs(request: Request) -> JSONResponse:
        return JSONResponse({"data": runs})

    async def start_run(request: Request) -> JSONResponse:
        body = await request.json()
        runs.append(body["name"])
        return JSONResponse({"data": {"name": body["name"]}}, status_code=202)

    async def get_workflow(request: Request) -> JSONResponse:
        return JSONResponse({"data": {"id": request.path_params["wf"]}})

    async def control(request: Request) -> JSONResponse:
        return JSONResponse({"data": "control"})

    app = Starlette(
        routes=[
            Route("/api/v1/workflows/{wf}/runs", list_runs, methods=["GET"]),
            Route("/api/v1/workflows/{wf}/runs", start_run, methods=["POST"]),
            Route("/api/v1/workflows/{wf}", get_workflow, methods=["GET"]),
            Route("/_sandbox/faults", control, methods=["GET"]),
        ]
    )
    return app, runs


@asynccontextmanager
async def client_for(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=SandboxTransport(app), base_url=BASE_URL) as client:
        yield client


def faulty(rules: FaultRules, log: RequestLog | None = None) -> tuple[ASGIApp, list[str]]:
    api, runs = tiny_api()
    return FaultMiddleware(api, rules, log, now=lambda: NOW), runs


# --- The JSON form of a rule -----------------------------------------------------------------


def test_a_rule_applies_once_to_any_method_unless_told_otherwise() -> None:
    rule = FaultRule.model_validate({"path": RUNS, "status": 503})
    assert (rule.method, rule.times) == (None, 1)
    assert rule.matches("GET", RUNS)
    assert rule.matches("DELETE", RUNS)


def test_times_null_keeps_a_rule_until_it_is_cleared() -> None:
    rules = FaultRules()
    rules.add({"path": RUNS, "status": 500, "times": None})
    assert all(rules.take("GET", RUNS) is not None for _ in range(50))
    assert rules.active()[0].remaining is None


def test_method_is_matched_case_insensitively_and_shown_in_upper_case() -> None:
    rule = FaultRule.model_validate({"method": "post", "path": RUNS, "status": 500})
    assert rule.method == "POST"
    assert rule.matches("POST", RUNS)
    assert not rule.matches("GET", RUNS)


def test_the_path_is_an_fnmatch_glob_over_the_whole_path() -> None:
    rule = FaultRule.model_validate({"path": "/api/v1/workflows/*/runs", "status": 500})
    assert rule.matches("GET", "/api/v1/workflows/0f6c2b8e/runs")
    assert not rule.matches("GET", "/api/v1/workflows/0f6c2b8e")
    assert not rule.matches("GET", "/api/v1/workflows/0f6c2b8e/runs/r-1/status")


def test_retry_after_may_be_given_as_a_number_of_seconds() -> None:
    rule = FaultRule.model_validate({"path": RUNS, "status": 429, "retry_after": 2})
    assert rule.retry_after == "2"


def test_a_rules_json_form_keeps_selectors_and_only_the_actions_that_are_set() -> None:
    fault = FaultRules().add({"path": RUNS, "status": 429, "retry_after": "2", "times": 3})
    assert fault.to_json() == {
        "id": fault.id,
        "method": None,
        "path": RUNS,
        "times": 3,
        "status": 429,
        "retry_after": "2",
        "remaining": 3,
    }


@pytest.mark.parametrize(
    ("rule", "where"),
    [
        ({"status": 500}, ["path"]),
        ({"path": "api/v1/workflows", "status": 500}, ["path"]),
        ({"path": RUNS, "status": 500, "times": 0}, ["times"]),
        ({"path": RUNS, "status": 500, "times": "2"}, ["times"]),
        ({"path": RUNS, "status": 500, "times": True}, ["times"]),
        ({"path": RUNS, "status": 500, "colour": "red"}, ["colour"]),
        ({"path": RUNS, "method": "FETCH", "status": 500}, ["method"]),
        ({"path": RUNS, "latency_ms": -1}, ["latency_ms"]),
        ({"path": RUNS, "status": 700}, ["status"]),
        ({"path": RUNS, "body": "xml"}, ["body"]),
        ({"path": RUNS, "drop": "during"}, ["drop"]),
        ({"path": RUNS, "status": 500, "retry_after": "2\r\nX-Evil: 1"}, ["retry_after"]),
        ({"path": RUNS}, []),
        ({"path": RUNS, "status": 200}, []),
        ({"path": RUNS, "drop": "before", "status": 503}, []),
        ({"path": RUNS, "slow_body_ms": 100, "body": "html"}, []),
        ({"path": RUNS, "latency_ms": 10, "retry_after": "1"}, []),
        ({"path": RUNS, "late_s": -1}, ["late_s"]),
        ({"path": RUNS, "late_s": "30"}, ["late_s"]),
        ({"path": RUNS, "late_s": 30, "status": 503}, []),
        ({"path": RUNS, "late_s": 30, "drop": "after"}, []),
    ],
)
def test_malformed_rules_are_refused_with_the_offending_field(
    rule: dict[str, Any], where: list[str]
) -> None:
    with pytest.raises(FaultRuleError) as caught:
        parse_fault_rules(rule)
    assert caught.value.errors[0]["loc"] == where
    assert isinstance(caught.value, ValueError)
    assert caught.value.errors[0]["msg"] in str(caught.value)


def test_a_batch_is_refused_as_a_whole_and_errors_say_which_rule() -> None:
    rules = FaultRules()
    batch = {"faults": [{"path": RUNS, "status": 500}, {"path": RUNS, "times": 0, "status": 500}]}
    with pytest.raises(FaultRuleError) as caught:
        rules.add_json(batch)
    assert caught.value.errors[0]["loc"] == ["faults", 1, "times"]
    assert len(rules) == 0


@pytest.mark.parametrize(
    "payload", [[{"path": RUNS, "status": 500}], {"faults": []}, {"faults": {}}, "503", None]
)
def test_a_body_that_is_neither_a_rule_nor_a_batch_is_refused(payload: object) -> None:
    with pytest.raises(FaultRuleError):
        parse_fault_rules(payload)


def test_errors_are_json_serialisable_for_a_422_answer() -> None:
    with pytest.raises(FaultRuleError) as caught:
        parse_fault_rules({"path": RUNS, "drop": "before", "retry_after": "1"})
    assert json.loads(json.dumps({"detail": caught.value.errors}))["detail"][0]["type"]


# --- Installing rules and counting uses ------------------------------------------------------


def test_rules_get_ids_and_are_listed_in_the_order_they_apply() -> None:
    rules = FaultRules()
    first, second = rules.add_json(
        {"faults": [{"path": RUNS, "status": 429}, {"path": "/*", "latency_ms": 5}]}
    )
    third = rules.add(FaultRule(path=RUNS, drop="before"))
    assert len({first.id, second.id, third.id}) == 3
    assert [f.id for f in rules.active()] == [first.id, second.id, third.id]


def test_a_rule_with_times_two_applies_to_exactly_two_matching_requests() -> None:
    rules = FaultRules()
    rules.add({"path": RUNS, "status": 503, "times": 2})
    taken = [rules.take("GET", RUNS) for _ in range(3)]
    assert [t is not None for t in taken] == [True, True, False]
    assert [t.remaining for t in taken if t is not None] == [2, 1]
    assert len(rules) == 0


def test_the_first_matching_rule_applies_so_rules_queue_up_into_a_script() -> None:
    rules = FaultRules()
    rules.add({"path": RUNS, "status": 429, "times": 2})
    rules.add({"path": RUNS, "status": 502})
    statuses = [getattr(rules.take("GET", RUNS), "rule", None) for _ in range(4)]
    assert [r.status if r else None for r in statuses] == [429, 429, 502, None]


def test_requests_that_do_not_match_leave_a_rules_count_alone() -> None:
    rules = FaultRules()
    rules.add({"method": "POST", "path": RUNS, "status": 503})
    assert rules.take("GET", RUNS) is None
    assert rules.take("POST", "/api/v1/workflows/wf-1") is None
    assert rules.active()[0].remaining == 1


def test_remove_and_clear_uninstall_rules() -> None:
    rules = FaultRules()
    kept, removed = rules.add_many([{"path": RUNS, "status": 500}, {"path": "/*", "status": 502}])
    assert rules.remove(removed.id)
    assert not rules.remove(removed.id)
    assert [f.id for f in rules.active()] == [kept.id]
    rules.clear()
    assert rules.take("GET", RUNS) is None


def test_uses_are_counted_exactly_when_threads_race_for_them() -> None:
    rules = FaultRules()
    rules.add({"path": RUNS, "status": 503, "times": 25})
    barrier = threading.Barrier(8)
    hits: list[int] = []

    def worker() -> None:
        barrier.wait()
        hits.append(sum(rules.take("GET", RUNS) is not None for _ in range(100)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(hits) == 25


# --- What each action does -------------------------------------------------------------------


async def test_a_status_fault_answers_the_onepin_error_envelope_with_retry_after() -> None:
    rules = FaultRules()
    rules.add({"method": "POST", "path": RUNS, "status": 429, "retry_after": "2"})
    app, runs = faulty(rules)
    async with client_for(app) as client:
        response = await client.post(RUNS, json={"name": "a"})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == {"code": "RATE_LIMITED", "message": "Too many requests."}
    assert ULID.fullmatch(body["meta"]["request_id"])
    assert body["meta"]["timestamp"] == "2026-03-12T09:00:00Z"
    assert runs == [], "an error status is answered without processing the request"


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, "INTERNAL_ERROR"), (502, "BAD_GATEWAY"), (503, "SERVICE_UNAVAILABLE"), (402, None)],
)
async def test_server_error_faults_carry_a_code_and_no_retry_after_unless_asked(
    status: int, code: str | None
) -> None:
    rules = FaultRules()
    rules.add({"path": RUNS, "status": status})
    app, _ = faulty(rules)
    async with client_for(app) as client:
        response = await client.get(RUNS)
    assert response.status_code == status
    assert "retry-after" not in response.headers
    error = response.json()["error"]
    assert error["code"] == (code or "PAYMENT_REQUIRED")
    assert error["message"].endswith(".")


async def test_a_fault_with_times_two_hits_two_requests_and_then_the_api_answers() -> None:
    rules = FaultRules()
    rules.add({"path": RUNS, "status": 503, "times": 2})
    app, _ = faulty(rules)
    async with client_for(app) as client:
        statuses = [(await client.get(RUNS)).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


async def test_a_rule_for_one_method_and_path_leaves_other_requests_alone() -> None:
    rules = FaultRules()
    rules.add({"method": "POST", "path": "/api/v1/workflows/*/runs", "status": 500})
    app, runs = faulty(rules)
    async with client_for(app) as client:
        assert (await client.get(RUNS)).status_code == 200
        assert (await client.get("/api/v1/workflows/wf-1")).status_code == 200
        assert (await client.post(RUNS, json={"name": "x"})).status_code == 500
    assert runs == []


async def test_control_paths_are_never_faulted() -> None:
    rules = FaultRules()
    rules.add({"path": "/*", "status": 500, "times": None})
    app, _ = faulty(rules)
    async with client_for(app) as client:
        control = await client.get("/_sandbox/faults")
        api = await client.get(RUNS)
    assert (control.status_code, control.json()) == (200, {"data": "control"})
    assert api.status_code == 500


async def test_concurrent_requests_use_a_counted_rule_exactly_times_times() -> None:
    rules = FaultRules()
    rules.add({"path": RUNS, "status": 503, "times": 2})
    app, _ = faulty(rules)
    statuses: list[int] = []
    async with client_for(app) as client:

        async def call() -> None:
            statuses.append((await client.get(RUNS)).status_code)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                for _ in range(12):
                    group.start_soon(call)
    assert sorted(statuses) == [200] * 10 + [503] * 2


async def test_an_html_body_fault_is_a_proxy_error_page() -> None:
    rules = FaultRules()
    rules.add({"path": RUNS, "body": "html"})
    app, runs = faulty(rules)
    async with client_for(app) as client:
        response = await client.post(RUNS, json={"name": "a"})
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>502 Bad Gateway</title>" in response.text
    assert runs == []


async def test_a_malformed_json_fault_is_truncated_json_labelled_as_json() -> None:
    rules = FaultRules()
    rules.add({"path": RUNS, "body": "malformed_json"})
    app, _ = faulty(rules)
    async with client_for(app) as client:
        response = await client.get(RUNS)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == MALFORMED_JSON_BODY
    with pytest.raises(json.JSONDecodeError):
        response.json()


async def test_an_empty_body_fault_has_zero_length_and_can_carry_status_and_retry_after() -> None:
    rules = FaultRules()
    rules.add({"path": RUNS, "body": "empty", "status": 503, "retry_after": "7"})
    app, _ = faulty(rules)
    async with client_for(app) as client:
        response = await client.get(RUNS)
    assert (response.status_code, response.content) == (503, b"")
    assert response.headers["content-length"] == "0"
    assert response.headers["retry-after"] == "7"


async def test_latency_delays_the_response_and_then_the_api_answers_normally() -> None:
    rules = FaultRules()
    rules.add({"path": RUNS, "latency_ms": 100})
    app, runs = faulty(rules)
    async with client_for(app) as client:
        with anyio.fail_after(10):
            started = anyio.current_time()
            response = await client.post(RUNS, json={"name": "late"})
            waited = anyio.current_time() - started
    assert response.status_code == 202
    assert runs == ["late"]
    # Loose on purpose: only that a delay happened, never how long at most.
    assert waited >= 0.05


async def test_latency_combines_with_a_status() -> None:
    rules = FaultRules()
    rules.add({"path": RUNS, "latency_ms": 60, "status": 504})
    app, _ = faulty(rules)
    async with client_for(app) as client:
        with anyio.fail_after(10):
            started = anyio.current_time()
            response = await client.get(RUNS)
            waited = anyio.current_time() - started
    assert response.json()["error"]["code"] == "GATEWAY_TIMEOUT"
    assert waited >= 0.03


async def test_a_slow_body_still_delivers_the_real_response_in_full() -> None:
    rules = FaultRules()
    app, runs = faulty(rules)
    async with client_for(app) as client:
        await client.post(RUNS, json={"name": "r" * 200})
        expected = await client.get(RUNS)
        rules.add({"path": RUNS, "slow_body_ms": 120})
        with anyio.fail_after(10):
            started = anyio.current_time()
            slow = await client.get(RUNS)
            waited = anyio.current_time() - started
    assert slow.status_code == expected.status_code == 200
    assert slow.content == expected.content
    assert slow.headers["content-length"] == str(len(expected.content))
    assert waited >= 0.06
    assert runs == ["r" * 200]


async def test_drop_before_surfaces_as_a_disconnect_and_leaves_state_untouched() -> None:
    rules = FaultRules()
    rules.add({"method": "POST", "path": RUNS, "drop": "before"})
    app, runs = faulty(rules)
    async with client_for(app) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(RUNS, json={"name": "lost"})
        after = await client.get(RUNS)
    assert runs == []
    assert after.json() == {"data": []}


async def test_drop_after_processes_the_request_before_the_connection_goes() -> None:
    rules = FaultRules()
    rules.add({"method": "POST", "path": RUNS, "drop": "after"})
    app, runs = faulty(rules)
    async with client_for(app) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(RUNS, json={"name": "kept"})
        after = await client.get(RUNS)
    assert runs == ["kept"]
    assert after.json() == {"data": ["kept"]}


class Time:
    """Sandbox time for the middleware, moved by hand."""

    def __init__(self) -> None:
        self.now = NOW

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def test_a_late_request_is_never_answered_and_is_processed_once_sandbox_time_is_due() -> None:
    rules, late, time = FaultRules(), LateRequests(), Time()
    rules.add({"method": "POST", "path": RUNS, "late_s": 30})
    api, runs = tiny_api()
    app = FaultMiddleware(api, rules, now=lambda: time.now, late=late)
    async with client_for(app) as client:
        with anyio.move_on_after(0.2) as gave_up:  # the client's timeout
            await client.post(RUNS, json={"name": "late"})
        assert gave_up.cancelled_caught
        assert len(late) == 1
        rules.clear()  # the API already accepted it: clearing the rules doesn't take it back
        time.advance(29)
        assert (await client.get(RUNS)).json() == {"data": []}
        time.advance(1)
        assert (await client.get(RUNS)).json() == {"data": ["late"]}
        assert (await client.get(RUNS)).json() == {"data": ["late"]}  # processed once
    assert runs == ["late"]
    assert len(late) == 0


async def test_late_requests_forgotten_by_a_reset_are_never_processed() -> None:
    rules, late, time = FaultRules(), LateRequests(), Time()
    rules.add({"method": "POST", "path": RUNS, "late_s": 0})
    api, runs = tiny_api()
    app = FaultMiddleware(api, rules, now=lambda: time.now, late=late)
    async with client_for(app) as client:
        with anyio.move_on_after(0.2):
            await client.post(RUNS, json={"name": "forgotten"})
        late.clear()
        assert (await client.get(RUNS)).json() == {"data": []}
    assert runs == []


async def test_faults_also_apply_when_installed_as_starlette_middleware() -> None:
    rules = FaultRules()
    rules.add({"path": RUNS, "drop": "before"})
    rules.add({"path": RUNS, "status": 503})
    api, _ = tiny_api()
    app = Starlette(routes=api.routes, middleware=[Middleware(FaultMiddleware, rules=rules)])
    async with client_for(app) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(RUNS)
        assert (await client.get(RUNS)).status_code == 503
        assert (await client.get(RUNS)).status_code == 200


async def test_error_envelopes_use_the_injected_clock_and_request_ids() -> None:
    ids = iter(["01JP4Q9AM0C3D4E5F6G7H8J9K0"])
    rules = FaultRules()
    rules.add({"path": RUNS, "status": 500})
    api, _ = tiny_api()
    app = FaultMiddleware(api, rules, now=lambda: NOW, request_id=lambda: next(ids))
    async with client_for(app) as client:
        meta = (await client.get(RUNS)).json()["meta"]
    assert meta == {"request_id": "01JP4Q9AM0C3D4E5F6G7H8J9K0", "timestamp": "2026-03-12T09:00:00Z"}


class _Pipe:
    """Looks like a transport but has no socket, like a subprocess's pipes."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


class _Cycle:
    def __init__(self) -> None:
        self.transport = _Pipe()

    async def send(self, message: Message) -> None:
        """Stands in for a server's `send`."""


def test_a_drop_never_closes_a_transport_that_is_not_a_socket() -> None:
    cycle = _Cycle()

    async def wrapped_send(message: Message) -> None:
        await cycle.send(message)

    assert find_transport(wrapped_send) is None
    assert not cycle.transport.closed
