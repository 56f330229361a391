"""The container definition and the deployment example, checked without a container engine.

No engine runs where the tests run, so the image is never built here. What is checked instead:
the Dockerfile's own text (base, stages, user, entry point, health check, port, environment),
and its start and health-check commands, read from that text and run against the installed
package with the image's environment applied (its virtual environment mapped onto this one,
0.0.0.0 onto loopback, a free port). The same for the compose example's environment, on two
replicas at once, and the load balancer's configuration as text.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from onepin_mcp import __version__
from onepin_mcp.api.settings import Settings
from onepin_mcp.server import create_server
from onepin_mcp.surface import list_tools
from onepin_mcp.tools.runs import MAX_WAIT_S
from tests.packaging.conftest import ROOT
from tests.support.processes import Launched, launch, terminate
from tests.support.sandbox_process import ServedSandbox
from tests.transports.test_http import INITIALIZE, MCP_POST_HEADERS

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "deploy" / "compose.yaml"
NGINX = ROOT / "deploy" / "nginx.conf"
BASE_IMAGE = "python:3.11-slim"
SERVICE = "onepin-mcp"
ANNOUNCED = re.compile(r"serving MCP over (\S+) at (http://\S+)")
START_DEADLINE_S = 30.0
COMMAND_TIMEOUT_S = 60.0
TOKEN = "container-test-token-" + "x" * 20


# --- reading the Dockerfile ---------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str


def parse_dockerfile(text: str) -> list[list[Instruction]]:
    """The instructions of each build stage, in order, as the builder reads them: comment lines
    dropped (also inside a continued instruction), `\\` + newline joined away."""
    stages: list[list[Instruction]] = []
    pending = ""
    for line in text.splitlines():
        # Blank lines carry nothing, inside a continued instruction too (the builder warns).
        if not line.strip() or line.strip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1]
            continue
        keyword, _, value = (pending + line).strip().partition(" ")
        pending = ""
        instruction = Instruction(keyword.upper(), value.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        assert stages, "an instruction before the first FROM"
        stages[-1].append(instruction)
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return stages


@dataclass(frozen=True)
class Image:
    stages: list[list[Instruction]]

    @property
    def final(self) -> list[Instruction]:
        return self.stages[-1]

    def values(self, keyword: str, stage: list[Instruction] | None = None) -> list[str]:
        return [i.value for i in (self.final if stage is None else stage) if i.keyword == keyword]

    def one(self, keyword: str) -> str:
        values = self.values(keyword)
        assert len(values) == 1, f"{keyword}: {values}"
        return values[0]

    @property
    def env(self) -> dict[str, str]:
        """The final stage's ENV, as `KEY=value` pairs (references left as they are)."""
        env: dict[str, str] = {}
        for value in self.values("ENV"):
            for pair in shlex.split(value):
                key, sep, item = pair.partition("=")
                assert sep, f"ENV in the legacy 'ENV KEY value' form: {value}"
                env[key] = item
        return env

    @property
    def entrypoint(self) -> list[str]:
        return list(json.loads(self.one("ENTRYPOINT")))

    @property
    def cmd(self) -> list[str]:
        values = self.values("CMD")
        return list(json.loads(values[-1])) if values else []

    @property
    def healthcheck(self) -> tuple[dict[str, str], list[str]]:
        """The HEALTHCHECK's options and its command (exec form)."""
        options_text, sep, command = self.one("HEALTHCHECK").partition("CMD ")
        assert sep, "HEALTHCHECK without CMD"
        options = dict(option.removeprefix("--").split("=", 1) for option in options_text.split())
        return options, list(json.loads(command))

    @property
    def venv(self) -> str:
        """Where the final stage holds the virtual environment it copies from the build stage."""
        copies = [v for v in self.values("COPY") if v.startswith("--from=")]
        assert len(copies) == 1, copies
        _, source, target = copies[0].split()
        assert source == target, copies[0]
        return target


