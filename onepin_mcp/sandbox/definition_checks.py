"""Structural checks of a workflow definition, as create, update and validate make them.

A definition that fails answers 422 with one `details[]` entry per problem, so a client fixes
them all in one round. (What a run start additionally needs, such as a script, is the engine's
`DefinitionProblem`.)
"""

from __future__ import annotations

from .engine import NODE_TYPES
from .errors import ApiError
from .store import JSON


def check_definition(definition: JSON) -> None:
    """Structural validation of a `WorkflowDefinition`: 422 with a detail per problem."""
    details: list[JSON] = []
    graph = definition.get("graph", {})
    if not isinstance(graph, dict):
        details.append({"field": "definition.graph", "message": "graph must be an object."})
        graph = {}
    nodes = graph.get("nodes", [])
    edges = graph.get("edges", [])
    if not isinstance(nodes, list):
        details.append({"field": "definition.graph.nodes", "message": "nodes must be a list."})
        nodes = []
    if not isinstance(edges, list):
        details.append({"field": "definition.graph.edges", "message": "edges must be a list."})
        edges = []
    seen: set[str] = set()
    for i, node in enumerate(nodes):
        where = f"definition.graph.nodes[{i}]"
        if not isinstance(node, dict):
            details.append({"field": where, "message": "A node must be an object."})
            continue
        node_id = node.get("id")
        if not isinstance(node_id, str) or not node_id:
            details.append(
                {"field": f"{where}.id", "message": "A node needs a non-empty string id."}
            )
        elif node_id in seen:
            details.append({"field": f"{where}.id", "message": f"Duplicate node id '{node_id}'."})
        else:
            seen.add(node_id)
        if node.get("type") not in NODE_TYPES:
            details.append(
                {
                    "field": f"{where}.type",
                    "message": f"Unknown node type {node.get('type')!r}; see GET /api/v1/nodes.",
                }
            )
        position = node.get("position")
        if not (
            isinstance(position, dict)
            and all(isinstance(position.get(axis), (int, float)) for axis in ("x", "y"))
        ):
            details.append(
                {"field": f"{where}.position", "message": "position needs numeric x and y."}
            )
        if "config" in node and node["config"] is not None and not isinstance(node["config"], dict):
            details.append({"field": f"{where}.config", "message": "config must be an object."})
    for i, edge in enumerate(edges):
        where = f"definition.graph.edges[{i}]"
        if not isinstance(edge, dict):
            details.append({"field": where, "message": "An edge must be an object."})
            continue
        for key in ("id", "source", "sourcePort", "target", "targetPort"):
            if not isinstance(edge.get(key), str) or not edge.get(key):
                details.append(
                    {"field": f"{where}.{key}", "message": f"{key} must be a non-empty string."}
                )
        for end in ("source", "target"):
            if isinstance(edge.get(end), str) and edge[end] not in seen:
                details.append(
                    {
                        "field": f"{where}.{end}",
                        "message": f"Edge points at unknown node '{edge[end]}'.",
                    }
                )
    execution = definition.get("execution")
    if execution is not None and not isinstance(execution, dict):
        details.append({"field": "definition.execution", "message": "execution must be an object."})
    if details:
        raise ApiError(
            422, "VALIDATION_ERROR", "The workflow definition is invalid.", details=details
        )
