"""Nine everyday requests, solved the way an agent that reads only the tool surface would: calls
and bytes per request.

Run: `python bench/agent_tasks.py [--tree PATH] [--mode auto|legacy] [--speed X] [--budget N]`
(from the project root, in its venv; no network, one child process per request).

Each request gets a fresh `onepin-mcp --sandbox --sandbox-speed X` on stdio, launched as an MCP
client launches it, and a real `mcp.Client`. The scripted agent chooses its calls from what
`tools/list` offers, so the same script measures an older and a newer surface:

- `list_workflows` rows that carry `last_run_id` spare a `list_runs` per workflow;
- `cancel_run` / `pause_run` / `resume_run` that take `workflow_id` alone act on its active run;
- `pause_run` with `wait_s` returns once the run is paused, instead of a `wait_for_run`;
- `get_runs_summary` with `credits_used` answers "what did it cost" without `list_runs`;
- `list_runs` with `from_time` pages only the range asked for;
- `start_run` with `max_credits` refuses a run over budget without a `preview_run` first;
- `get_run_steps` listing every rejected take's words, and the dictionary tools, fix a failed
  pronunciation check in one round without touching the script;
- `duplicate_workflow` with a name and script, and `validate_workflow` by id, copy and check a
  workflow without the graph passing through the model;
- `get_usage` answers "what did it cost, by language" in one call.

Otherwise it does what the descriptions say: `preview_run` before `start_run`, `wait_for_run`
(again while it answers done=false with a run still going) rather than polling, `get_run_steps`
with failed_only=true for why a run failed. A confirmation question (elicitation) is answered
yes, as a user would; it costs the model nothing, so it is counted apart.

The requests:
  a. "run Product tour EN+KO and give me the download link"
  b. "why did the last run of Release notes EN+JA fail"
  c. "cancel whatever is running" (every active run of every workflow; k = how many)
  d. "how did the last 30 days go for Product tour and what did they cost"
  e. "start Product tour only if it costs under N credits" (N = --budget)
  f. "pause the running run, then resume it"
  g. "the last Release notes run failed: fix it and run it again"
  h. "copy Product tour with this new script, check it, run it"
  i. "what did the last 30 days cost, by language"

Bytes: "written" = each call's arguments as compact JSON (what the model writes); "model-read" =
each call's arguments as compact JSON plus the text content of its result
(what lands in the model's context); "structured" = the structuredContent as compact JSON, which
a client may show or keep instead. With `--tree PATH` the server is imported from another
checkout (e.g. `git worktree add /tmp/before <commit>`), to measure an earlier surface.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.types import CallToolResult, ElicitRequestParams, ElicitResult, TextContent, Tool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.transports.served import stdio_params  # noqa: E402 - after the path

TASK_DEADLINE_S = 120.0
ACTIVE = ("pending", "running", "paused")
PRODUCT_TOUR = "Product tour EN+KO"
RELEASE_NOTES = "Release notes EN+JA"
NEW_SCRIPT = (
    "Welcome to the spring tour.\nYour dashboard now has dark mode.\n"
    "Share any report with one link."
)
# Rounds of fix-and-rerun an agent without the dictionary tools gets before it gives up.
MAX_ROUNDS = 4


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Surface:
    """What the server offers, read from `tools/list` as an agent reads it."""

    rows_carry_last_run_id: bool
    cancel_by_workflow: bool
    pause_by_workflow: bool
    resume_by_workflow: bool
    pause_waits: bool
    summary_has_credits: bool
    runs_take_time_range: bool
    start_takes_max_credits: bool
    dictionary: bool
    copy_takes_script: bool
    validate_by_id: bool
    usage: bool

    @classmethod
    def read(cls, tools: list[Tool]) -> Surface:
        by_name = {tool.name: tool for tool in tools}

        def inputs(name: str) -> dict[str, Any]:
            schema: dict[str, Any] = by_name[name].input_schema if name in by_name else {}
            return schema

        def takes(name: str, parameter: str) -> bool:
            return parameter in inputs(name).get("properties", {})

        def outputs_mention(name: str, word: str) -> bool:
            return f'"{word}"' in compact(by_name[name].output_schema or {})

        def by_workflow(name: str) -> bool:
            schema = inputs(name)
            return "run_id" not in schema.get("required", [])

        return cls(
            rows_carry_last_run_id=outputs_mention("list_workflows", "last_run_id"),
            cancel_by_workflow=by_workflow("cancel_run"),
            pause_by_workflow=by_workflow("pause_run"),
            resume_by_workflow=by_workflow("resume_run"),
            pause_waits="wait_s" in inputs("pause_run").get("properties", {}),
            summary_has_credits=outputs_mention("get_runs_summary", "credits_used"),
            runs_take_time_range="from_time" in inputs("list_runs").get("properties", {}),
            start_takes_max_credits=takes("start_run", "max_credits"),
            dictionary="add_dictionary_entries" in by_name
            and outputs_mention("get_run_steps", "rejected"),
            copy_takes_script=takes("duplicate_workflow", "script_text"),
            validate_by_id=takes("validate_workflow", "workflow_id"),
            usage="get_usage" in by_name,
        )

    def describe(self) -> str:
        return ", ".join(f"{name}={'yes' if on else 'no'}" for name, on in vars(self).items())


@dataclass
class Call:
    tool: str
    arguments_bytes: int
    text_bytes: int
    structured_bytes: int
    is_error: bool


@dataclass
class Agent:
    """One request's conversation: every call it makes, measured."""

    client: Client
    surface: Surface
    calls: list[Call] = field(default_factory=list)
    questions: int = 0
    note: str = ""

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        """Call `tool`; the structured result, or {"error": text} when the tool failed."""
        result: CallToolResult = await self.client.call_tool(tool, arguments)
        text = "".join(b.text for b in result.content if isinstance(b, TextContent))
        structured = result.structured_content
        self.calls.append(
            Call(
                tool=tool,
                arguments_bytes=len(compact(arguments).encode()),
                text_bytes=len(text.encode()),
                structured_bytes=len(compact(structured).encode()) if structured else 0,
                is_error=result.is_error,
            )
        )
        if result.is_error:
            return {"error": text}
        return dict(structured or {})

    async def find_workflow(self, name: str) -> dict[str, Any]:
        """The row of the workflow called `name`, searched by the start of its name."""
        rows = (await self.call("list_workflows", search=name.split(" EN")[0]))["items"]
        return next(row for row in rows if row["name"] == name)

    async def active_rows(self) -> list[dict[str, Any]]:
        """Every workflow whose latest run is still active, all pages."""
        rows: list[dict[str, Any]] = []
        arguments: dict[str, Any] = {"status": "running"}
        while True:
            page = run_of(await self.call("list_workflows", **arguments))
            rows += [row for row in page["items"] if row.get("last_run_status") in ACTIVE]
            if page.get("next_offset") is None:
                return rows
            arguments["offset"] = page["next_offset"]

    async def active_run_id(self, row: dict[str, Any], statuses: tuple[str, ...]) -> str:
        """The id of the run a workflow row stands for: from the row, or one `list_runs`."""
        if self.surface.rows_carry_last_run_id and row.get("last_run_id"):
            return str(row["last_run_id"])
        runs = await self.call("list_runs", workflow_id=row["id"], status=list(statuses))
        return str(runs["items"][0]["id"])

    async def follow(self, workflow_id: str, run: dict[str, Any]) -> dict[str, Any]:
        """`wait_for_run` until the run ends or pauses (a done=false answer with a run still
        going means time ran out: call again, as its description says)."""
        state = run
        while not state.get("is_terminal") and state.get("status") != "paused":
            state = await self.call("wait_for_run", workflow_id=workflow_id, run_id=run["id"])
            if "error" in state:
                raise RuntimeError(state["error"])
        return state


