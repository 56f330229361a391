"""OnePinClient: typed async access to the OnePin API over one `httpx.AsyncClient`.

Responsibilities kept here and nowhere else:
- authentication headers (the key never leaves the `Authorization` header: not in logs, errors
  or reprs), `X-Workspace-Id` only where the API accepts it and only when configured;
- the success envelope (`{data, meta, pagination}`) is unwrapped in `_unwrap`, every non-2xx
  becomes `OnePinAPIError` through `errors.parse_error`;
- path ids are validated or encoded before any request, so no argument can reach another path;
- a per-attempt deadline enforced with anyio (httpx timeouts don't apply to in-process ASGI
  transports, and a slow body must not outlive the deadline either);
- retries, for requests that are safe to repeat only (see `RETRY_SAFE_POSTS` and `RetryPolicy`).
"""

from __future__ import annotations

import enum
import json
import logging
import random as _random
import re
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import quote, urlsplit

import anyio
from pydantic import BaseModel, ValidationError

from onepin_mcp import __version__
from onepin_mcp.api.errors import (
    OnePinAPIError,
    OnePinAuthConfigError,
    OnePinConnectionError,
    OnePinError,
    OnePinFileError,
    OnePinInputError,
    OnePinResponseError,
    OnePinTimeoutError,
    OnePinTransportError,
    parse_error,
    redact,
)
from onepin_mcp.api.models import (
    Balance,
    DictionaryEntry,
    DictionaryLanguage,
    DownloadUrl,
    Estimate,
    NameAvailability,
    NodeType,
    Page,
    PageInfo,
    PlanLimits,
    PronunciationSuggestion,
    Run,
    RunAnalysis,
    RunData,
    RunDetail,
    RunListItem,
    RunOutputs,
    RunOverview,
    RunSortField,
    RunsSummary,
    RunState,
    RunStatus,
    RunStep,
    SortOrder,
    Template,
    Upload,
    UsageActivityPage,
    UsageByLanguage,
    UsageEvent,
    UsageRange,
    UsageSummary,
    UsageView,
    Voice,
    Whoami,
    Workflow,
    WorkflowDefinition,
    WorkflowListItem,
    WorkflowListStatus,
    WorkflowMarkdown,
    WorkflowSortField,
    WorkflowValidation,
)
from onepin_mcp.api.settings import Settings

if TYPE_CHECKING:
    import httpx
else:

    class _HttpxOnFirstUse:
        """`httpx`, imported the first time this module reads one of its names, which then
        names the module itself: a server start imports this module, but its first request
        comes later (a start's first answer, `tools/list`, makes none), and the SDK doesn't
        import httpx, so it would be a start's alone (about 6 ms)."""

        def __getattr__(self, name: str) -> Any:
            global httpx
            import httpx as module

            httpx = module
            return getattr(module, name)

    httpx = _HttpxOnFirstUse()

logger = logging.getLogger("onepin_mcp.api.client")

API_PREFIX: Final = "/api/v1"

# Statuses worth a second attempt: the server (or its gateway) says "not now", not "no".
# 500 is deliberately absent: it usually means a bug that a retry would only repeat.
RETRYABLE_STATUSES: Final = frozenset({429, 502, 503, 504})

# POSTs that may be repeated safely. cancel and pause are idempotent by contract (a repeat
# returns the run unchanged); preview, estimate and validate compute without saving. Never here:
# start (billable, no idempotency key), create and duplicate (each call makes a workflow),
# resume (a repeat after success is a 409), and PUT/PATCH/DELETE (writes, which are repeated only
# when the agent decides to, never behind its back).
RETRY_SAFE_POSTS: Final = frozenset({"cancel", "pause", "preview", "estimate", "validate"})

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_AUDIO_ID = re.compile(r"[0-9a-fA-F]{16}")
# Characters that could end a path segment or be decoded into one by the server; percent
# signs too, since ASGI servers route on the decoded path and would turn %2F back into "/".
_FORBIDDEN_IN_SEGMENT = frozenset("/\\?#%")
_MAX_NODE_ID_CHARS = 200

ModelT = TypeVar("ModelT", bound=BaseModel)


class Unset(enum.Enum):
    """Marks an argument that was not given, where `None` is a meaningful value (it clears)."""

    UNSET = "UNSET"


UNSET: Final = Unset.UNSET

DefinitionInput = WorkflowDefinition | Mapping[str, Any]
# A tuple, not a list: tuples are covariant, which is what httpx's parameter type needs.
QueryPairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class RetryPolicy:
    """How requests that are safe to repeat are retried.

    Delays use full-jitter exponential backoff (`random() * min(max_delay_s, base_delay_s *
    2**(retry - 1))`) and never undercut a `Retry-After`: the wait is at least what the server
    asked for. A `Retry-After` longer than `max_delay_s` ends the retries at once, so the caller
    (an agent) sees `retry_after` and decides, instead of the client blocking for minutes.
    `total_budget_s` bounds the attempts plus the waits: no retry starts whose wait would end
    past it. `sleep` and `random` are injectable so tests neither sleep nor depend on chance.
    """

    max_attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    total_budget_s: float = 30.0
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    random: Callable[[], float] = _random.random

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base_delay_s, self.max_delay_s, self.total_budget_s) < 0:
            raise ValueError("delays and budget must not be negative")

    @classmethod
    def disabled(cls) -> RetryPolicy:
        return cls(max_attempts=1)

    def delay_before_retry(self, retry_number: int, retry_after: float | None) -> float | None:
        """Seconds to wait before retry `retry_number` (1 = the first), or None to stop."""
        if retry_after is not None and retry_after > self.max_delay_s:
            return None
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0 ** (retry_number - 1))
        jittered = self.random() * ceiling
        return max(jittered, retry_after or 0.0)


_NO_RETRY: Final = RetryPolicy.disabled()


