"""The workflow_admin tools: create, update, duplicate, validate and delete workflows and list
their uploads, with effects checked through the OnePin client, and their refusals."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
from mcp import Client

from onepin_mcp.api.client import OnePinClient
from onepin_mcp.api.errors import OnePinAPIError
from onepin_mcp.sandbox import ApiKey, Sandbox, seed
from onepin_mcp.selection import ToolSelection
from onepin_mcp.server import create_server

from .conftest import NO_WAIT_RETRY, error_text, sandbox_settings, structured

pytestmark = pytest.mark.anyio

COMPLETES = seed.WORKFLOW_COMPLETES_ID


@pytest.fixture
async def runnable(api: OnePinClient) -> dict[str, Any]:
    """A definition that passes every run-start gate: a seeded workflow's."""
    return (await api.get_workflow(COMPLETES)).definition.to_api()


def without_outputs(definition: dict[str, Any]) -> dict[str, Any]:
    broken = copy.deepcopy(definition)
    graph = broken["graph"]
    sinks = {node["id"] for node in graph["nodes"] if node["type"] == "sink_preview"}
    graph["nodes"] = [node for node in graph["nodes"] if node["id"] not in sinks]
    graph["edges"] = [edge for edge in graph["edges"] if edge["target"] not in sinks]
    return broken


def script_config(definition: dict[str, Any]) -> dict[str, Any]:
    [script] = [n for n in definition["graph"]["nodes"] if n["type"] == "source_script"]
    config: dict[str, Any] = script["config"]
    return config


def without_script(definition: dict[str, Any]) -> dict[str, Any]:
    """Everything but the script node's config: what a script edit must leave as it was."""
    rest = copy.deepcopy(definition)
    for node in rest["graph"]["nodes"]:
        if node["type"] == "source_script":
            node["config"] = None
    return rest


def writes_to(sandbox: Sandbox, method: str, path: str) -> int:
    return sum(1 for r in sandbox.requests if r.method == method and r.path == path)


NEW_SCRIPT = "Welcome to the spring tour.\nYour dashboard now has dark mode."


# --- create_workflow ------------------------------------------------------------------------------


async def test_create_workflow_saves_name_description_and_graph(
    mcp_client: Client, api: OnePinClient, runnable: dict[str, Any]
) -> None:
    created = structured(
        await mcp_client.call_tool(
            "create_workflow",
            {"name": "Spring promo", "description": "EN+KO promo", "definition": runnable},
        )
    )

    saved = await api.get_workflow(created["id"])
    assert saved.name == created["name"] == "Spring promo"
    assert saved.description == "EN+KO promo"
    assert saved.definition.graph is not None
    assert (
        created["node_count"]
        == len(saved.definition.graph.nodes)
        == len(runnable["graph"]["nodes"])
    )
    assert created["edge_count"] == len(runnable["graph"]["edges"])
    assert "validate_workflow" in created["next"]


async def test_create_workflow_without_arguments_makes_an_empty_placeholder(
    mcp_client: Client, api: OnePinClient
) -> None:
    created = structured(await mcp_client.call_tool("create_workflow", {}))

    assert created["node_count"] == 0
    assert "update_workflow" in created["next"]
    saved = await api.get_workflow(created["id"])
    assert saved.name == "Untitled workflow"
    assert saved.name_source == "placeholder"


async def test_create_workflow_with_a_broken_graph_lists_the_bad_fields_and_saves_nothing(
    mcp_client: Client, api: OnePinClient
) -> None:
    before = await api.list_workflows()
    broken = {
        "graph": {
            "nodes": [{"id": "a", "type": "teleporter", "position": {"x": 0, "y": 0}}],
            "edges": [],
        }
    }

    result = await mcp_client.call_tool("create_workflow", {"name": "Bad", "definition": broken})

    text = error_text(result)
    assert text.startswith("OnePin answered 422")
    assert "Fix these fields: definition.graph.nodes[0].type" in text
    assert (await api.list_workflows()).total == before.total


# --- update_workflow ------------------------------------------------------------------------------


async def test_update_workflow_changes_only_the_given_fields(
    mcp_client: Client, api: OnePinClient
) -> None:
    original = await api.get_workflow(COMPLETES)

    renamed = structured(
        await mcp_client.call_tool(
            "update_workflow", {"workflow_id": COMPLETES, "name": "Product tour, v2"}
        )
    )

    assert renamed["name"] == "Product tour, v2"
    saved = await api.get_workflow(COMPLETES)
    assert saved.name == "Product tour, v2"
    assert saved.description == original.description
    assert saved.definition == original.definition


