"""Views of the `runs` toolset: run state with what to do next, the full record, steps, results,
per-line data, summaries, download links and cost previews.

Durations are seconds (rounded to 0.1), which read better to a model than milliseconds.
Presigned audio URLs in result payloads are left out where an id can fetch a fresh one
(`get_download_url`), since they are long and expire in about 15 minutes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from onepin_mcp.api.client import PresignedFile
from onepin_mcp.api.models import (
    DataCard,
    DataRow,
    DownloadUrl,
    Estimate,
    LanguageAudio,
    NodeState,
    OutputLine,
    OverviewMetric,
    Page,
    RunAnalysis,
    RunData,
    RunDetail,
    RunListItem,
    RunOutputs,
    RunOverview,
    RunsSummary,
    RunState,
    RunStatus,
    RunStep,
    SinkOutput,
    ValidatorSummary,
)
from onepin_mcp.run_history import RunsInRange
from onepin_mcp.text import trim_json
from onepin_mcp.views import MAX_NAME_CHARS, CleanName, CleanText, View, clean_text
from onepin_mcp.views.next_steps import after_wait, next_step

# Caps on how much of a long result an agent sees at once; the tools say how to see the rest.
MAX_STEPS = 100
MAX_OUTPUT_LINES = 5
MAX_CREDIT_ROWS = 20
MAX_RESULT_TEXT_CHARS = 1000  # long enough for a presigned URL inside a step result
MAX_RESULT_ITEMS = 5


def seconds(ms: int | float | None) -> float | None:
    return None if ms is None else round(ms / 1000, 1)


# --- state and what to do next --------------------------------------------------------------------

# What to do next is worded in `views.next_steps`, for these views and the run_control ones alike.


class Progress(View):
    """Done over total, as "2/7". Nodes make the steadier measure; steps count node executions,
    retries included, and their total grows as steps start."""

    nodes: str | None = Field(default=None, description="finished/total nodes")
    steps: str | None = Field(default=None, description="finished/started steps")
    percent: int | None = Field(default=None, description="by nodes when known, else by steps")

    @classmethod
    def of(cls, state: RunState | RunListItem) -> Progress:
        return cls(
            nodes=_fraction(state.finished_nodes, state.total_nodes),
            steps=_fraction(state.finished_steps, state.total_steps),
            percent=_percent(state),
        )


def _fraction(done: int | None, total: int | None) -> str | None:
    if done is None and total is None:
        return None
    return f"{done or 0}/{total}" if total is not None else str(done)


def _percent(state: RunState | RunListItem) -> int | None:
    if state.status == "completed":
        return 100
    # Nodes make the steadier measure: retries add steps, so the step total grows mid-run.
    done: int | None
    total: int | None
    if state.total_nodes:
        done, total = state.finished_nodes, state.total_nodes
    else:
        done, total = state.finished_steps, state.total_steps
    if done is None or not total:
        return None
    return min(100, round(100 * done / total))


def progress_of(state: RunState) -> tuple[int, int | None, str]:
    """A run's progress for a progress notification: (finished, total or None, short message).

    Counts nodes when the node total is known, like `percent`: the step "total" only counts
    steps started so far, so it grows as the run goes. Steps still appear in the message, since
    retries move them while the node count stands still.
    """
    done: int
    total: int | None
    if state.total_nodes:
        done, total, unit = state.finished_nodes or 0, state.total_nodes, "nodes"
    else:
        done, total, unit = state.finished_steps or 0, state.total_steps or None, "steps"
    if total is not None and total < done:
        total = None  # an inconsistent total would make the notification claim more than 100%
    label: str = state.status
    if state.status == "paused" and state.pause_reason:
        label = f"paused ({clean_text(state.pause_reason, 40)})"
    elif state.pause_requested_at is not None and not state.is_terminal:
        label = f"{state.status}, pausing"
    counted = f"{done}/{total} {unit}" if total is not None else f"{done} {unit}"
    if unit == "nodes" and state.finished_steps is not None:
        counted += f", {state.finished_steps} steps"
    return done, total, f"{label}: {counted}"


class RunStatusView(View):
    """A run's state, progress and timing, and `next`: what to call next. The ids the caller
    passed are not echoed: this is the answer an agent polls."""

    run_number: int | None = None
    status: RunStatus
    is_terminal: bool
    progress: Progress
    started_at: datetime | None = None
    completed_at: datetime | None = None
    pause_requested_at: datetime | None = None
    paused_at: datetime | None = None
    error: CleanText | None = None
    pause_reason: CleanName | None = Field(
        default=None,
        description="user, provider_outage, provider_rate_limited, provider_billing, node_timeout",
    )
    pause_error: CleanText | None = None
    held_nodes: int | None = Field(default=None, description="nodes parked by the pause")
    has_export: bool | None = Field(default=None, description="true: get_download_url works")
    next: str

    @classmethod
    def of(cls, state: RunState) -> RunStatusView:
        return cls(**_status_fields(state), next=next_step(state))


def _status_fields(state: RunState) -> dict[str, Any]:
    return {
        "run_number": state.run_number,
        "status": state.status,
        "is_terminal": state.is_terminal,
        "progress": Progress.of(state),
        "started_at": state.started_at,
        "completed_at": state.completed_at,
        "pause_requested_at": state.pause_requested_at,
        "paused_at": state.paused_at,
        "error": state.error,
        "pause_reason": state.pause_reason,
        "pause_error": state.pause_error,
        "held_nodes": len(state.held_nodes) if state.held_nodes is not None else None,
        "has_export": state.has_export,
    }


class RunWaitView(RunStatusView):
    """The run's state when waiting stopped; `done` is true only for a finished run."""

    done: bool = Field(description="true: completed, failed or cancelled")
    waited_s: float

    @classmethod
    def after_wait(cls, state: RunState, waited_s: float) -> RunWaitView:
        waited_s = round(waited_s, 1)
        hint = after_wait(state, waited_s, _percent(state))
        return cls(**_status_fields(state), next=hint, done=state.is_terminal, waited_s=waited_s)


