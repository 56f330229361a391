"""Command line: argv and environment in, one command run, an exit code out.

Everything human-readable goes to stderr: in stdio mode stdout belongs to the MCP wire, so this
module never writes to it except for `--version` and `--help`, which are asked for explicitly.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence

from onepin_mcp import __version__

EXIT_OK = 0
EXIT_USAGE = 2

LOG_LEVELS = ("debug", "info", "warning", "error")
API_KEY_FORM = re.compile(r"op_live_[A-Za-z0-9]{32}")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535 (0 picks a free one): {text!r}")
    return value


def _api_key(text: str) -> str:
    # The official CLI refuses keys of any other form before a request; so does the sandbox.
    if not API_KEY_FORM.fullmatch(text):
        raise argparse.ArgumentTypeError("an API key is op_live_ followed by 32 letters or digits")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onepin-mcp",
        description="MCP server for OnePin voice-generation workflows.",
    )
    parser.add_argument("--version", action="version", version=f"onepin-mcp {__version__}")
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=os.environ.get("ONEPIN_MCP_LOG_LEVEL", "info").lower(),
        help="stderr log level (env ONEPIN_MCP_LOG_LEVEL; default info)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    sandbox = commands.add_parser(
        "sandbox",
        help="serve a local OnePin API (no account, no network) for trying things out and tests",
        description=(
            "Serve the sandbox, a faithful local OnePin API, over HTTP. The official onepin "
            "SDK and CLI work against it with ONEPIN_BASE_URL and ONEPIN_API_KEY set as "
            "announced on stderr."
        ),
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sandbox.add_argument("--port", type=_port, default=8787, help="port (default 8787; 0 = any)")
    sandbox.add_argument(
        "--api-key",
        dest="api_keys",
        action="append",
        type=_api_key,
        default=[],
        metavar="KEY",
        help="accept only this key (repeatable); without it any op_live_ key is accepted",
    )
    sandbox.add_argument(
        "--speed",
        type=_positive_float,
        default=1.0,
        help="how fast sandbox time runs against real time (default 1.0)",
    )
    sandbox.add_argument(
        "--manual-clock",
        action="store_true",
        help="freeze sandbox time; advance it with POST /_sandbox/clock",
    )
    return parser


def configure_logging(level: str) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)

    if args.command == "sandbox":
        from onepin_mcp.sandbox.serve import serve

        serve(
            host=args.host,
            port=args.port,
            api_keys=tuple(args.api_keys),
            speed=args.speed,
            manual_clock=args.manual_clock,
        )
        return EXIT_OK

    parser.print_usage(sys.stderr)
    print(
        "onepin-mcp: choose a command; `onepin-mcp sandbox` serves a local OnePin API.",
        file=sys.stderr,
    )
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
