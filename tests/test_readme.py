"""What a user copies from the README (and docs/*.md) works as written.

- Every ```json block in the README and in docs/*.md is one whole, pure JSON document: no
  comments, no trailing commas, no `...` standing for omitted parts. Placeholders live inside
  strings (`"op_live_..."`). An excerpt that is not whole JSON goes in a ```text block.
- Every command line that runs `onepin-mcp` (in ```sh blocks, in inline code, as `command` +
  `args` in JSON client configurations, and as the image of `docker run`) uses real flags and
  subcommands, checked against the parser the command itself uses; one without placeholders
  must parse as a whole, with the environment the snippet sets (so e.g. a token the options
  require must be there).
- Every `ONEPIN_*` variable named anywhere is one the code reads, and the README's variable
  table lists exactly the variables the code reads, each with the flag that sets the same option.
- Every tool named (in inline code, or as the Inspector's `--tool-name`) is a real tool.
- `claude mcp add` lines put the server's name before `--env`, which takes several values.
- Relative links point at files in the repository, and `#anchors` at headings of the page.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from onepin_mcp.options import OptionsError, build_parser, parse_command
from onepin_mcp.tools.registry import TOOLSETS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PACKAGE = ROOT / "onepin_mcp"

FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```", re.S | re.M)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
# A variable's whole name: `ONEPIN_MCP_*` (a family, in prose) is not one.
VARIABLE = re.compile(r"ONEPIN_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_*])")
# Tool names start with a verb; other snake_case names (arguments, prompts, toolsets) don't.
TOOL_SHAPED = re.compile(
    r"(get|list|start|cancel|pause|resume|wait_for|preview|create|update|duplicate|validate|"
    r"delete)_[a-z_]+"
)
SHELL = {"sh", "bash", "shell", "console"}
# Words after which `onepin-mcp` names a package or a directory, not the command being run.
NOT_A_LAUNCH_AFTER = {"install", "--from", "-t", "--tag", "--name", "cd", "clone", "add"}
# Options of the MCP Inspector's CLI mode: they end the arguments of the command it launches.
INSPECTOR_OPTIONS = {"--method", "--tool-name", "--tool-arg", "--uri", "--prompt-name"}
# A stand-in for a value the snippet computes, such as `$(openssl rand -hex 32)`.
COMPUTED = "0123456789abcdef" * 4
ALL_TOOLS = {spec.name for specs in TOOLSETS.values() for spec in specs}


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _blocks(text: str, languages: set[str]) -> list[str]:
    return [body for language, body in FENCE.findall(text) if language in languages]


def _prose(text: str) -> str:
    """The text outside fenced blocks."""
    return FENCE.sub("", text)


def variables_the_code_reads() -> set[str]:
    """`ONEPIN_*` names in the package's source, the sandbox aside (it only prints some)."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if "sandbox" not in path.relative_to(PACKAGE).parts:
            names.update(VARIABLE.findall(_text(path)))
    return names


# --- the command line, from the parser itself ---------------------------------------------------


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


PARSER = build_parser()
SUBCOMMANDS = _subparsers(PARSER)


@dataclass
class Launch:
    """One command line that runs onepin-mcp: its arguments and the environment given to it."""

    kind: str  # "sh", "inline" or "json": where the line was found
    where: str
    argv: list[str]
    env: dict[str, str]


def onepin_argv(words: list[str]) -> list[str] | None:
    """The arguments a command line gives to onepin-mcp, or None when it doesn't run it."""
    for index, word in enumerate(words):
        before = words[index - 1] if index else ""
        if before in NOT_A_LAUNCH_AFTER:
            continue
        if re.fullmatch(r"(.*/)?onepin-mcp((==|@)[\w.]+)?", word):
            return words[index + 1 :]
        if word == "-m" and words[index + 1 : index + 2] == ["onepin_mcp"]:
            return words[index + 2 :]
    return None


def _assignments(words: list[str]) -> dict[str, str]:
    env = {}
    for word in words:
        name, equals, value = word.partition("=")
        if equals and re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
            env[name] = COMPUTED if value.startswith("$(") else value
    return env


