"""Usage endpoints: summary, by-language and the activity feed, from the sandbox's own runs.

Every figure is derived from the runs in the store, so they add up: a run counts on the local day
it was created, with the credits it was charged (0 until it settles, as on the API), and its
credits are shared between its locales in proportion to the characters generated for each
(`allocation_basis` "characters"), rounded so that the shares add up to the run's credits.
"""

from __future__ import annotations

import base64
import math
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.responses import Response

from onepin_mcp.sandbox import envelope, render
from onepin_mcp.sandbox.call import ApiCall
from onepin_mcp.sandbox.engine import visible_takes
from onepin_mcp.sandbox.errors import invalid
from onepin_mcp.sandbox.parsing import QueryReader
from onepin_mcp.sandbox.store import JSON, Run

RANGES = {"30d": 30, "60d": 60, "90d": 90}
VIEWS = ("daily", "weekly", "monthly")
ACTIONS = (
    "workflow_run",
    "voice_generated",
    "template_applied",
    "member_invited",
    "api_key_created",
    "settings_changed",
)
_DISPLAY_NAMES = {
    "de-de": "German",
    "en-gb": "English (UK)",
    "en-us": "English (US)",
    "es-es": "Spanish (Spain)",
    "es-mx": "Spanish (Mexico)",
    "fr-fr": "French (France)",
    "ja-jp": "Japanese",
    "ko-kr": "Korean",
    "pt-br": "Portuguese (Brazil)",
    "pt-pt": "Portuguese (Portugal)",
    "zh-cn": "Chinese (Simplified)",
}
_ACTIVITY_NAMESPACE = uuid.UUID("3f9d6b21-8c4e-4a7f-b2d5-6e1a9c3f7b08")


@dataclass
class Tally:
    credits: int = 0
    characters: int = 0
    lines: int = 0
    runs: int = 0


@dataclass
class RunUsage:
    """What one run used: its credits, and per locale the characters, lines and credit share."""

    run: Run
    credits: int
    characters: dict[str, int] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    credit_shares: dict[str, int] = field(default_factory=dict)

    @property
    def untagged(self) -> int:
        return self.credits - sum(self.credit_shares.values())


def run_usage(run: Run) -> RunUsage:
    usage = RunUsage(run=run, credits=run.credits or 0)
    generated: set[tuple[int, str]] = set()
    for take in visible_takes(run):
        usage.characters[take.locale] = usage.characters.get(take.locale, 0) + len(take.text)
        generated.add((take.line_index, take.locale))
    for _, locale in generated:
        usage.lines[locale] = usage.lines.get(locale, 0) + 1
    usage.credit_shares = _shares(usage.credits, usage.characters)
    return usage


def _shares(credits: int, weights: dict[str, int]) -> dict[str, int]:
    """`credits` split in proportion to `weights`, by largest remainder: they add up exactly."""
    total = sum(weights.values())
    if not credits or not total:
        return {}
    exact = {key: credits * weight / total for key, weight in weights.items()}
    shares = {key: math.floor(value) for key, value in exact.items()}
    left = credits - sum(shares.values())
    for key in sorted(exact, key=lambda k: (shares[k] - exact[k], k))[:left]:
        shares[key] += 1
    return shares


# --- periods -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive

    def holds(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def render(self) -> JSON:
        return {"start": render.iso(self.start), "end": render.iso(self.end)}


@dataclass(frozen=True)
class Bucket:
    label: str
    window: Window


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), zone).astimezone(timezone.utc)


def range_window(now: datetime, zone: ZoneInfo, days: int) -> Window:
    """The last `days` local calendar days, today included."""
    today = now.astimezone(zone).date()
    return Window(
        _midnight(today - timedelta(days=days - 1), zone),
        _midnight(today + timedelta(days=1), zone),
    )


