"""A workflow's runs in a time range, and what they cost.

OnePin's list of runs has no time filter and its runs summary has no credits, so both come from
reading the list newest first by creation time: runs newer than the range are skipped, and the
scan stops at the first run older than it. The scan is bounded (`MAX_SCAN_PAGES` pages of
`SCAN_PAGE_SIZE`), so one tool call costs at most that many requests whatever the history's
length; a result that stopped at the bound says so (`complete` false) instead of passing for the
whole range.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.models import RunListItem, RunStatus

# The API's largest page, so a range of a few hundred runs takes a few requests.
SCAN_PAGE_SIZE = 100
# At most 1,000 runs read per call: past that a range is better narrowed than read in full.
MAX_SCAN_PAGES = 10


@dataclass(frozen=True)
class RunsInRange:
    """The runs of a range found by one scan, newest first."""

    runs: list[RunListItem]
    # True when the scan reached a run older than the range, or the end of the list: `runs` is
    # then every run of the range (as of the scan). False: the scan stopped at its bound.
    complete: bool
    # How many runs were read (in range or not), and the creation time of the oldest of them:
    # where a partial scan stopped.
    read: int
    oldest_read: datetime | None

    @property
    def credits_used(self) -> int:
        """Credits charged to the runs found; a run not charged yet (null) counts 0."""
        return sum(run.credits or 0 for run in self.runs)

    @property
    def uncharged_runs(self) -> int:
        """Runs found whose credits are null: still active, or not billed yet."""
        return sum(1 for run in self.runs if run.credits is None)


def created_in_range(
    run: RunListItem, from_time: datetime | None, to_time: datetime | None
) -> bool:
    """Whether a run was created within the bounds (both included), as the runs summary counts."""
    if run.created_at is None:
        # Undatable, so it belongs to a range only when there are no bounds to place it by.
        return from_time is None and to_time is None
    if from_time is not None and run.created_at < from_time:
        return False
    return to_time is None or run.created_at <= to_time


async def runs_in_range(
    client: OnePinClient,
    workflow_id: str,
    *,
    from_time: datetime | None,
    to_time: datetime | None,
    status: list[RunStatus] | None = None,
    search: str | None = None,
) -> RunsInRange:
    """The runs of `workflow_id` created within the bounds, newest first, read in at most
    `MAX_SCAN_PAGES` requests; `status` and `search` are passed on as the API's own filters."""
    found: list[RunListItem] = []
    read = 0
    oldest: datetime | None = None
    offset = 0
    for _ in range(MAX_SCAN_PAGES):
        page = await client.list_runs(
            workflow_id,
            status=status,
            search=search,
            sort="created_at",
            order="desc",
            offset=offset,
            limit=SCAN_PAGE_SIZE,
        )
        for run in page.items:
            read += 1
            oldest = run.created_at or oldest
            if from_time is not None and run.created_at is not None and run.created_at < from_time:
                return RunsInRange(found, complete=True, read=read, oldest_read=oldest)
            if created_in_range(run, from_time, to_time):
                found.append(run)
        if page.next_offset is None:
            return RunsInRange(found, complete=True, read=read, oldest_read=oldest)
        offset = page.next_offset
    return RunsInRange(found, complete=False, read=read, oldest_read=oldest)