def _launch_env(words: list[str]) -> dict[str, str]:
    """Variables set on the line: `VAR=value cmd`, or `claude mcp add NAME --env VAR=value`."""
    leading = []
    for word in words:
        if "=" not in word or word.startswith("-"):
            break
        leading.append(word)
    given = [words[i + 1] for i, word in enumerate(words[:-1]) if word in ("--env", "-e")]
    return _assignments(leading + given)


def _commands(line: str) -> Iterator[list[str]]:
    """The simple commands of a shell line, split at `&&`, `;`, `|` and `&`; comments dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="&|;")
    lexer.whitespace_split = True
    command: list[str] = []
    for token in lexer:
        if token and set(token) <= set("&|;"):
            if command:
                yield command
            command = []
        else:
            command.append(token)
    if command:
        yield command


def _shell_lines(block: str) -> list[str]:
    return block.replace("\\\n", " ").splitlines()


def shell_launches(text: str, where: str) -> list[Launch]:
    """Every onepin-mcp launch in the shell blocks of `text`, with the variables exported
    before it in the same block."""
    launches = []
    for number, block in enumerate(_blocks(text, SHELL)):
        exported: dict[str, str] = {}
        for line in _shell_lines(block):
            for words in _commands(line):
                if words[0] == "export":
                    exported.update(_assignments(words[1:]))
                    continue
                argv = onepin_argv(words)
                if argv is not None:
                    line_id = f"{where} sh block {number}: {shlex.join(words)}"
                    launches.append(Launch("sh", line_id, argv, exported | _launch_env(words)))
    return launches


def inline_launches(text: str, where: str) -> list[Launch]:
    launches = []
    for span in INLINE_CODE.findall(_prose(text)):
        try:
            words = shlex.split(span)
        except ValueError:
            words = span.split()
        argv = onepin_argv(words)
        if argv is not None:
            launches.append(Launch("inline", f"{where} `{span}`", argv, _launch_env(words)))
    return launches


def _servers(document: Any) -> Iterator[dict[str, Any]]:
    """Every object with a `command`, at any depth: a client's server entry."""
    if isinstance(document, dict):
        if isinstance(document.get("command"), str):
            yield document
        for value in document.values():
            yield from _servers(value)
    elif isinstance(document, list):
        for value in document:
            yield from _servers(value)


def json_launches(text: str, where: str) -> list[Launch]:
    launches = []
    for number, block in enumerate(_blocks(text, {"json"})):
        for server in _servers(json.loads(block)):
            argv = onepin_argv([server["command"], *server.get("args", [])])
            if argv is not None:
                env = {k: str(v) for k, v in server.get("env", {}).items()}
                launches.append(Launch("json", f"{where} json block {number}", argv, env))
    return launches


def check_launch(launch: Launch) -> None:
    """Raise AssertionError if the launch names a flag or subcommand onepin-mcp doesn't have,
    or, when it has no placeholders, if the whole command line doesn't parse."""
    argv = launch.argv
    for index, word in enumerate(argv):
        if word in INSPECTOR_OPTIONS:
            if word == "--tool-name":
                assert argv[index + 1] in ALL_TOOLS, f"{launch.where}: no tool {argv[index + 1]}"
            argv = argv[:index]
            break
    words = [word.strip("[]") for word in argv if word not in ("...", "…")]
    parser, flags = PARSER, _flags(PARSER)
    for index, word in enumerate(words):
        if word.startswith("-"):
            flag = word.split("=", 1)[0]
            assert flag in flags, f"{launch.where}: {flag} is not a flag of {parser.prog}"
        elif index == 0 or word in SUBCOMMANDS:
            # A bare first word is a subcommand (options come before their values).
            assert word in SUBCOMMANDS, f"{launch.where}: no command {word}"
            assert parser is PARSER, f"{launch.where}: {word} after a command"
            parser = SUBCOMMANDS[word]
            flags = _flags(parser)
    placeholder = re.compile(r"[\[\]<>…]|\.\.\.")
    if any(placeholder.search(word) for word in argv) or {"-h", "--help", "--version"} & set(argv):
        return
    try:
        parse_command(argv, launch.env)
    except OptionsError as exc:
        raise AssertionError(f"{launch.where}: onepin-mcp refuses it: {exc}") from None


def all_launches(text: str, where: str) -> list[Launch]:
    return shell_launches(text, where) + inline_launches(text, where) + json_launches(text, where)


