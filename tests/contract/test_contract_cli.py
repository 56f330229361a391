"""The official `onepin` CLI, unchanged, against `onepin-mcp sandbox` over a loopback socket.

Each command runs as a user runs it: a separate process configured only through the environment
(`ONEPIN_BASE_URL`, `ONEPIN_API_KEY`, `ONEPIN_NO_UPDATE_CHECK=1`, `NO_COLOR=1`, `HOME` in a
temporary directory so no real credentials file is read or written). Every command must exit 0
and, where it has `--json`, print JSON whose content is checked.

Commands verified (WF/RUN stand for ids of the seeded world):

    onepin --json whoami
    onepin whoami
    onepin workflows list --json
    onepin workflows list --sort name --order asc --limit 2 --json
    onepin workflows list --has-failed-run --json
    onepin workflows list --no-has-failed-run --json
    onepin workflows list --last-run-after ISO --include-definition --sort runs_count
        --order desc --json
    onepin --workspace WORKSPACE workflows list --limit 1 --json
    onepin --workspace OTHER workflows list --json                (exit 1, FORBIDDEN on stderr)
    onepin workflows show MISSING --json                           (exit 1, NOT_FOUND on stderr)
    onepin workflows show WF --json
    onepin workflows preview-run WF --json
    onepin workflows preview-run WF --script TEXT --source-language en-us --json
    onepin workflows run WF --json
    onepin workflows run WF --watch --timeout 120 --json      (real-time sandbox, the one slow test)
    onepin workflows runs list WF --json
    onepin workflows runs list WF --status completed --json
    onepin workflows runs list WF --status draft --json            (exit 1, VALIDATION_ERROR)
    onepin workflows runs show WF RUN --json
    onepin workflows runs status WF RUN --json
    onepin workflows runs steps WF RUN --json
    onepin workflows runs data WF RUN --limit 5 --json
    onepin workflows runs overview WF RUN --json
    onepin workflows runs summary WF --json
    onepin workflows runs summary WF --from ISO --to ISO --json
    onepin workflows runs download WF RUN --out FILE --json
    onepin workflows runs download-node WF RUN NODE --out FILE --json
    onepin workflows runs cancel WF RUN --yes --json
    onepin nodes list --json
    onepin voices list --json
    onepin templates list --json
"""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from onepin_mcp.sandbox import seed
from tests.support.sandbox_process import ServedSandbox, sibling_script, start_sandbox, stop_sandbox

COMMAND_TIMEOUT_S = 60
WATCH_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def onepin_cli() -> str:
    path = sibling_script("onepin")
    assert path, "the official `onepin` CLI is installed beside this interpreter (dev extra)"
    return path


