"""Sandbox records as the wire shows them: the JSON of the API's `data` fields (not tool views).

Field names and nesting follow the OnePin API reference (0.16.1 models) exactly: a contract test
parses every answer with the official SDK's models and fails on unknown or missing keys. Values
are derived from the run's plan and how far the clock has revealed it (`engine`).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from .engine import (
    VALIDATOR_KINDS,
    DefinitionProblem,
    Estimate,
    graph_edges,
    graph_nodes,
    is_delivered,
    latest_takes,
    node_config,
    node_name,
    read_script,
    rejected_words,
    step_done,
    visible_takes,
)
from .requestlog import isoformat
from .speech import Voice
from .store import (
    JSON,
    RUN_STATUSES,
    TERMINAL_STATUSES,
    Account,
    DictionaryEntry,
    PlanLimits,
    Run,
    Score,
    Step,
    Store,
    Take,
    Upload,
    Workflow,
)


@dataclass(frozen=True)
class Link:
    """A presigned URL minted by the app for a file it serves itself."""

    url: str
    filename: str
    expires_at: datetime


Linker = Callable[[Take], Link]


def iso(moment: datetime | None) -> str | None:
    return isoformat(moment) if moment is not None else None


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "workflow"


# --- account ---------------------------------------------------------------------------------


def balance(account: Account) -> JSON:
    quota = account.plan_grant + account.free_grant
    return {
        "balance": account.balance,
        "monthly_balance": account.monthly_balance,
        "free_balance": account.free_balance,
        "free_grant": account.free_grant,
        "used": account.used,
        "remaining": account.balance,
        "quota": quota,
        "percent": round(100 * account.used / quota, 1) if quota else 0.0,
        "period_start": iso(account.period_start),
        "period_end": iso(account.period_end),
        "plan_grant": account.plan_grant,
        "plan_tier": account.plan_tier,
        "overage_rate_cents_per_credit": account.overage_rate_cents_per_credit,
        "overage_cents": 0,
        "credits_absorbed": account.credits_absorbed,
    }


def plan_limits(limits: PlanLimits) -> JSON:
    return {
        "monthly_credits": limits.monthly_credits,
        "workspaces_per_owner": limits.workspaces_per_owner,
        "concurrent_runs_per_user": limits.concurrent_runs_per_user,
        "storage_bytes_per_workspace": limits.storage_bytes_per_workspace,
        "retention_days": limits.retention_days,
        "byok_enabled": limits.byok_enabled,
        "auto_fix_enabled": limits.auto_fix_enabled,
        "credits_renewal": limits.credits_renewal,
        "downloads_enabled": limits.downloads_enabled,
        "overage_rate_cents_per_credit": limits.overage_rate_cents_per_credit,
    }


# --- workflows -------------------------------------------------------------------------------


def dictionary_entry(entry: DictionaryEntry) -> JSON:
    return {
        "id": entry.id,
        "word": entry.word,
        "description": entry.description,
        "pronunciation": entry.pronunciation,
        # The sandbox keeps no reference audio, so there is no clip to link to.
        "audio_url": None,
        "method": entry.method,
        "language": entry.language,
        "uses_count": 0,  # never incremented on the API either
        "ipa": entry.ipa,
        "created_by": entry.created_by,
        "created_at": iso(entry.created_at),
        "updated_at": iso(entry.updated_at),
    }


def workflow_bucket(latest: Run | None) -> str | None:
    """The list filter's `status` of a workflow, from its latest run (cancelled: no bucket)."""
    if latest is None:
        return "draft"
    if latest.status in ("pending", "running", "paused"):
        return "running"
    return latest.status if latest.status in ("completed", "failed") else None


def workflow(store: Store, item: Workflow, *, include_definition: bool = True) -> JSON:
    runs = store.runs_of(item.id)
    latest = max(runs, key=lambda r: (r.created_at, r.run_number), default=None)
    counts = {
        status: 0 for status in ("pending", "running", "completed", "failed", "cancelled", "paused")
    }
    for run_ in runs:
        counts[run_.status] += 1
    body: JSON = {
        "id": item.id,
        "user_id": item.user_id,
        "name": item.name,
        "name_source": item.name_source,
        "description": item.description,
    }
    if include_definition:
        body["definition"] = item.definition
    body.update(
        {
            "created_at": iso(item.created_at),
            "updated_at": iso(item.updated_at),
            "runs_count": len(runs),
            "last_run_at": iso(latest.created_at) if latest else None,
            "last_run_status": latest.status if latest else None,
            "run_status_counts": counts,
        }
    )
    return body