@dataclass(frozen=True)
class _Envelope:
    data: Any
    pagination: Mapping[str, Any] | None
    request_id: str | None
    status: int
    method: str
    path: str


# How much of a storage error body is read to find its code: an S3-style error is a few hundred
# bytes, and nothing more of it is kept.
_MAX_STORAGE_ERROR_BYTES: Final = 4096
_STORAGE_CODE = re.compile(r"<Code>([A-Za-z][A-Za-z0-9.]{0,63})</Code>")


@dataclass(frozen=True)
class PresignedFile:
    """A file fetched from a presigned link, or word that it is over the caller's size cap.

    `content` is None when the file is larger than the cap: then `size_bytes` is its size when
    storage declared it (Content-Length), else None (the transfer was stopped at the cap)."""

    content: bytes | None
    content_type: str | None
    size_bytes: int | None

    @property
    def over_cap(self) -> bool:
        return self.content is None


def user_agent() -> str:
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    return f"onepin-mcp/{__version__} httpx/{httpx.__version__} python/{python}"


class OnePinClient:
    """Typed async client for the OnePin API. One instance per server; use as a context manager.

    Parameters are named as the API names them. Every method raises `OnePinInputError` for a
    malformed id (before any request), `OnePinAuthConfigError` when no key is configured,
    `OnePinAPIError` for a non-2xx answer, `OnePinConnectionError` / `OnePinTimeoutError` when
    no answer arrived (`.sent` says whether it may have been processed), and
    `OnePinResponseError` for a 2xx that isn't what the API documents.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._settings = settings
        self._retry = retry or RetryPolicy()
        self._secret = settings.api_key.get_secret_value() if settings.api_key else ""
        # Requests go to absolute URLs made here (the base URL is normalized: no trailing
        # slash, query or fragment): httpx parses a relative one, then parses it again joined
        # to its base_url, about 16 µs of every call.
        self._url_root = settings.base_url.rstrip("/")
        self._transport = transport
        self._built: httpx.AsyncClient | None = None
        self._built_files: httpx.AsyncClient | None = None

    @property
    def _http(self) -> httpx.AsyncClient:
        # Built on the first request, not at start-up: httpx loads the system's CA bundle into
        # an SSL context when a client is made (about 60 ms), and a server's start is the wait
        # a user feels before the first tools/list, which needs no OnePin request.
        if self._built is None:
            settings = self._settings
            headers = {"User-Agent": user_agent(), "Accept": "application/json"}
            if self._secret:
                headers["Authorization"] = f"Bearer {self._secret}"
            self._built = httpx.AsyncClient(
                base_url=settings.base_url,
                headers=headers,
                timeout=httpx.Timeout(
                    connect=settings.connect_timeout_s,
                    read=settings.read_timeout_s,
                    write=settings.read_timeout_s,
                    pool=settings.connect_timeout_s,
                ),
                transport=self._transport,
                # A redirect would carry the key to wherever it points; OnePin doesn't redirect.
                follow_redirects=False,
            )
        return self._built

    @property
    def _files_http(self) -> httpx.AsyncClient:
        """The client for presigned links: the same transport (so the in-process sandbox serves
        its files too), but no base URL and no default header beyond the User-Agent. A presigned
        URL carries its own signature and points at a storage host; the API key, or any other
        OnePin header, must never travel there, and a separate client cannot send what it was
        never given. It follows redirects, which the API client must not: it has no secret to
        carry anywhere."""
        if self._built_files is None:
            settings = self._settings
            self._built_files = httpx.AsyncClient(
                headers={"User-Agent": user_agent()},
                timeout=httpx.Timeout(
                    connect=settings.connect_timeout_s,
                    read=settings.read_timeout_s,
                    write=settings.read_timeout_s,
                    pool=settings.connect_timeout_s,
                ),
                transport=self._transport,
                follow_redirects=True,
                max_redirects=5,
            )
        return self._built_files

    def __repr__(self) -> str:
        return f"OnePinClient(base_url={self._settings.base_url!r})"

    @property
    def settings(self) -> Settings:
        return self._settings

    async def __aenter__(self) -> OnePinClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._built is not None:
            await self._built.aclose()
        if self._built_files is not None:
            await self._built_files.aclose()

    # --- account and catalog ----------------------------------------------------------------

    async def whoami(self) -> Whoami:
        """GET /auth/whoami: who the key belongs to, its workspace and scopes."""
        envelope = await self._request("GET", "/auth/whoami", workspace_scoped=False)
        return self._model(Whoami, envelope)

    async def get_credits(self) -> Balance:
        """GET /users/me/credits."""
        envelope = await self._request("GET", "/users/me/credits", workspace_scoped=False)
        return self._model(Balance, envelope)

    async def get_limits(self) -> PlanLimits:
        """GET /users/me/limits."""
        envelope = await self._request("GET", "/users/me/limits", workspace_scoped=False)
        return self._model(PlanLimits, envelope)

    async def list_nodes(self) -> list[NodeType]:
        """GET /nodes: the whole node catalog (the API needs no key for it)."""
        envelope = await self._request("GET", "/nodes", workspace_scoped=False, requires_key=False)
        return self._models(NodeType, envelope)

    async def list_voices(
        self,
        *,
        search: str | None = None,
        language: Sequence[str] | None = None,
        gender: Sequence[str] | None = None,
        age: Sequence[str] | None = None,
        accent: Sequence[str] | None = None,
        category: Sequence[str] | None = None,
        provider: Sequence[str] | None = None,
        model: Sequence[str] | None = None,
        source: Sequence[str] | None = None,
        favorites_only: bool | None = None,
        sort: str | None = None,
        order: SortOrder | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> Page[Voice]:
        """GET /voices (counted list; multi-value filters are repeated keys)."""
        params = _query(
            search=search,
            language=_repeated(language),
            gender=_repeated(gender),
            age=_repeated(age),
            accent=_repeated(accent),
            category=_repeated(category),
            provider=_repeated(provider),
            model=_repeated(model),
            source=_repeated(source),
            favorites_only=favorites_only,
            sort=sort,
            order=order,
            offset=offset,
            limit=limit,
        )
        envelope = await self._request("GET", "/voices", params=params)
        return self._page(Voice, envelope, offset=offset, limit=limit)

    async def list_templates(
        self,
        *,
        search: str | None = None,
        category: Sequence[str] | None = None,
        sort: str | None = None,
        favorites_only: bool | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> Page[Template]:
        """GET /templates: the public template gallery."""
        params = _query(
            search=search,
            category=_repeated(category),
            sort=sort,
            favorites_only=favorites_only,
            offset=offset,
            limit=limit,
        )
        envelope = await self._request("GET", "/templates", params=params, workspace_scoped=False)
        return self._page(Template, envelope, offset=offset, limit=limit)

    # --- workflows --------------------------------------------------------------------------

    async def list_workflows(
        self,
        *,
        search: str | None = None,
        status: WorkflowListStatus | None = None,
        sort: Sequence[WorkflowSortField] | None = None,
        order: Sequence[SortOrder] | None = None,
        last_run_after: datetime | None = None,
        last_run_before: datetime | None = None,
        has_failed_run: bool | None = None,
        include_definition: bool | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> Page[WorkflowListItem]:
        """GET /workflows. `sort` and `order` are parallel lists, sent as repeated keys."""
        params = _query(
            status=status,
            search=search,
            sort=_repeated(sort),
            order=_repeated(order),
            last_run_after=_aware("last_run_after", last_run_after),
            last_run_before=_aware("last_run_before", last_run_before),
            has_failed_run=has_failed_run,
            include_definition=include_definition,
            offset=offset,
            limit=limit,
        )
        envelope = await self._request("GET", "/workflows", params=params)
        return self._page(WorkflowListItem, envelope, offset=offset, limit=limit)

    async def create_workflow(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        definition: DefinitionInput | None = None,
    ) -> Workflow:
        """POST /workflows. Never retried: each call creates a workflow."""
        body = _body(name=name, description=description, definition=_definition(definition))
        envelope = await self._request("POST", "/workflows", json_body=body or None)
        return self._model(Workflow, envelope)

    async def check_name_availability(
        self, name: str, *, exclude_id: str | None = None
    ) -> NameAvailability:
        """GET /workflows/name-availability (deprecated by OnePin: always available)."""
        params = _query(
            name=name,
            exclude_id=_uuid("exclude_id", exclude_id) if exclude_id is not None else None,
        )
        envelope = await self._request("GET", "/workflows/name-availability", params=params)
        return self._model(NameAvailability, envelope)

    async def validate_workflow(self, definition: DefinitionInput) -> WorkflowValidation:
        """POST /workflows/validate: every run-start gate, nothing saved."""
        envelope = await self._request(
            "POST",
            "/workflows/validate",
            json_body={"definition": _definition(definition)},
            retry_safe=True,
        )
        return self._model(WorkflowValidation, envelope)

    async def get_workflow(self, workflow_id: str) -> Workflow:
        """GET /workflows/{workflow_id}."""
        envelope = await self._request("GET", _workflow_path(workflow_id))
        return self._model(Workflow, envelope)

    async def replace_workflow(
        self,
        workflow_id: str,
        *,
        name: str,
        definition: DefinitionInput,
        description: str | Unset | None = UNSET,
    ) -> Workflow:
        """PUT /workflows/{workflow_id}. `description=None` clears it; omitted, it isn't sent."""
        body: dict[str, Any] = {"name": name, "definition": _definition(definition)}
        if description is not UNSET:
            body["description"] = description
        envelope = await self._request("PUT", _workflow_path(workflow_id), json_body=body)
        return self._model(Workflow, envelope)

    async def update_workflow(
        self,
        workflow_id: str,
        *,
        name: str | Unset = UNSET,
        description: str | Unset | None = UNSET,
        definition: DefinitionInput | Unset = UNSET,
    ) -> Workflow:
        """PATCH /workflows/{workflow_id}: only the given fields; `description=None` clears it."""
        body: dict[str, Any] = {}
        if name is not UNSET:
            body["name"] = name
        if description is not UNSET:
            body["description"] = description
        if definition is not UNSET:
            body["definition"] = _definition(definition)
        if not body:
            raise OnePinInputError(
                "update_workflow", "give at least one of name, description, definition"
            )
        path = _workflow_path(workflow_id)
        envelope = await self._request("PATCH", path, json_body=body)
        return self._model(Workflow, envelope)

    async def delete_workflow(self, workflow_id: str) -> dict[str, Any]:
        """DELETE /workflows/{workflow_id} (soft delete). Not retried: a repeat would 404."""
        envelope = await self._request("DELETE", _workflow_path(workflow_id))
        return envelope.data if isinstance(envelope.data, dict) else {}

    async def duplicate_workflow(self, workflow_id: str) -> Workflow:
        """POST /workflows/{workflow_id}/duplicate (201). Never retried: each call makes a copy."""
        envelope = await self._request("POST", _workflow_path(workflow_id, "duplicate"))
        return self._model(Workflow, envelope)

    async def estimate_workflow(
        self,
        workflow_id: str,
        *,
        script_text: str | None = None,
        source_language: str | None = None,
    ) -> Estimate:
        """POST /workflows/{workflow_id}/estimate (older alias of preview_run)."""
        body = _body(script_text=script_text, source_language=source_language)
        envelope = await self._request(
            "POST", _workflow_path(workflow_id, "estimate"), json_body=body or None, retry_safe=True
        )
        return self._model(Estimate, envelope)

    async def get_workflow_markdown(self, workflow_id: str) -> WorkflowMarkdown:
        """GET /workflows/{workflow_id}/markdown: a readable description of the pipeline."""
        envelope = await self._request("GET", _workflow_path(workflow_id, "markdown"))
        return self._model(WorkflowMarkdown, envelope)

    async def list_workflow_uploads(
        self, workflow_id: str, *, offset: int = 0, limit: int = 20
    ) -> Page[Upload]:
        """GET /workflows/{workflow_id}/uploads (not counted: `total` is None)."""
        params = _query(offset=offset, limit=limit)
        envelope = await self._request("GET", _workflow_path(workflow_id, "uploads"), params=params)
        return self._page(Upload, envelope, offset=offset, limit=limit)

    # --- runs -------------------------------------------------------------------------------

    async def list_runs(
        self,
        workflow_id: str,
        *,
        status: RunStatus | Sequence[RunStatus] | None = None,
        search: str | None = None,
        sort: RunSortField | None = None,
        order: SortOrder | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> Page[RunListItem]:
        """GET /workflows/{workflow_id}/runs. `status` is sent comma-joined, as the API wants."""
        if isinstance(status, str):
            status_filter: str | None = status
        elif status is not None:
            if not status:
                raise OnePinInputError("status", "give at least one status or None")
            status_filter = ",".join(status)
        else:
            status_filter = None
        params = _query(
            status=status_filter, search=search, sort=sort, order=order, offset=offset, limit=limit
        )
        envelope = await self._request("GET", _workflow_path(workflow_id, "runs"), params=params)
        return self._page(RunListItem, envelope, offset=offset, limit=limit)

    async def start_run(
        self,
        workflow_id: str,
        *,
        script_text: str | None = None,
        source_language: str | None = None,
    ) -> Run:
        """POST /workflows/{workflow_id}/runs (202). Billable and never retried.

        After an `OnePinTransportError` with `.sent` true the run may exist: look for it with
        `list_runs` before starting again.
        """
        body = _body(script_text=script_text, source_language=source_language)
        envelope = await self._request(
            "POST", _workflow_path(workflow_id, "runs"), json_body=body or None
        )
        return self._model(Run, envelope)

    async def preview_run(
        self,
        workflow_id: str,
        *,
        script_text: str | None = None,
        source_language: str | None = None,
    ) -> Estimate:
        """POST /workflows/{workflow_id}/runs/preview: what a run would cost; no charge."""
        body = _body(script_text=script_text, source_language=source_language)
        envelope = await self._request(
            "POST",
            _workflow_path(workflow_id, "runs", "preview"),
            json_body=body or None,
            retry_safe=True,
        )
        return self._model(Estimate, envelope)

    async def get_runs_summary(
        self,
        workflow_id: str,
        *,
        from_: datetime | None = None,
        to: datetime | None = None,
    ) -> RunsSummary:
        """GET /workflows/{workflow_id}/runs/summary; `from_` is sent as `from` (a keyword)."""
        params = _query(**{"from": _aware("from_", from_), "to": _aware("to", to)})
        path = _workflow_path(workflow_id, "runs", "summary")
        envelope = await self._request("GET", path, params=params)
        return self._model(RunsSummary, envelope)

    async def get_run(self, workflow_id: str, run_id: str) -> RunDetail:
        """GET …/runs/{run_id}: the full record, with the definition snapshot."""
        envelope = await self._request("GET", _run_path(workflow_id, run_id))
        return self._model(RunDetail, envelope)

    async def get_run_status(self, workflow_id: str, run_id: str) -> RunState:
        """GET …/runs/{run_id}/status: the cheap call to poll."""
        envelope = await self._request("GET", _run_path(workflow_id, run_id, "status"))
        return self._model(RunState, envelope)

    async def cancel_run(self, workflow_id: str, run_id: str) -> Run:
        """POST …/runs/{run_id}/cancel. Idempotent: a finished run comes back unchanged."""
        envelope = await self._request(
            "POST", _run_path(workflow_id, run_id, "cancel"), retry_safe=True
        )
        return self._model(Run, envelope)

    async def pause_run(self, workflow_id: str, run_id: str) -> Run:
        """POST …/runs/{run_id}/pause. Idempotent on a paused run."""
        envelope = await self._request(
            "POST", _run_path(workflow_id, run_id, "pause"), retry_safe=True
        )
        return self._model(Run, envelope)

    async def resume_run(self, workflow_id: str, run_id: str) -> Run:
        """POST …/runs/{run_id}/resume. Not retried: a repeat after success answers 409."""
        envelope = await self._request("POST", _run_path(workflow_id, run_id, "resume"))
        return self._model(Run, envelope)

    async def get_run_steps(
        self,
        workflow_id: str,
        run_id: str,
        *,
        include_result: bool | None = None,
        node_type: str | None = None,
        node_id: str | None = None,
    ) -> list[RunStep]:
        """GET …/runs/{run_id}/steps, in execution order (not paged)."""
        params = _query(include_result=include_result, node_type=node_type, node_id=node_id)
        path = _run_path(workflow_id, run_id, "steps")
        envelope = await self._request("GET", path, params=params)
        return self._models(RunStep, envelope)

    async def get_run_overview(self, workflow_id: str, run_id: str) -> RunOverview:
        """GET …/runs/{run_id}/overview: metrics, validators, audio by language, node states."""
        envelope = await self._request("GET", _run_path(workflow_id, run_id, "overview"))
        return self._model(RunOverview, envelope)

    async def get_run_analysis(self, workflow_id: str, run_id: str) -> RunAnalysis:
        """GET …/runs/{run_id}/analysis: delivered audio, validator scores, credits per node."""
        envelope = await self._request("GET", _run_path(workflow_id, run_id, "analysis"))
        return self._model(RunAnalysis, envelope)

    async def get_run_data(
        self,
        workflow_id: str,
        run_id: str,
        *,
        search: str | None = None,
        language: str | None = None,
        include_dropped: bool | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> RunData:
        """GET …/runs/{run_id}/data: one page of rows; `.page` says how to continue."""
        params = _query(
            search=search,
            language=language,
            include_dropped=include_dropped,
            offset=offset,
            limit=limit,
        )
        path = _run_path(workflow_id, run_id, "data")
        envelope = await self._request("GET", path, params=params)
        if not isinstance(envelope.data, Mapping):
            raise self._response_error(envelope, "'data' is not an object")
        rows = envelope.data.get("rows")
        page = self._page_info(
            envelope, count=len(rows) if isinstance(rows, list) else 0, offset=offset, limit=limit
        )
        return self._validate(RunData, {**envelope.data, "page": page}, envelope)

    async def get_run_outputs(self, workflow_id: str, run_id: str) -> RunOutputs:
        """GET …/runs/{run_id}/outputs: one output per sink node."""
        envelope = await self._request("GET", _run_path(workflow_id, run_id, "outputs"))
        return self._model(RunOutputs, envelope)

    async def get_run_download_url(self, workflow_id: str, run_id: str) -> DownloadUrl:
        """GET …/runs/{run_id}/download: presigned ZIP of the run's audio (409 unless completed)."""
        envelope = await self._request("GET", _run_path(workflow_id, run_id, "download"))
        return self._model(DownloadUrl, envelope)

    async def get_node_download_url(
        self, workflow_id: str, run_id: str, node_id: str
    ) -> DownloadUrl:
        """GET …/runs/{run_id}/nodes/{node_id}/download: one output node's ZIP."""
        path = _run_path(workflow_id, run_id, "nodes", _node_segment(node_id), "download")
        envelope = await self._request("GET", path)
        return self._model(DownloadUrl, envelope)

    async def get_audio_url(self, workflow_id: str, run_id: str, audio_id: str) -> DownloadUrl:
        """GET …/runs/{run_id}/audio/{audio_id}/url: a fresh playback URL for one clip."""
        path = _run_path(workflow_id, run_id, "audio", _audio_segment(audio_id), "url")
        envelope = await self._request("GET", path)
        return self._model(DownloadUrl, envelope)

    # --- presigned files ---------------------------------------------------------------------

    # --- pronunciation dictionary ------------------------------------------------------------

    async def list_dictionary_entries(
        self,
        language: str,
        *,
        method: Sequence[str] | None = None,
        sort: str | None = None,
        order: SortOrder | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> Page[DictionaryEntry]:
        """GET /dictionary: one locale's entries (`limit` at most 50)."""
        params = _query(
            language=language,
            method=_repeated(method),
            sort=sort,
            order=order,
            offset=offset,
            limit=limit,
        )
        envelope = await self._request("GET", "/dictionary", params=params)
        return self._page(DictionaryEntry, envelope, offset=offset, limit=limit)

    async def search_dictionary_entries(
        self,
        search: str,
        *,
        language: Sequence[str] | None = None,
        sort: str | None = None,
        order: SortOrder | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> Page[DictionaryEntry]:
        """GET /dictionary/search: entries whose word contains `search`, in any or the given
        locales."""
        params = _query(
            search=search,
            language=_repeated(language),
            sort=sort,
            order=order,
            offset=offset,
            limit=limit,
        )
        envelope = await self._request("GET", "/dictionary/search", params=params)
        return self._page(DictionaryEntry, envelope, offset=offset, limit=limit)

    async def list_dictionary_languages(self) -> list[DictionaryLanguage]:
        """GET /dictionary/languages: the locales that have entries, with their counts."""
        envelope = await self._request("GET", "/dictionary/languages")
        return self._models(DictionaryLanguage, envelope)

    async def suggest_pronunciation(self, word: str, language: str) -> PronunciationSuggestion:
        """POST /dictionary/suggest-pronunciation: a respelling to review; nothing is saved, so
        it is retried like a read."""
        envelope = await self._request(
            "POST",
            "/dictionary/suggest-pronunciation",
            json_body={"word": word, "language": language},
            retry_safe=True,
        )
        return self._model(PronunciationSuggestion, envelope)

    async def create_dictionary_entry(
        self,
        *,
        word: str,
        language: str,
        method: str = "spelled",
        pronunciation: str | None = None,
        ipa: str | None = None,
        description: str | None = None,
        upload_id: str | None = None,
    ) -> DictionaryEntry:
        """POST /dictionary (201; 409 when the word already has an entry in that locale).
        Never retried: a repeat after a lost answer would be a 409, not the entry."""
        body = _body(
            word=word,
            method=method,
            language=language,
            pronunciation=pronunciation,
            ipa=ipa,
            description=description,
            upload_id=upload_id,
        )
        envelope = await self._request("POST", "/dictionary", json_body=body)
        return self._model(DictionaryEntry, envelope)

    async def update_dictionary_entry(
        self,
        entry_id: str,
        *,
        word: str | Unset = UNSET,
        language: str | Unset = UNSET,
        method: str | Unset = UNSET,
        pronunciation: str | Unset | None = UNSET,
        ipa: str | Unset | None = UNSET,
        description: str | Unset | None = UNSET,
    ) -> DictionaryEntry:
        """PUT /dictionary/{entry_id}: a partial update, only the given fields (None clears
        pronunciation, ipa or description). Not retried, as every write."""
        fields: dict[str, object] = {
            "word": word,
            "language": language,
            "method": method,
            "pronunciation": pronunciation,
            "ipa": ipa,
            "description": description,
        }
        body = {name: value for name, value in fields.items() if value is not UNSET}
        if not body:
            raise OnePinInputError("update_dictionary_entry", "give at least one field to change")
        envelope = await self._request("PUT", _dictionary_path(entry_id), json_body=body)
        return self._model(DictionaryEntry, envelope)

    async def delete_dictionary_entry(self, entry_id: str) -> dict[str, Any]:
        """DELETE /dictionary/{entry_id}. Not retried: a repeat would 404."""
        envelope = await self._request("DELETE", _dictionary_path(entry_id))
        return envelope.data if isinstance(envelope.data, dict) else {}

    # --- usage --------------------------------------------------------------------------------

    async def get_usage_summary(
        self,
        *,
        range: UsageRange | None = None,
        activity_view: UsageView | None = None,
        timezone: str | None = None,
    ) -> UsageSummary:
        """GET /usage/summary: credits, runs, characters and audio over 30/60/90 local days."""
        params = _query(range=range, activity_view=activity_view, timezone=timezone)
        envelope = await self._request("GET", "/usage/summary", params=params)
        return self._model(UsageSummary, envelope)

    async def get_usage_by_language(
        self,
        *,
        range: UsageRange | None = None,
        activity_view: UsageView | None = None,
        timezone: str | None = None,
    ) -> UsageByLanguage:
        """GET /usage/by-language; `activity_view`, when given, sets the period instead of
        `range`."""
        params = _query(range=range, activity_view=activity_view, timezone=timezone)
        envelope = await self._request("GET", "/usage/by-language", params=params)
        return self._model(UsageByLanguage, envelope)

    async def list_usage_activity(
        self,
        *,
        range: UsageRange | None = None,
        type: str | None = None,
        user_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
        timezone: str | None = None,
    ) -> UsageActivityPage:
        """GET /usage/activity: workspace events newest first, a cursor per page."""
        params = _query(
            range=range,
            type=type,
            user_id=user_id,
            limit=limit,
            cursor=cursor,
            timezone=timezone,
        )
        envelope = await self._request("GET", "/usage/activity", params=params)
        items = self._models(UsageEvent, envelope)
        following = (envelope.pagination or {}).get("next")
        next_cursor = (
            httpx.URL(following).params.get("cursor") if isinstance(following, str) else None
        )
        return UsageActivityPage(items=items, next_cursor=next_cursor or None)

    async def fetch_presigned(self, url: str, *, max_bytes: int) -> PresignedFile:
        """GET a presigned link (from `get_audio_url` and its like), streamed, at most `max_bytes`.

        Sent without the API key or any OnePin header (see `_files_http`), in one attempt
        within the request deadline: a link lives 15 minutes, and a caller that fails simply
        asks for a fresh one. A file over `max_bytes` is not read further (its declared length
        is checked before any byte of it). Raises `OnePinFileError` for a link that is not
        http(s), a non-2xx answer, or no answer; the URL itself appears in no error or log
        line, since its signature grants access for as long as it lives.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OnePinFileError("OnePin sent a link that is not an http(s) URL.")
        if parts.username is not None or parts.password is not None:
            raise OnePinFileError("OnePin sent a link with credentials in it; it was not fetched.")
        timeout_s = self._settings.request_timeout_s
        try:
            with anyio.fail_after(timeout_s):
                async with self._files_http.stream("GET", url) as response:
                    return await self._read_capped(response, max_bytes, parts.hostname)
        except TimeoutError:
            problem = f"{parts.hostname} did not send the file within {timeout_s:g} s."
        except httpx.TooManyRedirects:
            problem = f"{parts.hostname} redirected too many times."
        except httpx.HTTPError as exc:
            problem = f"{parts.hostname} was unreachable ({type(exc).__name__})."
        logger.debug("Presigned GET to %s failed: %s", parts.hostname, problem)
        raise OnePinFileError(problem)

    async def _read_capped(
        self, response: httpx.Response, max_bytes: int, host: str
    ) -> PresignedFile:
        if not response.is_success:
            head = b""
            async for chunk in response.aiter_bytes():
                head += chunk
                if len(head) >= _MAX_STORAGE_ERROR_BYTES:
                    break
            found = _STORAGE_CODE.search(head[:_MAX_STORAGE_ERROR_BYTES].decode("latin-1"))
            logger.debug("Presigned GET to %s -> %d", host, response.status_code)
            raise OnePinFileError(
                f"{host} refused the link with HTTP {response.status_code}.",
                status=response.status_code,
                code=found.group(1) if found else None,
            )
        content_type = response.headers.get("content-type")
        declared = _content_length(response.headers.get("content-length"))
        if declared is not None and declared > max_bytes:
            return PresignedFile(None, content_type, declared)
        received = bytearray()
        async for chunk in response.aiter_bytes():
            received += chunk
            if len(received) > max_bytes:
                return PresignedFile(None, content_type, declared)
        logger.debug("Presigned GET to %s -> %d bytes", host, len(received))
        return PresignedFile(bytes(received), content_type, len(received))

    # --- the one request path -----------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: QueryPairs | None = None,
        json_body: Mapping[str, Any] | None = None,
        retry_safe: bool | None = None,
        workspace_scoped: bool = True,
        requires_key: bool = True,
    ) -> _Envelope:
        """Send one logical request (with retries when safe) and return its unwrapped envelope.

        `path` is relative to /api/v1 and already validated. `retry_safe` defaults to True for
        GET only; POSTs opt in explicitly.
        """
        if requires_key and not self._secret:
            raise OnePinAuthConfigError()
        full_path = API_PREFIX + path
        headers: dict[str, str] = {}
        if workspace_scoped and self._settings.workspace_id:
            headers["X-Workspace-Id"] = self._settings.workspace_id
        retry_safe = method == "GET" if retry_safe is None else retry_safe
        policy = self._retry if retry_safe else _NO_RETRY

        spent_s = 0.0
        attempt = 0
        while True:
            attempt += 1
            started = anyio.current_time()
            outcome = await self._attempt(method, full_path, params, json_body, headers, attempt)
            if isinstance(outcome, _Envelope):
                return outcome
            spent_s += anyio.current_time() - started
            outcome.attempts = attempt
            delay = _retry_delay(policy, outcome, attempt)
            if delay is None or spent_s + delay > policy.total_budget_s:
                raise outcome
            logger.info(
                "Retrying %s %s in %.2f s after %s (attempt %d of %d)",
                method,
                full_path,
                delay,
                _failure_label(outcome),
                attempt + 1,
                policy.max_attempts,
            )
            await policy.sleep(delay)
            spent_s += delay

    async def _attempt(
        self,
        method: str,
        path: str,
        params: QueryPairs | None,
        json_body: Mapping[str, Any] | None,
        headers: Mapping[str, str],
        attempt: int,
    ) -> _Envelope | OnePinTransportError | OnePinAPIError | OnePinResponseError:
        """One attempt: the envelope on success, else the failure for the retry loop to judge."""
        started = anyio.current_time()
        try:
            response = await self._send(method, path, params, json_body, headers)
        except OnePinTransportError as exc:
            elapsed_ms = (anyio.current_time() - started) * 1000
            logger.debug(
                "%s %s failed after %.0f ms (attempt %d): %s",
                method,
                path,
                elapsed_ms,
                attempt,
                type(exc).__name__,
            )
            return exc
        latency_ms = (anyio.current_time() - started) * 1000
        if not response.is_success:
            error = parse_error(
                response.status_code,
                response.headers,
                response.content,
                method,
                path,
                secrets=(self._secret,),
            )
            error.workspace_id = headers.get("X-Workspace-Id")
            logger.debug(
                "%s %s -> %d %s in %.0f ms (attempt %d, request id %s)",
                method,
                path,
                error.status,
                error.code,
                latency_ms,
                attempt,
                error.request_id,
            )
            return error
        try:
            envelope = self._unwrap(response, method, path)
        except OnePinResponseError as exc:
            logger.debug(
                "%s %s -> %d with an unreadable body in %.0f ms (attempt %d)",
                method,
                path,
                response.status_code,
                latency_ms,
                attempt,
            )
            return exc
        logger.debug(
            "%s %s -> %d in %.0f ms (attempt %d, request id %s)",
            method,
            path,
            response.status_code,
            latency_ms,
            attempt,
            envelope.request_id,
        )
        return envelope

    async def _send(
        self,
        method: str,
        path: str,
        params: QueryPairs | None,
        json_body: Mapping[str, Any] | None,
        headers: Mapping[str, str],
    ) -> httpx.Response:
        """One attempt, body included, within the per-attempt deadline."""
        timeout_s = self._settings.request_timeout_s
        writes = method != "GET"
        try:
            with anyio.fail_after(timeout_s):
                return await self._http.request(
                    method,
                    self._url_root + path,
                    params=params or None,
                    json=json_body,
                    headers=headers,
                )
        except TimeoutError:
            raise self._timeout_error(method, path, timeout_s, sent=True, writes=writes) from None
        except (httpx.ConnectTimeout, httpx.PoolTimeout):
            raise self._timeout_error(method, path, timeout_s, sent=False, writes=writes) from None
        except httpx.TimeoutException:
            raise self._timeout_error(method, path, timeout_s, sent=True, writes=writes) from None
        except (httpx.ConnectError, httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
            raise OnePinConnectionError(
                f"Could not connect to OnePin at {self._settings.base_url} for {method} {path} "
                f"({self._describe(exc)}). Nothing was sent.",
                method=method,
                path=path,
                sent=False,
            ) from None
        except httpx.RequestError as exc:
            text = (
                f"The connection to OnePin was lost during {method} {path} before a response "
                f"arrived ({self._describe(exc)})."
            )
            if writes:
                text += " The request may have been processed; check before repeating it."
            raise OnePinConnectionError(text, method=method, path=path, sent=True) from None

    def _timeout_error(
        self, method: str, path: str, timeout_s: float, *, sent: bool, writes: bool
    ) -> OnePinTimeoutError:
        if not sent:
            text = (
                f"Connecting to OnePin at {self._settings.base_url} timed out for "
                f"{method} {path}. Nothing was sent."
            )
        else:
            text = f"OnePin did not answer {method} {path} within {timeout_s:g} s."
            if writes:
                text += " The request may have been processed; check before repeating it."
        return OnePinTimeoutError(text, method=method, path=path, sent=sent)

    def _describe(self, exc: Exception) -> str:
        detail = str(exc).strip()
        name = type(exc).__name__
        return redact(f"{name}: {detail[:200]}" if detail else name, (self._secret,))

    def _unwrap(self, response: httpx.Response, method: str, path: str) -> _Envelope:
        """The single place where the success envelope is read."""
        status = response.status_code
        try:
            payload = json.loads(response.content)
        except (ValueError, RecursionError):
            payload = None
        if not isinstance(payload, Mapping) or "data" not in payload:
            problem = (
                "the body is not JSON" if payload is None else "the body has no 'data' envelope"
            )
            raise self._response_error(_Envelope(None, None, None, status, method, path), problem)
        meta = payload.get("meta")
        request_id = meta.get("request_id") if isinstance(meta, Mapping) else None
        pagination = payload.get("pagination")
        return _Envelope(
            data=payload["data"],
            pagination=pagination if isinstance(pagination, Mapping) else None,
            request_id=request_id if isinstance(request_id, str) else None,
            status=status,
            method=method,
            path=path,
        )

    def _response_error(self, envelope: _Envelope, problem: str) -> OnePinResponseError:
        if envelope.method != "GET":
            # The server said 2xx: whatever the body, the write took effect.
            problem += "; the request itself succeeded, so it has taken effect"
        return OnePinResponseError(
            problem,
            status=envelope.status,
            method=envelope.method,
            path=envelope.path,
            request_id=envelope.request_id,
        )

    def _validate(self, model: type[ModelT], data: Any, envelope: _Envelope) -> ModelT:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise self._response_error(
                envelope, f"'data' does not match {model.__name__} ({_summarize(exc)})"
            ) from None

    def _model(self, model: type[ModelT], envelope: _Envelope) -> ModelT:
        return self._validate(model, envelope.data, envelope)

    def _models(self, model: type[ModelT], envelope: _Envelope) -> list[ModelT]:
        if not isinstance(envelope.data, list):
            raise self._response_error(envelope, "'data' is not a list")
        return [self._validate(model, item, envelope) for item in envelope.data]

    def _page_info(self, envelope: _Envelope, *, count: int, offset: int, limit: int) -> PageInfo:
        pagination = envelope.pagination or {}
        total = pagination.get("total")
        served_limit = pagination.get("limit")
        return PageInfo.compute(
            count=count,
            total=total if isinstance(total, int) else None,
            limit=served_limit if isinstance(served_limit, int) and served_limit > 0 else limit,
            offset=offset,
            has_next_link=(pagination["next"] is not None) if "next" in pagination else None,
        )

    def _page(
        self, model: type[ModelT], envelope: _Envelope, *, offset: int, limit: int
    ) -> Page[ModelT]:
        items = self._models(model, envelope)
        info = self._page_info(envelope, count=len(items), offset=offset, limit=limit)
        return Page(
            items=items,
            total=info.total,
            limit=info.limit,
            offset=info.offset,
            next_offset=info.next_offset,
        )


# --- request building helpers ---------------------------------------------------------------------


def _uuid(argument: str, value: str) -> str:
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise OnePinInputError(
            argument,
            f"must be a UUID such as 0f6c2b8e-4a1d-4c9f-b3e7-8d5a2c1f6e94, got {_show(value)}",
        )
    return value.lower()


def _workflow_path(workflow_id: str, *rest: str) -> str:
    return "/".join(("/workflows", _uuid("workflow_id", workflow_id), *rest))


def _dictionary_path(entry_id: str) -> str:
    return f"/dictionary/{_uuid('entry_id', entry_id)}"


def _run_path(workflow_id: str, run_id: str, *rest: str) -> str:
    return _workflow_path(workflow_id, "runs", _uuid("run_id", run_id), *rest)


def _node_segment(node_id: str) -> str:
    """A graph node id as one path segment: free text, but nothing that could leave the segment."""
    if not isinstance(node_id, str) or not node_id:
        raise OnePinInputError("node_id", "must be a non-empty string")
    if len(node_id) > _MAX_NODE_ID_CHARS:
        raise OnePinInputError("node_id", f"must be at most {_MAX_NODE_ID_CHARS} characters")
    if node_id in (".", ".."):
        raise OnePinInputError("node_id", "must not be '.' or '..'")
    if any(c in _FORBIDDEN_IN_SEGMENT or ord(c) < 0x20 or ord(c) == 0x7F for c in node_id):
        raise OnePinInputError(
            "node_id", f"must not contain / \\ ? # % or control characters, got {_show(node_id)}"
        )
    return quote(node_id, safe="")


def _audio_segment(audio_id: str) -> str:
    if not isinstance(audio_id, str) or not _AUDIO_ID.fullmatch(audio_id):
        raise OnePinInputError(
            "audio_id", f"must be 16 hexadecimal characters, got {_show(audio_id)}"
        )
    return audio_id.lower()


def _content_length(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


def _aware(argument: str, value: datetime | None) -> str | None:
    """ISO-8601 with offset: the API refuses naive datetimes (422), so refuse them first."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise OnePinInputError(argument, "must be timezone-aware (the API compares in UTC)")
    return value.isoformat()


def _repeated(values: Sequence[str] | None) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        return [values]  # a bare string is one value, not a sequence of characters
    return list(values)


def _query(**values: object) -> QueryPairs:
    """Query pairs for the values that were given; lists become repeated keys."""
    pairs: list[tuple[str, str]] = []
    for name, value in values.items():
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            pairs.append((name, _query_value(item)))
    return tuple(pairs)


def _query_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _body(**values: object) -> dict[str, Any]:
    """A JSON body of only the keys that were set (the API treats null and absent differently)."""
    return {name: value for name, value in values.items() if value is not None}


def _definition(definition: DefinitionInput | None) -> dict[str, Any] | None:
    if definition is None:
        return None
    if isinstance(definition, WorkflowDefinition):
        return definition.to_api()
    return dict(definition)


def _summarize(exc: ValidationError, limit: int = 3) -> str:
    # Locations and messages only: input values could be user data or presigned URLs.
    problems = [
        f"{'.'.join(str(p) for p in error['loc']) or '(root)'}: {error['msg']}"
        for error in exc.errors(include_url=False, include_input=False)[:limit]
    ]
    more = exc.error_count() - len(problems)
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")


def _retry_delay(
    policy: RetryPolicy,
    failure: OnePinTransportError | OnePinAPIError | OnePinResponseError,
    attempt: int,
) -> float | None:
    """Seconds before the next attempt, or None when this failure ends the request."""
    if attempt >= policy.max_attempts:
        return None
    if isinstance(failure, OnePinAPIError):
        if failure.status not in RETRYABLE_STATUSES:
            return None
        return policy.delay_before_retry(attempt, failure.retry_after)
    # No answer at all (the request may not have arrived), or a 2xx whose body came back
    # truncated or empty (a proxy or the network cut it): repeating it is safe here.
    return policy.delay_before_retry(attempt, None)


def _failure_label(failure: OnePinError) -> str:
    if isinstance(failure, OnePinAPIError):
        return f"HTTP {failure.status} {failure.code}"
    return type(failure).__name__


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"
