"""Views of the `usage` toolset: what the workspace spent over a window of days, split one way."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pydantic import Field

from onepin_mcp.api.models import UsageByLanguage, UsageDay, UsageSummary
from onepin_mcp.views import View


class UsageRow(View):
    """One language, or one day, week or month (its first day), of a usage report."""

    key: str = Field(description="a locale, or the period's first day (YYYY-MM-DD)")
    credits: int
    characters: int
    runs: int | None = None
    share: float | None = Field(default=None, description="of the credits, 0-1")


class UsageReport(View):
    """Credits and runs over a window of days, split one way."""

    days: int
    start: datetime
    end: datetime
    timezone: str
    credits: int = Field(description="used in the window")
    runs: dict[str, int] = Field(description="runs created in the window, by status")
    characters: int
    audio_s: float
    by: str
    rows: list[UsageRow] = Field(description="largest first for languages, else oldest first")
    untagged_credits: int | None = Field(default=None, description="not tied to a language")
    next: str

    @classmethod
    def of(
        cls,
        days: int,
        by: str,
        summary: UsageSummary,
        languages: UsageByLanguage | None,
    ) -> UsageReport:
        daily = summary.daily or []
        runs = summary.runs.model_dump(exclude_none=True)
        if languages is not None:
            rows = [
                UsageRow(
                    key=item.locale_code,
                    credits=item.credits,
                    characters=item.characters,
                    share=item.share,
                )
                for item in languages.languages
            ]
        else:
            rows = _periods(daily, by)
        return cls(
            days=days,
            start=summary.period.start,
            end=summary.period.end,
            timezone=summary.timezone,
            credits=sum(day.credits for day in daily),
            runs={status: count for status, count in runs.items() if count},
            characters=summary.characters.total,
            audio_s=round(summary.audio.total_ms / 1000, 1),
            by=by,
            rows=rows,
            untagged_credits=languages.untagged_credits if languages else None,
            next="get_runs_summary or list_runs show one workflow's runs and their credits.",
        )


def _periods(daily: list[UsageDay], by: str) -> list[UsageRow]:
    """Days folded into weeks (from Monday) or months; periods without use are left out."""
    totals: dict[str, list[int]] = {}
    for day in daily:
        first = date.fromisoformat(day.date)
        if by == "week":
            first -= timedelta(days=first.weekday())
        elif by == "month":
            first = first.replace(day=1)
        credits, characters, runs = totals.setdefault(first.isoformat(), [0, 0, 0])
        totals[first.isoformat()] = [
            credits + day.credits,
            characters + day.characters,
            runs + day.runs,
        ]
    return [
        UsageRow(key=key, credits=credits, characters=characters, runs=runs)
        for key, (credits, characters, runs) in sorted(totals.items())
        if credits or runs
    ]
