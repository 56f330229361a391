"""One clip of a run, fetched for get_audio_clip and the clip resource alike: a fresh link, the
file behind it within the size cap, and what the run's data says about the clip.

Shared here, below tools and resources, because both surfaces must fetch the same way (never with
the key, never past the cap) and explain a missing clip the same way: a clip of a run that is
still going may simply not exist yet, which "no such clip" alone would hide.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from onepin_mcp.api.client import OnePinClient, PresignedFile
from onepin_mcp.api.errors import OnePinAPIError, OnePinError, OnePinInputError
from onepin_mcp.api.models import DataCard, DataRow, DownloadUrl
from onepin_mcp.failures import explain

# Run data has no filter by audio id, so a clip's line is found by paging: 100 lines a page (the
# API's largest), at most 10 pages. A script is rarely longer; past that the clip still comes
# back, only without its line's text and scores.
DATA_PAGE_LIMIT: Final = 100
MAX_DATA_PAGES: Final = 10
MAX_LOOKUP_LINES: Final = DATA_PAGE_LIMIT * MAX_DATA_PAGES


class ClipUnavailable(Exception):
    """The clip could not be served; `text` is worded for the agent. `missing`: the ids name no
    clip (a resource read answers "not found"), rather than a failure along the way."""

    def __init__(self, text: str, *, missing: bool) -> None:
        self.text = text
        self.missing = missing
        super().__init__(text)


@dataclass(frozen=True)
class FetchedClip:
    link: DownloadUrl
    file: PresignedFile


async def fetch_clip(
    client: OnePinClient, workflow_id: str, run_id: str, audio_id: str, *, max_bytes: int
) -> FetchedClip:
    """A fresh link for the clip, then the file behind it (without the key; see
    `OnePinClient.fetch_presigned`), fetched at once so that the link cannot expire between."""
    ids = {"workflow_id": workflow_id, "run_id": run_id, "audio_id": audio_id}
    try:
        link = await client.get_audio_url(workflow_id, run_id, audio_id)
        return FetchedClip(link, await client.fetch_presigned(link.url, max_bytes=max_bytes))
    except OnePinAPIError as exc:
        if exc.status == 404:
            raise ClipUnavailable(await _why_missing(client, exc, ids), missing=True) from exc
        raise ClipUnavailable(explain(exc, ids), missing=False) from exc
    except OnePinInputError as exc:
        raise ClipUnavailable(explain(exc, ids), missing=True) from exc
    except OnePinError as exc:
        raise ClipUnavailable(explain(exc, ids), missing=False) from exc


async def find_card(
    client: OnePinClient, workflow_id: str, run_id: str, audio_id: str
) -> tuple[DataRow, DataCard] | None:
    """The run-data line and card of a clip, dropped takes included, or None if not found in
    the first `MAX_DATA_PAGES` pages."""
    wanted = audio_id.lower()
    offset = 0
    try:
        for _ in range(MAX_DATA_PAGES):
            data = await client.get_run_data(
                workflow_id, run_id, include_dropped=True, offset=offset, limit=DATA_PAGE_LIMIT
            )
            for row in data.rows:
                for card in row.cards:
                    if card.audio_id == wanted:
                        return row, card
            if data.page.next_offset is None:
                return None
            offset = data.page.next_offset
    except OnePinError as exc:
        ids = {"workflow_id": workflow_id, "run_id": run_id}
        raise ClipUnavailable(explain(exc, ids), missing=False) from exc
    return None


async def _why_missing(client: OnePinClient, error: OnePinAPIError, ids: Mapping[str, str]) -> str:
    """A 404 for a clip: no such run, a clip not generated yet, or no such clip."""
    try:
        state = await client.get_run_status(ids["workflow_id"], ids["run_id"])
    except OnePinAPIError as exc:
        if exc.status == 404:  # the run (or workflow) is what is missing: say so, not "clip"
            return explain(exc, {"workflow_id": ids["workflow_id"], "run_id": ids["run_id"]})
        return explain(error, ids)
    except OnePinError:
        return explain(error, ids)
    text = explain(error, ids)
    if state.is_terminal:
        return text
    return (
        f"{text} The run is still {state.status}, so the clip may not be generated yet: call "
        "wait_for_run, then get_run_data for the audio ids the run has so far."
    )