# --- list_runs ------------------------------------------------------------------------------------


class RunRow(View):
    id: str
    run_number: int | None = None
    status: RunStatus
    percent: int | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None
    credits: int | None = None
    triggered_by: CleanName | None = None

    @classmethod
    def of(cls, run: RunListItem) -> RunRow:
        trigger = run.triggered_by
        return cls(
            id=run.id,
            run_number=run.run_number,
            status=run.status,
            percent=_percent(run),
            created_at=run.created_at,
            completed_at=run.completed_at,
            credits=run.credits,
            triggered_by=(trigger.user_name or trigger.user_id) if trigger else None,
        )


class RunList(View):
    """One page of a workflow's runs (newest first by default); `next_offset` None on the last."""

    workflow_id: str
    items: list[RunRow]
    total: int | None
    offset: int
    next_offset: int | None
    range_complete: bool | None = Field(
        default=None,
        description="with from_time/to_time: true when every run of the range was read, so "
        "total is exact; false: only the newest runs were read (see next)",
    )
    next: str | None = None

    @classmethod
    def of(cls, workflow_id: str, page: Page[RunListItem]) -> RunList:
        more = None
        if page.next_offset is not None:
            more = f"More runs: call list_runs with offset={page.next_offset}."
        return cls(
            workflow_id=workflow_id,
            items=[RunRow.of(run) for run in page.items],
            total=page.total,
            offset=page.offset,
            next_offset=page.next_offset,
            next=more,
        )

    @classmethod
    def of_range(
        cls, workflow_id: str, found: RunsInRange, *, offset: int, limit: int, oldest_first: bool
    ) -> RunList:
        """A page of the runs a time range holds: OnePin can't filter runs by time, so the
        range was read whole (up to the scan's bound) and this pages through what it found."""
        runs = found.runs[::-1] if oldest_first else found.runs
        following = offset + limit
        next_offset = following if following < len(runs) else None
        hints = []
        if next_offset is not None:
            hints.append(
                f"More runs in range: call list_runs with offset={next_offset} and the same "
                "from_time/to_time."
            )
        if not found.complete and found.oldest_read is not None:
            hints.append(
                f"Only the newest {found.read} runs were read (the most one call reads), so "
                "total counts only those: for older runs of the range call list_runs with "
                f"to_time={found.oldest_read.isoformat()}."
            )
        return cls(
            workflow_id=workflow_id,
            items=[RunRow.of(run) for run in runs[offset:following]],
            total=len(runs),
            offset=offset,
            next_offset=next_offset,
            range_complete=found.complete,
            next=" ".join(hints) or None,
        )


# --- get_run --------------------------------------------------------------------------------------


class Trigger(View):
    user_id: str
    user_name: CleanName | None = None