def run_of(state: dict[str, Any]) -> dict[str, Any]:
    if "error" in state:
        raise RuntimeError(state["error"])
    return state


# --- the six requests ----------------------------------------------------------------------------


async def download_link(agent: Agent, budget: int) -> None:
    workflow = await agent.find_workflow(PRODUCT_TOUR)
    run_of(await agent.call("preview_run", workflow_id=workflow["id"]))
    run = run_of(await agent.call("start_run", workflow_id=workflow["id"]))
    final = await agent.follow(workflow["id"], run)
    assert final["status"] == "completed", final
    link = run_of(
        await agent.call("get_download_url", workflow_id=workflow["id"], run_id=run["id"])
    )
    assert link["url"].startswith("http"), link


async def why_it_failed(agent: Agent, budget: int) -> None:
    workflow = await agent.find_workflow(RELEASE_NOTES)
    assert workflow["last_run_status"] == "failed", workflow
    if agent.surface.rows_carry_last_run_id and workflow.get("last_run_id"):
        run_id = str(workflow["last_run_id"])
    else:
        latest = await agent.call("list_runs", workflow_id=workflow["id"], limit=1)
        run_id = str(run_of(latest)["items"][0]["id"])
    steps = run_of(
        await agent.call(
            "get_run_steps", workflow_id=workflow["id"], run_id=run_id, failed_only=True
        )
    )
    assert any(step.get("error") for step in steps["steps"]), steps