def validation_report(definition: JSON) -> JSON:
    """`POST /workflows/validate`: every run-start gate, without saving."""
    errors: list[JSON] = []
    warnings: list[JSON] = []
    nodes = graph_nodes(definition)
    names = {str(n.get("id")): node_name(n) for n in nodes}
    try:
        script = read_script(definition)
        locales: list[str] = list(script.locales)
    except DefinitionProblem as problem:
        node_id = next((nid for nid in names if nid in problem.field), None)
        errors.append(
            {
                "rule": "preflight",
                "node_id": node_id,
                "node_name": names.get(node_id or ""),
                "message": problem.message,
            }
        )
        locales = []
    if not any(n.get("type") == "sink_preview" for n in nodes):
        errors.append(
            {
                "rule": "output_required",
                "node_id": None,
                "node_name": None,
                "message": "The workflow needs an output node (sink_preview) to deliver audio.",
            }
        )
    if not any(n.get("type") in VALIDATOR_KINDS for n in nodes):
        warnings.append(
            {
                "rule": "quality_gate",
                "node_id": None,
                "node_name": None,
                "message": "No validator checks the generated audio before delivery.",
            }
        )
    return {
        "valid": not errors,
        "summary": {
            "node_count": len(nodes),
            "edge_count": len(graph_edges(definition)),
            "node_types": sorted({str(n.get("type")) for n in nodes}),
            "output_locales": locales,
        },
        "errors": errors,
        "warnings": warnings,
        "blocked": [],
    }


def markdown(item: Workflow) -> str:
    lines = [f"# {item.name}", ""]
    if item.description:
        lines += [item.description, ""]
    lines += ["## Pipeline", ""]
    for index, node in enumerate(graph_nodes(item.definition), start=1):
        lines.append(
            f"{index}. **{node_name(node)}** (`{node.get('type')}`, id `{node.get('id')}`)"
        )
        config = node_config(node)
        if node.get("type") == "source_script":
            text = str(config.get("script_text") or "")
            count = len([line for line in text.splitlines() if line.strip()])
            lines.append(
                f"   - Script: {count} line(s) in {config.get('source_language') or 'en-us'}"
            )
        elif node.get("type") == "operator_translator":
            lines.append(
                f"   - Target languages: {', '.join(config.get('target_languages') or [])}"
            )
        elif node.get("type") == "operator_generator":
            for locale, voices in (config.get("voice_map") or {}).items():
                for voice in voices or []:
                    lines.append(
                        f"   - {locale}: {voice.get('voice_name')} "
                        f"({voice.get('provider')}/{voice.get('model')})"
                    )
        elif node.get("type") in VALIDATOR_KINDS:
            lines.append(
                f"   - Quality gate: threshold {config.get('threshold')}, "
                f"up to {config.get('max_retries', 1)} retr(ies)"
            )
        elif node.get("type") == "sink_preview":
            lines.append(f"   - Export format: {config.get('format', 'wav')}")
    return "\n".join(lines) + "\n"


def upload(item: Upload, link: Link) -> JSON:
    data = item.content.encode()
    return {
        "id": item.id,
        "user_id": item.user_id,
        "workspace_id": item.workspace_id,
        "filename": item.filename,
        "category": "script",
        "content_type": "text/plain",
        "format": "txt",
        "status": "uploaded",
        "size_bytes": len(data),
        "char_count": len(item.content),
        "line_count": len(item.content.splitlines()),
        "detected_language": item.detected_language,
        "download_url": link.url,
        "context_type": "workflow",
        "context_id": item.workflow_id,
        "created_at": iso(item.created_at),
        "updated_at": iso(item.created_at),
    }


def estimate(cost: Estimate, store: Store) -> JSON:
    balance_now = store.account.balance
    overage = store.account.overage_rate_cents_per_credit
    deficit = max(0, cost.max_credits - balance_now)
    return {
        "min_credits": cost.min_credits,
        "expected_credits": cost.expected_credits,
        "max_credits": cost.max_credits,
        "breakdown": [
            {
                "node_id": row.node_id,
                "node_type": row.node_type,
                "min_credits": row.min_credits,
                "expected_credits": row.expected_credits,
                "max_credits": row.max_credits,
            }
            for row in cost.breakdown
        ],
        "current_balance": balance_now,
        "deficit_at_max": deficit,
        "can_run": cost.min_credits <= balance_now,
        "overage_rate_cents_per_credit": overage,
        "will_incur_overage": deficit > 0 and overage is not None,
        "estimated_overage_cents": round(deficit * overage) if overage is not None else 0,
    }


