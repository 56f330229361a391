"""The parameters tools share, each defined once with one description.

An id parameter also says which tool's results list its valid values (`ListedBy`): the tool
records (`ToolSpec.listed_by`) read it from their signatures, and `failures` reads it to word
"call X to find the id", so the two can't disagree. This sits below both (tools are a layer
above `failures`); it holds no behaviour, only types.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AwareDatetime, Field


@dataclass(frozen=True)
class ListedBy:
    """Metadata on an id parameter: the tool whose results list its valid values."""

    tool: str


WorkflowId = Annotated[str, Field(description="from list_workflows"), ListedBy("list_workflows")]
RunId = Annotated[str, Field(description="from list_runs or start_run"), ListedBy("list_runs")]
# The run control tools act on a workflow's one active run when no run is named.
ActiveRunId = Annotated[
    str | None,
    Field(description="from list_runs or start_run; omit for the active run"),
    ListedBy("list_runs"),
]
AudioId = Annotated[str, Field(description="16 hex, from get_run_data"), ListedBy("get_run_data")]

# The optional ids below filter or narrow a call, so their descriptions say what they narrow to.
NodeFilter = Annotated[
    str | None,
    Field(description="only this node's; from get_workflow"),
    ListedBy("get_workflow"),
]
OutputNodeChoice = Annotated[
    str | None,
    Field(description="one output node's ZIP; from get_run_results"),
    ListedBy("get_run_results"),
]
ClipChoice = Annotated[
    str | None,
    Field(description="one clip; from get_run_data"),
    ListedBy("get_run_data"),
]

# Paging: every paged result carries `next_offset`, the offset of the next page.
Offset = Annotated[int, Field(ge=0, description="a page's next_offset")]
Limit = Annotated[int, Field(ge=1, le=100, description="page size")]

# A time range over runs' creation times, bounds included. Aware datetimes only: a time without
# an offset is refused (with a message naming the parameter) rather than guessed to be UTC.
FromTime = Annotated[
    AwareDatetime | None, Field(description="created at or after; ISO 8601 with offset")
]
ToTime = Annotated[AwareDatetime | None, Field(description="created at or before")]


def listed_by(annotation: Any) -> str | None:
    """The tool that lists an id parameter's values, from its annotation; None for others."""
    if typing.get_origin(annotation) is not Annotated:
        return None
    return next((m.tool for m in annotation.__metadata__ if isinstance(m, ListedBy)), None)