class RunRecordView(View):
    """The full record of a run: cost, usage, who started it, timing, outcome."""

    workflow_id: str
    run_id: str
    run_number: int | None = None
    status: RunStatus
    is_terminal: bool
    progress: Progress
    credits: int | None = Field(default=None, description="debited from the balance")
    credits_absorbed: float | None = None
    token_cost: int | None = Field(
        default=None, description="billing units (characters), not credits"
    )
    usage: dict[str, Any] | None = None
    triggered_by: Trigger | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_s: float | None = Field(default=None, description="start to end, pauses excluded")
    paused_s: float | None = None
    has_export: bool | None = None
    error: CleanText | None = None
    pause_reason: CleanName | None = None
    pause_error: CleanText | None = None
    definition_snapshot: dict[str, Any] | None = Field(
        default=None, description="the graph as it ran (only with include_definition)"
    )
    truncated: bool = Field(default=False, description="long text in the snapshot was cut")

    @classmethod
    def of(cls, run: RunDetail, *, include_definition: bool) -> RunRecordView:
        usage, _ = trim_json(run.usage_summary, max_text=200, max_items=10, max_depth=3)
        snapshot, cut = None, False
        if include_definition and run.definition_snapshot is not None:
            snapshot, cut = trim_json(run.definition_snapshot, max_text=4000)
        trigger = run.triggered_by
        return cls(
            workflow_id=run.workflow_id,
            run_id=run.id,
            run_number=run.run_number,
            status=run.status,
            is_terminal=run.is_terminal,
            progress=Progress.of(run),
            credits=run.credits,
            credits_absorbed=run.credits_absorbed,
            token_cost=run.token_cost,
            usage=usage,
            triggered_by=Trigger(user_id=trigger.user_id, user_name=trigger.user_name)
            if trigger
            else None,
            created_at=run.created_at,
            started_at=run.started_at,
            completed_at=run.completed_at,
            duration_s=_duration_s(run),
            paused_s=seconds(run.paused_ms),
            has_export=run.has_export,
            error=run.error,
            pause_reason=run.pause_reason,
            pause_error=run.pause_error,
            definition_snapshot=snapshot,
            truncated=cut,
        )


def _duration_s(run: RunState) -> float | None:
    if run.started_at is None or run.completed_at is None:
        return None
    elapsed_ms = (run.completed_at - run.started_at).total_seconds() * 1000
    return seconds(max(0.0, elapsed_ms - (run.paused_ms or 0)))


# --- get_run_steps --------------------------------------------------------------------------------


class RejectedTake(View):
    """A take a validator step rejected: where, how it scored, and the words at fault."""

    line_index: int | None = None
    locale: CleanName | None = None
    score: float | None = None
    threshold: float | None = None
    words: list[CleanName] = Field(default_factory=list)
    audio_id: CleanName | None = None

    @classmethod
    def all_of(cls, result: Mapping[str, Any] | None) -> list[RejectedTake] | None:
        """Every rejected take a validator step's result lists; None when it lists none. The
        result is untyped in the API: what doesn't read as a take is skipped."""
        listed = result.get("rejected") if result else None
        if not isinstance(listed, list):
            return None
        takes = [
            cls(
                line_index=_int(item.get("line_index")),
                locale=_text(item.get("locale_code")),
                score=_float(item.get("score")),
                threshold=_float(item.get("threshold")),
                words=[str(word) for word in item.get("words") or [] if isinstance(word, str)],
                audio_id=_text(item.get("audio_id")),
            )
            for item in listed
            if isinstance(item, Mapping)
        ]
        return takes or None


class StepView(View):
    node_id: CleanName
    node_type: CleanName
    name: CleanName | None = None
    status: CleanName
    iteration: int | None = Field(default=None, description="1+ on retries; absent on a first run")
    started_at: datetime | None = Field(default=None, description="only while it runs")
    duration_s: float | None = None
    error: CleanText | None = None
    active_ports: list[CleanName] | None = Field(
        default=None, description="output ports that fired, e.g. pass or fail on validators"
    )
    locales: list[CleanName] | None = None
    rejected: list[RejectedTake] | None = Field(
        default=None, description="every take a validator rejected (line_index from 0)"
    )
    result: dict[str, Any] | None = None

    @classmethod
    def of(cls, step: RunStep, *, include_result: bool = False) -> StepView:
        result = None
        if include_result and step.result is not None:
            result, _ = trim_json(
                step.result,
                max_text=MAX_RESULT_TEXT_CHARS,
                max_items=MAX_RESULT_ITEMS,
                max_depth=4,
            )
        duration_s = None
        if step.started_at is not None and step.completed_at is not None:
            duration_s = round((step.completed_at - step.started_at).total_seconds(), 1)
        return cls(
            node_id=step.node_id,
            node_type=step.node_type,
            name=step.node_display_name,
            status=step.status,
            iteration=step.iteration or None,
            started_at=step.started_at if step.completed_at is None else None,
            duration_s=duration_s,
            error=step.error,
            active_ports=step.active_ports,
            locales=step.locales,
            rejected=RejectedTake.all_of(step.result),
            result=result,
        )


