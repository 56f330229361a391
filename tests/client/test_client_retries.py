"""Retries: only for requests safe to repeat, with backoff that honours Retry-After, in budget.

With `random` fixed at 0.5 and `base_delay_s` 0.5 the full-jitter waits are exactly 0.25, 0.5,
1.0, ... so the recorded waits can be compared with exact numbers.
"""

from __future__ import annotations

import anyio
import pytest

from onepin_mcp.api.client import OnePinClient, RetryPolicy
from onepin_mcp.api.errors import OnePinAPIError, OnePinConnectionError, OnePinTimeoutError
from onepin_mcp.sandbox import Sandbox, seed

from .conftest import MakeClient, RecordingSleep, fixed_jitter

pytestmark = pytest.mark.anyio

WORKFLOWS = "/api/v1/workflows"


def requests_to(sandbox: Sandbox, path: str, method: str = "GET") -> list[int]:
    """Statuses of the logged requests to `path` (0: the connection dropped)."""
    return [r.status for r in sandbox.requests if r.path == path and r.method == method]


async def test_two_503s_then_success_takes_three_requests(
    client: OnePinClient, sandbox: Sandbox, sleeps: RecordingSleep
) -> None:
    sandbox.faults.add({"method": "GET", "path": WORKFLOWS, "status": 503, "times": 2})
    page = await client.list_workflows()
    assert page.items
    assert requests_to(sandbox, WORKFLOWS) == [503, 503, 200]
    assert sleeps.waits == [0.25, 0.5]


@pytest.mark.parametrize("status", [502, 504])
async def test_gateway_errors_are_retried(
    client: OnePinClient, sandbox: Sandbox, status: int
) -> None:
    sandbox.faults.add({"path": WORKFLOWS, "status": status})
    await client.list_workflows()
    assert requests_to(sandbox, WORKFLOWS) == [status, 200]


async def test_a_429_waits_at_least_as_long_as_retry_after(
    client: OnePinClient, sandbox: Sandbox, sleeps: RecordingSleep
) -> None:
    sandbox.faults.add({"path": WORKFLOWS, "status": 429, "retry_after": "3"})
    await client.list_workflows()
    assert requests_to(sandbox, WORKFLOWS) == [429, 200]
    assert sleeps.waits == [3.0]


async def test_a_retry_after_beyond_the_cap_is_returned_to_the_caller_instead_of_waited(
    client: OnePinClient, sandbox: Sandbox, sleeps: RecordingSleep
) -> None:
    sandbox.faults.add({"path": WORKFLOWS, "status": 429, "retry_after": "120"})
    with pytest.raises(OnePinAPIError) as caught:
        await client.list_workflows()
    assert caught.value.retry_after == 120.0
    assert requests_to(sandbox, WORKFLOWS) == [429]
    assert sleeps.waits == []


async def test_a_500_is_not_retried(
    client: OnePinClient, sandbox: Sandbox, sleeps: RecordingSleep
) -> None:
    sandbox.faults.add({"path": WORKFLOWS, "status": 500})
    with pytest.raises(OnePinAPIError) as caught:
        await client.list_workflows()
    assert caught.value.status == 500
    assert requests_to(sandbox, WORKFLOWS) == [500]
    assert sleeps.waits == []


async def test_retries_stop_at_max_attempts(
    client: OnePinClient, sandbox: Sandbox, sleeps: RecordingSleep
) -> None:
    sandbox.faults.add({"path": WORKFLOWS, "status": 503, "times": None})
    with pytest.raises(OnePinAPIError) as caught:
        await client.list_workflows()
    assert caught.value.status == 503
    assert caught.value.attempts == 4
    assert requests_to(sandbox, WORKFLOWS) == [503] * 4
    assert sleeps.waits == [0.25, 0.5, 1.0]


async def test_retries_stop_when_the_next_wait_would_exceed_the_budget(
    make_client: MakeClient, sandbox: Sandbox
) -> None:
    sleeps = RecordingSleep()
    policy = RetryPolicy(
        max_attempts=10,
        base_delay_s=0.5,
        max_delay_s=8.0,
        total_budget_s=1.0,
        sleep=sleeps,
        random=fixed_jitter,
    )
    client = make_client(retry=policy)
    sandbox.faults.add({"path": WORKFLOWS, "status": 503, "times": None})
    with pytest.raises(OnePinAPIError) as caught:
        await client.list_workflows()
    # 0.25 + 0.5 fit in one second; the next wait (1.0) would not.
    assert sleeps.waits == [0.25, 0.5]
    assert caught.value.attempts == 3
    assert requests_to(sandbox, WORKFLOWS) == [503] * 3


async def test_a_dropped_connection_on_a_read_is_retried(
    client: OnePinClient, sandbox: Sandbox
) -> None:
    sandbox.faults.add({"path": WORKFLOWS, "drop": "before"})
    page = await client.list_workflows()
    assert page.items
    assert len(requests_to(sandbox, WORKFLOWS)) == 2


async def test_a_read_that_keeps_dropping_fails_as_a_connection_error_after_all_attempts(
    client: OnePinClient, sandbox: Sandbox
) -> None:
    sandbox.faults.add({"path": WORKFLOWS, "drop": "before", "times": None})
    with pytest.raises(OnePinConnectionError) as caught:
        await client.list_workflows()
    assert caught.value.attempts == 4
    assert len(requests_to(sandbox, WORKFLOWS)) == 4