@pytest.fixture(scope="module")
def image() -> Image:
    return Image(parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")))


def local_env(
    image: Image, home: Path, overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The image's environment for a process on this machine: its virtual environment's bin
    directory becomes this interpreter's (where the package is installed), `${PATH}` this
    machine's PATH, HOME a temporary directory; nothing else from the test's environment."""
    local_bin = str(Path(sys.executable).parent)
    env = {"HOME": str(home)}
    for key, value in image.env.items():
        value = value.replace(f"{image.venv}/bin", local_bin)
        env[key] = value.replace("${PATH}", os.environ.get("PATH", "")).replace(
            "$PATH", os.environ.get("PATH", "")
        )
    env.update(overrides or {})
    return env


async def default_tool_names() -> list[str]:
    return [tool.name for tool in await list_tools(create_server(Settings()))]


def command_path(name: str, env: Mapping[str, str]) -> str:
    found = shutil.which(name, path=env["PATH"])
    assert found is not None, f"{name} not found on the image's PATH"
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_healthcheck(image: Image, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    _, command = image.healthcheck
    return subprocess.run(
        [command_path(command[0], env), *command[1:]],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


@dataclass
class Started:
    launched: Launched
    transport: str
    url: str

    @property
    def base(self) -> str:
        return self.url.rsplit("/", 1)[0]

    def stderr(self) -> str:
        return "".join(self.launched.stderr_lines)


def start(image: Image, env: Mapping[str, str], cwd: Path) -> Started:
    """The image's start command (ENTRYPOINT + CMD) with `env`, until it announces its URL."""
    argv = [*image.entrypoint, *image.cmd]
    launched = launch(
        [command_path(argv[0], env), *argv[1:]],
        env=env,
        ready=lambda stderr: ANNOUNCED.search(stderr) is not None,
        deadline_s=START_DEADLINE_S,
        cwd=cwd,
    )
    match = ANNOUNCED.search("".join(launched.stderr_lines))
    assert match is not None
    return Started(launched, match.group(1), match.group(2))


def stop(started: Started) -> int:
    died_early = started.launched.process.poll()
    code = terminate(started.launched)
    assert died_early is None, f"exited on its own ({died_early}):\n{started.stderr()}"
    return code


# --- the Dockerfile's text ----------------------------------------------------------------------


def test_the_image_builds_in_two_stages_on_the_small_python_base(image: Image) -> None:
    assert len(image.stages) == 2
    bases = [stage[0].value.split() for stage in image.stages]
    assert [base[0] for base in bases] == [BASE_IMAGE, BASE_IMAGE]
    build_stage = bases[0][-1]
    assert bases[0][1:] == ["AS", build_stage]
    # The final stage takes only the built virtual environment from the build stage.
    copies = image.values("COPY")
    assert copies == [f"--from={build_stage} {image.venv} {image.venv}"]
    build_runs = " ".join(image.values("RUN", image.stages[0]))
    assert "pip wheel" in build_runs
    assert f"python -m venv {image.venv}" in build_runs


def test_the_image_runs_as_an_unprivileged_user_that_it_creates(image: Image) -> None:
    user = image.one("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), "a numeric user, so that runAsNonRoot-style checks can verify it"
    assert int(uid) != 0
    assert not gid or int(gid) != 0
    created = " ".join(image.values("RUN"))
    assert f"--uid {uid}" in created
    assert not gid or f"--gid {gid}" in created


def test_the_image_serves_stdio_by_default_and_configures_http_only_by_environment(
    image: Image,
) -> None:
    assert image.entrypoint == ["onepin-mcp"]
    assert image.cmd == []
    env = image.env
    assert "ONEPIN_MCP_TRANSPORT" not in env
    assert env["ONEPIN_MCP_HOST"] == "0.0.0.0"
    assert image.one("EXPOSE") == env["ONEPIN_MCP_PORT"]
    # No credential is baked into the image.
    assert not {"ONEPIN_API_KEY", "ONEPIN_MCP_HTTP_TOKEN"} & set(env)
    assert env["PATH"].split(":")[0] == f"{image.venv}/bin"


def test_the_health_check_is_bounded_and_runs_in_exec_form(image: Image) -> None:
    options, command = image.healthcheck
    assert set(options) >= {"interval", "timeout", "retries"}
    assert command[0] == "python"
    assert "/healthz" in " ".join(command)


def test_the_build_context_holds_only_what_the_build_copies(image: Image) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "an allow-list: everything is left out unless named"
    allowed = {p[1:] for p in patterns if p.startswith("!")}
    copied: set[str] = set()
    for value in image.values("COPY", image.stages[0]):
        *sources, _ = value.split()
        copied |= set(sources)
    assert copied == allowed
    assert all((ROOT / source).exists() for source in copied)
    assert {"**/__pycache__", "**/*.py[cod]"} <= set(patterns)


# --- the image's commands, run against the installed package ------------------------------------


def test_over_http_the_start_command_serves_health_and_the_health_check_passes(
    image: Image, tmp_path: Path
) -> None:
    assert image.env["ONEPIN_MCP_HOST"] == "0.0.0.0"
    port = free_port()
    env = local_env(
        image,
        tmp_path,
        {
            "ONEPIN_MCP_TRANSPORT": "streamable-http",
            "ONEPIN_MCP_HTTP_TOKEN": TOKEN,
            "ONEPIN_MCP_HOST": "127.0.0.1",  # in place of 0.0.0.0: nothing beyond loopback here
            "ONEPIN_MCP_PORT": str(port),
        },
    )
    started = start(image, env, tmp_path)
    try:
        assert (started.transport, started.url) == (
            "streamable-http",
            f"http://127.0.0.1:{port}/mcp",
        )
        health = httpx.get(f"{started.base}/healthz", timeout=30)
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "version": __version__}
        refused = httpx.post(started.url, json=INITIALIZE, headers=MCP_POST_HEADERS, timeout=30)
        assert refused.status_code == 401
        check = run_healthcheck(image, env)
        assert check.returncode == 0, f"{check.stdout}\n{check.stderr}"
    finally:
        assert stop(started) == 0, started.stderr()
    # With nothing listening, the same check fails: it really asks the server.
    after = run_healthcheck(image, env)
    assert after.returncode != 0


def test_over_http_without_client_auth_the_start_command_refuses_to_bind_the_wildcard(
    image: Image, tmp_path: Path
) -> None:
    env = local_env(image, tmp_path, {"ONEPIN_MCP_TRANSPORT": "streamable-http"})
    argv = [*image.entrypoint, *image.cmd]
    done = subprocess.run(
        [command_path(argv[0], env), *argv[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 2
    assert "refusing to serve on 0.0.0.0 without authentication" in done.stderr


@pytest.mark.anyio
async def test_by_default_the_start_command_speaks_mcp_on_stdio_and_is_healthy(
    image: Image, tmp_path: Path
) -> None:
    env = local_env(image, tmp_path)
    argv = [*image.entrypoint, *image.cmd]
    params = StdioServerParameters(
        command=command_path(argv[0], env), args=argv[1:], env=env, cwd=tmp_path
    )
    expected = await default_tool_names()
    with anyio.fail_after(START_DEADLINE_S * 2):
        async with Client(params, read_timeout_seconds=30) as client:
            tools = (await client.list_tools()).tools
    assert [tool.name for tool in tools] == expected
    check = run_healthcheck(image, env)
    assert check.returncode == 0, f"{check.stdout}\n{check.stderr}"


# --- the compose example and its load balancer ----------------------------------------------------


def compose() -> Any:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's `${NAME}` / `${NAME:-default}`, for the forms the example uses."""

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(3) or ""
        return variables.get(name) or default

    return re.sub(r"\$\{([A-Za-z0-9_]+)(:-([^}]*))?\}", replace, value)


def service_env(variables: Mapping[str, str]) -> dict[str, str]:
    environment = compose()["services"][SERVICE]["environment"]
    assert isinstance(environment, dict), "environment as a mapping"
    return {key: interpolate(str(value), variables) for key, value in environment.items()}


def variables_read_by_the_code() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "onepin_mcp").rglob("*.py"):
        if "sandbox" not in path.relative_to(ROOT).parts:
            names |= set(re.findall(r"ONEPIN_[A-Z0-9_]+", path.read_text(encoding="utf-8")))
    return names


def test_the_compose_example_runs_several_stateless_replicas_of_this_image() -> None:
    services = compose()["services"]
    server = services[SERVICE]
    assert (COMPOSE.parent / server["build"]["context"] / server["build"]["dockerfile"]) == (
        COMPOSE.parent / ".." / "Dockerfile"
    )
    assert (COMPOSE.parent / server["build"]["context"]).resolve() == ROOT
    assert server["deploy"]["replicas"] >= 2
    env = service_env({})
    assert env["ONEPIN_MCP_TRANSPORT"] == "streamable-http"
    assert env["ONEPIN_MCP_STATELESS"] == "true"
    assert env["ONEPIN_MCP_AUTH"] in ("token", "passthrough")
    assert set(env) <= variables_read_by_the_code()
    assert "ports" not in server, "replicas are reached through the balancer only"
    balancer = services["lb"]
    assert balancer["depends_on"][SERVICE]["condition"] == "service_healthy"
    mounted = [volume.split(":") for volume in balancer["volumes"]]
    assert [COMPOSE.parent / source for source, *_ in mounted] == [NGINX]


def test_the_balancer_streams_answers_and_outwaits_the_longest_tool_call(
    image: Image,
) -> None:
    # The directives, without comments.
    text = re.sub(r"#[^\n]*", "", NGINX.read_text(encoding="utf-8"))
    upstream = re.search(r"upstream\s+\w+\s*\{([^}]*)\}", text)
    assert upstream is not None
    servers = re.findall(r"^\s*server\s+([^\s;]+)", upstream.group(1), flags=re.MULTILINE)
    assert servers == [f"{SERVICE}:{image.env['ONEPIN_MCP_PORT']}"]
    mcp = text[text.index("location = /mcp") :]
    mcp = mcp[: mcp.index("}")]
    assert re.search(r"proxy_buffering\s+off;", mcp)
    read_timeout = re.search(r"proxy_read_timeout\s+(\d+)s;", mcp)
    assert read_timeout is not None
    assert int(read_timeout.group(1)) > MAX_WAIT_S
    # A POST that a replica has received is never resent to another (a start is billable).
    retried_on = re.findall(r"proxy_next_upstream\s+([^;]+);", text)
    assert retried_on
    assert all("non_idempotent" not in value.split() for value in retried_on)
    assert re.search(r"proxy_set_header\s+Host\s+\$http_host;", mcp)


def sse_messages(response: httpx.Response) -> list[Any]:
    if response.headers["content-type"].startswith("application/json"):
        return [response.json()]
    return [
        json.loads(line.removeprefix("data:").strip())
        for line in response.text.splitlines()
        if line.startswith("data:") and line.removeprefix("data:").strip()
    ]


def test_two_replicas_with_the_compose_environment_serve_one_client_without_affinity(
    image: Image, sandbox: ServedSandbox, tmp_path: Path
) -> None:
    """The compose service's environment over the image's, as an unset .env leaves it
    (passthrough auth, stateless), on two replicas: a client initializes on one and is served
    by the other, with its own OnePin key (the sandbox's, over HTTP)."""
    replicas: list[Started] = []
    try:
        for _ in range(2):
            env = local_env(
                image,
                tmp_path,
                {
                    **service_env({}),
                    "ONEPIN_MCP_HOST": "127.0.0.1",
                    "ONEPIN_MCP_PORT": str(free_port()),
                    "ONEPIN_BASE_URL": sandbox.base_url,
                },
            )
            replicas.append(start(image, env, tmp_path))
        first, second = replicas
        headers = {**MCP_POST_HEADERS, "Authorization": f"Bearer {sandbox.key}"}
        initialized = httpx.post(first.url, json=INITIALIZE, headers=headers, timeout=30)
        assert initialized.status_code == 200, initialized.text
        assert "mcp-session-id" not in initialized.headers
        version = sse_messages(initialized)[0]["result"]["protocolVersion"]
        follow_up = {**headers, "MCP-Protocol-Version": version}
        listed = httpx.post(
            second.url,
            json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
            headers=follow_up,
            timeout=30,
        )
        assert listed.status_code == 200, listed.text
        tools = sse_messages(listed)[-1]["result"]["tools"]
        assert [tool["name"] for tool in tools] == anyio.run(default_tool_names)
        called = httpx.post(
            second.url,
            json={
                "jsonrpc": "2.0",
                "id": 3,
                "method": "tools/call",
                "params": {"name": "get_account", "arguments": {}},
            },
            headers=follow_up,
            timeout=30,
        )
        assert called.status_code == 200, called.text
        result = sse_messages(called)[-1]["result"]
        assert result.get("isError") is not True, result
        unauthenticated = httpx.post(
            second.url, json=INITIALIZE, headers=MCP_POST_HEADERS, timeout=30
        )
        assert unauthenticated.status_code == 401
    finally:
        for started in replicas:
            assert stop(started) == 0, started.stderr()