class StepsView(View):
    """A run's step log, in execution order, after the filters."""

    counts: dict[str, int] = Field(description="steps per status, before failed_only and tail")
    matching: int = Field(description="steps that passed the filters")
    omitted: int = Field(description="matching steps left out (earliest first) by tail or the cap")
    steps: list[StepView]
    next: str | None = None

    @classmethod
    def of(
        cls,
        steps: Sequence[RunStep],
        *,
        failed_only: bool,
        tail: int | None,
        include_result: bool = False,
    ) -> StepsView:
        counts: dict[str, int] = {}
        for step in steps:
            status = clean_text(step.status, 50)
            counts[status] = counts.get(status, 0) + 1
        matching = (
            [step for step in steps if step.status == "failed"] if failed_only else list(steps)
        )
        keep = min(tail or MAX_STEPS, MAX_STEPS)
        shown = matching[-keep:] if len(matching) > keep else matching
        omitted = len(matching) - len(shown)
        hint = None
        if omitted and tail is None:
            hint = (
                f"{omitted} earlier steps left out: narrow with node_id or node_type, or set tail."
            )
        elif failed_only and not matching:
            hint = "No failed steps. get_run_status shows the run's state and error."
        return cls(
            counts=counts,
            matching=len(matching),
            omitted=omitted,
            steps=[StepView.of(step, include_result=include_result) for step in shown],
            next=hint,
        )


# --- get_run_results ------------------------------------------------------------------------------


class Metric(View):
    label: CleanName
    value: CleanName | None = None
    status: CleanName = Field(description="available, not_ready, unsupported or unavailable")
    reason: CleanText | None = None

    @classmethod
    def of(cls, metric: OverviewMetric) -> Metric:
        value = metric.formatted_value
        if value is None and metric.value is not None:
            value = f"{metric.value}{' ' + metric.unit if metric.unit else ''}"
        return cls(label=metric.label, value=value, status=metric.status, reason=metric.reason)


class ValidatorScore(View):
    node_id: CleanName
    label: CleanName
    kind: CleanName
    status: CleanName
    avg_score: float | None = None
    pass_rate: float | None = Field(default=None, description="0..1")
    pass_count: int | None = None
    fail_count: int | None = None
    retry_count: int | None = None

    @classmethod
    def of(cls, validator: ValidatorSummary) -> ValidatorScore:
        return cls(
            node_id=validator.node_id,
            label=validator.label,
            kind=validator.kind,
            status=validator.status,
            avg_score=validator.avg_score,
            pass_rate=validator.pass_rate,
            pass_count=validator.pass_count,
            fail_count=validator.fail_count,
            retry_count=validator.retry_count,
        )


class LanguageAudioView(View):
    locale: CleanName
    lines: int
    total_s: float | None

    @classmethod
    def of(cls, audio: LanguageAudio) -> LanguageAudioView:
        return cls(
            locale=audio.locale_code,
            lines=audio.line_count,
            total_s=seconds(audio.total_duration_ms),
        )


class NodeIssue(View):
    node_id: CleanName
    name: CleanName | None = None
    status: CleanName
    error: CleanText | None = None

    @classmethod
    def of(cls, node: NodeState) -> NodeIssue:
        return cls(
            node_id=node.node_id, name=node.node_display_name, status=node.status, error=node.error
        )


class ResultsOverview(View):
    metrics: list[Metric]
    validators: list[ValidatorScore] = Field(description="scores read each line's last take")
    audio_by_language: list[LanguageAudioView]
    nodes_not_completed: list[NodeIssue]

    @classmethod
    def of(cls, overview: RunOverview) -> ResultsOverview:
        return cls(
            metrics=[
                Metric.of(metric)
                for section in overview.metric_sections
                for metric in section.metrics
            ],
            validators=[ValidatorScore.of(v) for v in overview.validators],
            audio_by_language=[LanguageAudioView.of(a) for a in overview.audio_by_language],
            nodes_not_completed=[
                NodeIssue.of(node)
                for node in overview.workflow_snapshot.node_states
                if node.status != "completed"
            ],
        )


class LocaleAudio(View):
    locale: CleanName
    delivered_lines: int | None = None
    delivered_s: float | None = None
    replaced_s: float | None = Field(default=None, description="audio of takes a retry replaced")


