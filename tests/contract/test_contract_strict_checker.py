"""The strict checker is test tooling; these pin that it catches what the contract tests rely on."""

from __future__ import annotations

import pydantic
import pytest
from onepin.core.pydantic_utilities import UniversalBaseModel

from .strict import assert_strict, strict_problems


class _Edge(UniversalBaseModel):
    # Like the SDK's generated models: extras allowed, a camelCase wire alias.
    source_port: str = pydantic.Field(alias="sourcePort")
    model_config = pydantic.ConfigDict(extra="allow", frozen=True)


class _Graph(UniversalBaseModel):
    name: str
    size: int | None = None
    edges: list[_Edge]
    model_config = pydantic.ConfigDict(extra="allow", frozen=True)


GOOD = {"name": "g", "size": 2, "edges": [{"sourcePort": "lines"}]}


def test_a_payload_that_matches_the_model_passes_and_is_parsed() -> None:
    parsed = assert_strict(_Graph, GOOD)
    assert parsed.edges[0].source_port == "lines"
    assert strict_problems(_Graph, {"name": "g", "edges": []}) == []


def test_an_unknown_key_is_caught_even_deep_in_a_list_though_the_model_allows_extras() -> None:
    payload = {**GOOD, "edges": [{"sourcePort": "lines", "sourcePrt": "x"}], "colour": "red"}
    assert _Graph.model_validate(payload).name == "g"  # the SDK model alone lets it through
    assert strict_problems(_Graph, payload) == [
        "$.colour: not a field of _Graph",
        "$.edges[0].sourcePrt: not a field of _Edge",
    ]


def test_a_missing_required_key_is_caught_with_its_path() -> None:
    with pytest.raises(AssertionError, match=r"\$\.name: required by _Graph but missing"):
        assert_strict(_Graph, {"edges": []})
    assert strict_problems(_Graph, {"name": "g", "edges": [{}]}) == [
        "$.edges[0].sourcePort: required by _Edge but missing"
    ]


def test_a_field_sent_under_its_python_name_instead_of_its_alias_is_caught_both_ways() -> None:
    problems = strict_problems(_Graph, {"name": "g", "edges": [{"source_port": "lines"}]})
    assert problems == [
        "$.edges[0].source_port: not a field of _Edge (the wire name is 'sourcePort')",
        "$.edges[0].sourcePort: required by _Edge but missing",
    ]


def test_a_value_pydantic_would_coerce_is_reported_as_the_wrong_json_type() -> None:
    assert strict_problems(_Graph, {**GOOD, "size": "2"}) == ["$.size: '2' is not a JSON integer"]
