"""The models read what the API sends, tolerate what it adds, and say how to page on."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from onepin_mcp.api.models import (
    TERMINAL_STATUSES,
    DataCard,
    PageInfo,
    RunState,
    WorkflowDefinition,
    is_terminal,
)

RUN_ID = "a8c3f5e2-1d4b-4a7e-9c60-7e2f1b5d3a48"
WORKFLOW_ID = "0f6c2b8e-4a1d-4c9f-b3e7-8d5a2c1f6e94"


def test_next_offset_comes_from_the_total_when_the_list_is_counted() -> None:
    first = PageInfo.compute(count=2, total=5, limit=2, offset=0, has_next_link=None)
    last = PageInfo.compute(count=1, total=5, limit=2, offset=4, has_next_link=None)
    assert first.next_offset == 2
    assert last.next_offset is None


def test_without_a_total_a_full_page_suggests_more_and_a_short_page_ends_the_list() -> None:
    full = PageInfo.compute(count=20, total=None, limit=20, offset=0, has_next_link=None)
    short = PageInfo.compute(count=7, total=None, limit=20, offset=20, has_next_link=None)
    assert full.next_offset == 20
    assert short.next_offset is None


def test_a_next_link_from_the_server_decides_when_there_is_no_total() -> None:
    ended = PageInfo.compute(count=20, total=None, limit=20, offset=0, has_next_link=False)
    more = PageInfo.compute(count=5, total=None, limit=20, offset=0, has_next_link=True)
    assert ended.next_offset is None
    assert more.next_offset == 5


def test_an_empty_page_never_points_further() -> None:
    page = PageInfo.compute(count=0, total=50, limit=20, offset=60, has_next_link=True)
    assert page.next_offset is None


def test_run_models_ignore_fields_the_api_adds_later() -> None:
    state = RunState.model_validate(
        {
            "id": RUN_ID,
            "workflow_id": WORKFLOW_ID,
            "status": "running",
            "finished_steps": 2,
            "a_field_from_the_future": {"nested": True},
        }
    )
    assert state.finished_steps == 2
    assert not state.is_terminal


def test_an_unknown_run_status_is_refused_rather_than_guessed() -> None:
    with pytest.raises(ValidationError):
        RunState.model_validate({"id": RUN_ID, "workflow_id": WORKFLOW_ID, "status": "exploded"})


def test_terminal_statuses_are_the_three_documented_ones() -> None:
    assert frozenset({"completed", "failed", "cancelled"}) == TERMINAL_STATUSES
    assert is_terminal("cancelled")
    assert not is_terminal("paused")


def test_a_definition_round_trips_with_camel_case_ports_and_unknown_fields() -> None:
    wire = {
        "graph": {
            "nodes": [
                {
                    "id": "src-1",
                    "type": "source_script",
                    "position": {"x": 0, "y": 160},
                    "config": {"script_text": "Hello."},
                    "ui_hint": "kept",
                }
            ],
            "edges": [
                {
                    "id": "e1",
                    "source": "src-1",
                    "sourcePort": "lines",
                    "target": "sink-1",
                    "targetPort": "lines",
                }
            ],
        },
        "execution": {"steps": ["src-1"]},
        "layout_version": 3,
    }
    definition = WorkflowDefinition.model_validate(wire)
    assert definition.graph is not None
    assert definition.graph.edges[0].source_port == "lines"
    sent = definition.to_api()
    assert sent["layout_version"] == 3
    assert sent["graph"]["nodes"][0]["ui_hint"] == "kept"
    assert sent["graph"]["edges"][0]["sourcePort"] == "lines"
    assert "source_port" not in sent["graph"]["edges"][0]


def test_a_data_card_exposes_the_audio_id_of_its_clip() -> None:
    card = DataCard.model_validate({"id": "ln-0:en-us:3F9A1C7E5B2D4A60"})
    assert card.audio_id == "3f9a1c7e5b2d4a60"
    assert DataCard.model_validate({"id": "ln-0:en-us"}).audio_id is None