class Cli:
    def __init__(self, executable: str, served: ServedSandbox, home: Path) -> None:
        self.executable = executable
        self.served = served
        env = {k: v for k, v in os.environ.items() if not k.startswith("ONEPIN_")}
        env.update(
            HOME=str(home),
            USERPROFILE=str(home),
            ONEPIN_BASE_URL=served.base_url,
            ONEPIN_API_KEY=served.key,
            ONEPIN_NO_UPDATE_CHECK="1",
            NO_COLOR="1",
            COLUMNS="200",
        )
        self.env = env

    def run(
        self, *args: str, timeout: float = COMMAND_TIMEOUT_S, exit_code: int = 0
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.executable, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == exit_code, (
            f"`onepin {' '.join(args)}` exited {done.returncode}, expected {exit_code}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}\n"
            f"sandbox stderr:\n{self.served.stderr_tail()}"
        )
        return done

    def error(self, *args: str) -> dict[str, Any]:
        """The structured error a failing `--json` command prints on stderr (exit code 1)."""
        done = self.run(*args, exit_code=1)
        assert done.stdout == ""
        envelope: dict[str, Any] = json.loads(done.stderr)
        return envelope

    def json(self, *args: str, timeout: float = COMMAND_TIMEOUT_S) -> Any:
        done = self.run(*args, timeout=timeout)
        try:
            return json.loads(done.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(
                f"`onepin {' '.join(args)}` printed no JSON:\n{done.stdout}"
            ) from exc


@pytest.fixture
def cli(onepin_cli: str, loopback: ServedSandbox, tmp_path: Path) -> Cli:
    return Cli(onepin_cli, loopback, tmp_path)


def _api(served: ServedSandbox, path: str) -> Any:
    response = httpx.get(
        f"{served.base_url}{path}", headers={"Authorization": f"Bearer {served.key}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]


def test_onepin_whoami_reports_the_sandbox_key_its_workspace_and_scopes(cli: Cli) -> None:
    whoami = cli.json("--json", "whoami")
    assert whoami["auth_kind"] == "api_key"
    assert whoami["workspace_id"] == seed.WORKSPACE_ID
    assert "workflows:run" in whoami["scopes"]
    text = cli.run("whoami").stdout
    assert "Source: env" in text
    assert f"Workspace: {seed.WORKSPACE_ID}" in text


def test_onepin_lists_shows_and_previews_the_seeded_workflows(cli: Cli) -> None:
    listed = cli.json("workflows", "list", "--json")
    ids = {row["id"] for row in listed}
    assert {seed.WORKFLOW_COMPLETES_ID, seed.WORKFLOW_FAILS_ID, seed.WORKFLOW_LONG_ID} <= ids
    page = cli.json(
        "workflows", "list", "--sort", "name", "--order", "asc", "--limit", "2", "--json"
    )
    assert len(page) == 2

    wf = seed.WORKFLOW_COMPLETES_ID
    shown = cli.json("workflows", "show", wf, "--json")
    assert shown["id"] == wf
    assert shown["definition"]["graph"]["nodes"]

    estimate = cli.json("workflows", "preview-run", wf, "--json")
    assert estimate["min_credits"] <= estimate["expected_credits"] <= estimate["max_credits"]
    assert isinstance(estimate["can_run"], bool)
    priced = cli.json(
        "workflows",
        "preview-run",
        wf,
        "--script",
        "Hello.\nGoodbye.",
        "--source-language",
        "en-us",
        "--json",
    )
    assert priced["max_credits"] >= priced["min_credits"]


def test_onepin_list_filters_reach_the_sandbox_as_the_cli_encodes_them(cli: Cli) -> None:
    # Sort/order lists, tri-state booleans and datetimes with offsets, as the SDK sends them.
    failed = {w["id"] for w in cli.json("workflows", "list", "--has-failed-run", "--json")}
    never = {w["id"] for w in cli.json("workflows", "list", "--no-has-failed-run", "--json")}
    assert seed.WORKFLOW_FAILS_ID in failed
    assert seed.WORKFLOW_FAILS_ID not in never
    assert not failed & never
    recent = cli.json(
        "workflows",
        "list",
        "--last-run-after",
        "2026-03-01T00:00:00Z",
        "--include-definition",
        "--sort",
        "runs_count",
        "--order",
        "desc",
        "--json",
    )
    assert recent
    assert all(w["last_run_at"] >= "2026-03-01T00:00:00" for w in recent)
    assert all(w["definition"]["graph"]["nodes"] for w in recent)
    counts = [w["runs_count"] for w in recent]
    assert counts == sorted(counts, reverse=True)
    window = cli.json(
        "workflows",
        "runs",
        "summary",
        seed.WORKFLOW_COMPLETES_ID,
        "--from",
        "2020-01-01T00:00:00Z",
        "--to",
        "2035-01-01T00:00:00+00:00",
        "--json",
    )
    assert window["total_runs"] >= window["completed"] >= 1


def test_onepin_reports_the_sandbox_error_envelopes_as_structured_cli_errors(cli: Cli) -> None:
    missing = cli.error("workflows", "show", "00000000-0000-4000-8000-000000000000", "--json")
    assert missing["error"]["code"] == "NOT_FOUND"
    assert missing["meta"]["request_id"]
    other_workspace = cli.error(
        "--workspace", "00000000-0000-4000-8000-000000000000", "workflows", "list", "--json"
    )
    assert other_workspace["error"]["code"] == "FORBIDDEN"
    # The CLI offers `draft` for run lists, which the API refuses (a known quirk of the CLI).
    refused = cli.error(
        "workflows", "runs", "list", seed.WORKFLOW_COMPLETES_ID, "--status", "draft", "--json"
    )
    assert refused["error"]["code"] == "VALIDATION_ERROR"
    scoped = cli.json(
        "--workspace", seed.WORKSPACE_ID, "workflows", "list", "--limit", "1", "--json"
    )
    assert len(scoped) == 1


def test_onepin_reads_every_view_of_a_finished_run_and_downloads_its_audio(
    cli: Cli, loopback: ServedSandbox, tmp_path: Path
) -> None:
    wf = seed.WORKFLOW_COMPLETES_ID
    started = cli.json("workflows", "run", wf, "--json")
    run = started["id"]
    assert started["status"] in ("pending", "running")
    loopback.advance(600)
    assert _api(loopback, f"/api/v1/workflows/{wf}/runs/{run}/status")["status"] == "completed"

    status = cli.json("workflows", "runs", "status", wf, run, "--json")
    assert (status["id"], status["status"]) == (run, "completed")
    shown = cli.json("workflows", "runs", "show", wf, run, "--json")
    assert shown["has_export"] is True
    runs = cli.json("workflows", "runs", "list", wf, "--json")
    assert run in [r["id"] for r in runs]
    completed = cli.json("workflows", "runs", "list", wf, "--status", "completed", "--json")
    assert {r["status"] for r in completed} == {"completed"}

    steps = cli.json("workflows", "runs", "steps", wf, run, "--json")
    assert [s["status"] for s in steps if s["node_type"] == "sink_preview"][-1] == "completed"
    data = cli.json("workflows", "runs", "data", wf, run, "--limit", "5", "--json")
    assert (data["run_id"], data["run_status"]) == (run, "completed")
    assert 0 < len(data["rows"]) <= 5
    overview = cli.json("workflows", "runs", "overview", wf, run, "--json")
    assert overview["run"]["status"] == "completed"
    summary = cli.json("workflows", "runs", "summary", wf, "--json")
    assert summary["completed"] >= 1

    out = tmp_path / "run.zip"
    written = cli.json("workflows", "runs", "download", wf, run, "--out", str(out), "--json")
    assert written == {"ok": True, "path": str(out)}
    _assert_audio_zip(out)

    nodes = shown["definition_snapshot"]["graph"]["nodes"]
    sink = next(node["id"] for node in nodes if node["type"] == "sink_preview")
    node_out = tmp_path / "node.zip"
    cli.json("workflows", "runs", "download-node", wf, run, sink, "--out", str(node_out), "--json")
    _assert_audio_zip(node_out)


def _assert_audio_zip(path: Path) -> None:
    assert zipfile.is_zipfile(path)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        audio = [n for n in archive.namelist() if n.endswith((".wav", ".mp3"))]
    assert audio, f"{path.name} holds audio files"


def test_onepin_starts_and_cancels_a_run(cli: Cli, loopback: ServedSandbox) -> None:
    wf = seed.WORKFLOW_LONG_ID
    started = cli.json("workflows", "run", wf, "--json")
    run = started["id"]
    loopback.advance(5)
    cancelled = cli.json("workflows", "runs", "cancel", wf, run, "--yes", "--json")
    assert (cancelled["id"], cancelled["status"]) == (run, "cancelled")
    assert cli.json("workflows", "runs", "status", wf, run, "--json")["status"] == "cancelled"


def test_onepin_lists_the_node_voice_and_template_catalogs(cli: Cli) -> None:
    nodes = cli.json("nodes", "list", "--json")
    assert "operator_generator" in {node["node_type"] for node in nodes}
    voices = cli.json("voices", "list", "--json")
    assert voices
    assert all(voice["id"] and voice["provider"] for voice in voices)
    templates = cli.json("templates", "list", "--json")
    assert templates
    assert all(template["definition"] for template in templates)


@pytest.fixture
def realtime_sandbox() -> Iterator[ServedSandbox]:
    served = start_sandbox()
    try:
        yield served
    finally:
        stop_sandbox(served)


def test_onepin_run_watch_follows_a_run_on_the_real_clock_until_it_completes(
    onepin_cli: str, realtime_sandbox: ServedSandbox, tmp_path: Path
) -> None:
    cli = Cli(onepin_cli, realtime_sandbox, tmp_path)
    wf = seed.WORKFLOW_COMPLETES_ID
    finished = cli.json(
        "workflows",
        "run",
        wf,
        "--watch",
        "--timeout",
        str(WATCH_TIMEOUT_S),
        "--json",
        timeout=WATCH_TIMEOUT_S + 30,
    )
    assert finished["status"] == "completed"
    assert finished["workflow_id"] == wf
    assert _api(realtime_sandbox, f"/api/v1/workflows/{wf}/runs/{finished['id']}")["has_export"]
