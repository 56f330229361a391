"""Resources (a workflow, a run snapshot, a run's step log, as JSON; a clip as WAV) and argument
completions.

Clients that attach context (an IDE's "add resource", a pinned run) read these; every one has a
tool twin (get_workflow view=definition, get_run include_definition, get_run_steps) for clients
that ignore resources. Resources don't depend on tools: they reach the OnePin client through the
lifespan state and word failures with `failures.explain`, wrapping the text in a
`ResourceNotFoundError` (a bad or unknown id: protocol error -32602 with the uri) or a
`ResourceError` (anything else: -32603).

The JSON is the client's reading of OnePin, faithful to the API (its field names, nulls it sent)
except that every string, keys included, goes through the one text cleaner (`onepin_mcp.text`):
names, scripts and error texts are written by platform users, and a resource lands in a model's
context as is. Strings are not capped here, so a definition read back stays whole.

Completions offer workflow ids (by name or id prefix), run ids (the chosen workflow's runs,
newest first) and audio ids (the chosen run's clips, in line order), for the resource templates
and the prompts alike. MCP completion values are the strings that get filled in, so they are
ids. A OnePin failure or a slow answer yields no values, never an error: a completion is a
convenience that must not break typing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar

import anyio
from mcp import MCPError
from mcp.server import MCPServer, ServerRequestContext
from mcp.server.context import HandlerResult
from mcp.server.lowlevel.server import RequestHandler
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.types import (
    CompleteRequestParams,
    CompleteResult,
    Completion,
    PromptReference,
    ReadResourceRequestParams,
    ResourceTemplateReference,
)
from pydantic import BaseModel

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.errors import OnePinAPIError, OnePinError, OnePinInputError, redact
from onepin_mcp.clips import ClipUnavailable, fetch_clip
from onepin_mcp.failures import explain
from onepin_mcp.prompts import PROMPT_ARGUMENTS
from onepin_mcp.sdk import add_request_handler, wrap_request_handler
from onepin_mcp.state import AppState
from onepin_mcp.text import MAX_NAME_CHARS, clean_json, clean_text, map_strings

logger = logging.getLogger("onepin_mcp.resources")

WORKFLOW_URI: Final = "onepin://workflows/{workflow_id}"
RUN_URI: Final = "onepin://workflows/{workflow_id}/runs/{run_id}"
STEPS_URI: Final = "onepin://workflows/{workflow_id}/runs/{run_id}/steps"
AUDIO_URI: Final = "onepin://workflows/{workflow_id}/runs/{run_id}/audio/{audio_id}"
JSON_MIME: Final = "application/json"
# What the sandbox serves and OnePin's cards declare; a template's type is fixed at listing.
AUDIO_MIME: Final = "audio/wav"

# Which arguments each resource template has: what completions are offered for.
TEMPLATE_ARGUMENTS: Final[Mapping[str, frozenset[str]]] = {
    WORKFLOW_URI: frozenset({"workflow_id"}),
    RUN_URI: frozenset({"workflow_id", "run_id"}),
    STEPS_URI: frozenset({"workflow_id", "run_id"}),
    AUDIO_URI: frozenset({"workflow_id", "run_id", "audio_id"}),
}

# A short list a person can pick from; the protocol allows up to 100.
MAX_COMPLETIONS: Final = 20
# How many recent workflows or runs an id prefix is matched against (one API page).
ID_SCAN_LIMIT: Final = 100
# The API refuses a longer workflow search (422); no name prefix is that long anyway.
MAX_SEARCH_CHARS: Final = 100
# Completions answer while someone types: give up rather than wait out retries.
COMPLETION_DEADLINE_S: Final = 5.0

COMPLETABLE_ARGUMENTS: Final = frozenset({"workflow_id", "run_id", "audio_id"})

_HEX_ID_CHARS: Final = frozenset("0123456789abcdef-")

_T = TypeVar("_T")


def register_resources(server: MCPServer[AppState]) -> None:
    """Register what the resource templates need in place from the start: keys masked in read
    errors, and the server's one completion handler (having one advertises the capability).
    The templates themselves: `register_resource_templates`."""
    _register_masked_read_errors(server)
    _register_completions(server)


def register_resource_templates(server: MCPServer[AppState]) -> None:
    """Register the resource templates (the SDK derives an argument model and a schema for
    each as it does)."""
    server.resource(
        WORKFLOW_URI,
        name="workflow",
        title="OnePin workflow",
        description=(
            "A workflow with its full definition (graph nodes, edges, execution settings) and "
            "run counts. Tool twin: get_workflow with view=definition."
        ),
        mime_type=JSON_MIME,
    )(read_workflow)
    server.resource(
        RUN_URI,
        name="run_snapshot",
        title="OnePin run snapshot",
        description=(
            "A run's full record: status, progress, timing, credits, usage, who started it, "
            "and the immutable definition_snapshot it ran with. Tool twin: get_run."
        ),
        mime_type=JSON_MIME,
    )(read_run)
    server.resource(
        STEPS_URI,
        name="run_steps",
        title="OnePin run step log",
        description=(
            "A run's step log in execution order: node, status, timing and error of each step. "
            "Tool twin: get_run_steps."
        ),
        mime_type=JSON_MIME,
    )(read_run_steps)
    server.resource(
        AUDIO_URI,
        name="audio_clip",
        title="OnePin audio clip",
        description=(
            "One clip (a line in one locale) as WAV audio, up to the server's size cap; "
            "audio ids come from get_run_data. Tool twin: get_audio_clip."
        ),
        mime_type=AUDIO_MIME,
    )(read_audio_clip)


# --- resources --------------------------------------------------------------------------------


async def read_workflow(workflow_id: str, ctx: Context[AppState, Any]) -> str:
    ids = {"workflow_id": workflow_id}
    workflow = await _fetch(ctx, ids, lambda client: client.get_workflow(workflow_id))
    return _to_json(_dump(workflow))


async def read_run(workflow_id: str, run_id: str, ctx: Context[AppState, Any]) -> str:
    ids = {"workflow_id": workflow_id, "run_id": run_id}
    run = await _fetch(ctx, ids, lambda client: client.get_run(workflow_id, run_id))
    return _to_json(_dump(run))


async def read_run_steps(workflow_id: str, run_id: str, ctx: Context[AppState, Any]) -> str:
    ids = {"workflow_id": workflow_id, "run_id": run_id}
    steps = await _fetch(ctx, ids, lambda client: client.get_run_steps(workflow_id, run_id))
    # The ids as the API spells them: the client accepted them, so they are UUIDs.
    return _to_json(
        {
            "workflow_id": workflow_id.lower(),
            "run_id": run_id.lower(),
            "steps": [_dump(step) for step in steps],
        }
    )


async def read_audio_clip(
    workflow_id: str, run_id: str, audio_id: str, ctx: Context[AppState, Any]
) -> bytes:
    max_bytes = ctx.request_context.lifespan_context.settings.max_clip_bytes
    try:
        clip = await fetch_clip(_client(ctx), workflow_id, run_id, audio_id, max_bytes=max_bytes)
    except ClipUnavailable as exc:
        error = ResourceNotFoundError if exc.missing else ResourceError
        raise error(exc.text) from None
    if clip.file.content is None:
        size = f"{clip.file.size_bytes} bytes" if clip.file.size_bytes is not None else "larger"
        raise ResourceError(
            f"The clip is {size}, over this server's {max_bytes}-byte cap for audio it serves "
            "itself. get_audio_clip (or get_download_url with audio_id) gives its link."
        )
    return clip.file.content


def _register_masked_read_errors(server: MCPServer[AppState]) -> None:
    """`resources/read` as the SDK serves it, with keys masked in its errors.

    The SDK answers a failed read with the caller's URI twice, in the message ("Unknown
    resource: <uri>") and as `data.uri`, and a key pasted into a URI would be echoed into the
    transcript. Its handler is kept, wrapped: the error leaves with both masked.
    """

    def masked(read: RequestHandler[Any, Any]) -> RequestHandler[Any, Any]:
        async def read_masked(
            request: ServerRequestContext[AppState, Any], params: ReadResourceRequestParams
        ) -> HandlerResult:
            try:
                return await read(request, params)
            except MCPError as exc:
                # Not chained: the original, unmasked text must not ride along to a traceback.
                raise MCPError(
                    exc.code, redact(exc.message), map_strings(exc.data, redact)
                ) from None

        return read_masked

    wrap_request_handler(server, "resources/read", masked)


def _client(ctx: Context[AppState, Any]) -> OnePinClient:
    return ctx.request_context.lifespan_context.clients.client_for(ctx)


async def _fetch(
    ctx: Context[AppState, Any],
    ids: Mapping[str, str],
    call: Callable[[OnePinClient], Awaitable[_T]],
) -> _T:
    """Make a client call; a OnePin failure becomes the resource error the protocol expects."""
    try:
        return await call(_client(ctx))
    except OnePinError as exc:
        # A malformed id (refused before any request) and a 404 are both "no such resource".
        missing = isinstance(exc, OnePinInputError) or (
            isinstance(exc, OnePinAPIError) and exc.status == 404
        )
        error = ResourceNotFoundError if missing else ResourceError
        raise error(explain(exc, ids)) from exc


def _dump(model: BaseModel) -> Any:
    # by_alias: the API's own field names (edge ports are camelCase); exclude_unset: only what
    # OnePin sent, so a field the API left out doesn't appear as a null it never said.
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True)


def _to_json(value: Any) -> str:
    # Compact, and non-ASCII kept as is: fewer tokens, and Korean or Japanese stays readable.
    return json.dumps(clean_json(value), ensure_ascii=False, separators=(",", ":"))


# --- completions ------------------------------------------------------------------------------


def _register_completions(server: MCPServer[AppState]) -> None:
    # `MCPServer.completion()` calls its handler with (ref, argument, context) only: no request
    # context, so no lifespan state and no caller identity (passthrough keys are per caller). The
    # handler is therefore registered on the low-level server, as that decorator itself does;
    # having a handler is what advertises the `completions` capability.
    async def complete(
        request: ServerRequestContext[AppState, Any], params: CompleteRequestParams
    ) -> CompleteResult:
        ctx: Context[AppState, Any] = Context(request_context=request, mcp_server=server)
        return CompleteResult(completion=await complete_argument(ctx, params))

    add_request_handler(server, "completion/complete", CompleteRequestParams, complete)


async def complete_argument(
    ctx: Context[AppState, Any], params: CompleteRequestParams
) -> Completion:
    """Values for an id argument (workflow, run, audio) of our templates and prompts, else none."""
    name = params.argument.name
    if name not in COMPLETABLE_ARGUMENTS or name not in _arguments_of(params.ref):
        return _no_values()
    typed = params.argument.value
    chosen = (params.context.arguments or {}) if params.context else {}
    try:
        with anyio.move_on_after(COMPLETION_DEADLINE_S):
            client = _client(ctx)
            if name == "workflow_id":
                return await _workflow_ids(client, typed)
            if name == "audio_id":
                return await _audio_ids(
                    client, chosen.get("workflow_id"), chosen.get("run_id"), typed
                )
            return await _run_ids(client, chosen.get("workflow_id"), typed)
        logger.info("Completing %s took over %g s; offering no values", name, COMPLETION_DEADLINE_S)
    except OnePinError as exc:
        logger.info("Completing %s failed; offering no values: %s", name, explain(exc))
    return _no_values()


def _arguments_of(ref: ResourceTemplateReference | PromptReference) -> frozenset[str]:
    if isinstance(ref, ResourceTemplateReference):
        return TEMPLATE_ARGUMENTS.get(ref.uri, frozenset())
    return PROMPT_ARGUMENTS.get(ref.name, frozenset())


async def _workflow_ids(client: OnePinClient, typed: str) -> Completion:
    """Ids of workflows whose id starts with `typed`, then of those whose name matches it.

    Name matches come from OnePin's search (name or description contains the text), ranked:
    the name starts with it, then a word of the name does, then the rest; OnePin's order (most
    recently updated first) within each rank.
    """
    prefix = typed.strip()
    if not prefix:
        page = await client.list_workflows(limit=MAX_COMPLETIONS)
        return _completion([w.id for w in page.items], more=page.next_offset is not None)
    values: list[str] = []
    more = False
    if set(prefix.lower()) <= _HEX_ID_CHARS:
        recent = await client.list_workflows(limit=ID_SCAN_LIMIT)
        values += [w.id for w in recent.items if w.id.lower().startswith(prefix.lower())]
    if len(prefix) <= MAX_SEARCH_CHARS:
        found = await client.list_workflows(search=prefix, limit=ID_SCAN_LIMIT)
        ranked = sorted(found.items, key=lambda w: _name_rank(w.name, prefix))
        values += [w.id for w in ranked if w.id not in values]
        more = found.next_offset is not None
    return _completion(values, more=more)


def _name_rank(name: str, prefix: str) -> int:
    lowered, wanted = name.lower(), prefix.lower()
    if lowered.startswith(wanted):
        return 0
    if any(word.startswith(wanted) for word in lowered.split()):
        return 1
    return 2


async def _run_ids(client: OnePinClient, workflow_id: str | None, typed: str) -> Completion:
    """Ids of the chosen workflow's runs that start with `typed`, newest first."""
    prefix = typed.strip().lower()
    if not workflow_id or not set(prefix) <= _HEX_ID_CHARS:
        # Runs belong to a workflow: nothing to offer until one is chosen; and no run id
        # has a character outside hex digits and dashes.
        return _no_values()
    page = await client.list_runs(
        workflow_id,
        sort="created_at",
        order="desc",
        limit=ID_SCAN_LIMIT if prefix else MAX_COMPLETIONS,
    )
    values = [r.id for r in page.items if r.id.lower().startswith(prefix)]
    return _completion(values, more=page.next_offset is not None)


async def _audio_ids(
    client: OnePinClient, workflow_id: str | None, run_id: str | None, typed: str
) -> Completion:
    """Audio ids of the chosen run's clips that start with `typed`, in line order (the first
    page of its data: the current take of each line and locale)."""
    prefix = typed.strip().lower()
    if not workflow_id or not run_id or not set(prefix) <= _HEX_ID_CHARS:
        return _no_values()
    data = await client.get_run_data(workflow_id, run_id, limit=ID_SCAN_LIMIT)
    values = [
        audio_id
        for row in data.rows
        for card in row.cards
        if (audio_id := card.audio_id) is not None and audio_id.startswith(prefix)
    ]
    return _completion(values, more=data.page.next_offset is not None)


def _no_values() -> Completion:
    return Completion(values=[], has_more=False)


def _completion(values: list[str], *, more: bool) -> Completion:
    # Ids as OnePin sent them: text like any other, so cleaned too before a client offers them.
    return Completion(
        values=[clean_text(value, MAX_NAME_CHARS) for value in values[:MAX_COMPLETIONS]],
        has_more=more or len(values) > MAX_COMPLETIONS,
    )
