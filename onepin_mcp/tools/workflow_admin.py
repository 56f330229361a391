"""Toolset `workflow_admin` (off by default): create, change, copy, check and delete workflows,
and list the files uploaded to one.

Create and duplicate make a new workflow on every call, so, like every write, they are never
retried. Validation changes nothing (it is a POST only because a definition is large), so it is
a read tool and stays available in read-only mode.

Every write here runs in the write guard (`onepin_mcp.writes`): recorded, and confirmed first
as `WritePolicy.confirm` says: delete under the default policy, every write under `writes`.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from mcp.server.mcpserver import Context, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from onepin_mcp.api.client import UNSET, Unset
from onepin_mcp.api.errors import OnePinError
from onepin_mcp.failures import explain
from onepin_mcp.params import (
    Limit,
    Offset,
    SavedWorkflowId,
    ScriptLanguage,
    ScriptText,
    WorkflowId,
)
from onepin_mcp.script_edit import ScriptNotEditable, with_script
from onepin_mcp.state import AppState
from onepin_mcp.tools import ToolSpec, onepin, read_tool, write_tool
from onepin_mcp.views.workflow_admin import (
    DeletedWorkflow,
    SavedWorkflow,
    UploadList,
    ValidationView,
)
from onepin_mcp.writes import Outcome, asks, confirmed_write, quoted, workflow_label

MAX_NAME_CHARS: Final = 200
MAX_DESCRIPTION_CHARS: Final = 5000

# Every tool here edits workflows, except listing uploads, which only reads one.
WRITE: tuple[str, ...] = ("workflows:write",)
READ: tuple[str, ...] = ("workflows:read",)
DEFINITION_HELP: Final = (
    "{graph: {nodes, edges}}, as get_workflow view=definition shows; list_node_types has the "
    "node types and ports"
)
OptionalDefinition = Annotated[dict[str, Any] | None, Field(description=DEFINITION_HELP)]
NewScript = Annotated[
    ScriptText, Field(description="the new script, a line per utterance; needs one script node")
]
NewLanguage = Annotated[ScriptLanguage, Field(description="of the script, e.g. en-us")]


# --- asking first: the questions, each about the workflow it names ------------------------------


async def _new_workflow(ctx: Context[AppState, Any], name: str | None = None) -> str:
    return f"a workflow named {quoted(name)}" if name else "a workflow"


_ASK_CREATE = asks("Create {} in this workspace?", _new_workflow)
_ASK_UPDATE = asks("Change workflow {}? The new values replace the old ones.", workflow_label)
_ASK_DUPLICATE = asks("Make a copy of workflow {}?", workflow_label)
_ASK_DELETE = asks(
    "Delete workflow {}? It and its runs can no longer be read or run; this cannot be undone.",
    workflow_label,
)
_NOTHING_TO_CHANGE: Final = (
    "Give at least one of name, description, script_text, source_language or definition to "
    "change; nothing was sent to OnePin."
)
_SCRIPT_AND_DEFINITION: Final = (
    "Give either script_text/source_language or a whole definition, not both; nothing was sent "
    "to OnePin."
)


async def _edited_definition(
    ctx: Context[AppState, Any],
    workflow_id: str,
    script_text: str | None,
    source_language: str | None,
) -> dict[str, Any] | Unset:
    """The workflow's saved definition, read now, with its script changed; UNSET (and nothing
    read) when neither is given. A workflow without one script node is a ToolError."""
    if script_text is None and source_language is None:
        return UNSET
    workflow = await onepin(ctx).get_workflow(workflow_id)
    try:
        edited = with_script(workflow.definition, workflow.id, script_text, source_language)
    except ScriptNotEditable as error:
        raise ToolError(str(error)) from error
    return edited.to_api()


# --- the tools ---------------------------------------------------------------------------------


async def create_workflow(
    ctx: Context[AppState, Any],
    confirmation: Annotated[Outcome, Resolve(_ASK_CREATE)],
    name: Annotated[
        str | None,
        Field(description="Omit for a placeholder name.", min_length=1, max_length=MAX_NAME_CHARS),
    ] = None,
    description: Annotated[
        str | None, Field(description="What it is for.", max_length=MAX_DESCRIPTION_CHARS)
    ] = None,
    definition: OptionalDefinition = None,
) -> SavedWorkflow:
    """Create a workflow, with an empty graph unless a definition is given (checked for
    structure; validate_workflow checks it can run). Each call creates a new workflow."""
    async with confirmed_write(ctx, confirmation, action="create a workflow") as record:
        workflow = await onepin(ctx).create_workflow(
            name=name, description=description, definition=definition
        )
        record.workflow_id = workflow.id
    if workflow.definition.graph and workflow.definition.graph.nodes:
        advice = "validate_workflow checks it can run; preview_run prices a run."
    else:
        advice = "It has no nodes yet: add a definition with update_workflow."
    return SavedWorkflow.of(workflow, f"Created workflow {workflow.id}. {advice}")


async def update_workflow(
    workflow_id: WorkflowId,
    ctx: Context[AppState, Any],
    confirmation: Annotated[Outcome, Resolve(_ASK_UPDATE)],
    name: Annotated[
        str | None, Field(description="New name.", min_length=1, max_length=MAX_NAME_CHARS)
    ] = None,
    description: Annotated[
        str | None,
        Field(description='New description; "" clears it.', max_length=MAX_DESCRIPTION_CHARS),
    ] = None,
    script_text: NewScript = None,
    source_language: NewLanguage = None,
    definition: OptionalDefinition = None,
) -> SavedWorkflow:
    """Change a workflow's name, description, script (and its language) or whole graph; give
    at least one. Runs already started keep the graph they started with."""
    script = script_text is not None or source_language is not None
    refusal = None
    if name is None and description is None and definition is None and not script:
        refusal = _NOTHING_TO_CHANGE
    elif script and definition is not None:
        refusal = _SCRIPT_AND_DEFINITION
    async with confirmed_write(
        ctx,
        confirmation,
        action=f"change workflow {workflow_id}",
        workflow_id=workflow_id,
        refusal=refusal,
    ):
        new_description: str | Unset | None = UNSET
        if description is not None:
            new_description = description or None  # the API clears it with null
        new_definition = await _edited_definition(ctx, workflow_id, script_text, source_language)
        workflow = await onepin(ctx).update_workflow(
            workflow_id,
            name=UNSET if name is None else name,
            description=new_description,
            definition=new_definition if definition is None else definition,
        )
    return SavedWorkflow.of(
        workflow, f"Saved. get_workflow (workflow_id={workflow.id}) shows the result."
    )


async def duplicate_workflow(
    workflow_id: WorkflowId,
    ctx: Context[AppState, Any],
    confirmation: Annotated[Outcome, Resolve(_ASK_DUPLICATE)],
    name: Annotated[
        str | None,
        Field(description='default "<name> (Copy)"', min_length=1, max_length=MAX_NAME_CHARS),
    ] = None,
    script_text: NewScript = None,
    source_language: NewLanguage = None,
) -> SavedWorkflow:
    """Copy a workflow, graph included, optionally with a new name and script: a safe base for
    changes that must not touch the original. Each call makes another copy."""
    client = onepin(ctx)
    async with confirmed_write(
        ctx, confirmation, action=f"copy workflow {workflow_id}", workflow_id=workflow_id
    ):
        # The script is checked on the original first, so a workflow without one script node
        # is refused before a copy exists.
        definition = await _edited_definition(ctx, workflow_id, script_text, source_language)
        copy = await client.duplicate_workflow(workflow_id)
        if name is not None or not isinstance(definition, Unset):
            try:
                copy = await client.update_workflow(
                    copy.id, name=UNSET if name is None else name, definition=definition
                )
            except OnePinError as error:
                raise ToolError(
                    f"The copy was made (workflow {copy.id}, named {quoted(copy.name)}) but "
                    f"giving it the new name or script failed: {explain(error)} Call "
                    f"update_workflow with workflow_id={copy.id} to finish; do not copy again."
                ) from error
    return SavedWorkflow.of(
        copy,
        f"The copy is workflow {copy.id}; the original is unchanged. validate_workflow checks "
        "the copy can run.",
    )


async def validate_workflow(
    ctx: Context[AppState, Any],
    workflow_id: SavedWorkflowId = None,
    definition: OptionalDefinition = None,
) -> ValidationView:
    """Check a saved workflow or a definition (give one) against every run-start gate, saving
    nothing: errors and warnings name their rule and node. Needs workflows:write."""
    if (workflow_id is None) == (definition is None):
        raise ToolError(
            "Give workflow_id (a saved workflow) or definition (an unsaved one), not both or "
            "neither; nothing was checked."
        )
    client = onepin(ctx)
    if definition is None:
        definition = (await client.get_workflow(str(workflow_id))).definition.to_api()
    return ValidationView.of(await client.validate_workflow(definition))


async def delete_workflow(
    workflow_id: WorkflowId,
    ctx: Context[AppState, Any],
    confirmation: Annotated[Outcome, Resolve(_ASK_DELETE)],
) -> DeletedWorkflow:
    """Delete a workflow: it and its runs can no longer be read or run. These tools cannot
    undo it; duplicate_workflow first to keep a copy."""
    async with confirmed_write(
        ctx, confirmation, action=f"delete workflow {workflow_id}", workflow_id=workflow_id
    ):
        await onepin(ctx).delete_workflow(workflow_id)
    return DeletedWorkflow(id=workflow_id.lower(), deleted=True)


async def list_workflow_uploads(
    workflow_id: WorkflowId,
    ctx: Context[AppState, Any],
    offset: Offset = 0,
    limit: Limit = 20,
) -> UploadList:
    """List the files uploaded to a workflow (scripts and other inputs), newest first: name,
    size, lines, detected language."""
    page = await onepin(ctx).list_workflow_uploads(workflow_id, offset=offset, limit=limit)
    return UploadList.of(page, workflow_id.lower())


TOOLS: tuple[ToolSpec, ...] = (
    write_tool(
        create_workflow,
        toolset="workflow_admin",
        title="Create workflow",
        scopes=WRITE,
        destructive=False,
        idempotent=False,
        confirm="writes",
    ),
    # Destructive: a new name, description or graph overwrites the old one. Yet asked about
    # only under the `writes` policy: an agent editing a workflow calls it over and over, and a
    # question per edit would teach the user to click "yes" without reading.
    write_tool(
        update_workflow,
        toolset="workflow_admin",
        title="Update workflow",
        scopes=WRITE,
        destructive=True,
        idempotent=True,
        confirm="writes",
    ),
    write_tool(
        duplicate_workflow,
        toolset="workflow_admin",
        title="Duplicate workflow",
        scopes=WRITE,
        destructive=False,
        idempotent=False,
        confirm="writes",
    ),
    # Changes nothing, but OnePin allows it only to keys that may edit workflows.
    read_tool(
        validate_workflow,
        toolset="workflow_admin",
        title="Validate workflow",
        scopes=READ + WRITE,
    ),
    write_tool(
        delete_workflow,
        toolset="workflow_admin",
        title="Delete workflow",
        scopes=WRITE,
        destructive=True,
        idempotent=True,
        confirm="destructive",
    ),
    read_tool(
        list_workflow_uploads, toolset="workflow_admin", title="List workflow uploads", scopes=READ
    ),
)
