"""The options of replicas behind a balancer: the session route and the shared request-state key."""

from __future__ import annotations

import pytest

from onepin_mcp.options import OptionsError, ServeOptions, parse_command

HTTP = ["--transport", "streamable-http"]
KEY = "k" * 64
OLD_KEY = "o" * 32


def _serve(argv: list[str], env: dict[str, str] | None = None) -> ServeOptions:
    command = parse_command(argv, env or {})
    assert isinstance(command, ServeOptions)
    return command


def test_a_session_route_comes_from_the_flag_or_its_environment_twin() -> None:
    assert _serve(HTTP).session_route is None
    assert _serve(HTTP, {"ONEPIN_MCP_SESSION_ROUTE": "mcp-2"}).session_route == "mcp-2"
    flagged = _serve([*HTTP, "--session-route", "a"], {"ONEPIN_MCP_SESSION_ROUTE": "b"})
    assert flagged.session_route == "a"


@pytest.mark.parametrize(
    "argv",
    [
        [*HTTP, "--session-route", "A"],
        [*HTTP, "--session-route", "a.b"],
        [*HTTP, "--session-route", "-a"],
        [*HTTP, "--session-route", "a" * 33],
        [*HTTP, "--stateless", "--session-route", "a"],
        ["--transport", "sse", "--session-route", "a"],
        ["--session-route", "a"],
    ],
    ids=["uppercase", "a-dot", "leading-dash", "too-long", "stateless", "sse", "stdio"],
)
def test_a_route_that_could_not_be_read_back_from_an_id_or_has_no_ids_to_go_in_is_refused(
    argv: list[str],
) -> None:
    with pytest.raises(OptionsError):
        parse_command(argv, {})


def test_the_environment_twin_of_a_route_is_ignored_on_stdio() -> None:
    assert _serve([], {"ONEPIN_MCP_SESSION_ROUTE": "a"}).session_route is None


def test_shared_request_state_keys_are_read_as_a_rotation_ring_and_never_shown() -> None:
    assert _serve(HTTP).request_state_keys == ()
    options = _serve(HTTP, {"ONEPIN_MCP_REQUEST_STATE_KEY": f"{KEY}, {OLD_KEY}"})
    assert options.request_state_keys == (KEY, OLD_KEY)
    assert KEY not in repr(options)
    assert OLD_KEY not in repr(options)


@pytest.mark.parametrize("value", ["s" * 31, f"{KEY},{'t' * 8}", f"{KEY},{KEY}"])
def test_a_short_or_repeated_request_state_key_is_refused_without_quoting_it(value: str) -> None:
    with pytest.raises(OptionsError) as refused:
        parse_command(HTTP, {"ONEPIN_MCP_REQUEST_STATE_KEY": value})
    assert "ONEPIN_MCP_REQUEST_STATE_KEY" in str(refused.value)
    for key in value.split(","):
        assert key not in str(refused.value)
