"""`Sandbox`: a faithful local OnePin, the facade over its parts.

It builds the Starlette app (control routes, the API's routes, the fault middleware and request
log), owns the clock, the lock, the store and the run engine, and hands out the in-process
transport and the presigned-files app. Every API request goes: fault middleware and request log
(`faults`) → route → `_endpoint`, which brings runs up to the clock, authorizes the caller
(`auth`), and turns `ApiError` / `SchemaError` into the API's error shapes (`envelope`). The
handlers (`handlers/`) read the store through an `ApiCall`, ask the engine to change it, and
render records (`render`).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from . import seed, speech
from .auth import KeyRing, Scope, authorize
from .call import ApiCall
from .clock import Clock, ManualClock, ScaledClock
from .control import control_routes
from .engine import RunEngine
from .envelope import error_response, respond, schema_error_response
from .errors import ApiError, SchemaError
from .faults import FaultMiddleware, FaultRules, LateRequests
from .handlers import account, catalog, dictionary, runs, usage, workflows
from .handlers.files import FILES_PREFIX, serve_file
from .requestlog import RequestLog, RequestRecord
from .store import ApiKey
from .transport import SandboxTransport

Handler = Callable[[ApiCall], Response]
Endpoint = Callable[[Request], Awaitable[Response]]


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
        self.app = Starlette(
            routes=[*control_routes(self), *_api_routes(self)],
            middleware=[
                Middleware(
                    FaultMiddleware,
                    rules=self.faults,
                    log=self._log,
                    now=self.clock.now,
                    late=self.late,
                )
            ],
            exception_handlers={HTTPException: self._http_exception},
        )
        # The presigned files alone, for serving where `files_url` points: no API, no control
        # routes, no faults (those belong to API traffic).
        self.files_app = Starlette(routes=[_files_route(self)])

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

    async def _http_exception(self, request: Request, exc: Exception) -> Response:
        """Starlette's own 404 and 405, in the API's shapes."""
        assert isinstance(exc, HTTPException)
        now = self.clock.now()
        if exc.status_code == 404:
            return error_response(now, ApiError(404, "NOT_FOUND", "Not found."))
        headers = dict(exc.headers or {})
        return respond({"detail": exc.detail}, exc.status_code, headers)

    def __repr__(self) -> str:
        return f"Sandbox(clock={self.clock!r}, runs={len(self.store.runs)})"


def _api_routes(sandbox: Sandbox) -> list[BaseRoute]:
    """The API's routes, each with the scope it needs and whether it needs the editor role."""

    def e(
        handler: Handler,
        *,
        scope: Scope | None = None,
        authenticated: bool = True,
        editor: bool = False,
    ) -> Endpoint:
        return _endpoint(sandbox, handler, scope=scope, authenticated=authenticated, editor=editor)

    wf = "/api/v1/workflows/{workflow_id}"
    run = wf + "/runs/{run_id}"
    read: Scope = "workflows:read"
    table: list[tuple[str, str, Endpoint]] = [
        ("GET", "/api/v1/auth/whoami", e(account.whoami)),
        ("GET", "/api/v1/users/me/credits", e(account.credits)),
        ("GET", "/api/v1/users/me/limits", e(account.limits)),
        ("GET", "/api/v1/nodes", e(catalog.nodes, authenticated=False)),
        ("GET", "/api/v1/voices", e(catalog.voices, scope="voices:read")),
        ("GET", "/api/v1/templates", e(catalog.templates, scope="templates:read")),
        ("GET", "/api/v1/workflows", e(workflows.list_workflows, scope=read)),
        (
            "POST",
            "/api/v1/workflows",
            e(workflows.create_workflow, scope="workflows:write", editor=True),
        ),
        (
            "GET",
            "/api/v1/workflows/name-availability",
            e(workflows.name_availability, scope=read),
        ),
        (
            "POST",
            "/api/v1/workflows/validate",
            e(workflows.validate, scope="workflows:write", editor=True),
        ),
        ("GET", wf, e(workflows.get_workflow, scope=read)),
        ("PUT", wf, e(workflows.replace_workflow, scope="workflows:write", editor=True)),
        ("PATCH", wf, e(workflows.patch_workflow, scope="workflows:write", editor=True)),
        ("DELETE", wf, e(workflows.delete_workflow, scope="workflows:write", editor=True)),
        (
            "POST",
            wf + "/duplicate",
            e(workflows.duplicate_workflow, scope="workflows:write", editor=True),
        ),
        ("POST", wf + "/estimate", e(runs.preview, scope=read)),
        ("GET", wf + "/markdown", e(workflows.markdown, scope=read)),
        ("GET", wf + "/uploads", e(workflows.uploads, scope=read)),
        ("GET", wf + "/runs", e(runs.list_runs, scope=read)),
        ("POST", wf + "/runs", e(runs.start_run, scope="workflows:run", editor=True)),
        ("POST", wf + "/runs/preview", e(runs.preview, scope=read)),
        ("GET", wf + "/runs/summary", e(runs.summary, scope=read)),
        ("GET", run, e(runs.get_run, scope=read)),
        ("GET", run + "/status", e(runs.run_status, scope=read)),
        ("POST", run + "/cancel", e(runs.cancel_run, scope="workflows:run", editor=True)),
        ("POST", run + "/pause", e(runs.pause_run, scope="workflows:run", editor=True)),
        ("POST", run + "/resume", e(runs.resume_run, scope="workflows:run", editor=True)),
        ("GET", run + "/steps", e(runs.steps, scope=read)),
        ("GET", run + "/overview", e(runs.overview, scope=read)),
        ("GET", run + "/analysis", e(runs.analysis, scope=read)),
        ("GET", run + "/data", e(runs.data, scope=read)),
        ("GET", run + "/outputs", e(runs.outputs, scope=read)),
        ("GET", run + "/download", e(runs.download, scope=read)),
        ("GET", run + "/nodes/{node_id}/download", e(runs.download_node, scope=read)),
        ("GET", run + "/audio/{audio_id}/url", e(runs.audio_url, scope=read)),
        ("GET", "/api/v1/dictionary", e(dictionary.list_entries, scope="dictionary:read")),
        (
            "POST",
            "/api/v1/dictionary",
            e(dictionary.create_entry, scope="dictionary:write", editor=True),
        ),
        (
            "GET",
            "/api/v1/dictionary/search",
            e(dictionary.search_entries, scope="dictionary:read"),
        ),
        (
            "GET",
            "/api/v1/dictionary/languages",
            e(dictionary.languages, scope="dictionary:read"),
        ),
        # A suggestion changes nothing, so it needs only the read scope.
        (
            "POST",
            "/api/v1/dictionary/suggest-pronunciation",
            e(dictionary.suggest, scope="dictionary:read"),
        ),
        (
            "PUT",
            "/api/v1/dictionary/{entry_id}",
            e(dictionary.update_entry, scope="dictionary:write", editor=True),
        ),
        (
            "DELETE",
            "/api/v1/dictionary/{entry_id}",
            e(dictionary.delete_entry, scope="dictionary:write", editor=True),
        ),
        ("GET", "/api/v1/usage/summary", e(usage.summary, scope="workspace:read")),
        ("GET", "/api/v1/usage/by-language", e(usage.by_language, scope="workspace:read")),
        ("GET", "/api/v1/usage/activity", e(usage.activity, scope="workspace:read")),
    ]
    routes: list[BaseRoute] = [Route(path, fn, methods=[method]) for method, path, fn in table]
    routes.append(_files_route(sandbox))
    return routes


