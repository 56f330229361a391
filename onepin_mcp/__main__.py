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
import gc
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onepin_mcp import __version__
from onepin_mcp.api.errors import redact
from onepin_mcp.text import clean_line

if TYPE_CHECKING:
    import socket

    import httpx

    from onepin_mcp.api.settings import Settings
    from onepin_mcp.options import DoctorOptions, SandboxOptions, ServeOptions
    from onepin_mcp.sandbox import Sandbox

EXIT_OK = 0
EXIT_UNHEALTHY = 1
EXIT_USAGE = 2

# The base URL the server's client uses with `--sandbox`: requests never leave the process (the
# in-process transport answers them), and the reserved .test domain makes that plain in logs.
SANDBOX_BASE_URL = "http://sandbox.onepin.test"

# The variables whose values are secrets, masked by value wherever text may show them (anything
# key-shaped is masked by `errors.redact` in any case).
# (`options.ENV_HTTP_TOKEN`, spelled out: options is imported by `main`, see `_collector_paused`.)
SECRET_VARIABLES = ("ONEPIN_API_KEY", "ONEPIN_MCP_HTTP_TOKEN")
# Shorter values are not masked by value: replacing every "abc" in a log would garble it, and
# such a value is no key (the key-shaped rule still applies).
MIN_SECRET_CHARS = 8

logger = logging.getLogger("onepin_mcp")