def activity_buckets(now: datetime, zone: ZoneInfo, view: str) -> list[Bucket]:
    """daily: the last 7 local days; weekly: the last 12 Monday-start weeks; monthly: the last
    12 months. Oldest first, the current one last."""
    today = now.astimezone(zone).date()
    starts: list[date]
    if view == "daily":
        starts = [today - timedelta(days=i) for i in range(6, -1, -1)]
        ends = [day + timedelta(days=1) for day in starts]
        labels = [f"{day:%a}" for day in starts]
    elif view == "weekly":
        monday = today - timedelta(days=today.weekday())
        starts = [monday - timedelta(weeks=i) for i in range(11, -1, -1)]
        ends = [day + timedelta(weeks=1) for day in starts]
        labels = [f"{day:%b} {day.day}" for day in starts]
    else:
        first = today.replace(day=1)
        starts = []
        for _ in range(12):
            starts.insert(0, first)
            first = (first - timedelta(days=1)).replace(day=1)
        ends = [*starts[1:], (starts[-1] + timedelta(days=32)).replace(day=1)]
        labels = [f"{day:%b}" for day in starts]
    return [
        Bucket(label, Window(_midnight(start, zone), _midnight(end, zone)))
        for label, start, end in zip(labels, starts, ends, strict=True)
    ]


_RANGE_LABELS = {"daily": "Last 7 days", "weekly": "Last 12 weeks", "monthly": "Last 12 months"}


# --- endpoints ---------------------------------------------------------------------------------


def summary(call: ApiCall) -> Response:
    query = call.query()
    range_name = query.choice("range", tuple(RANGES)) or "30d"
    view = query.choice("activity_view", VIEWS) or "daily"
    zone_name, zone = _zone(query)
    query.done()
    window = range_window(call.now, zone, RANGES[range_name])
    usages = [run_usage(run) for run in _runs(call) if window.holds(run.created_at)]
    statuses = [u.run.status for u in usages]
    characters = sum(sum(u.characters.values()) for u in usages)
    lines = sum(sum(u.lines.values()) for u in usages)
    days: dict[date, Tally] = {}
    day = window.start.astimezone(zone).date()
    while _midnight(day, zone) < window.end:
        days[day] = Tally()
        day += timedelta(days=1)
    for usage in usages:
        _add(days[usage.run.created_at.astimezone(zone).date()], usage)
    return call.single(
        {
            "range": range_name,
            "activity_view": view,
            "timezone": zone_name,
            "period": window.render(),
            "credits": _billing_credits(call),
            "characters": {"total": characters},
            "corrected": {"total": 0},
            "lines": {
                "total": lines,
                "avg_chars_per_line": round(characters / lines, 1) if lines else None,
            },
            "audio": {
                "total_ms": sum(
                    take.duration_ms for u in usages for take in render.delivered_takes(u.run)
                )
            },
            "runs": {
                "total": len(usages),
                **{
                    status: statuses.count(status)
                    for status in (
                        "completed",
                        "failed",
                        "cancelled",
                        "running",
                        "pending",
                        "paused",
                    )
                },
            },
            "activity": _activity_chart(call, zone, view),
            "daily": [
                {"date": day.isoformat(), **vars(tally)} for day, tally in sorted(days.items())
            ],
        }
    )


def by_language(call: ApiCall) -> Response:
    query = call.query()
    range_name = query.choice("range", tuple(RANGES)) or "30d"
    view = query.choice("activity_view", VIEWS)
    zone_name, zone = _zone(query)
    query.done()
    if view is not None:
        buckets = activity_buckets(call.now, zone, view)
        window = Window(buckets[0].window.start, buckets[-1].window.end)
    else:
        window = range_window(call.now, zone, RANGES[range_name])
    usages = [run_usage(run) for run in _runs(call) if window.holds(run.created_at)]
    rows: dict[str, Tally] = {}
    for usage in usages:
        for locale, chars in usage.characters.items():
            row = rows.setdefault(locale, Tally())
            row.characters += chars
            row.lines += usage.lines.get(locale, 0)
            row.credits += usage.credit_shares.get(locale, 0)
    total = sum(u.credits for u in usages)
    ordered = sorted(rows.items(), key=lambda item: (-item[1].credits, item[0]))
    return call.single(
        {
            "range": None if view is not None else range_name,
            "activity_view": view,
            "timezone": zone_name,
            "period": window.render(),
            "languages": [
                {
                    "locale_code": locale,
                    "display_name": _DISPLAY_NAMES.get(locale, locale),
                    "share": round(row.credits / total, 4) if total else 0.0,
                    "credits": row.credits,
                    "characters": row.characters,
                    "corrected": 0,
                    "lines": row.lines,
                    "allocation_basis": "characters",
                }
                for locale, row in ordered
            ],
            "total_credits": total,
            "untagged_credits": sum(u.untagged for u in usages),
        }
    )