# The analysis blocks are loosely typed by the API (each carries its own status, so one failing
# block doesn't blank the others); every field is read defensively: a missing or odd value
# becomes None, never an error.


class AnalysisAudio(View):
    status: CleanName | None = None
    delivered_s: float | None = None
    generated_s: float | None = None
    by_locale: list[LocaleAudio]

    @classmethod
    def of(cls, block: Mapping[str, Any]) -> AnalysisAudio:
        return cls(
            status=_text(block.get("status")),
            delivered_s=seconds(_float(block.get("delivered_total_ms"))),
            generated_s=seconds(_float(block.get("generated_total_ms"))),
            by_locale=[
                LocaleAudio(
                    locale=_text(row.get("locale_code")) or "?",
                    delivered_lines=_int(row.get("delivered_line_count")),
                    delivered_s=seconds(_float(row.get("delivered_duration_ms"))),
                    replaced_s=seconds(_float(row.get("replaced_duration_ms"))),
                )
                for row in _mappings(block.get("by_locale"))
            ],
        )


class LocaleScore(View):
    locale: CleanName
    avg_score: float | None = None
    pass_count: int | None = None
    fail_count: int | None = None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> LocaleScore:
        return cls(
            locale=_text(row.get("locale_code")) or "?",
            avg_score=_float(row.get("avg_score")),
            pass_count=_int(row.get("pass_count")),
            fail_count=_int(row.get("fail_count")),
        )


class AnalysisValidator(View):
    node_id: CleanName | None = None
    label: CleanName | None = None
    status: CleanName | None = None
    threshold: float | None = None
    retry_count: int | None = None
    locales: list[LocaleScore]

    @classmethod
    def of(cls, block: Mapping[str, Any]) -> AnalysisValidator:
        return cls(
            node_id=_text(block.get("node_id")),
            label=_text(block.get("label")),
            status=_text(block.get("status")),
            threshold=_float(block.get("threshold")),
            retry_count=_int(block.get("retry_count")),
            locales=[LocaleScore.of(row) for row in _mappings(block.get("locales"))],
        )


class CreditRow(View):
    node_id: CleanName | None = None
    name: CleanName | None = None
    credits: float | None = None
    retries: int | None = None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> CreditRow:
        return cls(
            node_id=_text(row.get("node_id")),
            name=_text(row.get("display_name")),
            credits=_float(row.get("credits_fractional")),
            retries=_int(row.get("retries")),
        )


class AnalysisCredits(View):
    charged: int | None = Field(default=None, description="credits debited for the run")
    total: float | None = Field(default=None, description="fractional credits of the work")
    rows: list[CreditRow] = Field(description="nodes that cost something")
    rows_omitted: int = 0

    @classmethod
    def of(cls, block: Mapping[str, Any]) -> AnalysisCredits:
        # Free nodes (most of a graph) would only repeat zeros.
        costly = [CreditRow.of(row) for row in _mappings(block.get("rows"))]
        costly = [row for row in costly if row.credits]
        return cls(
            charged=_int(block.get("charged")),
            total=_float(block.get("total_fractional")),
            rows=costly[:MAX_CREDIT_ROWS],
            rows_omitted=max(0, len(costly) - MAX_CREDIT_ROWS),
        )


class ResultsAnalysis(View):
    duration_s: float | None = None
    paused_s: float | None = None
    audio: AnalysisAudio
    validators: list[AnalysisValidator] = Field(description="scores read the delivered take")
    credits: AnalysisCredits

    @classmethod
    def of(cls, analysis: RunAnalysis) -> ResultsAnalysis:
        return cls(
            duration_s=seconds(analysis.run.duration_ms),
            paused_s=seconds(analysis.run.paused_ms),
            audio=AnalysisAudio.of(analysis.audio),
            validators=[AnalysisValidator.of(block) for block in analysis.validators],
            credits=AnalysisCredits.of(analysis.credits),
        )


class Clip(View):
    locale: CleanName | None = None
    audio_id: CleanName | None = Field(default=None, description="for get_download_url")
    duration_s: float | None = None


class OutputLineView(View):
    clips: list[Clip]
    delivered: bool | None = Field(default=None, description="passed every delivery check")
    failing_checks: int = 0

    @classmethod
    def of(cls, line: OutputLine) -> OutputLineView:
        delivery = line.delivery
        return cls(
            clips=[
                Clip(
                    locale=_text(file.get("locale_code")),
                    audio_id=_text(file.get("audio_id")),
                    duration_s=seconds(_float(file.get("duration_ms"))),
                )
                for file in line.audio_files
            ],
            delivered=delivery.passed if delivery else None,
            failing_checks=len(delivery.failing_checks) if delivery else 0,
        )