class RedactingFilter(logging.Filter):
    """On the root handler: every log line, whoever logs it, with keys and secrets masked.

    httpx logs request URLs (a key passed as a tool argument can end up in a path), the SDK
    logs resource URIs and, at debug, raw message bodies, uvicorn logs request paths: one filter
    where lines leave the process covers them all. The message is formatted once here and kept
    formatted, so a line costs one scan for the key shape and one `in` per configured secret.
    """

    def __init__(self, secrets: Sequence[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= MIN_SECRET_CHARS:
            self.secrets.add(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the handler's to report, as it would be
            return True
        # Cleaned and masked (`redact` cleans before it masks, so an invisible character can't
        # split a key past it), then made one line: log lines quote API text, which must not
        # forge a record of its own. A break becomes a space, which joins nothing back.
        cleaned = clean_line(redact(message, self.secrets))
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            # Formatted here, as the handler's formatter would, so that the text can be masked:
            # an exception's message may quote a request URL.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


def known_secrets(env: Mapping[str, str]) -> list[str]:
    """The secret values the environment holds."""
    values = (env.get(name, "").strip() for name in SECRET_VARIABLES)
    return [value for value in values if len(value) >= MIN_SECRET_CHARS]


def configure_logging(level: str, redactor: RedactingFilter | None = None) -> None:
    # Before the SDK's MCPServer calls basicConfig itself: the first call wins, so ours decides
    # the stream (stderr) and the format.
    handler = logging.StreamHandler(sys.stderr)
    # Keys and secrets are masked in every line, whoever logs it (see RedactingFilter).
    handler.addFilter(redactor or RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
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


def _sandbox(
    speed: float, files: socket.socket | None = None
) -> tuple[Settings, httpx.AsyncBaseTransport, Sandbox]:
    """Settings, transport and the sandbox itself, in-process and on the real clock.

    With `files` (a bound loopback socket), the sandbox's download and playback links point
    there, for `sandbox.serve.serving_files` to answer: the API has no address, links must.
    """
    from pydantic import SecretStr

    from onepin_mcp.api.settings import Settings
    from onepin_mcp.sandbox import Sandbox
    from onepin_mcp.serving import url_of

    sandbox = Sandbox(speed=speed, files_url=url_of(files) if files is not None else None)
    settings = Settings(api_key=SecretStr(sandbox.example_key), base_url=SANDBOX_BASE_URL)
    return settings, sandbox.transport(), sandbox


def _fail(message: str, env: Mapping[str, str]) -> int:
    # A value is often quoted to say what was wrong with it, and a key pasted into the wrong
    # variable is a value like any other: masked, whichever setting it came from.
    sys.stderr.write(f"onepin-mcp: {redact(message, known_secrets(env))}\n")
    sys.stderr.flush()
    return EXIT_USAGE


def serve(
    options: ServeOptions, env: Mapping[str, str], redactor: RedactingFilter | None = None
) -> int:
    # What serving opens (the sandbox's file socket) is closed on every way out, early refusals
    # included.
    with contextlib.ExitStack() as opened:
        return _serve(options, env, redactor, opened)


def _serve(
    options: ServeOptions,
    env: Mapping[str, str],
    redactor: RedactingFilter | None,
    opened: contextlib.ExitStack,
) -> int:
    from onepin_mcp.api.settings import ConfigError, load_settings
    from onepin_mcp.server import create_server

    transport = None
    # With --sandbox, its download links are served on a loopback port while the server runs.
    files_served: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if options.sandbox:
        from onepin_mcp.sandbox.serve import serving_files
        from onepin_mcp.serving import bind, url_of

        try:
            files = bind("127.0.0.1", 0)
        except OSError as exc:
            return _fail(
                f"cannot listen on 127.0.0.1 for the sandbox's download links: "
                f"{exc.strerror or exc}",
                env,
            )
        opened.callback(files.close)
        settings, transport, in_process = _sandbox(options.sandbox_speed, files)
        files_served = serving_files(in_process, files)
        logger.warning(
            "Serving against an in-process OnePin SANDBOX (speed %gx): no real account, no "
            "network, seeded data; nothing here reaches OnePin. Download links at %s/files/…; "
            "sandbox voices: %s",
            options.sandbox_speed,
            url_of(files),
            in_process.voice_description,
        )
    else:
        try:
            settings = load_settings(env, _home(env))
        except ConfigError as exc:
            return _fail(str(exc), env)
        if settings.base_url_notice:
            logger.warning("%s", settings.base_url_notice)
        if redactor is not None and settings.api_key is not None:
            # The key may come from the credentials file, which the environment doesn't show.
            redactor.add(settings.api_key.get_secret_value())

    clients: Any = None
    if options.auth == "passthrough":
        from onepin_mcp.http_auth import passthrough_clients

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
        from onepin_mcp.writes import check_writable

        try:
            # Checked before serving: a trail that silently goes nowhere is worse than none.
            check_writable(policy.audit_log)
        except OSError as exc:
            return _fail(
                f"cannot write the audit log {policy.audit_log}: {exc.strerror or exc}", env
            )
    server = create_server(
        settings,
        selection=options.selection,
        transport=transport,
        clients=clients,
        policy=policy,
        request_state_keys=options.request_state_keys,
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
        import anyio

        from onepin_mcp.stdio import serve_stdio

        # Ctrl-C in a terminal is a normal way to stop, not a crash worth a traceback.
        with files_served, contextlib.suppress(KeyboardInterrupt):
            anyio.run(serve_stdio, server)
        return EXIT_OK

    from onepin_mcp.http import describe_security, serve_http
    from onepin_mcp.http_auth import KeyCheck
    from onepin_mcp.serving import bind

    # Passthrough: a caller's key is checked with OnePin before it may open a session.
    keys = (
        KeyCheck(settings, transport=transport, ttl_s=options.key_check_ttl_s)
        if options.auth == "passthrough"
        else None
    )

    try:
        sock = bind(options.host, options.port)
    except OSError as exc:
        return _fail(f"cannot listen on {options.host}:{options.port}: {exc.strerror or exc}", env)
    logger.info("%s", describe_security(options))
    if not options.loopback and not options.allowed_hosts:
        logger.warning(
            "Bound to %s with no --allowed-host: requests whose Host header is not a loopback "
            "name or the bound address are refused (421). Add the name clients use, e.g. "
            "--allowed-host mcp.example.com",
            options.host,
        )
    with files_served:
        return serve_http(server, options, sock, keys=keys)


def doctor(options: DoctorOptions, env: Mapping[str, str]) -> int:
    import anyio

    from onepin_mcp.api.settings import load_settings
    from onepin_mcp.doctor import diagnose, render

    if options.sandbox:
        settings, transport, _ = _sandbox(options.sandbox_speed)
        report = anyio.run(
            lambda: diagnose(
                lambda: settings, options.selection, transport=transport, key_source="sandbox"
            )
        )
    else:
        home = _home(env)
        report = anyio.run(lambda: diagnose(lambda: load_settings(env, home), options.selection))
    # The report is the command's output, asked for explicitly: stdout, so it can be piped.
    sys.stdout.write(render(report, secrets=known_secrets(env)))
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


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a start imports the SDK and the package, and what
    those imports made frozen (`gc.freeze`) before it runs again.

    The imports make some half a million objects, nearly none of them garbage, and the collector
    walked them all several times as they were made: about 50 ms of a 450 ms start (one full
    collection alone 20 to 30 ms). Frozen, they stay out of every later collection too, and forked
    HTTP workers keep sharing their memory pages. Only the first time, in a process that hasn't
    imported them yet (a test calling `main` again gets no pause), and only where the collector
    is on."""
    if "onepin_mcp.options" in sys.modules or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def main(argv: Sequence[str] | None = None) -> int:
    env = dict(os.environ)
    with _collector_paused():
        # Imports the SDK (through the tool registry the selection options are checked against).
        from onepin_mcp.options import DoctorOptions, OptionsError, SandboxOptions, parse_command
    try:
        command = parse_command(sys.argv[1:] if argv is None else argv, env)
    except OptionsError as exc:
        # Masked like every other startup error: argparse quotes a refused value whole.
        text = (
            f"{exc.usage or ''}{exc.prog}: error: {exc}\nRun `{exc.prog} --help` for the options.\n"
        )
        sys.stderr.write(redact(text, known_secrets(env)))
        return EXIT_USAGE
    redactor = RedactingFilter(known_secrets(env))
    configure_logging(command.log_level, redactor)
    if isinstance(command, SandboxOptions):
        return sandbox(command)
    if isinstance(command, DoctorOptions):
        return doctor(command, env)
    return serve(command, env, redactor)


if __name__ == "__main__":
    sys.exit(main())