# --- runs ------------------------------------------------------------------------------------


def snapshot_nodes(item: Run) -> list[JSON]:
    return graph_nodes(item.snapshot)


def node_label(node: JSON) -> str:
    return node_name(node)


def _paused_ms(item: Run, now: datetime) -> int:
    ongoing = int((now - item.paused_at).total_seconds() * 1000) if item.paused_at else 0
    return item.paused_ms + ongoing


def _progress(item: Run) -> JSON:
    finished = [s for s in item.steps if s.status in ("completed", "failed", "cancelled")]
    return {
        "total_nodes": len(snapshot_nodes(item)),
        "total_steps": len(item.steps),
        "finished_steps": len(finished),
        "finished_nodes": len(
            {s.node_id for s in item.steps if s.status in ("completed", "failed")}
        ),
    }


def _token_cost(item: Run) -> int:
    return sum(
        item.plan.steps[s.plan_index].characters
        for s in item.steps
        if s.status in ("completed", "failed")
    )


def delivered_takes(item: Run) -> list[Take]:
    return [take for take in latest_takes(item).values() if is_delivered(item, take)]


def _usage(item: Run) -> JSON | None:
    if not item.steps:
        return None
    lines = len(item.plan.lines) if step_done(item, 0) else 0
    return {
        "characters": _token_cost(item),
        "lines": lines,
        "audio_ms": sum(take.duration_ms for take in delivered_takes(item)),
    }


def _held_nodes(item: Run) -> list[JSON] | None:
    if item.status != "paused":
        return None
    upcoming = item.plan.steps[len(item.steps)] if len(item.steps) < len(item.plan.steps) else None
    if upcoming is None:
        return []
    return [{"node_id": upcoming.node_id, "locales": list(upcoming.locales or item.plan.locales)}]


def run(item: Run, now: datetime, kind: str) -> JSON:
    """`kind` "out" (start/cancel/pause/resume), "status" (no credits) or "detail" (get run)."""
    body: JSON = {
        "id": item.id,
        "workflow_id": item.workflow_id,
        "status": item.status,
        "run_number": item.run_number,
        **_progress(item),
        "held_nodes": _held_nodes(item),
        "token_cost": _token_cost(item),
        "usage_summary": _usage(item),
        "started_at": iso(item.started_at),
        "completed_at": iso(item.completed_at),
        "pause_requested_at": iso(item.pause_requested_at),
        "paused_at": iso(item.paused_at),
        "paused_ms": _paused_ms(item, now),
        "pause_reason": item.pause_reason,
        "pause_error": item.pause_error,
        "created_at": iso(item.created_at),
        "updated_at": iso(item.updated_at),
        "error": item.error,
        "has_export": item.has_export,
        "triggered_by": {"user_id": item.triggered_by.id, "user_name": item.triggered_by.name},
    }
    if kind != "status":
        body["credits"] = item.credits
    if kind == "detail":
        body["credits_absorbed"] = item.credits_absorbed
        body["definition_snapshot"] = item.snapshot
        body["public_share_id"] = None
        body["shared_at"] = None
    return body


def run_list_item(item: Run, now: datetime) -> JSON:
    delivered = delivered_takes(item)
    return {
        "id": item.id,
        "status": item.status,
        "run_number": item.run_number,
        **_progress(item),
        "credits": item.credits,
        "usage_summary": _usage(item),
        "started_at": iso(item.started_at),
        "completed_at": iso(item.completed_at),
        "pause_requested_at": iso(item.pause_requested_at),
        "paused_at": iso(item.paused_at),
        "paused_ms": _paused_ms(item, now),
        "pause_reason": item.pause_reason,
        "pause_error": item.pause_error,
        "created_at": iso(item.created_at),
        "triggered_by": {"user_id": item.triggered_by.id, "user_name": item.triggered_by.name},
        "output_line_count": len(delivered),
        "delivered_audio_ms": sum(take.duration_ms for take in delivered),
    }