# --- JSON -------------------------------------------------------------------------------------

JSON_BLOCKS = [
    pytest.param(block, id=f"{path.name}-{number}")
    for path in [README, *DOCS]
    for number, block in enumerate(_blocks(_text(path), {"json"}))
]


@pytest.mark.parametrize("block", JSON_BLOCKS)
def test_every_json_snippet_is_whole_json(block: str) -> None:
    document = json.loads(block)
    # VS Code's `${input:ID}` must name an input the same snippet declares.
    inputs = document.get("inputs", []) if isinstance(document, dict) else []
    declared = {entry["id"] for entry in inputs}
    for used in re.findall(r"\$\{input:([^}]+)\}", block):
        assert used in declared, f"${{input:{used}}} has no input with that id"


def test_the_readme_configures_every_client_it_names() -> None:
    documents = [json.loads(block) for block in _blocks(_text(README), {"json"})]
    desktop_and_cursor = [d for d in documents if "mcpServers" in d]
    vs_code = [d for d in documents if "servers" in d]
    assert len(desktop_and_cursor) >= 2, "Claude Desktop and Cursor configurations"
    assert any(
        server.get("type") == "stdio"
        and any(i.get("type") == "promptString" and i.get("password") for i in d.get("inputs", []))
        for d in vs_code
        for server in d["servers"].values()
    ), "a VS Code configuration with the key as a prompted secret input"
    assert "claude mcp add" in _text(README)


# --- command lines ------------------------------------------------------------------------------


def test_the_readme_runs_onepin_mcp_in_every_form() -> None:
    launches = all_launches(_text(README), "README.md")
    # Shell blocks, inline code and JSON configurations are all checked, not silently skipped.
    assert {launch.kind for launch in launches} == {"sh", "inline", "json"}
    assert len(launches) >= 15


@pytest.mark.parametrize(
    "launch",
    [launch for path in [README, *DOCS] for launch in all_launches(_text(path), path.name)],
    ids=lambda launch: launch.where,
)
def test_every_onepin_mcp_command_line_in_the_docs_is_real(launch: Launch) -> None:
    check_launch(launch)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("onepin-mcp --no-such-flag", "is not a flag"),
        ("onepin-mcp doktor", "no command"),
        ("onepin-mcp sandbox --speed 2 --sandbox", "is not a flag"),  # serve's flag, not sandbox's
        ("uvx onepin-mcp --transport streamable-http --host 0.0.0.0", "refuses it"),
        ("onepin-mcp --toolsets nope", "refuses it"),
        ("npx @modelcontextprotocol/inspector --cli onepin-mcp --tool-name get_wrong", "no tool"),
    ],
)
def test_the_command_line_check_catches_mistakes(line: str, problem: str) -> None:
    (launch,) = shell_launches(f"```sh\n{line}\n```\n", "probe")
    with pytest.raises(AssertionError, match=problem):
        check_launch(launch)


def test_exported_variables_reach_the_command_after_them() -> None:
    block = (
        '```sh\nexport ONEPIN_MCP_HTTP_TOKEN="$(openssl rand -hex 32)"\n'
        "onepin-mcp --transport streamable-http --host 0.0.0.0\n```\n"
    )
    (launch,) = shell_launches(block, "probe")
    assert launch.env == {"ONEPIN_MCP_HTTP_TOKEN": COMPUTED}
    check_launch(launch)


def test_package_names_and_directories_are_not_launches() -> None:
    for line in ("pipx install onepin-mcp", "docker build -t onepin-mcp .", "cd onepin-mcp"):
        assert shell_launches(f"```sh\n{line}\n```\n", "probe") == []
    block = "```sh\ndocker run --rm --name onepin-mcp -i onepin-mcp --sandbox\n```\n"
    assert [launch.argv for launch in shell_launches(block, "probe")] == [["--sandbox"]]
    block = "```sh\nuvx --from /src/onepin-mcp onepin-mcp --version\n```\n"
    assert [launch.argv for launch in shell_launches(block, "probe")] == [["--version"]]


def _claude_mcp_add_lines(text: str) -> list[list[str]]:
    return [
        words
        for block in _blocks(text, SHELL)
        for line in _shell_lines(block)
        for words in _commands(line)
        if words[:3] == ["claude", "mcp", "add"]
    ]


