"""A saved workflow's script changed in place: the definition with its one `source_script` node's
text or language replaced, everything else kept as it was read.

It mirrors what OnePin does with a run's `script_text` override (which needs exactly one
`source_script` node), but for saving: so that changing a script is a few hundred bytes from the
agent, not the whole graph read and written back by the model.
"""

from __future__ import annotations

from typing import Final

from onepin_mcp.api.models import WorkflowDefinition

SCRIPT_NODE: Final = "source_script"


class ScriptNotEditable(ValueError):
    """The definition has no single script node to edit; the message says what to do instead."""


def with_script(
    definition: WorkflowDefinition,
    workflow_id: str,
    script_text: str | None,
    source_language: str | None,
) -> WorkflowDefinition:
    """A copy of `definition` whose script node has the given text and/or language."""
    nodes = definition.graph.nodes if definition.graph else []
    scripts = [node for node in nodes if node.type == SCRIPT_NODE]
    if len(scripts) != 1:
        raise ScriptNotEditable(
            f"Workflow {workflow_id} has {len(scripts)} {SCRIPT_NODE} nodes, so there is no one "
            "script to change; nothing was changed. update_workflow with a whole definition "
            "changes it (get_workflow view=definition shows the graph)."
        )
    script = scripts[0]
    config = dict(script.config or {})
    if script_text is not None:
        config["script_text"] = script_text
    if source_language is not None:
        config["source_language"] = source_language
    edited = script.model_copy(update={"config": config})
    graph = definition.graph
    assert graph is not None  # it holds the script node found above; for the type checker
    new_nodes = [edited if node is script else node for node in graph.nodes]
    return definition.model_copy(update={"graph": graph.model_copy(update={"nodes": new_nodes})})