async def test_a_start_whose_connection_drops_after_processing_is_sent_exactly_once(
    client: OnePinClient, sandbox: Sandbox, sleeps: RecordingSleep
) -> None:
    workflow_id = seed.WORKFLOW_COMPLETES_ID
    runs_path = f"{WORKFLOWS}/{workflow_id}/runs"
    before = await client.list_runs(workflow_id, limit=100)
    sandbox.faults.add({"method": "POST", "path": runs_path, "drop": "after"})

    with pytest.raises(OnePinConnectionError) as caught:
        await client.start_run(workflow_id)

    assert caught.value.sent is True
    assert "may have been processed" in str(caught.value)
    assert len(requests_to(sandbox, runs_path, "POST")) == 1
    assert sleeps.waits == []
    after = await client.list_runs(workflow_id, limit=100)
    assert after.total == (before.total or 0) + 1
    new_runs = {r.id for r in after.items} - {r.id for r in before.items}
    assert len(new_runs) == 1


@pytest.mark.parametrize("status", [429, 502, 503, 504])
async def test_a_start_answered_with_a_retryable_status_is_still_not_repeated(
    client: OnePinClient, sandbox: Sandbox, status: int
) -> None:
    runs_path = f"{WORKFLOWS}/{seed.WORKFLOW_COMPLETES_ID}/runs"
    sandbox.faults.add({"method": "POST", "path": runs_path, "status": status})
    with pytest.raises(OnePinAPIError):
        await client.start_run(seed.WORKFLOW_COMPLETES_ID)
    assert requests_to(sandbox, runs_path, "POST") == [status]


async def test_create_and_duplicate_are_never_repeated(
    client: OnePinClient, sandbox: Sandbox
) -> None:
    duplicate_path = f"{WORKFLOWS}/{seed.WORKFLOW_COMPLETES_ID}/duplicate"
    sandbox.faults.add({"method": "POST", "path": WORKFLOWS, "status": 503})
    sandbox.faults.add({"method": "POST", "path": duplicate_path, "status": 503})
    with pytest.raises(OnePinAPIError):
        await client.create_workflow(name="Once")
    with pytest.raises(OnePinAPIError):
        await client.duplicate_workflow(seed.WORKFLOW_COMPLETES_ID)
    assert requests_to(sandbox, WORKFLOWS, "POST") == [503]
    assert requests_to(sandbox, duplicate_path, "POST") == [503]


async def test_cancel_pause_and_preview_are_retried_because_they_are_idempotent(
    client: OnePinClient, sandbox: Sandbox
) -> None:
    workflow_id = seed.WORKFLOW_LONG_ID
    run = await client.start_run(workflow_id)
    pause_path = f"{WORKFLOWS}/{workflow_id}/runs/{run.id}/pause"
    cancel_path = f"{WORKFLOWS}/{workflow_id}/runs/{run.id}/cancel"
    preview_path = f"{WORKFLOWS}/{workflow_id}/runs/preview"
    for path in (pause_path, cancel_path, preview_path):
        sandbox.faults.add({"method": "POST", "path": path, "status": 503})

    await client.preview_run(workflow_id)
    await client.pause_run(workflow_id, run.id)
    cancelled = await client.cancel_run(workflow_id, run.id)

    assert cancelled.status == "cancelled"
    for path in (pause_path, cancel_path, preview_path):
        assert requests_to(sandbox, path, "POST") == [503, 200]


async def test_an_attempt_past_the_request_timeout_is_a_timeout_error(
    make_client: MakeClient, sandbox: Sandbox
) -> None:
    sandbox.faults.add({"path": WORKFLOWS, "latency_ms": 30_000})
    client = make_client(request_timeout_s=0.05, retry=RetryPolicy.disabled())
    with anyio.fail_after(10), pytest.raises(OnePinTimeoutError) as caught:
        await client.list_workflows()
    assert caught.value.sent is True
    assert "0.05 s" in str(caught.value)


async def test_a_slow_body_counts_against_the_request_timeout(
    make_client: MakeClient, sandbox: Sandbox
) -> None:
    sandbox.faults.add({"path": WORKFLOWS, "slow_body_ms": 30_000})
    client = make_client(request_timeout_s=0.05, retry=RetryPolicy.disabled())
    with anyio.fail_after(10), pytest.raises(OnePinTimeoutError):
        await client.list_workflows()


async def test_a_read_that_timed_out_once_is_retried(
    make_client: MakeClient, sandbox: Sandbox, sleeps: RecordingSleep
) -> None:
    sandbox.faults.add({"path": WORKFLOWS, "latency_ms": 30_000})
    client = make_client(request_timeout_s=0.05)
    with anyio.fail_after(10):
        page = await client.list_workflows()
    assert page.items
    assert sleeps.waits == [0.25]


async def test_a_start_that_timed_out_is_not_repeated_and_says_it_may_have_run(
    make_client: MakeClient, sandbox: Sandbox
) -> None:
    runs_path = f"{WORKFLOWS}/{seed.WORKFLOW_COMPLETES_ID}/runs"
    sandbox.faults.add({"method": "POST", "path": runs_path, "latency_ms": 30_000})
    client = make_client(request_timeout_s=0.05)
    with anyio.fail_after(10), pytest.raises(OnePinTimeoutError) as caught:
        await client.start_run(seed.WORKFLOW_COMPLETES_ID)
    assert caught.value.sent is True
    assert "may have been processed" in str(caught.value)
    assert len(requests_to(sandbox, runs_path, "POST")) <= 1


def test_a_retry_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(base_delay_s=-1)


def test_backoff_grows_exponentially_up_to_the_cap_and_never_undercuts_retry_after() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=5.0, random=lambda: 1.0)
    assert [policy.delay_before_retry(n, None) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 5, 5]
    assert policy.delay_before_retry(1, 4.0) == 4.0
    assert policy.delay_before_retry(1, 6.0) is None
    no_jitter = RetryPolicy(base_delay_s=1.0, random=lambda: 0.0)
    assert no_jitter.delay_before_retry(3, None) == 0.0
