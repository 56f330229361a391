"""The write policy's flags and environment twins: --confirm / ONEPIN_MCP_CONFIRM,
--max-run-credits / ONEPIN_MCP_MAX_RUN_CREDITS, --audit-log / ONEPIN_MCP_AUDIT_LOG, parsed into
the `WritePolicy` that every transport (and --sandbox) passes to the server."""

from __future__ import annotations

from pathlib import Path

import pytest

from onepin_mcp.__main__ import EXIT_USAGE, main
from onepin_mcp.options import OptionsError, ServeOptions, parse_command
from onepin_mcp.state import WritePolicy

TOKEN = "a-token-long-enough-to-guard"


def _policy(*argv: str, **env: str) -> WritePolicy:
    options = parse_command(argv, env)
    assert isinstance(options, ServeOptions)
    return options.policy


def _refused(*argv: str, **env: str) -> str:
    with pytest.raises(OptionsError) as refused:
        parse_command(argv, env)
    return str(refused.value)


def test_by_default_destructive_writes_are_confirmed_with_no_cap_and_no_audit_file() -> None:
    assert _policy() == WritePolicy(max_run_credits=None, confirm="destructive", audit_log=None)


def test_the_flags_set_the_policy() -> None:
    policy = _policy("--confirm", "WRITES", "--max-run-credits", "250", "--audit-log", "a.jsonl")
    assert policy == WritePolicy(max_run_credits=250, confirm="writes", audit_log="a.jsonl")


def test_the_environment_twins_set_the_policy_and_empty_ones_count_as_unset() -> None:
    policy = _policy(
        ONEPIN_MCP_CONFIRM="never",
        ONEPIN_MCP_MAX_RUN_CREDITS=" 40 ",
        ONEPIN_MCP_AUDIT_LOG="/var/log/onepin.jsonl",
    )
    assert policy == WritePolicy(
        max_run_credits=40, confirm="never", audit_log="/var/log/onepin.jsonl"
    )
    empty = _policy(ONEPIN_MCP_CONFIRM="", ONEPIN_MCP_MAX_RUN_CREDITS=" ", ONEPIN_MCP_AUDIT_LOG="")
    assert empty == WritePolicy()


def test_a_flag_wins_over_its_environment_twin() -> None:
    policy = _policy(
        "--confirm",
        "destructive",
        "--max-run-credits",
        "9",
        "--audit-log",
        "flag.jsonl",
        ONEPIN_MCP_CONFIRM="never",
        ONEPIN_MCP_MAX_RUN_CREDITS="1000",
        ONEPIN_MCP_AUDIT_LOG="env.jsonl",
    )
    assert policy == WritePolicy(max_run_credits=9, confirm="destructive", audit_log="flag.jsonl")


def test_the_policy_applies_to_http_transports_and_the_sandbox_alike() -> None:
    http = _policy("--transport", "streamable-http", "--max-run-credits", "5", "--sandbox")
    sse = _policy("--transport", "sse", ONEPIN_MCP_HTTP_TOKEN=TOKEN, ONEPIN_MCP_CONFIRM="writes")
    assert http.max_run_credits == 5
    assert sse.confirm == "writes"


@pytest.mark.parametrize("value", ["0", "-3", "1.5", "lots"])
def test_a_cap_must_be_a_whole_number_of_at_least_one_credit(value: str) -> None:
    assert "--max-run-credits" in _refused("--max-run-credits", value)
    assert "ONEPIN_MCP_MAX_RUN_CREDITS" in _refused(ONEPIN_MCP_MAX_RUN_CREDITS=value)


def test_an_unknown_confirm_policy_is_refused_with_the_choices() -> None:
    assert "never, destructive, writes" in _refused(ONEPIN_MCP_CONFIRM="always")
    assert "invalid choice" in _refused("--confirm", "always")


def test_the_server_refuses_to_start_when_the_audit_log_cannot_be_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-dir" / "audit.jsonl"

    code = main(["--sandbox", "--audit-log", str(missing)])

    assert code == EXIT_USAGE
    assert f"cannot write the audit log {missing}" in capsys.readouterr().err
    assert not missing.parent.exists()