class OutputView(View):
    node_id: CleanName = Field(description="for get_download_url node_id")
    name: CleanName | None = None
    node_type: CleanName
    status: CleanName
    line_count: int | None = None
    truncated: bool = Field(description="OnePin capped the lines of this output")
    lines: list[OutputLineView] = Field(description=f"the first {MAX_OUTPUT_LINES} lines")

    @classmethod
    def of(cls, output: SinkOutput) -> OutputView:
        return cls(
            node_id=output.node_id,
            name=output.display_name,
            node_type=output.node_type,
            status=output.status,
            line_count=output.line_count if output.line_count is not None else len(output.lines),
            truncated=output.truncated,
            lines=[OutputLineView.of(line) for line in output.lines[:MAX_OUTPUT_LINES]],
        )


class RunResultsView(View):
    """A run's results; which section is filled depends on `view`."""

    workflow_id: str
    run_id: str
    run_status: RunStatus
    view: Literal["overview", "analysis", "outputs"]
    overview: ResultsOverview | None = None
    analysis: ResultsAnalysis | None = None
    outputs: list[OutputView] | None = Field(default=None, description="one per output node")
    next: str | None = None

    @classmethod
    def of_overview(cls, workflow_id: str, overview: RunOverview) -> RunResultsView:
        return cls(
            workflow_id=workflow_id,
            run_id=overview.run.id,
            run_status=overview.run.status,
            view="overview",
            overview=ResultsOverview.of(overview),
        )

    @classmethod
    def of_analysis(cls, workflow_id: str, analysis: RunAnalysis) -> RunResultsView:
        return cls(
            workflow_id=workflow_id,
            run_id=analysis.run.id,
            run_status=analysis.run.status,
            view="analysis",
            analysis=ResultsAnalysis.of(analysis),
        )

    @classmethod
    def of_outputs(cls, workflow_id: str, outputs: RunOutputs) -> RunResultsView:
        cut = any(len(o.lines) > MAX_OUTPUT_LINES for o in outputs.outputs)
        return cls(
            workflow_id=workflow_id,
            run_id=outputs.run_id,
            run_status=outputs.run_status,
            view="outputs",
            outputs=[OutputView.of(output) for output in outputs.outputs],
            next="get_run_data pages through every line; get_download_url gets the audio."
            if cut
            else None,
        )


# --- get_run_data ---------------------------------------------------------------------------------


class CardView(View):
    locale: CleanName | None = None
    text: CleanText | None = Field(
        default=None, description="the line in this locale, when it differs from script"
    )
    status: CleanName | None = Field(
        default=None, description="delivered, generated, not_delivered or dropped"
    )
    audio_status: CleanName | None = None
    audio_id: str | None = Field(default=None, description="for get_download_url audio_id")
    duration_s: float | None = None
    playback_url: str | None = Field(default=None, description="presigned, about 15 minutes")
    voice: CleanName | None = None
    scores: dict[str, float | str] = Field(
        description="validator kind: score, or why there is none (not_ready, unsupported, ...)"
    )
    flagged: dict[str, list[CleanName]] | None = Field(
        default=None, description="validator kind: the words that failed this take"
    )
    retries: int | None = None
    reason: CleanText | None = Field(default=None, description="why the audio is not available")

    @classmethod
    def of(cls, card: DataCard, line_script: str | None = None) -> CardView:
        audio = card.audio
        return cls(
            locale=card.locale_code,
            text=card.script if card.script != line_script else None,
            status=card.status,
            audio_status=audio.status if audio else None,
            audio_id=card.audio_id,
            duration_s=seconds(audio.duration_ms) if audio else None,
            playback_url=audio.playback_url if audio and audio.status == "available" else None,
            voice=card.voice.display_name if card.voice else None,
            scores=card_scores(card),
            flagged=_flagged(card),
            retries=card.retry_count,
            reason=audio.reason if audio else None,
        )


def card_scores(card: DataCard) -> dict[str, float | str]:
    """Validator kind: its score, or why there is none (not_ready, unsupported, ...)."""
    return {
        clean_text(v.kind, 50): v.score
        if v.score is not None and v.status == "available"
        else clean_text(v.status, 50)
        for v in card.validations
    }


def _flagged(card: DataCard) -> dict[str, list[str]] | None:
    """The words each validator failed the take on (critical segments; minor ones are notes)."""
    flagged = {
        clean_text(v.kind, 50): [clean_text(seg.text, MAX_NAME_CHARS) for seg in critical]
        for v in card.validations
        if (critical := [seg for seg in v.segments if seg.severity == "critical"])
    }
    return flagged or None


