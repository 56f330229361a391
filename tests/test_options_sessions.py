"""The session settings: flags, their environment twins, and what is refused."""

from __future__ import annotations

import pytest

from onepin_mcp.options import OptionsError, ServeOptions, parse_command

HTTP = ["--transport", "streamable-http"]


def _serve(argv: list[str], env: dict[str, str] | None = None) -> ServeOptions:
    command = parse_command(argv, env or {})
    assert isinstance(command, ServeOptions)
    return command


def test_the_session_settings_have_defaults_flags_and_environment_twins() -> None:
    defaults = _serve(HTTP)
    assert (defaults.max_sessions, defaults.max_sessions_per_key) == (1000, 16)
    assert (defaults.session_idle_timeout_s, defaults.key_check_ttl_s) == (1800.0, 60.0)
    env = {
        "ONEPIN_MCP_MAX_SESSIONS": "50",
        "ONEPIN_MCP_MAX_SESSIONS_PER_KEY": "3",
        "ONEPIN_MCP_SESSION_IDLE_TIMEOUT_S": "90",
        "ONEPIN_MCP_KEY_CHECK_TTL_S": "5",
    }
    from_env = _serve(HTTP, env)
    assert (from_env.max_sessions, from_env.max_sessions_per_key) == (50, 3)
    assert (from_env.session_idle_timeout_s, from_env.key_check_ttl_s) == (90.0, 5.0)
    flags = [
        *HTTP,
        "--max-sessions",
        "7",
        "--max-sessions-per-key",
        "2",
        "--session-idle-timeout",
        "0.5",
        "--key-check-ttl",
        "1",
    ]
    from_flags = _serve(flags, env)
    assert (from_flags.max_sessions, from_flags.max_sessions_per_key) == (7, 2)
    assert (from_flags.session_idle_timeout_s, from_flags.key_check_ttl_s) == (0.5, 1.0)


@pytest.mark.parametrize(
    "argv",
    [
        [*HTTP, "--max-sessions", "0"],
        [*HTTP, "--max-sessions-per-key", "many"],
        [*HTTP, "--session-idle-timeout", "-1"],
        [*HTTP, "--key-check-ttl", "inf"],
        ["--max-sessions", "5"],  # an HTTP setting on stdio
    ],
    ids=["zero-sessions", "not-a-number", "negative-timeout", "infinite-ttl", "on-stdio"],
)
def test_unusable_session_settings_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(OptionsError):
        parse_command(argv, {})


def test_an_unusable_environment_twin_is_a_usage_error_that_names_it() -> None:
    with pytest.raises(OptionsError, match="ONEPIN_MCP_MAX_SESSIONS_PER_KEY"):
        parse_command(HTTP, {"ONEPIN_MCP_MAX_SESSIONS_PER_KEY": "0"})