def _active_seconds(item: Run) -> float | None:
    if item.started_at is None or item.completed_at is None:
        return None
    return (item.completed_at - item.started_at).total_seconds() - item.paused_ms / 1000


def runs_summary(runs: Sequence[Run]) -> JSON:
    counts = {status: sum(1 for r in runs if r.status == status) for status in RUN_STATUSES}
    judged = counts["completed"] + counts["failed"]
    durations = [
        d for r in runs if r.status == "completed" and (d := _active_seconds(r)) is not None
    ]
    return {
        "total_runs": len(runs),
        "completed": counts["completed"],
        "failed": counts["failed"],
        "cancelled": counts["cancelled"],
        "pending": counts["pending"],
        "running": counts["running"],
        "paused": counts["paused"],
        "pass_rate": round(counts["completed"] / judged, 4) if judged else None,
        "delivered_audio_ms": sum(
            take.duration_ms for r in runs if r.status == "completed" for take in delivered_takes(r)
        ),
        "average_duration_seconds": round(statistics.fmean(durations), 1) if durations else None,
    }


def _step_result(item: Run, step: Step, link: Linker) -> JSON | None:
    if step.status not in ("completed", "failed"):
        return None
    planned = item.plan.steps[step.plan_index]
    if step.node_type == "source_script":
        return {
            "line_count": len(item.plan.lines),
            "source_language": item.plan.source_locale,
            "characters": item.plan.characters,
        }
    if step.node_type == "operator_generator":
        takes = [t for t in item.plan.takes if t.step_index == step.plan_index]
        return {
            "takes": [
                {
                    "audio_id": take.audio_id,
                    "line_id": _line_id(item, take),
                    "locale_code": take.locale,
                    "duration_ms": take.duration_ms,
                    "playback_url": link(take).url,
                    "content_type": "audio/wav",
                }
                for take in takes
            ]
        }
    if step.node_type in VALIDATOR_KINDS:
        scores = [
            (take, score)
            for take in item.plan.takes
            for score in take.scores
            if score.step_index == step.plan_index
        ]
        return {
            "kind": VALIDATOR_KINDS[step.node_type],
            "threshold": scores[0][1].threshold if scores else None,
            "passed": sum(1 for _, s in scores if s.passed),
            "failed": sum(1 for _, s in scores if not s.passed),
            "scores": [
                {
                    "line_id": _line_id(item, take),
                    "line_index": take.line_index,
                    "locale_code": take.locale,
                    "score": s.score,
                    "passed": s.passed,
                }
                for take, s in scores
            ],
            # Every take this step rejected, with the words at fault: what a fix needs, without
            # reading the error's prose (lines count from 0, as `line_index` does everywhere).
            "rejected": [
                {
                    "line_index": take.line_index,
                    "line_id": _line_id(item, take),
                    "locale_code": take.locale,
                    "audio_id": take.audio_id,
                    "score": s.score,
                    "threshold": s.threshold,
                    "words": rejected_words(s),
                }
                for take, s in scores
                if not s.passed
            ],
        }
    return {"line_count": len(item.plan.lines), "locales": list(planned.locales or ())}


def step(item: Run, entry: Step, link: Linker | None) -> JSON:
    finished = entry.status in ("completed", "failed")
    return {
        "id": entry.id,
        "node_id": entry.node_id,
        "node_type": entry.node_type,
        "node_display_name": entry.node_display_name,
        "status": entry.status,
        "iteration": entry.iteration,
        "started_at": iso(entry.started_at),
        "completed_at": iso(entry.completed_at),
        "result": _step_result(item, entry, link) if link is not None else None,
        "has_result": finished,
        "active_ports": list(entry.active_ports),
        "locales": list(entry.locales) if entry.locales is not None else None,
        "pause_reason": None,
        "pause_error": None,
        "error": entry.error,
    }


# --- run content -----------------------------------------------------------------------------


def _line_id(item: Run, take: Take) -> str:
    """Lines in the source locale keep the script's line id; translations get their own."""
    if take.locale == item.plan.source_locale:
        return f"ln-{take.line_index}"
    return f"ln-{take.line_index}-{take.locale}"


def find_take(item: Run, audio_id: str) -> Take | None:
    return next((take for take in visible_takes(item) if take.audio_id == audio_id), None)


def archive_name(take: Take) -> str:
    return f"{take.locale}/line-{take.line_index + 1:03d}_{take.audio_id}.wav"


