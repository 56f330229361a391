"""The sandbox's HTTP surface: a Starlette app that answers like the OnePin API, and `Sandbox`.

Every API request goes: fault middleware and request log (from `faults`) → route → `_endpoint`,
which brings runs up to the clock, authenticates, checks workspace, scope and role, and turns
domain exceptions into the API's error shapes. Handlers read the store, ask the engine to change
it, and render records with `views`.

Error shapes, as the real API (FastAPI) produces them:
- schema failures of query or body (`limit=500`, `offset=-1`, bad JSON, a wrong type) answer
  422 `{"detail": [{loc, msg, type, input, ctx}]}`;
- semantic failures (a bad run-status token, a naive datetime, an inverted range, an invalid
  graph, an empty script) answer 422 in the OnePin envelope with `error.details[]`;
- everything else answers the OnePin envelope `{"error": {code, message}, "meta": {...}}`.

Insufficient credits at run start answer 402 `INSUFFICIENT_CREDITS` (the API reference leaves the
status open; 402 keeps it apart from the 409s a client may retry after waiting).
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import threading
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import anyio.to_thread
import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from . import audio, seed, speech, views
from .clock import Clock, ManualClock, ScaledClock
from .control import control_routes
from .engine import (
    NODE_TYPES,
    DefinitionProblem,
    InsufficientCredits,
    RunConflict,
    RunEngine,
)
from .faults import FaultMiddleware, FaultRules, LateRequests, new_request_id
from .requestlog import RequestLog, RequestRecord, isoformat, key_id_of
from .store import (
    ALL_SCOPES,
    JSON,
    RUN_STATUSES,
    ApiKey,
    FileLink,
    Run,
    Store,
    Workflow,
)
from .transport import SandboxTransport

# The oldest official SDK the sandbox claims to accept; 0.16.1 satisfies it.
REQUIRED_SDK_VERSION = "0.16.0"
API_KEY_FORMAT = re.compile(r"op_live_[A-Za-z0-9]{32}")
DOWNLOAD_TTL = timedelta(minutes=15)
FILES_PREFIX = "/files"  # outside /_sandbox on purpose: downloads are API traffic and are logged
_FILES_BEFORE_PRUNING = 5000
_EMPTY_DEFINITION: JSON = {
    "graph": {"nodes": [], "edges": []},
    "execution": {"steps": [], "params": {}},
}


# --- errors ----------------------------------------------------------------------------------


class ApiError(Exception):
    """An answer in the OnePin error envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[JSON] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


class SchemaError(Exception):
    """A request-schema failure, answered in FastAPI's `{"detail": [...]}` shape."""

    def __init__(self, detail: list[JSON]) -> None:
        super().__init__("request validation failed")
        self.detail = detail


def _invalid(field_name: str, message: str, summary: str | None = None) -> ApiError:
    return ApiError(
        422,
        "VALIDATION_ERROR",
        summary or message,
        details=[{"field": field_name, "message": message}],
    )


def _schema_issue(
    loc: Sequence[str | int], msg: str, kind: str, value: Any, ctx: JSON | None = None
) -> JSON:
    issue: JSON = {"loc": list(loc), "msg": msg, "type": kind, "input": value}
    if ctx is not None:
        issue["ctx"] = ctx
    return issue


# --- auth --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    key: ApiKey = field(repr=False)
    key_id: str