async def cancel_everything(agent: Agent, budget: int) -> None:
    rows = await agent.active_rows()
    for row in rows:
        if agent.surface.cancel_by_workflow:
            run = await agent.call("cancel_run", workflow_id=row["id"])
        else:
            run_id = await agent.active_run_id(row, ACTIVE)
            run = await agent.call("cancel_run", workflow_id=row["id"], run_id=run_id)
        assert run_of(run)["status"] == "cancelled", run
    agent.note = f"k={len(rows)}"


async def last_30_days(agent: Agent, budget: int) -> None:
    workflow = await agent.find_workflow(PRODUCT_TOUR)
    since = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=30)
    summary = run_of(
        await agent.call(
            "get_runs_summary", workflow_id=workflow["id"], from_time=since.isoformat()
        )
    )
    if agent.surface.summary_has_credits and "credits_used" in summary:
        credits = summary["credits_used"]
    else:
        credits = await credits_from_runs(agent, workflow["id"], since)
    assert summary["total_runs"] >= 1, summary
    assert credits >= 1, (summary, credits)
    agent.note = f"{summary['total_runs']} runs, {credits} credits"


async def credits_from_runs(agent: Agent, workflow_id: str, since: datetime) -> int:
    """Sum the credits of the runs since `since`, newest first, stopping at the first older
    one (or asking only for the range, where `list_runs` takes one)."""
    credits = 0
    offset: int | None = 0
    while offset is not None:
        arguments: dict[str, Any] = {"workflow_id": workflow_id}
        if offset:
            arguments["offset"] = offset
        if agent.surface.runs_take_time_range:
            arguments["from_time"] = since.isoformat()
        page = run_of(await agent.call("list_runs", **arguments))
        for run in page["items"]:
            if datetime.fromisoformat(run["created_at"].replace("Z", "+00:00")) < since:
                return credits
            credits += int(run.get("credits") or 0)
        offset = page.get("next_offset")
    return credits


async def start_under_budget(agent: Agent, budget: int) -> None:
    workflow = await agent.find_workflow(PRODUCT_TOUR)
    if agent.surface.start_takes_max_credits:
        run = run_of(
            await agent.call("start_run", workflow_id=workflow["id"], max_credits=budget - 1)
        )
        assert run["status"] in ACTIVE, run
        agent.note = f"max {run['max_credits']} < N={budget}, checked by start_run"
        return
    preview = run_of(await agent.call("preview_run", workflow_id=workflow["id"]))
    assert preview["max_credits"] < budget, f"raise --budget above {preview['max_credits']}"
    run = run_of(await agent.call("start_run", workflow_id=workflow["id"]))
    assert run["status"] in ACTIVE, run
    agent.note = f"max {preview['max_credits']} < N={budget}"


async def pause_then_resume(agent: Agent, budget: int) -> None:
    rows = [row for row in await agent.active_rows() if row["last_run_status"] == "running"]
    row = rows[0]
    arguments: dict[str, Any] = {"workflow_id": row["id"]}
    if not agent.surface.pause_by_workflow:
        arguments["run_id"] = await agent.active_run_id(row, ("running",))
    if agent.surface.pause_waits:
        arguments["wait_s"] = 30
    paused = run_of(await agent.call("pause_run", **arguments))
    run_id = str(paused["id"])
    if paused["status"] != "paused":
        paused = await agent.follow(row["id"], paused)
    assert paused["status"] == "paused", paused
    if agent.surface.resume_by_workflow:
        resumed = await agent.call("resume_run", workflow_id=row["id"])
    else:
        resumed = await agent.call("resume_run", workflow_id=row["id"], run_id=run_id)
    assert run_of(resumed)["status"] in ("pending", "running"), resumed


async def fix_and_rerun(agent: Agent, budget: int) -> None:
    workflow = await agent.find_workflow(RELEASE_NOTES)
    wf = workflow["id"]
    failed_id = await agent.active_run_id(workflow, ("failed",))
    english_before = await english_takes(agent, wf, failed_id)
    run_id, rounds = failed_id, 0
    final: dict[str, Any] = {}
    while rounds < (1 if agent.surface.dictionary else MAX_ROUNDS):
        steps = run_of(
            await agent.call("get_run_steps", workflow_id=wf, run_id=run_id, failed_only=True)
        )
        if rounds and not steps["steps"]:
            break
        if agent.surface.dictionary:
            await add_entries(agent, steps)
        else:
            await respell_script(agent, wf, steps)
        run = run_of(await agent.call("start_run", workflow_id=wf, wait_s=50))
        final = await agent.follow(wf, run)
        run_id, rounds = str(run["id"]), rounds + 1
        if final["status"] == "completed":
            break
    if agent.surface.dictionary:  # the comparison the fix_run prompt ends with
        check = run_of(
            await agent.call("get_run_steps", workflow_id=wf, run_id=run_id, failed_only=True)
        )
        assert not check["steps"], check
    english = "unchanged" if await english_takes(agent, wf, run_id) == english_before else "changed"
    agent.note = f"{final.get('status')} after {rounds} rerun(s); English takes {english}"