def take_wav(take: Take, voice: Voice) -> bytes:
    """The take's clip, exactly as long as its reported `duration_ms` (see `speech`)."""
    return voice.clip(take.text, take.locale, take.duration_ms)


def _validation(score: Score) -> JSON:
    return {
        "kind": score.kind,
        "label": score.label,
        "score": score.score,
        "status": "available",
        "reason": None,
        "wer": score.wer,
        "cer": None,
        "transcript": score.transcript,
        "scored_on": "wer" if score.kind == "wer" else None,
        "segments": (
            [
                {
                    "text": s.text,
                    "status": s.status,
                    "start": s.start,
                    "end": s.end,
                    "severity": s.severity,
                    "error_type": s.error_type,
                    "advisory": False,
                }
                for s in score.segments
            ]
            if score.segments is not None
            else None
        ),
        "error_counts": (
            dict(
                zip(
                    ("substitutions", "insertions", "deletions", "reference_units"),
                    score.error_counts,
                    strict=True,
                )
            )
            if score.error_counts is not None
            else None
        ),
        "inherited_from_take": None,
    }


def _verdicts(take: Take) -> list[JSON]:
    return [
        {
            "validator_node_id": s.node_id,
            "validator_kind": s.kind,
            "validator_label": s.label,
            "score": s.score,
            "threshold": s.threshold,
        }
        for s in take.scores
        if not s.passed
    ]


def _card(item: Run, take: Take, link: Linker, *, dropped: bool = False) -> JSON:
    voice = item.plan.voices.get(take.locale)
    source = take.locale == item.plan.source_locale
    line_id = _line_id(item, take)
    if dropped:
        status = "dropped"
    elif is_delivered(item, take):
        status = "delivered"
    elif item.status in TERMINAL_STATUSES or not take.passed:
        status = "not_delivered"
    else:
        status = "generated"
    normalized = any(n.get("type") == "operator_normalizer" for n in snapshot_nodes(item))
    verdicts = _verdicts(take)
    return {
        "id": f"ln-{take.line_index}:{take.locale}:{take.audio_id}",
        "line_id": line_id,
        "source_line_id": None if source else f"ln-{take.line_index}",
        "line_index": take.line_index,
        "locale_code": take.locale,
        "script": take.text,
        "audio": {
            "playback_url": link(take).url,
            "status": "available",
            "reason": None,
            "duration_ms": take.duration_ms,
            "content_type": "audio/wav",
            "provider": voice.provider if voice else None,
            "model": voice.model if voice else None,
        },
        "validations": [_validation(score) for score in take.scores],
        "normalized": normalized,
        "voice": {
            "display_name": voice.name if voice else None,
            "status": "available",
            "reason": None,
        },
        "waveform_url": None,
        "waveform_status": "not_ready",
        "waveform_reason": "Waveform not generated yet",
        "retry_count": take.iteration,
        "status": status,
        "dropped": {"verdicts": verdicts} if dropped else None,
        "rejected": {"verdicts": verdicts} if verdicts and not dropped else None,
    }


def data_rows(
    item: Run,
    link: Linker,
    *,
    search: str | None,
    language: str | None,
    include_dropped: bool,
) -> list[JSON]:
    script_ready = step_done(item, 0)
    latest = latest_takes(item)
    everything = visible_takes(item)
    rows = []
    for line in item.plan.lines:
        texts = [line.text] + [t.text for (index, _), t in latest.items() if index == line.index]
        if search and not any(search.lower() in text.lower() for text in texts):
            continue
        cards = []
        for locale in item.plan.locales:
            if language is not None and locale != language:
                continue
            if include_dropped:
                cards += [
                    _card(item, take, link, dropped=True)
                    for take in everything
                    if take.line_index == line.index
                    and take.locale == locale
                    and take is not latest.get((line.index, locale))
                    and take.iteration < latest[(line.index, locale)].iteration
                ]
            take = latest.get((line.index, locale))
            if take is not None:
                cards.append(_card(item, take, link))
        rows.append(
            {
                "id": f"row-{line.index}",
                "line_index": line.index,
                "line_id": line.line_id,
                "source_line_id": None,
                "script": line.text if script_ready else None,
                "script_status": "available" if script_ready else "not_ready",
                "script_reason": None if script_ready else "The script node has not run yet.",
                "auto_corrected": 0,
                "auto_corrected_status": "available" if script_ready else "not_ready",
                "auto_corrected_reason": None,
                "cards": cards,
            }
        )
    return rows