def activity(call: ApiCall) -> Response:
    query = call.query()
    range_name = query.choice("range", tuple(RANGES)) or "30d"
    action = query.choice("type", ACTIONS)
    user_id = query.text("user_id")
    limit = query.integer("limit", 20, ge=1, le=100)
    cursor = query.text("cursor")
    _, zone = _zone(query)
    query.done()
    offset = _offset(cursor)
    window = range_window(call.now, zone, RANGES[range_name])
    runs = [
        run
        for run in _runs(call)
        if window.holds(run.created_at)
        and action in (None, "workflow_run")
        and user_id in (None, run.triggered_by.id)
    ]
    runs.sort(key=lambda run: (run.created_at, run.id), reverse=True)
    page = runs[offset : offset + limit]
    more = offset + limit < len(runs)
    return envelope.cursor_paged(
        call.now,
        call.request.url,
        [_event(call, run) for run in page],
        limit=limit,
        next_cursor=_cursor(offset + limit) if more else None,
    )


# --- pieces ------------------------------------------------------------------------------------


def _zone(query: QueryReader) -> tuple[str, ZoneInfo]:
    name = query.text("timezone", max_length=64) or "UTC"
    try:
        return name, ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise invalid(
            "timezone", f"Unknown timezone {name!r}; use an IANA name such as Europe/Paris."
        ) from exc


def _runs(call: ApiCall) -> list[Run]:
    return [run for run in call.store.runs.values() if run.workspace_id == call.workspace_id]


def _add(tally: Tally, usage: RunUsage) -> None:
    tally.credits += usage.credits
    tally.characters += sum(usage.characters.values())
    tally.lines += sum(usage.lines.values())
    tally.runs += 1


def _billing_credits(call: ApiCall) -> JSON:
    """The caller's own credits in the current billing period, against the plan's allowance."""
    account = call.store.account
    used = sum(
        run.credits or 0
        for run in _runs(call)
        if run.triggered_by.id == call.store.user.id
        and account.period_start <= run.created_at < account.period_end
    )
    quota = max(account.plan_grant + account.free_grant, used + account.balance)
    return {
        "used": used,
        "quota": quota,
        "percent": min(100.0, round(100 * used / quota, 1)) if quota else None,
    }


def _activity_chart(call: ApiCall, zone: ZoneInfo, view: str) -> JSON:
    buckets = activity_buckets(call.now, zone, view)
    tallies = [Tally() for _ in buckets]
    for run in _runs(call):
        for bucket, tally in zip(buckets, tallies, strict=True):
            if bucket.window.holds(run.created_at):
                _add(tally, run_usage(run))
    total = sum(t.credits for t in tallies)
    peak = max(zip(buckets, tallies, strict=True), key=lambda pair: pair[1].credits)
    return {
        "view": view,
        "bucket_unit": {"daily": "day", "weekly": "week", "monthly": "month"}[view],
        "range_label": _RANGE_LABELS[view],
        "buckets": [
            {"label": b.label, **b.window.render(), **vars(t)}
            for b, t in zip(buckets, tallies, strict=True)
        ],
        "total": total,
        "avg": round(total / len(buckets), 1),
        "peak": (
            {"value": peak[1].credits, "label": peak[0].label, **peak[0].window.render()}
            if total
            else None
        ),
    }


def _event(call: ApiCall, run: Run) -> JSON:
    workflow = call.store.workflows.get(run.workflow_id)
    return {
        "id": str(uuid.uuid5(_ACTIVITY_NAMESPACE, run.id)),
        "timestamp": render.iso(run.created_at),
        "user": {"id": run.triggered_by.id, "name": run.triggered_by.name},
        "action": "workflow_run",
        "kind": run.status,
        "resource": {
            "type": "workflow",
            "id": run.workflow_id,
            "name": workflow.name if workflow else None,
        },
        "metadata": {
            "run_id": run.id,
            "run_number": run.run_number,
            "status": run.status,
            "credits": run.credits,
        },
        "ip": None,
    }


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = decoded.partition(":")
        if prefix == "offset" and value.isdigit():
            return int(value)
    except (ValueError, UnicodeDecodeError):
        pass
    raise invalid("cursor", "Invalid pagination cursor; pass the one a previous page returned.")