def _files_route(sandbox: Sandbox) -> Route:
    return Route(
        FILES_PREFIX + "/{token}/{filename}",
        functools.partial(serve_file, sandbox),
        methods=["GET"],
    )


def _endpoint(
    sandbox: Sandbox,
    handler: Handler,
    *,
    scope: Scope | None,
    authenticated: bool,
    editor: bool,
) -> Endpoint:
    # State is read through `sandbox` at request time, so that a reset is seen at once.
    async def endpoint(request: Request) -> Response:
        body = await request.body()
        with sandbox.lock:
            now = sandbox.clock.now()
            sandbox.engine.sync(now)
            try:
                caller = (
                    authorize(
                        sandbox.keys,
                        sandbox.store.workspace.id,
                        authorization=request.headers.get("authorization"),
                        workspace_header=request.headers.get("x-workspace-id"),
                        scope=scope,
                        editor=editor,
                    )
                    if authenticated
                    else None
                )
                call = ApiCall(
                    request,
                    now,
                    sandbox.store,
                    sandbox.engine,
                    caller,
                    body,
                    voice=sandbox.voice,
                    files_url=sandbox.files_url,
                )
                return handler(call)
            except ApiError as error:
                return error_response(now, error)
            except SchemaError as error:
                return schema_error_response(error)

    return endpoint