def run_data(item: Run, rows: list[JSON]) -> JSON:
    settled = item.status in TERMINAL_STATUSES
    return {
        "workflow_id": item.workflow_id,
        "run_id": item.id,
        "run_status": item.status,
        "rows": rows,
        "partial": {
            "status": "available" if settled else "not_ready",
            "reason": None if settled else "The run is still in progress; more audio may appear.",
            "source": None,
        },
        "dropped_truncated": False,
    }


def outputs(item: Run, link: Linker) -> JSON:
    sinks = [n for n in snapshot_nodes(item) if n.get("type") == "sink_preview"]
    delivered = {(t.line_index, t.locale): t for t in delivered_takes(item)}
    latest = latest_takes(item)
    result = []
    for sink in sinks:
        steps = [s for s in item.steps if s.node_id == sink.get("id")]
        status = (
            steps[-1].status
            if steps
            else ("skipped" if item.status in TERMINAL_STATUSES else "pending")
        )
        lines = []
        if steps and steps[-1].status == "completed":
            for line in item.plan.lines:
                files = [
                    {
                        "locale_code": locale,
                        "audio_id": take.audio_id,
                        "audio_url": link(take).url,
                        "duration_ms": take.duration_ms,
                        "content_type": "audio/wav",
                    }
                    for locale in item.plan.locales
                    if (take := delivered.get((line.index, locale))) is not None
                ]
                failing = [
                    {"kind": s.kind, "label": s.label, "score": s.score, "threshold": s.threshold}
                    for locale in item.plan.locales
                    if (take := latest.get((line.index, locale))) is not None
                    for s in take.scores
                    if not s.passed
                ]
                lines.append(
                    {
                        "audio_files": files,
                        "recommended_audio_file_index": 0 if files else None,
                        "delivery": {"passed": not failing, "failing_checks": failing},
                    }
                )
        result.append(
            {
                "node_id": str(sink.get("id")),
                "node_type": "sink_preview",
                "display_name": node_name(sink),
                "status": status,
                "lines": lines,
                "line_count": len(lines),
                "truncated": False,
            }
        )
    return {
        "run_id": item.id,
        "run_status": item.status,
        "credits": item.credits,
        "credits_absorbed": item.credits_absorbed,
        "outputs": result,
    }


# --- overview and analysis -------------------------------------------------------------------


def _duration_label(ms: int) -> str:
    minutes, rest = divmod(ms / 1000, 60)
    return f"{int(minutes)}:{rest:04.1f}"


def _validator_nodes(item: Run) -> list[JSON]:
    return [n for n in snapshot_nodes(item) if n.get("type") in VALIDATOR_KINDS]


def _scores_of(item: Run, node_id: str) -> list[tuple[Take, Score]]:
    """The latest visible verdict of a validator for every take it judged last."""
    found = []
    for take in latest_takes(item).values():
        mine = [s for s in take.scores if s.node_id == node_id]
        if mine:
            found.append((take, mine[-1]))
    return found


def _retries(item: Run, node_id: str) -> int:
    iterations = [s.iteration for s in item.steps if s.node_id == node_id]
    return max(iterations, default=0)


