"""The parameters tools share, each defined once with one description.

An id parameter also says which tool's results list its valid values (`ListedBy`): the tool
records (`ToolSpec.listed_by`) read it from their signatures, and `failures` reads it to word
"call X to find the id", so the two can't disagree. This sits below both (tools are a layer
above `failures`); it holds no behaviour, only types.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, Field


@dataclass(frozen=True)
class ListedBy:
    """Metadata on an id parameter: the tool whose results list its valid values."""

    tool: str


# The two everyday ids carry no description: their names say what they are, and the server's
# instructions say which tools list them (a description on every tool cost about 1 KB).
WorkflowId = Annotated[str, ListedBy("list_workflows")]
RunId = Annotated[str, ListedBy("list_runs")]
# The run control tools act on a workflow's one active run when no run is named.
ActiveRunId = Annotated[
    str | None,
    Field(description="omit for the active run"),
    ListedBy("list_runs"),
]
AudioId = Annotated[str, Field(description="16 hex, from get_run_data"), ListedBy("get_run_data")]
DictionaryEntryId = Annotated[
    str, Field(description="from list_dictionary"), ListedBy("list_dictionary")
]
# A saved workflow to act on instead of a definition given whole.
SavedWorkflowId = Annotated[
    str | None,
    Field(description="a saved workflow, from list_workflows"),
    ListedBy("list_workflows"),
]

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


# A script and its language, as start_run overrides them for one run and the workflow tools save
# them. Each tool says in its own description which of the two it does.
MAX_SCRIPT_CHARS = 100_000
# BCP-47-ish: a 2-3 letter language, then subtags (region, script, variant); `_` is tolerated
# because OnePin normalizes it, and the API caps the field at 35 characters.
LANGUAGE_PATTERN = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$"


def language_tag(value: str | None) -> str | None:
    """Checked here rather than as a schema `pattern`: the regex cost every tool that takes a
    language 55 bytes of what a model reads, and a wrong tag is refused just as clearly."""
    if value is not None and not re.fullmatch(LANGUAGE_PATTERN, value):
        raise ValueError("expected a language tag such as en-us or ja-jp")
    return value


ScriptText = Annotated[str | None, Field(min_length=1, max_length=MAX_SCRIPT_CHARS)]
ScriptLanguage = Annotated[str | None, Field(max_length=35), AfterValidator(language_tag)]


def listed_by(annotation: Any) -> str | None:
    """The tool that lists an id parameter's values, from its annotation; None for others."""
    if typing.get_origin(annotation) is not Annotated:
        return None
    return next((m.tool for m in annotation.__metadata__ if isinstance(m, ListedBy)), None)