class DataRowView(View):
    line_index: int | None = None
    script: CleanText | None = None
    cards: list[CardView] = Field(description="one per locale and take")

    @classmethod
    def of(cls, row: DataRow) -> DataRowView:
        return cls(
            line_index=row.line_index,
            script=row.script,
            cards=[CardView.of(card, row.script) for card in row.cards],
        )


class RunDataView(View):
    """One page of a run's script lines with their audio per locale."""

    run_status: RunStatus
    rows: list[DataRowView]
    total: int | None = Field(description="lines matching search (language filters cards only)")
    offset: int
    next_offset: int | None
    partial: bool = Field(description="true: some values are still being computed")
    next: str | None = None

    @classmethod
    def of(cls, data: RunData) -> RunDataView:
        page = data.page
        more = None
        if page.next_offset is not None:
            more = f"More lines: call get_run_data with offset={page.next_offset}."
        return cls(
            run_status=data.run_status,
            rows=[DataRowView.of(row) for row in data.rows],
            total=page.total,
            offset=page.offset,
            next_offset=page.next_offset,
            partial=data.partial is not None and data.partial.status != "available",
            next=more,
        )


# --- get_runs_summary, get_download_url, preview_run ----------------------------------------------


class RunsSummaryView(View):
    """How a workflow's runs went, over the whole history or a time range."""

    workflow_id: str
    from_time: datetime | None = None
    to_time: datetime | None = None
    total_runs: int
    counts: dict[str, int] = Field(description="runs per status; zeros left out")
    pass_rate: float | None = Field(
        default=None, description="completed / (completed + failed), 0..1; None without either"
    )
    average_duration_s: float | None = Field(default=None, description="of completed runs")
    delivered_audio_s: float | None = None
    credits_used: int | None = Field(
        default=None, description="credits charged to the runs of the range"
    )
    credits_unknown_runs: int | None = Field(
        default=None, description="runs of the range not charged yet (still active): counted as 0"
    )
    credits_note: str | None = Field(default=None, description="when credits_used is partial")

    @classmethod
    def of(
        cls,
        workflow_id: str,
        summary: RunsSummary,
        from_time: datetime | None,
        to_time: datetime | None,
        charged: RunsInRange,
    ) -> RunsSummaryView:
        statuses = ("pending", "running", "paused", "completed", "failed", "cancelled")
        counts = {status: getattr(summary, status) for status in statuses}
        note = None
        if not charged.complete and charged.oldest_read is not None:
            note = (
                f"Partial: the sum covers the runs of the range created from "
                f"{charged.oldest_read.isoformat()} on (one call reads the newest "
                f"{charged.read} runs at most); call get_runs_summary with "
                f"to_time={charged.oldest_read.isoformat()} for the older ones (a run created "
                "at that instant is in both sums)."
            )
        return cls(
            workflow_id=workflow_id,
            from_time=from_time,
            to_time=to_time,
            total_runs=summary.total_runs,
            counts={status: n for status, n in counts.items() if n},
            pass_rate=summary.pass_rate,
            average_duration_s=None
            if summary.average_duration_seconds is None
            else round(summary.average_duration_seconds, 1),
            delivered_audio_s=seconds(summary.delivered_audio_ms),
            credits_used=charged.credits_used,
            credits_unknown_runs=charged.uncharged_runs or None,
            credits_note=note,
        )


class DownloadView(View):
    """A presigned link: fetch it within about 15 minutes, and ask again rather than keep it."""

    covers: Literal["run", "node", "clip"] = Field(
        description="the whole run's ZIP, one output node's ZIP, or one audio clip"
    )
    url: str
    filename: CleanName | None = None
    expires_at: datetime | None = None

    @classmethod
    def of(cls, link: DownloadUrl, covers: Literal["run", "node", "clip"]) -> DownloadView:
        return cls(covers=covers, url=link.url, filename=link.filename, expires_at=link.expires_at)


# --- get_audio_clip -------------------------------------------------------------------------------


