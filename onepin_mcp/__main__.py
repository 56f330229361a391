"""Command line: argv and environment in, one command run, an exit code out.

`onepin-mcp [options]` serves MCP (stdio unless `--transport` says otherwise),
`onepin-mcp doctor` checks the setup, `onepin-mcp sandbox` serves the sandbox API alone.
Parsing is `options.parse_command` (pure); this module only acts on its result.

Everything human-readable goes to stderr: in stdio mode stdout belongs to the MCP wire, so this
module never writes to it, except for `--version`, `--help` and the doctor's report, which are
asked for explicitly and never share the process with a stdio server.

Exit codes: 0 done (or stopped by SIGINT/SIGTERM), 1 doctor found problems, 2 usage or
configuration error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onepin_mcp import __version__
from onepin_mcp.options import (
    DoctorOptions,
    OptionsError,
    SandboxOptions,
    ServeOptions,
    parse_command,
)

if TYPE_CHECKING:
    import httpx

    from onepin_mcp.config import Settings

EXIT_OK = 0
EXIT_UNHEALTHY = 1
EXIT_USAGE = 2

# The base URL the server's client uses with `--sandbox`: requests never leave the process (the
# in-process transport answers them), and the reserved .test domain makes that plain in logs.
SANDBOX_BASE_URL = "http://sandbox.onepin.test"

logger = logging.getLogger("onepin_mcp")


def configure_logging(level: str) -> None:
    # Before the SDK's MCPServer calls basicConfig itself: the first call wins, so ours decides
    # the stream (stderr) and the format.
    logging.basicConfig(
        stream=sys.stderr,
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if level != "debug":
        # httpx logs every request at INFO; at the default level that drowns the server's own
        # lines. At debug it is kept (its lines carry method and URL, never headers).
        logging.getLogger("httpx").setLevel(logging.WARNING)


def _home(env: Mapping[str, str]) -> Path | None:
    """Where `~/.onepin/credentials` lives; None when there is no home (then no file is read)."""
    home = env.get("HOME")
    if home:
        return Path(home)
    try:
        return Path.home()
    except RuntimeError:
        return None


def _sandbox(speed: float) -> tuple[Settings, httpx.AsyncBaseTransport]:
    """Settings and transport for an in-process sandbox running on the real clock."""
    from pydantic import SecretStr

    from onepin_mcp.config import Settings
    from onepin_mcp.sandbox import Sandbox

    sandbox = Sandbox(speed=speed)
    settings = Settings(api_key=SecretStr(sandbox.example_key), base_url=SANDBOX_BASE_URL)
    return settings, sandbox.transport()


def _fail(message: str) -> int:
    sys.stderr.write(f"onepin-mcp: {message}\n")
    sys.stderr.flush()
    return EXIT_USAGE


def serve(options: ServeOptions, env: Mapping[str, str]) -> int:
    from onepin_mcp.config import ConfigError, load_settings
    from onepin_mcp.server import create_server

    transport = None
    if options.sandbox:
        settings, transport = _sandbox(options.sandbox_speed)
        logger.warning(
            "Serving against an in-process OnePin SANDBOX (speed %gx): no real account, no "
            "network, seeded data; nothing here reaches OnePin",
            options.sandbox_speed,
        )
    else:
        try:
            settings = load_settings(env, _home(env))
        except ConfigError as exc:
            return _fail(str(exc))

    clients: Any = None
    if options.auth == "passthrough":
        from onepin_mcp.http import passthrough_clients

        clients = passthrough_clients(transport=transport)
        if settings.has_api_key and not options.sandbox:
            logger.info("Passthrough auth: the configured OnePin key is not used; each caller's is")
    elif not settings.has_api_key:
        logger.warning(
            "No OnePin API key configured: the server starts, and tools answer with how to set "
            "ONEPIN_API_KEY (or run `onepin login`)"
        )

    policy = options.policy
    if policy.audit_log is not None:
        from onepin_mcp.audit import check_writable

        try:
            # Checked before serving: a trail that silently goes nowhere is worse than none.
            check_writable(policy.audit_log)
        except OSError as exc:
            return _fail(f"cannot write the audit log {policy.audit_log}: {exc.strerror or exc}")
    server = create_server(
        settings,
        selection=options.selection,
        transport=transport,
        clients=clients,
        policy=policy,
    )
    logger.info(
        "onepin-mcp %s: %s transport, OnePin at %s, %s",
        __version__,
        options.transport,
        settings.base_url,
        "read-only" if options.selection.read_only else "read-write",
    )
    logger.info(
        "Writes: confirm %s (where the client supports elicitation), %s, audit log %s",
        policy.confirm,
        "no credit cap per run"
        if policy.max_run_credits is None
        else f"at most {policy.max_run_credits} credits per run",
        policy.audit_log or "off (stderr lines only)",
    )
    if options.transport == "stdio":
        # Ctrl-C in a terminal is a normal way to stop, not a crash worth a traceback.
        with contextlib.suppress(KeyboardInterrupt):
            server.run("stdio")
        return EXIT_OK

    from onepin_mcp.http import describe_security, serve_http
    from onepin_mcp.serving import bind

    try:
        sock = bind(options.host, options.port)
    except OSError as exc:
        return _fail(f"cannot listen on {options.host}:{options.port}: {exc.strerror or exc}")
    logger.info("%s", describe_security(options))
    if not options.loopback and not options.allowed_hosts:
        logger.warning(
            "Bound to %s with no --allowed-host: requests whose Host header is not a loopback "
            "name or the bound address are refused (421). Add the name clients use, e.g. "
            "--allowed-host mcp.example.com",
            options.host,
        )
    serve_http(server, options, sock)
    return EXIT_OK


def doctor(options: DoctorOptions, env: Mapping[str, str]) -> int:
    import anyio

    from onepin_mcp.config import load_settings
    from onepin_mcp.doctor import diagnose, render

    if options.sandbox:
        settings, transport = _sandbox(options.sandbox_speed)
        report = anyio.run(
            lambda: diagnose(
                lambda: settings, options.selection, transport=transport, key_source="sandbox"
            )
        )
    else:
        home = _home(env)
        report = anyio.run(lambda: diagnose(lambda: load_settings(env, home), options.selection))
    # The report is the command's output, asked for explicitly: stdout, so it can be piped.
    sys.stdout.write(render(report))
    sys.stdout.flush()
    return EXIT_OK if report.healthy else EXIT_UNHEALTHY


def sandbox(options: SandboxOptions) -> int:
    from onepin_mcp.sandbox.serve import serve as serve_sandbox

    serve_sandbox(
        host=options.host,
        port=options.port,
        api_keys=options.api_keys,
        speed=options.speed,
        manual_clock=options.manual_clock,
    )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    env = dict(os.environ)
    try:
        command = parse_command(sys.argv[1:] if argv is None else argv, env)
    except OptionsError as exc:
        sys.stderr.write(
            f"{exc.usage or ''}{exc.prog}: error: {exc}\nRun `{exc.prog} --help` for the options.\n"
        )
        return EXIT_USAGE
    configure_logging(command.log_level)
    if isinstance(command, SandboxOptions):
        return sandbox(command)
    if isinstance(command, DoctorOptions):
        return doctor(command, env)
    return serve(command, env)


if __name__ == "__main__":
    sys.exit(main())