async def add_entries(agent: Agent, steps: dict[str, Any]) -> None:
    """One add per language, with every word of every rejected take; OnePin suggests each
    pronunciation."""
    words: dict[str, list[str]] = {}
    for step in steps["steps"]:
        for take in step.get("rejected") or []:
            for word in take["words"]:
                if word not in words.setdefault(take["locale"], []):
                    words[take["locale"]].append(word)
    for language, found in words.items():
        entries = [{"word": word} for word in found]
        run_of(await agent.call("add_dictionary_entries", language=language, entries=entries))


async def respell_script(agent: Agent, workflow_id: str, steps: dict[str, Any]) -> None:
    """Without a dictionary: respell the words the error names in the saved script (the whole
    graph read and written back), which changes every language's takes of those lines."""
    errors = " ".join(str(step.get("error") or "") for step in steps["steps"])
    words = set(re.findall(r"'([^']+)'", errors))
    view = run_of(await agent.call("get_workflow", workflow_id=workflow_id, view="definition"))
    definition = view["definition"]
    for node in definition["graph"]["nodes"]:
        if node["type"] == "source_script":
            text = node["config"]["script_text"]
            for word in words:
                half = len(word) // 2
                text = text.replace(word, f"{word[:half].lower()} {word[half:].lower()}")
            node["config"]["script_text"] = text
    run_of(await agent.call("update_workflow", workflow_id=workflow_id, definition=definition))


async def english_takes(agent: Agent, workflow_id: str, run_id: str) -> list[str]:
    """The English lines a run spoke (a check of the outcome, not counted as the agent's)."""
    result = await agent.client.call_tool(
        "get_run_data", {"workflow_id": workflow_id, "run_id": run_id, "language": "en-us"}
    )
    rows = (result.structured_content or {}).get("rows", [])
    return [str(row.get("script")) for row in rows]


async def copy_with_new_script(agent: Agent, budget: int) -> None:
    workflow = await agent.find_workflow(PRODUCT_TOUR)
    name = "Product tour, spring"
    if agent.surface.copy_takes_script:
        copy = run_of(
            await agent.call(
                "duplicate_workflow", workflow_id=workflow["id"], name=name, script_text=NEW_SCRIPT
            )
        )
        definition = None
    else:
        copy = run_of(await agent.call("duplicate_workflow", workflow_id=workflow["id"]))
        view = await agent.call("get_workflow", workflow_id=copy["id"], view="definition")
        definition = run_of(view)["definition"]
        for node in definition["graph"]["nodes"]:
            if node["type"] == "source_script":
                node["config"]["script_text"] = NEW_SCRIPT
        run_of(
            await agent.call(
                "update_workflow", workflow_id=copy["id"], name=name, definition=definition
            )
        )
    if agent.surface.validate_by_id:
        report = await agent.call("validate_workflow", workflow_id=copy["id"])
    else:
        report = await agent.call("validate_workflow", definition=definition)
    assert run_of(report)["valid"] is True, report
    run = run_of(await agent.call("start_run", workflow_id=copy["id"]))
    assert run["status"] in ACTIVE, run
    written = sum(call.arguments_bytes for call in agent.calls)
    agent.note = f"model wrote {written:,} B of arguments"


async def cost_by_language(agent: Agent, budget: int) -> None:
    if agent.surface.usage:
        report = run_of(await agent.call("get_usage", days=30, by="language"))
        languages = len(report["rows"])
        agent.note = f"{report['credits']} credits, {languages} languages"
        return
    # Without usage tools the total is summed per workflow, and no split by language exists.
    since = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=30)
    rows = run_of(await agent.call("list_workflows", limit=100))["items"]
    credits = 0
    for row in rows:
        if row.get("runs_count"):
            summary = await agent.call(
                "get_runs_summary", workflow_id=row["id"], from_time=since.isoformat()
            )
            credits += int(run_of(summary).get("credits_used") or 0)
    agent.note = f"{credits} credits in total; by language: not available"