def overview(flow: Workflow, item: Run, now: datetime) -> JSON:
    delivered = delivered_takes(item)
    latest = list(latest_takes(item).values())
    audio_ms = sum(t.duration_ms for t in latest)
    validators = []
    passes = fails = retries = 0
    for node in _validator_nodes(item):
        scores = _scores_of(item, str(node.get("id")))
        passed = sum(1 for _, s in scores if s.passed)
        retry_count = _retries(item, str(node.get("id")))
        passes, fails, retries = (
            passes + passed,
            fails + len(scores) - passed,
            retries + retry_count,
        )
        validators.append(
            {
                "node_id": str(node.get("id")),
                "kind": VALIDATOR_KINDS[str(node.get("type"))],
                "label": node_name(node),
                "avg_score": round(statistics.fmean(s.score for _, s in scores), 1)
                if scores
                else None,
                "pass_rate": round(passed / len(scores), 4) if scores else None,
                "pass_count": passed,
                "fail_count": len(scores) - passed,
                "retry_count": retry_count,
                "status": "available" if scores else "not_ready",
                "reason": None if scores else "The validator has not scored any take yet.",
            }
        )
    judged = passes + fails
    by_locale = []
    for locale in item.plan.locales:
        takes = [t for t in latest if t.locale == locale]
        if takes:
            total = sum(t.duration_ms for t in takes)
            by_locale.append(
                {
                    "locale_code": locale,
                    "line_count": len(takes),
                    "total_duration_ms": total,
                    "avg_duration_ms": round(total / len(takes)),
                }
            )
    return {
        "workflow": {"id": flow.id, "name": flow.name},
        "run": {
            "id": item.id,
            "status": item.status,
            "run_number": item.run_number,
            "created_at": iso(item.created_at),
            "started_at": iso(item.started_at),
            "completed_at": iso(item.completed_at),
            "paused_ms": _paused_ms(item, now),
            "has_export": item.has_export,
            "error": item.error,
        },
        "share": None,
        "metric_sections": [
            {
                "key": "summary",
                "title": "Summary",
                "layout": "grid",
                "metrics": [
                    _metric(
                        "output_lines",
                        "Output lines",
                        len(delivered),
                        str(len(delivered)),
                        "lines",
                        "number",
                        bool(delivered) or item.status in TERMINAL_STATUSES,
                    ),
                    _metric(
                        "audio_duration",
                        "Audio duration",
                        audio_ms,
                        _duration_label(audio_ms),
                        "ms",
                        "duration",
                        bool(latest),
                    ),
                    _metric(
                        "validation_pass_rate",
                        "Validation pass rate",
                        round(passes / judged, 4) if judged else None,
                        f"{round(100 * passes / judged)}%" if judged else "—",
                        "ratio",
                        "percent",
                        bool(judged),
                        annotation=f"{retries} retr{'y' if retries == 1 else 'ies'}"
                        if retries
                        else None,
                    ),
                ],
            }
        ],
        "audio_by_language": by_locale,
        "validators": validators,
        "workflow_snapshot": {"definition": item.snapshot, "node_states": _node_states(item)},
        "capabilities": {
            "validator_drilldown": False,
            "live_trace_timing": True,
            "persisted_aggregates": True,
        },
        "future_links": {"validator_drilldown": None, "live_trace": None},
    }


def _metric(
    key: str,
    label: str,
    value: float | None,
    formatted: str,
    unit: str,
    variant: str,
    ready: bool,
    *,
    annotation: str | None = None,
) -> JSON:
    emphasis = "positive" if variant == "percent" and value is not None and value >= 0.9 else None
    return {
        "key": key,
        "label": label,
        "value": value if ready else None,
        "formatted_value": formatted if ready else "—",
        "unit": unit,
        "status": "available" if ready else "not_ready",
        "reason": None if ready else "Not computed until the run produces audio.",
        "display": {"variant": variant, "emphasis": emphasis},
        "annotation": {"text": annotation, "emphasis": None} if annotation else None,
    }


def _node_states(item: Run) -> list[JSON]:
    states = []
    for node in snapshot_nodes(item):
        executions = [s for s in item.steps if s.node_id == node.get("id")]
        last = executions[-1] if executions else None
        finished = last is not None and last.completed_at is not None
        states.append(
            {
                "node_id": str(node.get("id")),
                "node_type": str(node.get("type")),
                "node_display_name": node_name(node),
                "status": last.status if last else "pending",
                "iteration": last.iteration if last else None,
                "started_at": iso(last.started_at) if last else None,
                "completed_at": iso(last.completed_at) if last else None,
                "duration_ms": (
                    int((last.completed_at - last.started_at).total_seconds() * 1000)
                    if last is not None and last.completed_at is not None and finished
                    else None
                ),
                "error": last.error if last else None,
            }
        )
    return states


