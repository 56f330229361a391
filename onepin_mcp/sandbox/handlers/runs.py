"""Run endpoints: cost previews, list, start (402 `INSUFFICIENT_CREDITS` when short), summary,
status and control (cancel, pause, resume), steps, overview, analysis, data, outputs, and the
download and audio links of a finished run.

Insufficient credits at run start answer 402: the API reference leaves the status open, and 402
keeps it apart from the 409s a client may retry after waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from starlette.responses import Response

from onepin_mcp.sandbox import render
from onepin_mcp.sandbox.call import ApiCall
from onepin_mcp.sandbox.engine import (
    NODE_TYPES,
    DefinitionProblem,
    InsufficientCredits,
    RunConflict,
)
from onepin_mcp.sandbox.errors import ApiError, invalid
from onepin_mcp.sandbox.parsing import matches, run_overrides, status_tokens
from onepin_mcp.sandbox.requestlog import isoformat
from onepin_mcp.sandbox.store import Run

from .files import audio_linker, check_downloadable, zip_link


def preview(call: ApiCall) -> Response:
    workflow = call.workflow()
    script_text, source_language = run_overrides(call.body)
    try:
        cost = call.engine.estimate(workflow, script_text, source_language)
    except DefinitionProblem as problem:
        raise invalid(problem.field, problem.message) from problem
    return call.single(render.estimate(cost, call.store))


def list_runs(call: ApiCall) -> Response:
    workflow = call.workflow()
    query = call.query()
    offset, limit = query.page()
    raw_status = query.params.get("status")
    search = query.text("search")
    sort = (
        query.choice("sort", ("created_at", "started_at", "completed_at", "status")) or "created_at"
    )
    order = query.choice("order", ("asc", "desc")) or "desc"
    query.done()
    wanted = status_tokens(raw_status) if raw_status is not None else None
    runs = [
        run
        for run in call.store.runs_of(workflow.id)
        if (wanted is None or run.status in wanted)
        and (not search or matches(search, run.triggered_by.name, run.triggered_by.email))
    ]
    runs.sort(key=lambda r: r.id)
    # Runs without the sort field (not started yet) go last, whichever the direction.
    present = [r for r in runs if getattr(r, sort) is not None]
    absent = [r for r in runs if getattr(r, sort) is None]
    present.sort(key=lambda r: getattr(r, sort), reverse=order == "desc")
    runs = present + absent
    page = [render.run_list_item(run, call.now) for run in runs[offset : offset + limit]]
    return call.paged(page, offset=offset, limit=limit, total=len(runs))


def start_run(call: ApiCall) -> Response:
    workflow = call.workflow()
    script_text, source_language = run_overrides(call.body)
    try:
        run = call.engine.start(
            workflow,
            call.store.user,
            call.now,
            script_text=script_text,
            source_language=source_language,
        )
    except RunConflict as conflict:
        raise ApiError(409, "CONFLICT", str(conflict)) from conflict
    except DefinitionProblem as problem:
        raise invalid(problem.field, problem.message) from problem
    except InsufficientCredits as short:
        raise ApiError(402, "INSUFFICIENT_CREDITS", str(short)) from short
    return call.single(render.run(run, call.now, "out"), status=202)


def summary(call: ApiCall) -> Response:
    workflow = call.workflow()
    query = call.query()
    start = query.moment("from")
    end = query.moment("to")
    query.done()
    if start and end and start > end:
        raise invalid("from", "'from' must not be later than 'to'.", "Invalid date range.")
    runs = [
        run
        for run in call.store.runs_of(workflow.id)
        if (start is None or run.created_at >= start) and (end is None or run.created_at <= end)
    ]
    return call.single(render.runs_summary(runs))


def get_run(call: ApiCall) -> Response:
    return call.single(render.run(call.run(call.workflow()), call.now, "detail"))


def run_status(call: ApiCall) -> Response:
    return call.single(render.run(call.run(call.workflow()), call.now, "status"))


def cancel_run(call: ApiCall) -> Response:
    run = call.run(call.workflow())
    return call.single(render.run(call.engine.cancel(run, call.now), call.now, "out"))


def pause_run(call: ApiCall) -> Response:
    return _control(call, call.engine.pause)


def resume_run(call: ApiCall) -> Response:
    return _control(call, call.engine.resume)


def _control(call: ApiCall, change: Callable[[Run, datetime], object]) -> Response:
    """Pause or resume: a state the run can't move from is the API's 409."""
    run = call.run(call.workflow())
    try:
        change(run, call.now)
    except RunConflict as conflict:
        raise ApiError(409, "CONFLICT", str(conflict)) from conflict
    return call.single(render.run(run, call.now, "out"))


def steps(call: ApiCall) -> Response:
    run = call.run(call.workflow())
    query = call.query()
    include_result = bool(query.boolean("include_result", False))
    node_type = query.choice("node_type", NODE_TYPES)
    node_id = query.params.get("node_id")
    query.done()
    steps = [
        step
        for step in run.steps
        if (node_type is None or step.node_type == node_type)
        and (node_id is None or step.node_id == node_id)
    ]
    link = audio_linker(call, run) if include_result else None
    return call.single([render.step(run, step, link) for step in steps])


def overview(call: ApiCall) -> Response:
    workflow = call.workflow()
    return call.single(render.overview(workflow, call.run(workflow), call.now))


def analysis(call: ApiCall) -> Response:
    return call.single(render.analysis(call.run(call.workflow()), call.now))


def data(call: ApiCall) -> Response:
    run = call.run(call.workflow())
    query = call.query()
    offset, limit = query.page()
    search = query.text("search")
    language = query.params.get("language")
    include_dropped = bool(query.boolean("include_dropped", False))
    query.done()
    rows = render.data_rows(
        run,
        audio_linker(call, run),
        search=search,
        language=language.replace("_", "-").lower() if language else None,
        include_dropped=include_dropped,
    )
    body = render.run_data(run, rows[offset : offset + limit])
    return call.paged(
        [],
        data=body,
        offset=offset,
        limit=limit,
        total=len(rows),
        headers={"Cache-Control": "no-store"},
    )


def outputs(call: ApiCall) -> Response:
    run = call.run(call.workflow())
    return call.single(render.outputs(run, audio_linker(call, run)))


def download(call: ApiCall) -> Response:
    workflow = call.workflow()
    run = call.run(workflow)
    check_downloadable(run)
    name = f"{render.slug(workflow.name)}_run-{run.run_number}.zip"
    return call.single(zip_link(call, run, name, node_id=None))


def download_node(call: ApiCall) -> Response:
    workflow = call.workflow()
    run = call.run(workflow)
    node_id = call.request.path_params["node_id"]
    nodes = [n for n in render.snapshot_nodes(run) if n.get("id") == node_id]
    if not nodes or nodes[0].get("type") != "sink_preview":
        raise ApiError(404, "NOT_FOUND", "Output node not found in this run.")
    check_downloadable(run)
    node_slug = render.slug(render.node_label(nodes[0]))
    name = f"{render.slug(workflow.name)}_run-{run.run_number}_{node_slug}.zip"
    return call.single(zip_link(call, run, name, node_id=node_id))


def audio_url(call: ApiCall) -> Response:
    run = call.run(call.workflow())
    audio_id = call.request.path_params["audio_id"]
    take = render.find_take(run, audio_id)
    if take is None:
        raise ApiError(404, "NOT_FOUND", "Audio not found.")
    link = audio_linker(call, run)(take)
    return call.single(
        {"url": link.url, "filename": link.filename, "expires_at": isoformat(link.expires_at)},
    )