class AudioClipView(View):
    """One clip: its line, what speech recognition heard, its scores, and how its audio comes."""

    workflow_id: str
    run_id: str
    audio_id: str
    line_index: int | None = None
    locale: CleanName | None = None
    text: CleanText | None = Field(default=None, description="the line in this locale")
    transcript: CleanText | None = Field(default=None, description="what a validator heard")
    status: CleanName | None = Field(
        default=None, description="delivered, generated, not_delivered or dropped"
    )
    duration_s: float | None = None
    scores: dict[str, float | str] = Field(
        description="validator kind: score, or why there is none (not_ready, unsupported, ...)"
    )
    mime_type: str
    size_bytes: int | None = Field(default=None, description="of the audio file, when known")
    attached: bool = Field(description="true: the audio is in this result as an audio block")
    url: str | None = Field(default=None, description="presigned link, when not attached")
    expires_at: datetime | None = None
    next: str | None = None

    @classmethod
    def of(
        cls,
        workflow_id: str,
        run_id: str,
        audio_id: str,
        *,
        link: DownloadUrl,
        file: PresignedFile,
        found: tuple[DataRow, DataCard] | None,
        lines_searched: int,
        max_bytes: int,
    ) -> AudioClipView:
        row, card = found if found is not None else (None, None)
        audio = card.audio if card is not None else None
        hint = None
        if file.over_cap:
            size = f"{file.size_bytes} bytes" if file.size_bytes is not None else "larger"
            hint = (
                f"The clip is {size}, over this server's {max_bytes}-byte cap for audio in a "
                "result, so it is not attached: play or download it from url before expires_at "
                "(call get_audio_clip again for a fresh link)."
            )
        elif found is None:
            hint = (
                f"The clip was not found in the run's first {lines_searched} lines of "
                "get_run_data, so its line, text and scores are not given."
            )
        return cls(
            workflow_id=workflow_id.lower(),
            run_id=run_id.lower(),
            audio_id=audio_id.lower(),
            line_index=row.line_index if row is not None else None,
            locale=card.locale_code if card is not None else None,
            text=(card.script or row.script) if card is not None and row is not None else None,
            transcript=next((v.transcript for v in card.validations if v.transcript), None)
            if card is not None
            else None,
            status=card.status if card is not None else None,
            duration_s=seconds(audio.duration_ms) if audio is not None else None,
            scores=card_scores(card) if card is not None else {},
            mime_type=audio_mime_type(file.content_type, audio.content_type if audio else None),
            size_bytes=file.size_bytes,
            attached=not file.over_cap,
            url=link.url if file.over_cap else None,
            expires_at=link.expires_at if file.over_cap else None,
            next=hint,
        )


def audio_mime_type(*candidates: str | None) -> str:
    """The first candidate that names an audio type (parameters dropped), else WAV: what the
    sandbox serves and what OnePin's cards declare."""
    for candidate in candidates:
        essence = (candidate or "").split(";")[0].strip().lower()
        # Storage's header is untrusted text too: only a plain media type passes, as is.
        if _AUDIO_TYPE.fullmatch(essence):
            return essence
    return "audio/wav"


_AUDIO_TYPE = re.compile(r"audio/[a-z0-9][a-z0-9.+-]{0,40}")


class PreviewView(View):
    """What a run would cost and whether the balance allows it. Nothing was charged."""

    workflow_id: str
    min_credits: int
    expected_credits: int
    max_credits: int
    balance: int
    can_run: bool = Field(description="the balance passes the start gate")
    deficit_at_max: int = Field(description="credits short if the run costs the maximum")
    will_incur_overage: bool | None = None
    estimated_overage_cents: int | None = None
    overage_rate_cents_per_credit: float | None = None
    next: str

    @classmethod
    def of(cls, workflow_id: str, estimate: Estimate) -> PreviewView:
        if not estimate.can_run:
            hint = (
                f"The balance ({estimate.current_balance}) does not allow this run: add "
                "credits or shorten the script, then preview again."
            )
        elif estimate.deficit_at_max > 0:
            hint = (
                f"It can start, but at its maximum it would need {estimate.deficit_at_max} more "
                "credits than the balance. start_run starts it (billable)."
            )
        else:
            hint = "The balance covers it: start_run starts it (billable)."
        return cls(
            workflow_id=workflow_id,
            min_credits=estimate.min_credits,
            expected_credits=estimate.expected_credits,
            max_credits=estimate.max_credits,
            balance=estimate.current_balance,
            can_run=estimate.can_run,
            deficit_at_max=estimate.deficit_at_max,
            will_incur_overage=estimate.will_incur_overage,
            estimated_overage_cents=estimate.estimated_overage_cents,
            overage_rate_cents_per_credit=estimate.overage_rate_cents_per_credit,
            next=hint,
        )


# --- reading loosely typed API blocks -------------------------------------------------------------


def _mappings(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    """A number, or a decimal string such as OnePin's "0.2300" credit amounts."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None  # NaN and infinity are not JSON