async def test_update_workflow_replaces_the_graph_and_clears_the_description_with_empty_text(
    mcp_client: Client, api: OnePinClient, runnable: dict[str, Any]
) -> None:
    smaller = without_outputs(runnable)

    updated = structured(
        await mcp_client.call_tool(
            "update_workflow",
            {"workflow_id": COMPLETES, "description": "", "definition": smaller},
        )
    )

    assert updated["node_count"] == len(smaller["graph"]["nodes"])
    saved = await api.get_workflow(COMPLETES)
    assert saved.description is None
    assert saved.definition.graph is not None
    assert len(saved.definition.graph.nodes) == len(smaller["graph"]["nodes"])


async def test_update_workflow_changes_only_the_script_of_a_saved_workflow(
    mcp_client: Client, api: OnePinClient, sandbox: Sandbox
) -> None:
    original = (await api.get_workflow(COMPLETES)).definition.to_api()

    updated = structured(
        await mcp_client.call_tool(
            "update_workflow",
            {"workflow_id": COMPLETES, "script_text": NEW_SCRIPT, "source_language": "en-gb"},
        )
    )

    saved = (await api.get_workflow(COMPLETES)).definition.to_api()
    assert script_config(saved) == {"script_text": NEW_SCRIPT, "source_language": "en-gb"}
    assert without_script(saved) == without_script(original)
    assert updated["node_count"] == len(original["graph"]["nodes"])
    assert writes_to(sandbox, "PATCH", f"/api/v1/workflows/{COMPLETES}") == 1


async def test_update_workflow_with_a_language_alone_keeps_the_saved_script(
    mcp_client: Client, api: OnePinClient
) -> None:
    before = script_config((await api.get_workflow(COMPLETES)).definition.to_api())

    await mcp_client.call_tool(
        "update_workflow", {"workflow_id": COMPLETES, "source_language": "en-au"}
    )

    after = script_config((await api.get_workflow(COMPLETES)).definition.to_api())
    assert after == {**before, "source_language": "en-au"}


async def test_update_workflow_refuses_a_script_and_a_definition_together_before_calling_onepin(
    mcp_client: Client, sandbox: Sandbox, runnable: dict[str, Any]
) -> None:
    result = await mcp_client.call_tool(
        "update_workflow",
        {"workflow_id": COMPLETES, "script_text": NEW_SCRIPT, "definition": runnable},
    )

    assert "either script_text/source_language or a whole definition" in error_text(result)
    assert writes_to(sandbox, "PATCH", f"/api/v1/workflows/{COMPLETES}") == 0
    assert writes_to(sandbox, "GET", f"/api/v1/workflows/{COMPLETES}") == 1  # the fixture's


async def test_a_script_edit_of_a_workflow_without_one_script_node_changes_nothing(
    mcp_client: Client, api: OnePinClient, sandbox: Sandbox
) -> None:
    empty = await api.create_workflow(name="No nodes yet")

    result = await mcp_client.call_tool(
        "update_workflow", {"workflow_id": empty.id, "script_text": NEW_SCRIPT}
    )

    text = error_text(result)
    assert "has 0 source_script nodes" in text
    assert "nothing was changed" in text
    assert writes_to(sandbox, "PATCH", f"/api/v1/workflows/{empty.id}") == 0


