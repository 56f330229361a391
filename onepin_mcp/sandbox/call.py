"""`ApiCall`: one authorized API request as a handler sees it, and its answers.

Built by the facade's endpoint wrapper under the sandbox's lock, after the runs were brought up
to the clock and the caller was authorized; handlers read the store and path through it, and
answer with `single` or `paged`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from . import envelope
from .auth import Caller
from .engine import RunEngine
from .errors import ApiError
from .parsing import QueryReader
from .speech import Voice
from .store import Run, Store, Workflow


@dataclass
class ApiCall:
    request: Request
    now: datetime
    store: Store
    engine: RunEngine
    caller: Caller | None
    body: bytes
    # How takes sound, and where presigned file URLs point (None: the host the client used).
    voice: Voice
    files_url: str | None

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

    def single(
        self, data: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        return envelope.single(self.now, data, status, headers)

    def paged(
        self,
        items: list[Any],
        *,
        offset: int,
        limit: int,
        total: int | None,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        return envelope.paged(
            self.now,
            self.request.url,
            items,
            offset=offset,
            limit=limit,
            total=total,
            data=data,
            headers=headers,
        )


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