def analysis(item: Run, now: datetime) -> JSON:
    delivered = delivered_takes(item)
    generated = visible_takes(item)
    if item.status == "completed":
        audio_status, audio_reason = "available", None
    elif generated:
        audio_status, audio_reason = "partial", "Only part of the run's audio exists."
    else:
        audio_status, audio_reason = "unavailable", "The run has not generated audio."
    by_locale = []
    for locale in item.plan.locales:
        mine = [t for t in delivered if t.locale == locale]
        replaced = [
            t
            for t in generated
            if t.locale == locale and t not in mine and t.iteration < _final_iteration(item, t)
        ]
        if mine or replaced:
            by_locale.append(
                {
                    "locale_code": locale,
                    "delivered_duration_ms": sum(t.duration_ms for t in mine),
                    "delivered_line_count": len(mine),
                    "replaced_duration_ms": sum(t.duration_ms for t in replaced),
                    "replaced_partial": False,
                }
            )
    validators = []
    for node in _validator_nodes(item):
        node_id = str(node.get("id"))
        config = node_config(node)
        scores = _scores_of(item, node_id)
        locales = []
        for locale in item.plan.locales:
            verdicts = [s for take, s in scores if take.locale == locale]
            passed = sum(1 for s in verdicts if s.passed)
            locales.append(
                {
                    "locale_code": locale,
                    "avg_score": (
                        round(statistics.fmean(s.score for s in verdicts), 1) if verdicts else None
                    ),
                    "line_count": len(verdicts),
                    "pass_count": passed,
                    "fail_count": len(verdicts) - passed,
                    "status": "available" if verdicts else "unscored",
                }
            )
        validators.append(
            {
                "node_id": node_id,
                "node_type": str(node.get("type")),
                "kind": VALIDATOR_KINDS[str(node.get("type"))],
                "label": node_name(node),
                "threshold": float(config["threshold"]) if "threshold" in config else None,
                "max_retries": int(config.get("max_retries", 1)),
                "retry_count": _retries(item, node_id),
                "status": "available"
                if scores and item.status in TERMINAL_STATUSES
                else ("partial" if scores else "unavailable"),
                "reason": None if scores else "No take has been scored yet.",
                "truncated": False,
                "unscored_locale_count": sum(
                    1 for entry in locales if entry["status"] == "unscored"
                ),
                "locales": locales,
            }
        )
    started = item.started_at
    end = item.completed_at or now
    active_ms = (
        max(0, int((end - started).total_seconds() * 1000) - _paused_ms(item, now))
        if started
        else None
    )
    return {
        "run": {
            "id": item.id,
            "status": item.status,
            "started_at": iso(item.started_at),
            "completed_at": iso(item.completed_at),
            "duration_ms": active_ms,
            "paused_ms": _paused_ms(item, now),
        },
        "audio": {
            "status": audio_status,
            "reason": audio_reason,
            "truncated": False,
            "delivered_total_ms": sum(t.duration_ms for t in delivered),
            "generated_total_ms": sum(t.duration_ms for t in generated),
            "replaced_partial": False,
            "replaced_missing_take_count": 0,
            "delivered_missing_take_count": 0,
            "by_locale": by_locale,
        },
        "validators": validators,
        "credits": _credits_block(item),
    }


def _final_iteration(item: Run, take: Take) -> int:
    final = latest_takes(item).get((take.line_index, take.locale))
    return final.iteration if final is not None else take.iteration


def _credits_block(item: Run) -> JSON:
    if item.credits is None:
        reason = "run_paused" if item.status == "paused" else "run_not_settled"
        return {"status": "unavailable", "reason": reason, "truncated": False, "rows": None}
    rows: list[JSON] = []
    total = 0.0
    for node in snapshot_nodes(item):
        node_id = str(node.get("id"))
        done = [
            s for s in item.steps if s.node_id == node_id and s.status in ("completed", "failed")
        ]
        planned = [item.plan.steps[s.plan_index] for s in done]
        spent = sum(p.credits_exact for p in planned)
        total += spent
        rows.append(
            {
                "node_id": node_id,
                "node_type": str(node.get("type")),
                "display_name": node_name(node),
                "detail": None,
                "processed_units": sum(p.characters for p in planned) or None,
                "unit": "character",
                "output_ms": None,
                "output_chars": None,
                "retries": max(0, len(done) - 1),
                "credits_fractional": f"{spent:.4f}",
                "status": "not_completed" if not done else ("recorded" if spent else "free"),
            }
        )
    return {
        "status": "ok" if total or item.credits else "unavailable",
        "reason": None if total or item.credits else "zero_spend_no_settle",
        "truncated": False,
        "rows": rows,
        "total_fractional": f"{total:.4f}",
        "unattributed_fractional": "0.0000",
        "charged": item.credits,
        "overage_credits": 0,
        "absorbed_fraction": f"{item.credits_absorbed:.4f}",
        "minimum_charge_fractional": f"{max(0.0, item.credits - total):.4f}",
    }