class KeyRing:
    """Which keys the sandbox accepts. Without a list, any key of the official form is accepted."""

    def __init__(self, keys: Sequence[ApiKey | str] | None) -> None:
        self.open = keys is None
        self._keys: dict[str, ApiKey] = {}
        for entry in keys or ():
            key = entry if isinstance(entry, ApiKey) else ApiKey(entry)
            if not API_KEY_FORMAT.fullmatch(key.key):
                raise ValueError("an API key is op_live_ followed by 32 letters or digits")
            self._keys[key.key] = key

    @property
    def example_key(self) -> str:
        return next(iter(self._keys)) if self._keys else seed.EXAMPLE_KEY

    def authenticate(self, authorization: str | None) -> Caller:
        if not authorization:
            raise ApiError(
                401,
                "UNAUTHORIZED",
                "Missing credentials: send 'Authorization: Bearer <API key>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        key = self._keys.get(token)
        if key is None and self.open and API_KEY_FORMAT.fullmatch(token):
            key = ApiKey(token)
        if scheme.lower() != "bearer" or key is None:
            raise ApiError(
                401,
                "UNAUTHORIZED",
                "Invalid or revoked API key.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Caller(key=key, key_id=key_id_of(key.key))


# --- query parsing -----------------------------------------------------------------------------


class QueryReader:
    """Reads typed query parameters, collecting FastAPI-style issues to report them all at once."""

    def __init__(self, request: Request) -> None:
        self.params = request.query_params
        self.issues: list[JSON] = []

    def _issue(self, name: str, msg: str, kind: str, value: Any, ctx: JSON | None = None) -> None:
        self.issues.append(_schema_issue(["query", name], msg, kind, value, ctx))

    def integer(
        self, name: str, default: int, *, ge: int | None = None, le: int | None = None
    ) -> int:
        raw = self.params.get(name)
        if raw is None:
            return default
        try:
            value = int(raw.strip())
        except ValueError:
            self._issue(
                name,
                "Input should be a valid integer, unable to parse string as an integer",
                "int_parsing",
                raw,
            )
            return default
        if ge is not None and value < ge:
            self._issue(
                name,
                f"Input should be greater than or equal to {ge}",
                "greater_than_equal",
                raw,
                {"ge": ge},
            )
        elif le is not None and value > le:
            self._issue(
                name,
                f"Input should be less than or equal to {le}",
                "less_than_equal",
                raw,
                {"le": le},
            )
        return value

    def boolean(self, name: str, default: bool | None = None) -> bool | None:
        raw = self.params.get(name)
        if raw is None:
            return default
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes", "on", "t", "y"):
            return True
        if lowered in ("false", "0", "no", "off", "f", "n"):
            return False
        self._issue(
            name, "Input should be a valid boolean, unable to interpret input", "bool_parsing", raw
        )
        return default

    def text(self, name: str, *, max_length: int | None = None) -> str | None:
        raw = self.params.get(name)
        if raw is not None and max_length is not None and len(raw) > max_length:
            self._issue(
                name,
                f"String should have at most {max_length} characters",
                "string_too_long",
                raw,
                {"max_length": max_length},
            )
        return raw

    def choice(self, name: str, allowed: Sequence[str]) -> str | None:
        raw = self.params.get(name)
        if raw is not None and raw not in allowed:
            self._enum_issue(name, raw, allowed)
            return None
        return raw

    def choices(self, name: str, allowed: Sequence[str]) -> list[str]:
        values = self.params.getlist(name)
        for index, value in enumerate(values):
            if value not in allowed:
                self._enum_issue(name, value, allowed, index=index)
        return [value for value in values if value in allowed]

    def _enum_issue(
        self, name: str, value: str, allowed: Sequence[str], index: int | None = None
    ) -> None:
        expected = ", ".join(f"'{a}'" for a in allowed[:-1]) + f" or '{allowed[-1]}'"
        loc: list[str | int] = ["query", name] if index is None else ["query", name, index]
        self.issues.append(
            _schema_issue(loc, f"Input should be {expected}", "enum", value, {"expected": expected})
        )

    def moment(self, name: str) -> datetime | None:
        """A datetime parameter. Unparseable is a schema issue; a missing offset is semantic."""
        raw = self.params.get(name)
        if raw is None:
            return None
        try:
            value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00").replace(" ", "+"))
        except ValueError:
            self._issue(
                name,
                "Input should be a valid datetime or date, invalid character in year",
                "datetime_from_date_parsing",
                raw,
                {"error": "invalid character in year"},
            )
            return None
        if value.tzinfo is None:
            raise _invalid(
                name,
                f"'{name}' must include a UTC offset, e.g. 2026-03-01T00:00:00Z.",
                "Datetime filters must be timezone-aware.",
            )
        return value.astimezone(timezone.utc)

    def page(self) -> tuple[int, int]:
        return self.integer("offset", 0, ge=0), self.integer("limit", 20, ge=1, le=100)

    def done(self) -> None:
        if self.issues:
            raise SchemaError(self.issues)


# --- bodies ------------------------------------------------------------------------------------


def _json_body(raw: bytes, *, required: bool) -> JSON | None:
    if not raw.strip():
        if required:
            raise SchemaError([_schema_issue(["body"], "Field required", "missing", None)])
        return None
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        position = getattr(exc, "pos", 0)
        raise SchemaError(
            [
                _schema_issue(
                    ["body", position], "JSON decode error", "json_invalid", {}, {"error": str(exc)}
                )
            ]
        ) from exc
    if not isinstance(value, dict):
        raise SchemaError(
            [
                _schema_issue(
                    ["body"],
                    "Input should be a valid dictionary or object to extract fields from",
                    "model_attributes_type",
                    value,
                )
            ]
        )
    return value


class BodyReader:
    """Typed fields of a JSON object body, with FastAPI-style issues."""

    def __init__(self, body: JSON | None) -> None:
        self.body = body or {}
        self.issues: list[JSON] = []

    def has(self, name: str) -> bool:
        return name in self.body

    def string(
        self,
        name: str,
        *,
        required: bool = False,
        min_length: int = 0,
        max_length: int | None = None,
    ) -> str | None:
        if name not in self.body:
            if required:
                self.issues.append(
                    _schema_issue(["body", name], "Field required", "missing", self.body)
                )
            return None
        value = self.body[name]
        if value is None and not required:
            return None
        if not isinstance(value, str):
            self.issues.append(
                _schema_issue(
                    ["body", name], "Input should be a valid string", "string_type", value
                )
            )
            return None
        if len(value) < min_length:
            self.issues.append(
                _schema_issue(
                    ["body", name],
                    f"String should have at least {min_length} character"
                    + ("s" if min_length > 1 else ""),
                    "string_too_short",
                    value,
                    {"min_length": min_length},
                )
            )
        elif max_length is not None and len(value) > max_length:
            self.issues.append(
                _schema_issue(
                    ["body", name],
                    f"String should have at most {max_length} characters",
                    "string_too_long",
                    value,
                    {"max_length": max_length},
                )
            )
        return value

    def mapping(self, name: str, *, required: bool = False) -> JSON | None:
        if name not in self.body or (self.body[name] is None and not required):
            if required:
                self.issues.append(
                    _schema_issue(["body", name], "Field required", "missing", self.body)
                )
            return None
        value = self.body[name]
        if not isinstance(value, dict):
            self.issues.append(
                _schema_issue(
                    ["body", name],
                    "Input should be a valid dictionary or object to extract fields from",
                    "model_attributes_type",
                    value,
                )
            )
            return None
        return value

    def done(self) -> None:
        if self.issues:
            raise SchemaError(self.issues)


def check_definition(definition: JSON) -> None:
    """Structural validation of a `WorkflowDefinition`: 422 with a detail per problem."""
    details: list[JSON] = []
    graph = definition.get("graph", {})
    if not isinstance(graph, dict):
        details.append({"field": "definition.graph", "message": "graph must be an object."})
        graph = {}
    nodes = graph.get("nodes", [])
    edges = graph.get("edges", [])
    if not isinstance(nodes, list):
        details.append({"field": "definition.graph.nodes", "message": "nodes must be a list."})
        nodes = []
    if not isinstance(edges, list):
        details.append({"field": "definition.graph.edges", "message": "edges must be a list."})
        edges = []
    seen: set[str] = set()
    for i, node in enumerate(nodes):
        where = f"definition.graph.nodes[{i}]"
        if not isinstance(node, dict):
            details.append({"field": where, "message": "A node must be an object."})
            continue
        node_id = node.get("id")
        if not isinstance(node_id, str) or not node_id:
            details.append(
                {"field": f"{where}.id", "message": "A node needs a non-empty string id."}
            )
        elif node_id in seen:
            details.append({"field": f"{where}.id", "message": f"Duplicate node id '{node_id}'."})
        else:
            seen.add(node_id)
        if node.get("type") not in NODE_TYPES:
            details.append(
                {
                    "field": f"{where}.type",
                    "message": f"Unknown node type {node.get('type')!r}; see GET /api/v1/nodes.",
                }
            )
        position = node.get("position")
        if not (
            isinstance(position, dict)
            and all(isinstance(position.get(axis), (int, float)) for axis in ("x", "y"))
        ):
            details.append(
                {"field": f"{where}.position", "message": "position needs numeric x and y."}
            )
        if "config" in node and node["config"] is not None and not isinstance(node["config"], dict):
            details.append({"field": f"{where}.config", "message": "config must be an object."})
    for i, edge in enumerate(edges):
        where = f"definition.graph.edges[{i}]"
        if not isinstance(edge, dict):
            details.append({"field": where, "message": "An edge must be an object."})
            continue
        for key in ("id", "source", "sourcePort", "target", "targetPort"):
            if not isinstance(edge.get(key), str) or not edge.get(key):
                details.append(
                    {"field": f"{where}.{key}", "message": f"{key} must be a non-empty string."}
                )
        for end in ("source", "target"):
            if isinstance(edge.get(end), str) and edge[end] not in seen:
                details.append(
                    {
                        "field": f"{where}.{end}",
                        "message": f"Edge points at unknown node '{edge[end]}'.",
                    }
                )
    execution = definition.get("execution")
    if execution is not None and not isinstance(execution, dict):
        details.append({"field": "definition.execution", "message": "execution must be an object."})
    if details:
        raise ApiError(
            422, "VALIDATION_ERROR", "The workflow definition is invalid.", details=details
        )


# --- the request context ---------------------------------------------------------------------


@dataclass
class Context:
    request: Request
    now: datetime
    store: Store
    engine: RunEngine
    caller: Caller | None
    body: bytes

    @property
    def workspace_id(self) -> str:
        return self.store.workspace.id

    def query(self) -> QueryReader:
        return QueryReader(self.request)

    def workflow(self) -> Workflow:
        workflow_id = self.request.path_params["workflow_id"]
        found = (
            self.store.workflow(workflow_id, self.workspace_id) if _is_uuid(workflow_id) else None
        )
        if found is None:
            raise ApiError(404, "NOT_FOUND", "Workflow not found.")
        return found

    def run(self, workflow: Workflow) -> Run:
        run_id = self.request.path_params["run_id"]
        found = self.store.run(workflow, run_id) if _is_uuid(run_id) else None
        if found is None:
            raise ApiError(404, "NOT_FOUND", "Run not found.")
        return found

    @property
    def base_url(self) -> str:
        return str(self.request.base_url).rstrip("/")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


Handler = Callable[[Context], Response]


# --- responses ---------------------------------------------------------------------------------


def _meta(now: datetime) -> JSON:
    return {"request_id": new_request_id(now), "timestamp": isoformat(now)}


def _api_headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"X-OnePin-Required-Version": REQUIRED_SDK_VERSION, **(extra or {})}


def _respond(payload: JSON, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(payload, status_code=status, headers=_api_headers(headers))


def single(
    ctx: Context, data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return _respond({"data": data, "meta": _meta(ctx.now)}, status, headers)


def paged(
    ctx: Context,
    items: list[Any],
    *,
    offset: int,
    limit: int,
    total: int | None,
    data: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A list answer with `pagination`; `total` makes it a counted list. `next`/`prev` are
    absolute URLs with the other query parameters kept, as in the API's examples."""
    url = ctx.request.url
    has_more = (offset + limit < total) if total is not None else len(items) == limit
    next_url = (
        str(url.include_query_params(offset=offset + limit, limit=limit)) if has_more else None
    )
    prev_url = (
        str(url.include_query_params(offset=max(0, offset - limit), limit=limit))
        if offset > 0
        else None
    )
    pagination: JSON = {"next": next_url, "prev": prev_url, "limit": limit}
    if total is not None:
        pagination["total"] = total
    payload = {
        "data": items if data is None else data,
        "meta": _meta(ctx.now),
        "pagination": pagination,
    }
    return _respond(payload, 200, headers)


def error_response(now: datetime, error: ApiError) -> Response:
    body: JSON = {"code": error.code, "message": error.message}
    if error.details is not None:
        body["details"] = error.details
    return _respond({"error": body, "meta": _meta(now)}, error.status, error.headers)


# --- the API -----------------------------------------------------------------------------------

Scope = Literal[
    "workflows:read", "workflows:run", "workflows:write", "voices:read", "templates:read"
]


class OnePinApi:
    """Routes and handlers; state is read through `sandbox` so that a reset is seen at once."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def _endpoint(
        self,
        handler: Handler,
        *,
        scope: Scope | None = None,
        authenticated: bool = True,
        editor: bool = False,
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            sandbox = self.sandbox
            with sandbox.lock:
                now = sandbox.clock.now()
                sandbox.engine.sync(now)
                try:
                    caller = self._authorize(request, scope, authenticated, editor)
                    ctx = Context(request, now, sandbox.store, sandbox.engine, caller, body)
                    return handler(ctx)
                except ApiError as error:
                    return error_response(now, error)
                except SchemaError as error:
                    return _respond({"detail": error.detail}, 422)

        return endpoint

    def _authorize(
        self, request: Request, scope: Scope | None, authenticated: bool, editor: bool
    ) -> Caller | None:
        if not authenticated:
            return None
        caller = self.sandbox.keys.authenticate(request.headers.get("authorization"))
        workspace = request.headers.get("x-workspace-id")
        if workspace is not None and workspace.strip().lower() != self.sandbox.store.workspace.id:
            raise ApiError(
                403, "FORBIDDEN", "X-Workspace-Id does not match the API key's workspace."
            )
        if scope is not None and scope not in caller.key.scopes:
            raise ApiError(403, "FORBIDDEN", f"API key lacks the {scope} scope.")
        if editor and caller.key.role == "viewer":
            raise ApiError(
                403,
                "FORBIDDEN",
                "This action needs the editor role in the workspace; this key's role is viewer.",
            )
        return caller

    def routes(self) -> list[BaseRoute]:
        e = self._endpoint
        wf = "/api/v1/workflows/{workflow_id}"
        run = wf + "/runs/{run_id}"
        read: Scope = "workflows:read"
        table: list[tuple[str, str, Callable[[Request], Awaitable[Response]]]] = [
            ("GET", "/api/v1/auth/whoami", e(self.whoami)),
            ("GET", "/api/v1/users/me/credits", e(self.credits)),
            ("GET", "/api/v1/users/me/limits", e(self.limits)),
            ("GET", "/api/v1/nodes", e(self.nodes, authenticated=False)),
            ("GET", "/api/v1/voices", e(self.voices, scope="voices:read")),
            ("GET", "/api/v1/templates", e(self.templates, scope="templates:read")),
            ("GET", "/api/v1/workflows", e(self.list_workflows, scope=read)),
            (
                "POST",
                "/api/v1/workflows",
                e(self.create_workflow, scope="workflows:write", editor=True),
            ),
            ("GET", "/api/v1/workflows/name-availability", e(self.name_availability, scope=read)),
            (
                "POST",
                "/api/v1/workflows/validate",
                e(self.validate, scope="workflows:write", editor=True),
            ),
            ("GET", wf, e(self.get_workflow, scope=read)),
            ("PUT", wf, e(self.replace_workflow, scope="workflows:write", editor=True)),
            ("PATCH", wf, e(self.patch_workflow, scope="workflows:write", editor=True)),
            ("DELETE", wf, e(self.delete_workflow, scope="workflows:write", editor=True)),
            (
                "POST",
                wf + "/duplicate",
                e(self.duplicate_workflow, scope="workflows:write", editor=True),
            ),
            ("POST", wf + "/estimate", e(self.preview, scope=read)),
            ("GET", wf + "/markdown", e(self.markdown, scope=read)),
            ("GET", wf + "/uploads", e(self.uploads, scope=read)),
            ("GET", wf + "/runs", e(self.list_runs, scope=read)),
            ("POST", wf + "/runs", e(self.start_run, scope="workflows:run", editor=True)),
            ("POST", wf + "/runs/preview", e(self.preview, scope=read)),
            ("GET", wf + "/runs/summary", e(self.summary, scope=read)),
            ("GET", run, e(self.get_run, scope=read)),
            ("GET", run + "/status", e(self.run_status, scope=read)),
            ("POST", run + "/cancel", e(self.cancel_run, scope="workflows:run", editor=True)),
            ("POST", run + "/pause", e(self.pause_run, scope="workflows:run", editor=True)),
            ("POST", run + "/resume", e(self.resume_run, scope="workflows:run", editor=True)),
            ("GET", run + "/steps", e(self.steps, scope=read)),
            ("GET", run + "/overview", e(self.overview, scope=read)),
            ("GET", run + "/analysis", e(self.analysis, scope=read)),
            ("GET", run + "/data", e(self.data, scope=read)),
            ("GET", run + "/outputs", e(self.outputs, scope=read)),
            ("GET", run + "/download", e(self.download, scope=read)),
            ("GET", run + "/nodes/{node_id}/download", e(self.download_node, scope=read)),
            ("GET", run + "/audio/{audio_id}/url", e(self.audio_url, scope=read)),
        ]
        routes: list[BaseRoute] = [Route(path, fn, methods=[method]) for method, path, fn in table]
        routes.append(Route(FILES_PREFIX + "/{token}/{filename}", self.serve_file, methods=["GET"]))
        return routes

    # --- account and catalogs ---

    def whoami(self, ctx: Context) -> Response:
        assert ctx.caller is not None
        return single(
            ctx,
            {
                "auth_kind": "api_key",
                "user_id": ctx.store.user.id,
                "workspace_id": ctx.workspace_id,
                "api_key_id": ctx.caller.key_id,
                "scopes": sorted(ctx.caller.key.scopes & ALL_SCOPES),
            },
        )

    def credits(self, ctx: Context) -> Response:
        return single(ctx, views.balance(ctx.store.account))

    def limits(self, ctx: Context) -> Response:
        return single(ctx, views.plan_limits(ctx.store.limits))

    def nodes(self, ctx: Context) -> Response:
        catalog = ctx.store.node_catalog
        return paged(ctx, catalog, offset=0, limit=max(len(catalog), 1), total=None)

    def voices(self, ctx: Context) -> Response:
        query = ctx.query()
        offset, limit = query.page()
        filters = {
            name: query.params.getlist(name)
            for name in ("source", "gender", "age", "category", "accent", "provider")
        }
        models = query.params.getlist("model")
        languages = [lang.replace("_", "-").lower() for lang in query.params.getlist("language")]
        search = query.text("search", max_length=200)
        sort = query.choice("sort", ("name", "created_at", "uses_count")) or "name"
        order = query.choice("order", ("asc", "desc"))
        favorites = query.boolean("favorites_only", False)
        query.done()
        found = [
            voice
            for voice in ctx.store.voices
            if all(not wanted or voice.get(name) in wanted for name, wanted in filters.items())
            and (not models or set(models) & set(voice.get("supported_models") or []))
            and (not languages or set(languages) & set(voice.get("supported_languages") or []))
            and (
                not search
                or _matches(
                    search, voice["name"], voice.get("description"), *voice.get("tags") or []
                )
            )
            and (not favorites or voice.get("is_favorite"))
        ]
        descending = (order or ("asc" if sort == "name" else "desc")) == "desc"
        found.sort(key=lambda v: v["id"])
        found.sort(
            key=lambda v: v.get(sort) or 0 if sort == "uses_count" else str(v.get(sort)),
            reverse=descending,
        )
        return paged(
            ctx, found[offset : offset + limit], offset=offset, limit=limit, total=len(found)
        )

    def templates(self, ctx: Context) -> Response:
        query = ctx.query()
        offset, limit = query.page()
        categories = query.choices(
            "category", ("media", "creative", "business", "education", "wellness")
        )
        search = query.text("search", max_length=200)
        sort = query.choice("sort", ("popular", "recent", "name")) or "popular"
        favorites = query.boolean("favorites_only", False)
        query.done()
        found = [
            template
            for template in ctx.store.templates
            if (not categories or template.get("category") in categories)
            and (not search or _matches(search, template["name"], template.get("description")))
            and (not favorites or template.get("is_favorite"))
        ]
        if sort == "name":
            found.sort(key=lambda t: (t["name"].lower(), t["id"]))
        elif sort == "recent":
            found.sort(key=lambda t: (t["created_at"], t["id"]), reverse=True)
        else:
            found.sort(key=lambda t: (-t["uses_count"], t["id"]))
        return paged(ctx, found[offset : offset + limit], offset=offset, limit=limit, total=None)

    # --- workflows ---

    def list_workflows(self, ctx: Context) -> Response:
        query = ctx.query()
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
            raise _invalid(
                "last_run_after",
                "last_run_after must not be later than last_run_before.",
                "Invalid date range.",
            )
        rows = []
        for workflow in ctx.store.workflows.values():
            if workflow.deleted or workflow.workspace_id != ctx.workspace_id:
                continue
            runs = ctx.store.runs_of(workflow.id)
            latest = max(runs, key=lambda r: (r.created_at, r.run_number), default=None)
            last_at = latest.created_at if latest else None
            if search and not _matches(search, workflow.name, workflow.description):
                continue
            if status and views.workflow_bucket(latest) != status:
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
            views.workflow(ctx.store, row[0], include_definition=include_definition)
            for row in rows[offset : offset + limit]
        ]
        return paged(ctx, page, offset=offset, limit=limit, total=len(rows))

    def get_workflow(self, ctx: Context) -> Response:
        return single(ctx, views.workflow(ctx.store, ctx.workflow()))

    def create_workflow(self, ctx: Context) -> Response:
        body = BodyReader(_json_body(ctx.body, required=False))
        name = body.string("name", min_length=1, max_length=200)
        description = body.string("description", max_length=5000)
        definition = body.mapping("definition")
        body.done()
        name = _checked_name(name) if name is not None else None
        definition = (
            definition if definition is not None else json.loads(json.dumps(_EMPTY_DEFINITION))
        )
        check_definition(definition)
        workflow = Workflow(
            id=str(uuid.uuid4()),
            workspace_id=ctx.workspace_id,
            user_id=ctx.store.user.id,
            name=name or "Untitled workflow",
            name_source="user" if name else "placeholder",
            description=description,
            definition=definition,
            created_at=ctx.now,
            updated_at=ctx.now,
        )
        ctx.store.workflows[workflow.id] = workflow
        return single(ctx, views.workflow(ctx.store, workflow), status=201)

    def replace_workflow(self, ctx: Context) -> Response:
        workflow = ctx.workflow()
        body = BodyReader(_json_body(ctx.body, required=True))
        name = body.string("name", required=True, min_length=1, max_length=200)
        description = body.string("description", max_length=5000)
        definition = body.mapping("definition", required=True)
        body.done()
        assert name is not None
        assert definition is not None
        check_definition(definition)
        workflow.name = _checked_name(name)
        workflow.name_source = "user"
        workflow.description = description
        workflow.definition = definition
        workflow.updated_at = ctx.now
        return single(ctx, views.workflow(ctx.store, workflow))

    def patch_workflow(self, ctx: Context) -> Response:
        workflow = ctx.workflow()
        body = BodyReader(_json_body(ctx.body, required=True))
        name = body.string("name", min_length=1, max_length=200)
        description = body.string("description", max_length=5000)
        definition = body.mapping("definition")
        body.done()
        if not any(body.has(key) for key in ("name", "description", "definition")):
            raise _invalid("body", "Provide at least one of name, description or definition.")
        if definition is not None:
            check_definition(definition)
            workflow.definition = definition
        if name is not None:
            workflow.name = _checked_name(name)
            workflow.name_source = "user"
        if body.has("description"):
            workflow.description = description
        workflow.updated_at = ctx.now
        return single(ctx, views.workflow(ctx.store, workflow))

    def delete_workflow(self, ctx: Context) -> Response:
        workflow = ctx.workflow()
        for run in ctx.store.runs_of(workflow.id):
            ctx.engine.cancel(run, ctx.now)  # a deleted workflow must not keep holding run slots
        workflow.deleted = True
        workflow.updated_at = ctx.now
        return single(ctx, {"id": workflow.id, "deleted": True})

    def duplicate_workflow(self, ctx: Context) -> Response:
        source = ctx.workflow()
        copy = Workflow(
            id=str(uuid.uuid4()),
            workspace_id=source.workspace_id,
            user_id=ctx.store.user.id,
            name=f"{source.name} (Copy)",
            name_source="user",
            description=source.description,
            definition=json.loads(json.dumps(source.definition)),
            created_at=ctx.now,
            updated_at=ctx.now,
        )
        ctx.store.workflows[copy.id] = copy
        return single(ctx, views.workflow(ctx.store, copy), status=201)

    def name_availability(self, ctx: Context) -> Response:
        query = ctx.query()
        name = query.params.get("name")
        if name is None:
            query.issues.append(_schema_issue(["query", "name"], "Field required", "missing", None))
        query.done()
        assert name is not None
        return single(ctx, {"name": _checked_name(name), "available": True})

    def validate(self, ctx: Context) -> Response:
        body = BodyReader(_json_body(ctx.body, required=True))
        definition = body.mapping("definition", required=True)
        body.done()
        assert definition is not None
        return single(ctx, views.validation_report(definition))

    def markdown(self, ctx: Context) -> Response:
        workflow = ctx.workflow()
        return single(
            ctx,
            {
                "workflow_id": workflow.id,
                "name": workflow.name,
                "markdown": views.markdown(workflow),
            },
        )

    def uploads(self, ctx: Context) -> Response:
        workflow = ctx.workflow()
        query = ctx.query()
        offset, limit = query.page()
        query.done()
        found = sorted(
            (u for u in ctx.store.uploads.values() if u.workflow_id == workflow.id),
            key=lambda u: (u.created_at, u.id),
            reverse=True,
        )
        items = []
        for upload in found[offset : offset + limit]:
            link = self._link(
                ctx,
                upload.filename,
                "text/plain; charset=utf-8",
                functools.partial(str.encode, upload.content),
            )
            items.append(views.upload(upload, link))
        return paged(ctx, items, offset=offset, limit=limit, total=None)

    def preview(self, ctx: Context) -> Response:
        workflow = ctx.workflow()
        script_text, source_language = _run_overrides(ctx.body)
        try:
            cost = ctx.engine.estimate(workflow, script_text, source_language)
        except DefinitionProblem as problem:
            raise _invalid(problem.field, problem.message) from problem
        return single(ctx, views.estimate(cost, ctx.store))

    # --- runs ---

    def list_runs(self, ctx: Context) -> Response:
        workflow = ctx.workflow()
        query = ctx.query()
        offset, limit = query.page()
        raw_status = query.params.get("status")
        search = query.text("search")
        sort = (
            query.choice("sort", ("created_at", "started_at", "completed_at", "status"))
            or "created_at"
        )
        order = query.choice("order", ("asc", "desc")) or "desc"
        query.done()
        wanted = _status_tokens(raw_status) if raw_status is not None else None
        runs = [
            run
            for run in ctx.store.runs_of(workflow.id)
            if (wanted is None or run.status in wanted)
            and (not search or _matches(search, run.triggered_by.name, run.triggered_by.email))
        ]
        runs.sort(key=lambda r: r.id)
        # Runs without the sort field (not started yet) go last, whichever the direction.
        present = [r for r in runs if getattr(r, sort) is not None]
        absent = [r for r in runs if getattr(r, sort) is None]
        present.sort(key=lambda r: getattr(r, sort), reverse=order == "desc")
        runs = present + absent
        page = [views.run_list_item(run, ctx.now) for run in runs[offset : offset + limit]]
        return paged(ctx, page, offset=offset, limit=limit, total=len(runs))

    def start_run(self, ctx: Context) -> Response:
        workflow = ctx.workflow()
        script_text, source_language = _run_overrides(ctx.body)
        try:
            run = ctx.engine.start(
                workflow,
                ctx.store.user,
                ctx.now,
                script_text=script_text,
                source_language=source_language,
            )
        except RunConflict as conflict:
            raise ApiError(409, "CONFLICT", str(conflict)) from conflict
        except DefinitionProblem as problem:
            raise _invalid(problem.field, problem.message) from problem
        except InsufficientCredits as short:
            raise ApiError(402, "INSUFFICIENT_CREDITS", str(short)) from short
        return single(ctx, views.run(run, ctx.now, "out"), status=202)

    def summary(self, ctx: Context) -> Response:
        workflow = ctx.workflow()
        query = ctx.query()
        start = query.moment("from")
        end = query.moment("to")
        query.done()
        if start and end and start > end:
            raise _invalid("from", "'from' must not be later than 'to'.", "Invalid date range.")
        runs = [
            run
            for run in ctx.store.runs_of(workflow.id)
            if (start is None or run.created_at >= start) and (end is None or run.created_at <= end)
        ]
        return single(ctx, views.runs_summary(runs))

    def get_run(self, ctx: Context) -> Response:
        return single(ctx, views.run(ctx.run(ctx.workflow()), ctx.now, "detail"))

    def run_status(self, ctx: Context) -> Response:
        return single(ctx, views.run(ctx.run(ctx.workflow()), ctx.now, "status"))

    def cancel_run(self, ctx: Context) -> Response:
        run = ctx.run(ctx.workflow())
        return single(ctx, views.run(ctx.engine.cancel(run, ctx.now), ctx.now, "out"))

    def pause_run(self, ctx: Context) -> Response:
        run = ctx.run(ctx.workflow())
        try:
            ctx.engine.pause(run, ctx.now)
        except RunConflict as conflict:
            raise ApiError(409, "CONFLICT", str(conflict)) from conflict
        return single(ctx, views.run(run, ctx.now, "out"))

    def resume_run(self, ctx: Context) -> Response:
        run = ctx.run(ctx.workflow())
        try:
            ctx.engine.resume(run, ctx.now)
        except RunConflict as conflict:
            raise ApiError(409, "CONFLICT", str(conflict)) from conflict
        return single(ctx, views.run(run, ctx.now, "out"))

    def steps(self, ctx: Context) -> Response:
        run = ctx.run(ctx.workflow())
        query = ctx.query()
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
        link = self._audio_linker(ctx, run) if include_result else None
        return single(ctx, [views.step(run, step, link) for step in steps])

    def overview(self, ctx: Context) -> Response:
        workflow = ctx.workflow()
        return single(ctx, views.overview(workflow, ctx.run(workflow), ctx.now))

    def analysis(self, ctx: Context) -> Response:
        return single(ctx, views.analysis(ctx.run(ctx.workflow()), ctx.now))

    def data(self, ctx: Context) -> Response:
        run = ctx.run(ctx.workflow())
        query = ctx.query()
        offset, limit = query.page()
        search = query.text("search")
        language = query.params.get("language")
        include_dropped = bool(query.boolean("include_dropped", False))
        query.done()
        rows = views.data_rows(
            run,
            self._audio_linker(ctx, run),
            search=search,
            language=language.replace("_", "-").lower() if language else None,
            include_dropped=include_dropped,
        )
        body = views.run_data(run, rows[offset : offset + limit])
        return paged(
            ctx,
            [],
            data=body,
            offset=offset,
            limit=limit,
            total=len(rows),
            headers={"Cache-Control": "no-store"},
        )

    def outputs(self, ctx: Context) -> Response:
        run = ctx.run(ctx.workflow())
        return single(ctx, views.outputs(run, self._audio_linker(ctx, run)))

    def download(self, ctx: Context) -> Response:
        workflow = ctx.workflow()
        run = ctx.run(workflow)
        self._check_downloadable(run)
        name = f"{views.slug(workflow.name)}_run-{run.run_number}.zip"
        return single(ctx, self._zip_link(ctx, run, name, node_id=None))

    def download_node(self, ctx: Context) -> Response:
        workflow = ctx.workflow()
        run = ctx.run(workflow)
        node_id = ctx.request.path_params["node_id"]
        nodes = [n for n in views.snapshot_nodes(run) if n.get("id") == node_id]
        if not nodes or nodes[0].get("type") != "sink_preview":
            raise ApiError(404, "NOT_FOUND", "Output node not found in this run.")
        self._check_downloadable(run)
        node_slug = views.slug(views.node_label(nodes[0]))
        name = f"{views.slug(workflow.name)}_run-{run.run_number}_{node_slug}.zip"
        return single(ctx, self._zip_link(ctx, run, name, node_id=node_id))

    def audio_url(self, ctx: Context) -> Response:
        run = ctx.run(ctx.workflow())
        audio_id = ctx.request.path_params["audio_id"]
        take = views.find_take(run, audio_id)
        if take is None:
            raise ApiError(404, "NOT_FOUND", "Audio not found.")
        link = self._audio_linker(ctx, run)(take)
        return single(
            ctx,
            {"url": link.url, "filename": link.filename, "expires_at": isoformat(link.expires_at)},
        )

    def _check_downloadable(self, run: Run) -> None:
        if run.status != "completed":
            raise ApiError(409, "CONFLICT", "Run is not completed.")
        if not views.delivered_takes(run):
            raise ApiError(404, "NOT_FOUND", "This run produced no audio.")

    # --- presigned files ---

    def _link(
        self, ctx: Context, filename: str, content_type: str, build: Callable[[], bytes]
    ) -> views.Link:
        store = ctx.store
        if len(store.files) > _FILES_BEFORE_PRUNING:
            for token in [t for t, f in store.files.items() if f.expires_at <= ctx.now]:
                del store.files[token]
        token = secrets.token_urlsafe(18)
        expires = ctx.now + DOWNLOAD_TTL
        store.files[token] = FileLink(token, filename, content_type, expires, build)
        # On the host the client used, unless files are served elsewhere (`files_url`).
        base = self.sandbox.files_url or ctx.base_url
        return views.Link(f"{base}{FILES_PREFIX}/{token}/{filename}", filename, expires)

    def _zip_link(self, ctx: Context, run: Run, filename: str, node_id: str | None) -> JSON:
        takes = views.delivered_takes(run)
        voice = self.sandbox.voice

        def build() -> bytes:
            return audio.zip_bytes(
                {views.archive_name(take): views.take_wav(take, voice) for take in takes}
            )

        link = self._link(ctx, filename, "application/zip", _once(build))
        return {
            "url": link.url,
            "filename": link.filename,
            "expires_at": isoformat(link.expires_at),
        }

    def _audio_linker(self, ctx: Context, run: Run) -> Callable[[Any], views.Link]:
        voice = self.sandbox.voice

        def link(take: Any) -> views.Link:
            return self._link(
                ctx,
                f"{take.audio_id}.wav",
                "audio/wav",
                _once(lambda: views.take_wav(take, voice)),
            )

        return link

    async def serve_file(self, request: Request) -> Response:
        token = request.path_params["token"]
        with self.sandbox.lock:
            found = self.sandbox.store.files.get(token)
            now = self.sandbox.clock.now()
        if found is None or found.filename != request.path_params["filename"]:
            return _storage_error(404, "NoSuchKey", "The specified key does not exist.")
        if now >= found.expires_at:
            return _storage_error(403, "AccessDenied", "Request has expired")
        # Built off the event loop: speaking a six-language chapter takes seconds, and the loop
        # meanwhile answers the API (and, in-process, the MCP server around it).
        content = await anyio.to_thread.run_sync(found.build)
        return Response(
            content,
            media_type=found.content_type,
            headers={"Content-Disposition": f'attachment; filename="{found.filename}"'},
        )

    # --- Starlette's own 404 and 405, in the API's shapes ---

    async def http_exception(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        now = self.sandbox.clock.now()
        if exc.status_code == 404:
            return error_response(now, ApiError(404, "NOT_FOUND", "Not found."))
        headers = dict(exc.headers or {})
        return _respond({"detail": exc.detail}, exc.status_code, headers)


def _once(build: Callable[[], bytes]) -> Callable[[], bytes]:
    """Build a file on first download and keep it, as the API caches its archives."""
    cache: list[bytes] = []

    def cached() -> bytes:
        if not cache:
            cache.append(build())
        return cache[0]

    return cached


def _storage_error(status: int, code: str, message: str) -> Response:
    # An expired or unknown presigned URL answers like S3: XML, not the API envelope.
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")


def _matches(needle: str, *haystack: str | None) -> bool:
    lowered = needle.lower()
    return any(lowered in value.lower() for value in haystack if value)


def _checked_name(name: str) -> str:
    trimmed = name.strip()
    if not trimmed:
        raise _invalid("name", "Name must not be blank.")
    if len(trimmed) > 200:
        raise _invalid("name", "Name must be at most 200 characters.")
    return trimmed


def _status_tokens(raw: str) -> set[str]:
    tokens = raw.split(",")
    if any(not token.strip() for token in tokens):
        raise _invalid("status", "Empty status token is not allowed.", "Invalid status filter.")
    unknown = [token for token in tokens if token not in RUN_STATUSES]
    if unknown:
        raise _invalid(
            "status",
            f"Unknown status {unknown[0]!r}; use {', '.join(RUN_STATUSES)}.",
            "Invalid status filter.",
        )
    return set(tokens)


def _run_overrides(raw: bytes) -> tuple[str | None, str | None]:
    body = BodyReader(_json_body(raw, required=False))
    script_text = body.string("script_text")
    source_language = body.string("source_language", min_length=2, max_length=35)
    body.done()
    return script_text, source_language


# --- the sandbox -------------------------------------------------------------------------------


class Sandbox:
    """A faithful local OnePin: the HTTP app plus handles to drive it from tests.

    `api_keys=None` accepts any well-formed key with every scope (role admin); a list accepts only
    those keys (a plain string means every scope, admin). With `manual_clock=True` time stands
    still until `advance()`; otherwise it runs at `speed` times real time.

    `voice` says how takes sound (`speech.choose`: "auto" speaks with espeak-ng when it is on the
    PATH, "espeak" insists on it, "tone" never speaks); `voice_description` says which is in
    effect. `files_url` (e.g. "http://127.0.0.1:8765") is where presigned file URLs point instead
    of the host the client used: for an in-process sandbox, whose API has no address, with
    `files_app` served there (see `serve.serving_files`).
    """

    def __init__(
        self,
        *,
        api_keys: Sequence[ApiKey | str] | None = None,
        manual_clock: bool = False,
        speed: float = 1.0,
        voice: speech.VoiceChoice = "auto",
        files_url: str | None = None,
    ) -> None:
        self.voice: speech.Voice = speech.choose(voice)
        self.files_url = files_url.rstrip("/") if files_url else None
        self.clock: Clock = ManualClock() if manual_clock else ScaledClock(speed)
        self.keys = KeyRing(api_keys)
        # One lock for all state: requests are handled on one event loop, but `advance()` and
        # `reset()` may be called from a test's thread while uvicorn serves from another.
        self.lock = threading.RLock()
        self.faults = FaultRules()
        # Requests a `late_s` fault accepted for later: the world's, so a reset forgets them.
        self.late = LateRequests()
        self._log = RequestLog(now=self.clock.now)
        self.store = seed.build_store(self.clock.now())
        self.engine = RunEngine(self.store, seed.TRANSLATIONS)
        api = OnePinApi(self)
        self.app = Starlette(
            routes=[*control_routes(self), *api.routes()],
            middleware=[
                Middleware(
                    FaultMiddleware,
                    rules=self.faults,
                    log=self._log,
                    now=self.clock.now,
                    late=self.late,
                )
            ],
            exception_handlers={HTTPException: api.http_exception},
        )
        # The presigned files alone, for serving where `files_url` points: no API, no control
        # routes, no faults (those belong to API traffic).
        self.files_app = Starlette(
            routes=[Route(FILES_PREFIX + "/{token}/{filename}", api.serve_file, methods=["GET"])]
        )

    @property
    def example_key(self) -> str:
        return self.keys.example_key

    @property
    def voice_description(self) -> str:
        """What takes sound like: "espeak-ng", or "tones (install espeak-ng for speech)"."""
        return self.voice.description

    @property
    def requests(self) -> Sequence[RequestRecord]:
        return self._log

    @property
    def request_log(self) -> RequestLog:
        return self._log

    @property
    def manual(self) -> bool:
        return isinstance(self.clock, ManualClock)

    def advance(self, seconds: float) -> datetime:
        """Move the manual clock and bring every run up to the new time."""
        if not isinstance(self.clock, ManualClock):
            raise ValueError("only a sandbox with a manual clock can be advanced")
        with self.lock:
            now = self.clock.advance(seconds)
            self.engine.sync(now)
            return now

    def transport(self) -> httpx.AsyncBaseTransport:
        return SandboxTransport(self.app)

    def reset(self) -> None:
        """Back to the seeded state (seeded relative to the current time); clears log and faults."""
        with self.lock:
            self.store = seed.build_store(self.clock.now())
            self.engine = RunEngine(self.store, seed.TRANSLATIONS)
            self._log.clear()
            self.faults.clear()
            self.late.clear()

    def __repr__(self) -> str:
        return f"Sandbox(clock={self.clock!r}, runs={len(self.store.runs)})"
