"""What an agent is told when a OnePin call fails: what happened, and what to do next.

The one place where a client error becomes agent-facing text. Tools wrap the text in a
`ToolError` and resources in a `ResourceError`; neither side words failures on its own, so a
401 reads the same whichever surface met it. No `mcp` import here: this is plain wording.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from onepin_mcp.api.errors import (
    OnePinAPIError,
    OnePinAuthConfigError,
    OnePinError,
    OnePinFileError,
    OnePinInputError,
    OnePinResponseError,
    OnePinTimeoutError,
    OnePinTransportError,
    redact,
)
from onepin_mcp.api.settings import ENV_WORKSPACE_ID
from onepin_mcp.params import (
    AudioId,
    DictionaryEntryId,
    OutputNodeChoice,
    RunId,
    WorkflowId,
    listed_by,
)
from onepin_mcp.text import MAX_NAME_CHARS, clean_text

KEY_HELP = (
    "Set ONEPIN_API_KEY to an op_live_ key from https://app.onepin.ai/workspace/~/settings/api "
    "(or run `onepin login`) in the MCP server's configuration, then restart the server."
)

# How a 403's message names the workspace header rather than a scope or role ("X-Workspace-Id
# does not match the API key's workspace"); a role's message says "in the workspace", so the
# bare word is not enough.
_WORKSPACE_HEADER_WORDS = re.compile(r"x-workspace-id|workspace[ _]id|another workspace", re.I)

# The id arguments the client checks or puts in a path, by the type tools declare them with: the
# tool that lists valid values (the next step after a 404 or a bad id) is read from that type.
# A node_id reaches a path only as one output node to download, so it is that parameter's.
_ID_ARGUMENTS: Mapping[str, Any] = {
    "workflow_id": WorkflowId,
    "run_id": RunId,
    "node_id": OutputNodeChoice,
    "audio_id": AudioId,
    "entry_id": DictionaryEntryId,
}


def _lister(argument: str) -> str | None:
    """The tool whose results list valid values of an id argument."""
    return listed_by(_ID_ARGUMENTS.get(argument))


def explain(error: OnePinError, arguments: Mapping[str, Any] | None = None) -> str:
    """One paragraph for the agent: the failure, OnePin's own words and ids, and the next step.

    Whatever the text quotes (an argument, a server message), anything shaped like an API key
    is redacted: a key pasted into an argument must not be echoed into logs and transcripts.
    And a server message is untrusted text: `redact` cleans it of invisible characters like
    every other piece of API text an agent reads (already capped where the envelope is parsed)
    before it masks keys."""
    return redact(_explain(error, arguments or {}))


def _explain(error: OnePinError, arguments: Mapping[str, Any]) -> str:
    if isinstance(error, OnePinAuthConfigError):
        return f"No OnePin API key is configured. {KEY_HELP}"
    if isinstance(error, OnePinInputError):
        return _bad_argument(error)
    if isinstance(error, OnePinAPIError):
        return _api_failure(error, arguments)
    if isinstance(error, OnePinTransportError):
        return _transport_failure(error)
    if isinstance(error, OnePinFileError):
        return _file_failure(error)
    if isinstance(error, OnePinResponseError):
        head = (
            f"OnePin sent a response this server could not read ({error.problem}; "
            f"{_request_id(error.request_id)})."
        )
        if error.method != "GET":
            # A 2xx to a write: it happened, so repeating it could do it twice (start a run).
            return (
                f"{head} Do not repeat the call: check the current state (list_runs or "
                "get_run_status) first. If it persists, report it with the request id."
            )
        return (
            f"{head} Try again; if it persists, the API may have changed: report it with the "
            "request id."
        )
    return f"The OnePin call failed: {error}"


def _bad_argument(error: OnePinInputError) -> str:
    text = f"Invalid argument {error.argument}: {error.problem}."
    lister = _lister(error.argument)
    if lister:
        text += f" Call {lister} to find valid values."
    return text + " Nothing was sent to OnePin."


def _api_failure(error: OnePinAPIError, arguments: Mapping[str, Any]) -> str:
    head = f"OnePin answered {error.status} {error.code}: {error.message}"
    if not head.endswith((".", "!", "?")):
        head += "."
    return f"{head} ({_request_id(error.request_id)}) {_next_step(error, arguments)}".rstrip()


def _next_step(error: OnePinAPIError, arguments: Mapping[str, Any]) -> str:
    status = error.status
    if status == 401:
        return f"The API key was refused. {KEY_HELP}"
    if status == 403:
        return _forbidden(error)
    if status == 404:
        return _not_found(error, arguments)
    if status == 409:
        return (
            "The run or workflow is not in a state that allows this. Call get_run_status "
            "(or list_runs with status=pending,running,paused for the active run) and act on "
            "its current state."
        )
    if status == 402:
        return "The balance does not cover this run: preview_run shows the cost and balance."
    if status == 422:
        fields = "; ".join(f"{d.field}: {d.message}" for d in error.details)
        prefix = f"Fix these fields: {fields}. " if fields else ""
        return prefix + "Correct the arguments and call again."
    if status == 426:
        return "OnePin requires a newer client: upgrade onepin-mcp."
    if status == 429:
        wait = f"{error.retry_after:g} s" if error.retry_after is not None else "a minute"
        return f"Rate limited: wait {wait} before calling again."
    if status >= 500:
        if error.attempts > 1:
            return (
                "OnePin had a server-side problem and retries did not help. Try again in a "
                "minute; if it persists, report the request id."
            )
        if error.method != "GET":
            # Writes aren't retried, and a gateway's 502/504 doesn't say whether OnePin acted.
            return (
                "OnePin had a server-side problem; this request was not repeated. Check the "
                "current state (list_runs or get_run_status) before trying again; if it "
                "persists, report the request id."
            )
        return (
            "OnePin had a server-side problem. Try again in a minute; if it persists, report "
            "the request id."
        )
    return "Check the arguments and try again."


def _forbidden(error: OnePinAPIError) -> str:
    scope_or_role = (
        "The API key lacks the scope or workspace role for this (see the message); "
        "get_account shows the key's scopes. Use a key with that scope, or ask a "
        "workspace admin for the editor role."
    )
    if error.workspace_id is None:
        return scope_or_role
    # A key works only in the workspace it was created in, and OnePin answers 403 to a request
    # naming any other. The agent can't change the setting, so it is told what to ask for.
    workspace = (
        f"This server sends {ENV_WORKSPACE_ID}={error.workspace_id} with every call, and OnePin "
        "refuses calls for a workspace other than the key's own: if get_account shows another "
        f"workspace_id, ask the user to unset {ENV_WORKSPACE_ID} (the key's own workspace is "
        "then used), or set it to that id, in the MCP server's configuration and restart it."
    )
    # OnePin's message is the only hint which refusal this is: when it names the workspace
    # header, the scope advice would send the agent the wrong way.
    if _WORKSPACE_HEADER_WORDS.search(error.message):
        return workspace
    return f"{scope_or_role} {workspace}"


def _not_found(error: OnePinAPIError, arguments: Mapping[str, Any]) -> str:
    # The deepest id in the request is the likeliest culprit; name its tool and its parent.
    if "audio_id" in arguments:
        return f"No such clip in this run. Call {_lister('audio_id')} to see the run's audio ids."
    if "node_id" in arguments and "/nodes/" in error.path:
        return (
            "No downloadable output node with that id in this run (or it produced no audio). "
            f"Call {_lister('node_id')} to see its output nodes, or omit node_id for the whole "
            "run."
        )
    if "entry_id" in arguments:
        return (
            f"No pronunciation dictionary entry {arguments['entry_id']} in this workspace "
            f"(deleted?). Call {_lister('entry_id')} with the word's language for valid ids."
        )
    if "run_id" in arguments:
        workflow = arguments.get("workflow_id", "the workflow")
        return (
            f"No run {arguments['run_id']} in workflow {workflow}, or no such workflow. "
            f"Call {_lister('run_id')} with workflow_id={workflow} for its runs."
        )
    if "workflow_id" in arguments:
        return (
            f"No workflow {arguments['workflow_id']} in this workspace (deleted, or another "
            f"workspace's). Call {_lister('workflow_id')} for valid ids."
        )
    return f"Call {_lister('workflow_id')} to find valid ids."


def _transport_failure(error: OnePinTransportError) -> str:
    what = "did not answer in time" if isinstance(error, OnePinTimeoutError) else "was unreachable"
    text = f"OnePin {what} ({error.method} {error.path}) after {error.attempts} attempt(s)."
    if error.sent and error.method != "GET":
        return (
            f"{text} The request may have been processed. Check the current state (list_runs "
            "or get_run_status) before trying again."
        )
    return f"{text} Check the network and ONEPIN_BASE_URL, then try again."


def _file_failure(error: OnePinFileError) -> str:
    # Each call mints a fresh link, so asking again is the remedy for an expired or refused one.
    again = (
        "Call get_audio_clip again (or read the clip resource again): each call mints a fresh link."
    )
    if error.status is None:
        return f"The clip could not be fetched from OnePin's storage: {error.problem} {again}"
    code = f" {error.code}" if error.code else ""
    head = f"OnePin's storage answered {error.status}{code} for the clip's link."
    if error.status == 403:
        return f"{head} Links expire about 15 minutes after they are minted. {again}"
    if error.status == 404:
        return f"{head} {again} If it persists, get_run_data shows whether the clip still exists."
    if error.status >= 500:
        return f"{head} Storage had a problem; try again in a minute."
    return f"{head} {error.problem} {again}"


def _request_id(request_id: str | None) -> str:
    return f"request id {request_id}" if request_id else "no request id"


def onepin_said(error: OnePinAPIError) -> str:
    """OnePin's own answer, quoted for the agent ahead of a tool's account of what it means:
    status, code, message (cleaned, cut to a name's length) and request id."""
    message = clean_text(error.message, MAX_NAME_CHARS).rstrip(". ")
    request = _request_id(error.request_id)
    return f"OnePin answered {error.status} {error.code}: {message} ({request})."