def check_claude_mcp_add(words: list[str]) -> None:
    """The server's name (the first positional word) comes before any `--env`/`--header`:
    those take several values, and would swallow the name."""
    options = words[3 : words.index("--")] if "--" in words else words[3:]
    takes_one_value = {"--scope", "-s", "--transport", "-t", "--client-id", "--callback-port"}
    index = 0
    while options[index].startswith("-"):
        assert options[index] in takes_one_value, (
            f"{shlex.join(words)}: name after {options[index]}"
        )
        index += 2


def test_claude_mcp_add_lines_name_the_server_before_their_variadic_options() -> None:
    lines = _claude_mcp_add_lines(_text(README))
    assert len(lines) >= 2
    for words in lines:
        check_claude_mcp_add(words)
    with pytest.raises(AssertionError, match="name after --env"):
        check_claude_mcp_add(shlex.split("claude mcp add --env A=b onepin -- uvx onepin-mcp"))


# --- variables ---------------------------------------------------------------------------------


def test_the_code_reads_the_variables_the_options_name() -> None:
    read = variables_the_code_reads()
    assert {"ONEPIN_API_KEY", "ONEPIN_MCP_TRANSPORT", "ONEPIN_MCP_HTTP_TOKEN"} <= read


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda path: path.name)
def test_every_variable_named_in_the_docs_is_one_the_code_reads(path: Path) -> None:
    unknown = set(VARIABLE.findall(_text(path))) - variables_the_code_reads()
    assert not unknown, f"{path.name} names variables the code never reads: {sorted(unknown)}"


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip().strip("|"))]


def variable_table(text: str) -> dict[str, str]:
    """The README's variable table: variable → its flag cell."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| variable | flag |"))
    rows: dict[str, str] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        variable, flag = _cells(line)[:2]
        rows[variable.strip("`")] = flag
    return rows


def _variable_of_each_flag() -> Mapping[str, str]:
    """Flag → the variable its help names as its environment twin ("env ONEPIN_…")."""
    twins = {}
    for parser in [PARSER, *SUBCOMMANDS.values()]:
        for action in parser._actions:
            found = re.search(r"env (ONEPIN_[A-Z0-9_]+)", action.help or "")
            if found:
                twins.update(dict.fromkeys(action.option_strings, found.group(1)))
    return twins


def test_the_variable_table_lists_exactly_the_variables_the_code_reads() -> None:
    assert set(variable_table(_text(README))) == variables_the_code_reads()


def test_each_variable_sits_beside_the_flag_whose_twin_it_is() -> None:
    table = variable_table(_text(README))
    twins = _variable_of_each_flag()
    assert twins, "the parser's help names the variables"
    for variable, cell in table.items():
        for flag in re.findall(r"--[a-z][a-z-]*", cell):
            assert twins.get(flag) == variable, f"{flag} is not the flag of {variable}"
    for flag, variable in twins.items():
        assert flag in table[variable], f"the row of {variable} doesn't give {flag}"


# --- tools and links ---------------------------------------------------------------------------


def unknown_tools(text: str) -> set[str]:
    """Tool-shaped names in inline code that are no tool."""
    return {span for span in INLINE_CODE.findall(text) if TOOL_SHAPED.fullmatch(span)} - ALL_TOOLS


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda path: path.name)
def test_every_tool_named_is_a_real_tool(path: Path) -> None:
    unknown = unknown_tools(_text(path))
    assert not unknown, f"{path.name} names tools that don't exist: {sorted(unknown)}"


def test_the_tool_name_check_catches_a_misnamed_tool() -> None:
    text = "Call `get_run_state`, then `get_run` with `run_id`; `run_workflow` is a prompt."
    assert unknown_tools(text) == {"get_run_state"}


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda path: path.name)
def test_every_relative_link_resolves(path: Path) -> None:
    text = _text(path)
    anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", _prose(text), flags=re.M)}
    for target in re.findall(r"\]\(([^)\s]+)\)", _prose(text)):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        if file:
            assert (path.parent / file).exists(), f"{path.name} links to missing {file}"
        elif anchor:
            assert anchor in anchors, f"{path.name} links to missing heading #{anchor}"