TASKS: dict[str, tuple[str, Callable[[Agent, int], Awaitable[None]]]] = {
    "a": ("run Product tour, give the download link", download_link),
    "b": ("why did the last Release notes run fail", why_it_failed),
    "c": ("cancel whatever is running", cancel_everything),
    "d": ("last 30 days of Product tour, and cost", last_30_days),
    "e": ("start Product tour only if under N credits", start_under_budget),
    "f": ("pause the running run, then resume it", pause_then_resume),
    "g": ("fix the failed Release notes run, rerun it", fix_and_rerun),
    "h": ("copy Product tour with a new script, check, run", copy_with_new_script),
    "i": ("what did the last 30 days cost, by language", cost_by_language),
}


# --- the server under test -----------------------------------------------------------------------


def server_params(home: Path, tree: Path | None, speed: float) -> StdioServerParameters:
    """`onepin-mcp --sandbox` on stdio, importing the package from `tree` when given (its
    directory first on the path, as `python -m` run there puts it), stderr to a file."""
    args = ("--sandbox", "--sandbox-speed", str(speed), "--log-level", "warning")
    args += ("--toolsets", "all")  # requests g to i use the admin, dictionary and usage tools
    env = {"PYTHONPATH": str(tree)} if tree else None
    params = stdio_params(home, *args, env=env, stderr_to=home / "stderr.txt")
    return params.model_copy(update={"cwd": tree}) if tree else params


def imported_from(params: StdioServerParameters) -> str:
    """Where a child launched like the server imports `onepin_mcp` from: proof of the tree."""
    probe = [sys.executable, "-c", "import onepin_mcp; print(onepin_mcp.__file__)"]
    done = subprocess.run(
        probe, env=params.env, cwd=params.cwd, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@dataclass
class Outcome:
    task: str
    agent: Agent

    @property
    def model_read(self) -> int:
        return sum(c.arguments_bytes + c.text_bytes for c in self.agent.calls)

    @property
    def structured(self) -> int:
        return sum(c.structured_bytes for c in self.agent.calls)


async def run_task(
    key: str, params: StdioServerParameters, mode: str, budget: int
) -> tuple[Outcome, Surface]:
    holder: list[Agent] = []

    async def say_yes(context: Any, request: ElicitRequestParams) -> ElicitResult:
        holder[0].questions += 1
        return ElicitResult(action="accept", content={"confirm": True})

    with anyio.fail_after(TASK_DEADLINE_S):
        async with Client(
            params,
            mode=mode,  # type: ignore[arg-type]
            read_timeout_seconds=60,
            elicitation_callback=say_yes,  # type: ignore[arg-type]
        ) as client:
            surface = Surface.read((await client.list_tools()).tools)
            agent = Agent(client, surface)
            holder.append(agent)
            await TASKS[key][1](agent, budget)
    return Outcome(key, agent), surface


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, help="import onepin_mcp from this checkout")
    parser.add_argument("--mode", choices=("auto", "legacy"), default="auto")
    parser.add_argument("--speed", type=float, default=20.0, help="sandbox speed (default 20)")
    parser.add_argument("--budget", type=int, default=5, help="N for request e (default 5)")
    parser.add_argument("--only", default="abcdefghi", help="which requests, e.g. ac")
    options = parser.parse_args()
    tree = options.tree.resolve() if options.tree else None

    outcomes: list[Outcome] = []
    surface: Surface | None = None
    for key in options.only:
        with tempfile.TemporaryDirectory(prefix="agent-tasks-") as home:
            params = server_params(Path(home), tree, options.speed)
            if surface is None:
                print(f"server: {imported_from(params)}, mode {options.mode}")
            outcome, surface = await run_task(key, params, options.mode, options.budget)
            outcomes.append(outcome)
    assert surface is not None
    print(f"surface: {surface.describe()}\n")
    print(
        "| request | calls | written B | model-read B | structured B | errors | asked | tools "
        "| note |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|---|")
    for outcome in outcomes:
        calls = outcome.agent.calls
        errors = sum(c.is_error for c in calls)
        tools = ", ".join(c.tool for c in calls)
        print(
            f"| {outcome.task}. {TASKS[outcome.task][0]} | {len(calls)} "
            f"| {sum(c.arguments_bytes for c in calls):,} | {outcome.model_read:,} "
            f"| {outcome.structured:,} | {errors} | {outcome.agent.questions} | {tools} "
            f"| {outcome.agent.note} |"
        )


if __name__ == "__main__":
    anyio.run(main)
