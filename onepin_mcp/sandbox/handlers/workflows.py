"""Workflow endpoints: list, read, create, replace, patch, delete, duplicate, name checks,
definition validation, the markdown export and uploads."""

from __future__ import annotations

import functools
import json
import uuid

from starlette.responses import Response

from onepin_mcp.sandbox import render
from onepin_mcp.sandbox.call import ApiCall
from onepin_mcp.sandbox.definition_checks import check_definition
from onepin_mcp.sandbox.errors import invalid, schema_issue
from onepin_mcp.sandbox.parsing import BodyReader, checked_name, json_body, matches
from onepin_mcp.sandbox.store import JSON, Workflow

from .files import presigned_link

_EMPTY_DEFINITION: JSON = {
    "graph": {"nodes": [], "edges": []},
    "execution": {"steps": [], "params": {}},
}


def list_workflows(call: ApiCall) -> Response:
    query = call.query()
    offset, limit = query.page()
    status = query.choice("status", ("draft", "running", "completed", "failed", "paused"))
    search = query.text("search", max_length=100)
    sorts = query.choices("sort", ("name", "updated_at", "runs_count"))
    orders = query.choices("order", ("asc", "desc"))
    has_failed = query.boolean("has_failed_run")
    include_definition = bool(query.boolean("include_definition", False))
    after = query.moment("last_run_after")
    before = query.moment("last_run_before")
    query.done()
    if after and before and after > before:
        raise invalid(
            "last_run_after",
            "last_run_after must not be later than last_run_before.",
            "Invalid date range.",
        )
    rows = []
    for workflow in call.store.workflows.values():
        if workflow.deleted or workflow.workspace_id != call.workspace_id:
            continue
        runs = call.store.runs_of(workflow.id)
        latest = max(runs, key=lambda r: (r.created_at, r.run_number), default=None)
        last_at = latest.created_at if latest else None
        if search and not matches(search, workflow.name, workflow.description):
            continue
        if status and render.workflow_bucket(latest) != status:
            continue
        if has_failed is not None and has_failed != any(r.status == "failed" for r in runs):
            continue
        if after and (last_at is None or last_at < after):
            continue
        if before and (last_at is None or last_at > before):
            continue
        rows.append((workflow, len(runs), last_at))
    rows.sort(key=lambda row: row[0].id)
    defaults = {"name": "asc", "updated_at": "desc", "runs_count": "desc"}
    keys = sorts or ["updated_at"]
    # Stable sorts applied from the last key to the first give a multi-key ordering.
    for index in reversed(range(len(keys))):
        name = keys[index]
        direction = orders[index] if index < len(orders) else defaults[name]
        if name == "name":
            rows.sort(key=lambda row: row[0].name.lower(), reverse=direction == "desc")
        elif name == "runs_count":
            rows.sort(key=lambda row: row[1], reverse=direction == "desc")
        else:
            rows.sort(key=lambda row: row[0].updated_at, reverse=direction == "desc")
    page = [
        render.workflow(call.store, row[0], include_definition=include_definition)
        for row in rows[offset : offset + limit]
    ]
    return call.paged(page, offset=offset, limit=limit, total=len(rows))


def get_workflow(call: ApiCall) -> Response:
    return call.single(render.workflow(call.store, call.workflow()))


def create_workflow(call: ApiCall) -> Response:
    body = BodyReader(json_body(call.body, required=False))
    name = body.string("name", min_length=1, max_length=200)
    description = body.string("description", max_length=5000)
    definition = body.mapping("definition")
    body.done()
    name = checked_name(name) if name is not None else None
    definition = definition if definition is not None else json.loads(json.dumps(_EMPTY_DEFINITION))
    check_definition(definition)
    workflow = Workflow(
        id=str(uuid.uuid4()),
        workspace_id=call.workspace_id,
        user_id=call.store.user.id,
        name=name or "Untitled workflow",
        name_source="user" if name else "placeholder",
        description=description,
        definition=definition,
        created_at=call.now,
        updated_at=call.now,
    )
    call.store.workflows[workflow.id] = workflow
    return call.single(render.workflow(call.store, workflow), status=201)


def replace_workflow(call: ApiCall) -> Response:
    workflow = call.workflow()
    body = BodyReader(json_body(call.body, required=True))
    name = body.string("name", required=True, min_length=1, max_length=200)
    description = body.string("description", max_length=5000)
    definition = body.mapping("definition", required=True)
    body.done()
    assert name is not None
    assert definition is not None
    check_definition(definition)
    workflow.name = checked_name(name)
    workflow.name_source = "user"
    workflow.description = description
    workflow.definition = definition
    workflow.updated_at = call.now
    return call.single(render.workflow(call.store, workflow))


def patch_workflow(call: ApiCall) -> Response:
    workflow = call.workflow()
    body = BodyReader(json_body(call.body, required=True))
    name = body.string("name", min_length=1, max_length=200)
    description = body.string("description", max_length=5000)
    definition = body.mapping("definition")
    body.done()
    if not any(body.has(key) for key in ("name", "description", "definition")):
        raise invalid("body", "Provide at least one of name, description or definition.")
    if definition is not None:
        check_definition(definition)
        workflow.definition = definition
    if name is not None:
        workflow.name = checked_name(name)
        workflow.name_source = "user"
    if body.has("description"):
        workflow.description = description
    workflow.updated_at = call.now
    return call.single(render.workflow(call.store, workflow))


def delete_workflow(call: ApiCall) -> Response:
    workflow = call.workflow()
    for run in call.store.runs_of(workflow.id):
        call.engine.cancel(run, call.now)  # a deleted workflow must not keep holding run slots
    workflow.deleted = True
    workflow.updated_at = call.now
    return call.single({"id": workflow.id, "deleted": True})


def duplicate_workflow(call: ApiCall) -> Response:
    source = call.workflow()
    copy = Workflow(
        id=str(uuid.uuid4()),
        workspace_id=source.workspace_id,
        user_id=call.store.user.id,
        name=f"{source.name} (Copy)",
        name_source="user",
        description=source.description,
        definition=json.loads(json.dumps(source.definition)),
        created_at=call.now,
        updated_at=call.now,
    )
    call.store.workflows[copy.id] = copy
    return call.single(render.workflow(call.store, copy), status=201)


def name_availability(call: ApiCall) -> Response:
    query = call.query()
    name = query.params.get("name")
    if name is None:
        query.issues.append(schema_issue(["query", "name"], "Field required", "missing", None))
    query.done()
    assert name is not None
    return call.single({"name": checked_name(name), "available": True})


def validate(call: ApiCall) -> Response:
    body = BodyReader(json_body(call.body, required=True))
    definition = body.mapping("definition", required=True)
    body.done()
    assert definition is not None
    return call.single(render.validation_report(definition))


def markdown(call: ApiCall) -> Response:
    workflow = call.workflow()
    return call.single(
        {
            "workflow_id": workflow.id,
            "name": workflow.name,
            "markdown": render.markdown(workflow),
        },
    )


def uploads(call: ApiCall) -> Response:
    workflow = call.workflow()
    query = call.query()
    offset, limit = query.page()
    query.done()
    found = sorted(
        (u for u in call.store.uploads.values() if u.workflow_id == workflow.id),
        key=lambda u: (u.created_at, u.id),
        reverse=True,
    )
    items = []
    for upload in found[offset : offset + limit]:
        link = presigned_link(
            call,
            upload.filename,
            "text/plain; charset=utf-8",
            functools.partial(str.encode, upload.content),
        )
        items.append(render.upload(upload, link))
    return call.paged(items, offset=offset, limit=limit, total=None)