async def test_update_workflow_with_nothing_to_change_is_refused_before_calling_onepin(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    result = await mcp_client.call_tool("update_workflow", {"workflow_id": COMPLETES})

    assert "Give at least one of name, description, script_text" in error_text(result)
    assert len(sandbox.requests) == 0


async def test_update_workflow_on_an_unknown_workflow_names_the_listing_tool(
    mcp_client: Client,
) -> None:
    result = await mcp_client.call_tool(
        "update_workflow", {"workflow_id": str(uuid.uuid4()), "name": "Renamed"}
    )

    text = error_text(result)
    assert text.startswith("OnePin answered 404")
    assert "list_workflows" in text


# --- duplicate_workflow ---------------------------------------------------------------------------


async def test_duplicate_workflow_makes_a_separate_copy(
    mcp_client: Client, api: OnePinClient
) -> None:
    source = await api.get_workflow(COMPLETES)

    duplicated = structured(
        await mcp_client.call_tool("duplicate_workflow", {"workflow_id": COMPLETES})
    )

    assert duplicated["id"] != COMPLETES
    assert duplicated["name"] == f"{source.name} (Copy)"
    assert duplicated["id"] in duplicated["next"]
    copy_saved = await api.get_workflow(duplicated["id"])
    assert copy_saved.definition == source.definition
    await api.update_workflow(duplicated["id"], name="Changed copy")
    assert (await api.get_workflow(COMPLETES)).name == source.name


async def test_duplicate_workflow_with_a_name_and_script_changes_only_the_copy(
    mcp_client: Client, api: OnePinClient
) -> None:
    source = (await api.get_workflow(COMPLETES)).definition.to_api()

    duplicated = structured(
        await mcp_client.call_tool(
            "duplicate_workflow",
            {"workflow_id": COMPLETES, "name": "Spring tour", "script_text": NEW_SCRIPT},
        )
    )

    copy_saved = await api.get_workflow(duplicated["id"])
    assert duplicated["name"] == copy_saved.name == "Spring tour"
    copied = copy_saved.definition.to_api()
    assert script_config(copied)["script_text"] == NEW_SCRIPT
    assert without_script(copied) == without_script(source)
    assert (await api.get_workflow(COMPLETES)).definition.to_api() == source
    assert "validate_workflow" in duplicated["next"]


async def test_duplicate_workflow_with_a_script_refuses_a_workflow_without_one_script_node_first(
    mcp_client: Client, api: OnePinClient
) -> None:
    empty = await api.create_workflow(name="No nodes yet")
    before = (await api.list_workflows(limit=100)).total

    result = await mcp_client.call_tool(
        "duplicate_workflow", {"workflow_id": empty.id, "script_text": NEW_SCRIPT}
    )

    assert "has 0 source_script nodes" in error_text(result)
    assert (await api.list_workflows(limit=100)).total == before


async def test_a_copy_whose_rename_fails_is_named_with_advice_to_finish_it_not_to_copy_again(
    mcp_client: Client, api: OnePinClient, sandbox: Sandbox
) -> None:
    before = (await api.list_workflows(limit=100)).total
    sandbox.faults.add(
        {"method": "PATCH", "path": "/api/v1/workflows/*", "status": 503, "times": None}
    )

    result = await mcp_client.call_tool(
        "duplicate_workflow", {"workflow_id": COMPLETES, "name": "Spring tour"}
    )

    text = error_text(result)
    listing = await api.list_workflows(limit=100)
    assert listing.total == before + 1
    [copy_made] = [w for w in listing.items if w.name.endswith("(Copy)")]
    assert f"The copy was made (workflow {copy_made.id}" in text
    assert f"update_workflow with workflow_id={copy_made.id}" in text
    assert "do not copy again" in text


async def test_duplicate_workflow_of_an_unknown_workflow_names_the_listing_tool(
    mcp_client: Client,
) -> None:
    result = await mcp_client.call_tool("duplicate_workflow", {"workflow_id": str(uuid.uuid4())})

    assert "list_workflows" in error_text(result)


# --- validate_workflow ----------------------------------------------------------------------------


async def test_validate_workflow_accepts_a_runnable_definition(
    mcp_client: Client, runnable: dict[str, Any]
) -> None:
    report = structured(await mcp_client.call_tool("validate_workflow", {"definition": runnable}))

    assert report["valid"] is True
    assert report["errors"] == []
    assert "create_workflow" in report["next"]


async def test_validate_workflow_names_the_rule_a_definition_breaks_and_saves_nothing(
    mcp_client: Client, api: OnePinClient, runnable: dict[str, Any]
) -> None:
    before = await api.list_workflows()

    report = structured(
        await mcp_client.call_tool("validate_workflow", {"definition": without_outputs(runnable)})
    )

    assert report["valid"] is False
    assert "output_required" in [issue["rule"] for issue in report["errors"]]
    assert all(issue["message"] for issue in report["errors"])
    assert "fix each error" in report["next"]
    assert (await api.list_workflows()).total == before.total


async def test_validate_workflow_checks_a_saved_workflow_by_id(
    mcp_client: Client, api: OnePinClient, runnable: dict[str, Any]
) -> None:
    broken = await api.create_workflow(name="No outputs", definition=without_outputs(runnable))

    good = structured(await mcp_client.call_tool("validate_workflow", {"workflow_id": COMPLETES}))
    bad = structured(await mcp_client.call_tool("validate_workflow", {"workflow_id": broken.id}))

    assert good["valid"] is True
    assert bad["valid"] is False
    assert "output_required" in [issue["rule"] for issue in bad["errors"]]


@pytest.mark.parametrize("arguments", [{}, {"workflow_id": COMPLETES, "definition": {}}])
async def test_validate_workflow_wants_exactly_one_of_a_workflow_id_and_a_definition(
    mcp_client: Client, sandbox: Sandbox, arguments: dict[str, Any]
) -> None:
    result = await mcp_client.call_tool("validate_workflow", arguments)

    assert "Give workflow_id (a saved workflow) or definition" in error_text(result)
    assert len(sandbox.requests) == 0


async def test_validate_workflow_refuses_a_definition_that_is_not_an_object(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    result = await mcp_client.call_tool("validate_workflow", {"definition": "two nodes please"})

    assert "definition" in error_text(result)
    assert len(sandbox.requests) == 0


# --- delete_workflow ------------------------------------------------------------------------------


async def test_delete_workflow_removes_it_and_a_second_delete_says_it_is_gone(
    mcp_client: Client, api: OnePinClient
) -> None:
    victim = await api.duplicate_workflow(COMPLETES)

    deleted = structured(await mcp_client.call_tool("delete_workflow", {"workflow_id": victim.id}))

    assert deleted == {"id": victim.id, "deleted": True}
    with pytest.raises(OnePinAPIError) as gone:
        await api.get_workflow(victim.id)
    assert gone.value.status == 404
    assert victim.id not in [w.id for w in (await api.list_workflows(limit=100)).items]

    again = error_text(await mcp_client.call_tool("delete_workflow", {"workflow_id": victim.id}))
    assert again.startswith("OnePin answered 404")
    assert "list_workflows" in again


# --- list_workflow_uploads ------------------------------------------------------------------------


async def test_list_workflow_uploads_shows_a_workflows_script_file(mcp_client: Client) -> None:
    page = structured(
        await mcp_client.call_tool("list_workflow_uploads", {"workflow_id": seed.WORKFLOW_LONG_ID})
    )

    uploads = {item["id"]: item for item in page["items"]}
    chapter = uploads[seed.UPLOAD_CHAPTER_ID]
    assert chapter["filename"].endswith(".txt")
    assert chapter["status"] == "uploaded"
    assert chapter["line_count"] > 0
    assert page["offset"] == 0
    assert page["next_offset"] is None
    assert "next" not in page


async def test_list_workflow_uploads_of_a_workflow_without_uploads_is_empty(
    mcp_client: Client,
) -> None:
    page = structured(
        await mcp_client.call_tool("list_workflow_uploads", {"workflow_id": seed.WORKFLOW_DRAFT_ID})
    )

    assert page["items"] == []
    assert page["next_offset"] is None


async def test_list_workflow_uploads_of_an_unknown_workflow_names_the_listing_tool(
    mcp_client: Client,
) -> None:
    result = await mcp_client.call_tool("list_workflow_uploads", {"workflow_id": str(uuid.uuid4())})

    text = error_text(result)
    assert text.startswith("OnePin answered 404")
    assert "list_workflows" in text


# --- roles ----------------------------------------------------------------------------------------


async def test_a_viewer_key_cannot_edit_workflows_and_is_told_which_role_is_needed(
    mode: str, runnable: dict[str, Any]
) -> None:
    key = "op_live_" + "V" * 32
    viewer = Sandbox(manual_clock=True, api_keys=[ApiKey(key, role="viewer")])
    server = create_server(
        sandbox_settings(viewer, api_key=key),
        selection=ToolSelection(toolsets=("workflow_admin",)),
        transport=viewer.transport(),
        retry=NO_WAIT_RETRY,
    )
    async with Client(server, mode=mode) as client:
        created = await client.call_tool("create_workflow", {"name": "Nope"})
        checked = await client.call_tool("validate_workflow", {"definition": runnable})
        listed = await client.call_tool("list_workflow_uploads", {"workflow_id": COMPLETES})

    for result in (created, checked):
        text = error_text(result)
        assert text.startswith("OnePin answered 403")
        assert "editor role" in text
    assert structured(listed)["items"] == []
    assert [r.status for r in viewer.requests if r.method == "POST"] == [403, 403]
