"""Presigned file links: minting them for uploads, clips and archives, and serving them.

A link is a random token under `/files`, valid for `DOWNLOAD_TTL`, whose content is built on its
first download and kept (as the API caches its archives). Unknown or expired links answer like
S3, in XML. Downloads live outside `/_sandbox` on purpose: they are API traffic, and are logged.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from onepin_mcp.sandbox import audio, render
from onepin_mcp.sandbox.call import ApiCall
from onepin_mcp.sandbox.clock import Clock
from onepin_mcp.sandbox.envelope import storage_error
from onepin_mcp.sandbox.errors import ApiError
from onepin_mcp.sandbox.requestlog import isoformat
from onepin_mcp.sandbox.store import JSON, FileLink, Run, Store, Take

DOWNLOAD_TTL = timedelta(minutes=15)
FILES_PREFIX = "/files"  # outside /_sandbox on purpose: downloads are API traffic and are logged
_FILES_BEFORE_PRUNING = 5000


def presigned_link(
    call: ApiCall, filename: str, content_type: str, build: Callable[[], bytes]
) -> render.Link:
    store = call.store
    if len(store.files) > _FILES_BEFORE_PRUNING:
        for token in [t for t, f in store.files.items() if f.expires_at <= call.now]:
            del store.files[token]
    token = secrets.token_urlsafe(18)
    expires = call.now + DOWNLOAD_TTL
    store.files[token] = FileLink(token, filename, content_type, expires, build)
    # On the host the client used, unless files are served elsewhere (`files_url`).
    base = call.files_url or call.base_url
    return render.Link(f"{base}{FILES_PREFIX}/{token}/{filename}", filename, expires)


def zip_link(call: ApiCall, run: Run, filename: str, node_id: str | None) -> JSON:
    takes = render.delivered_takes(run)
    voice = call.voice

    def build() -> bytes:
        return audio.zip_bytes(
            {render.archive_name(take): render.take_wav(take, voice) for take in takes}
        )

    link = presigned_link(call, filename, "application/zip", once(build))
    return {
        "url": link.url,
        "filename": link.filename,
        "expires_at": isoformat(link.expires_at),
    }


def audio_linker(call: ApiCall, run: Run) -> render.Linker:
    voice = call.voice

    def link(take: Take) -> render.Link:
        return presigned_link(
            call,
            f"{take.audio_id}.wav",
            "audio/wav",
            once(lambda: render.take_wav(take, voice)),
        )

    return link


def check_downloadable(run: Run) -> None:
    if run.status != "completed":
        raise ApiError(409, "CONFLICT", "Run is not completed.")
    if not render.delivered_takes(run):
        raise ApiError(404, "NOT_FOUND", "This run produced no audio.")


def once(build: Callable[[], bytes]) -> Callable[[], bytes]:
    """Build a file on first download and keep it, as the API caches its archives."""
    cache: list[bytes] = []

    def cached() -> bytes:
        if not cache:
            cache.append(build())
        return cache[0]

    return cached


class FileHost(Protocol):
    """What serving a file needs of the sandbox: read at request time, so a reset is seen."""

    @property
    def lock(self) -> threading.RLock: ...

    @property
    def store(self) -> Store: ...

    @property
    def clock(self) -> Clock: ...


async def serve_file(host: FileHost, request: Request) -> Response:
    token = request.path_params["token"]
    with host.lock:
        found = host.store.files.get(token)
        now = host.clock.now()
    if found is None or found.filename != request.path_params["filename"]:
        return storage_error(404, "NoSuchKey", "The specified key does not exist.")
    if now >= found.expires_at:
        return storage_error(403, "AccessDenied", "Request has expired")
    # Built off the event loop: speaking a six-language chapter takes seconds, and the loop
    # meanwhile answers the API (and, in-process, the MCP server around it).
    content = await anyio.to_thread.run_sync(found.build)
    return Response(
        content,
        media_type=found.content_type,
        headers={"Content-Disposition": f'attachment; filename="{found.filename}"'},
    )
