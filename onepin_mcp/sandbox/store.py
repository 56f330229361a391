"""The sandbox's in-memory state: who may call, the account, workflows, runs, catalogs
and the pronunciation dictionary.

Plain records and look-ups only. How runs evolve lives in `engine`, what the seeded world looks
like lives in `seed`, and how any of it is rendered on the wire lives in `app`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

JSON = dict[str, Any]

# The `ApiKeyScope` values of the API. Scopes are flat: a write scope does not imply read.
ALL_SCOPES: frozenset[str] = frozenset(
    {
        "workflows:read",
        "workflows:run",
        "workflows:write",
        "voices:read",
        "voices:write",
        "dictionary:read",
        "dictionary:write",
        "uploads:write",
        "workspace:read",
        "templates:read",
        "catalog:read",
    }
)

Role = Literal["admin", "editor", "viewer"]

RUN_STATUSES = ("pending", "running", "paused", "completed", "failed", "cancelled")
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
ACTIVE_STATUSES = frozenset({"pending", "running", "paused"})
# Paused runs hold no worker, so only these count against `concurrent_runs_per_user`.
SLOT_HOLDING_STATUSES = frozenset({"pending", "running"})


@dataclass(frozen=True)
class ApiKey:
    """A key the sandbox accepts, with the scopes and workspace role it carries."""

    key: str = field(repr=False)
    scopes: frozenset[str] = ALL_SCOPES
    role: Role = "admin"

    def __repr__(self) -> str:
        # Only the public prefix, like the dashboard shows it: a key must never reach a log.
        return f"ApiKey(key='{self.key[:8]}…', scopes={sorted(self.scopes)}, role={self.role!r})"


@dataclass
class User:
    id: str
    name: str
    email: str


@dataclass
class Workspace:
    id: str
    name: str
    slug: str


@dataclass
class Account:
    """The caller's credit balance. Free credits are spent before the monthly grant."""

    monthly_balance: int
    free_balance: int
    free_grant: int
    plan_grant: int
    used: int
    period_start: datetime
    period_end: datetime
    plan_tier: str
    overage_rate_cents_per_credit: float | None
    credits_absorbed: float = 0.0

    @property
    def balance(self) -> int:
        return self.monthly_balance + self.free_balance

    def debit(self, credits: int, absorbed: float = 0.0) -> None:
        from_free = min(credits, self.free_balance)
        self.free_balance -= from_free
        self.monthly_balance = max(0, self.monthly_balance - (credits - from_free))
        self.used += credits
        self.credits_absorbed = round(self.credits_absorbed + absorbed, 4)


@dataclass(frozen=True)
class PlanLimits:
    monthly_credits: int
    workspaces_per_owner: int
    concurrent_runs_per_user: int
    storage_bytes_per_workspace: int
    retention_days: int | None
    byok_enabled: bool
    auto_fix_enabled: bool
    credits_renewal: str
    downloads_enabled: bool
    overage_rate_cents_per_credit: float | None


@dataclass
class Workflow:
    id: str
    workspace_id: str
    user_id: str
    name: str
    name_source: str
    description: str | None
    definition: JSON
    created_at: datetime
    updated_at: datetime
    deleted: bool = False


@dataclass
class Upload:
    id: str
    workflow_id: str
    user_id: str
    workspace_id: str
    filename: str
    content: str
    created_at: datetime
    detected_language: str | None = None


@dataclass
class DictionaryEntry:
    """One pronunciation dictionary entry: how `word` is said in one locale."""

    id: str
    workspace_id: str
    word: str
    language: str  # a lowercase BCP-47 locale
    method: str  # "spelled" or "recorded"
    pronunciation: str | None
    ipa: str | None
    description: str | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime


# --- what a run will do (decided when it starts, revealed as the clock advances) ---------------


@dataclass(frozen=True)
class ScriptLine:
    index: int
    line_id: str
    text: str


@dataclass(frozen=True)
class Voice:
    """The voice a generator uses for one locale (a `VoiceAssignment` of the node config)."""

    name: str
    provider: str
    model: str


@dataclass(frozen=True)
class Segment:
    text: str
    status: str
    start: int
    end: int
    severity: str | None
    error_type: str | None


@dataclass(frozen=True)
class Score:
    """One validator's verdict on one take."""

    node_id: str
    kind: str
    label: str
    score: float
    threshold: float
    passed: bool
    step_index: int  # the planned step that produces it: hidden until that step completes
    transcript: str | None = None
    wer: float | None = None
    segments: tuple[Segment, ...] | None = None
    error_counts: tuple[int, int, int, int] | None = None  # subs, ins, dels, reference units


@dataclass(frozen=True)
class Take:
    """One generated audio clip for one line in one locale (retries produce further takes)."""

    audio_id: str
    line_index: int
    locale: str
    iteration: int
    text: str
    duration_ms: int
    step_index: int  # the generator step that produces it
    scores: tuple[Score, ...] = ()

    @property
    def passed(self) -> bool:
        return all(score.passed for score in self.scores)


@dataclass(frozen=True)
class PlannedStep:
    node_id: str
    node_type: str
    display_name: str
    iteration: int
    duration_s: float
    locales: tuple[str, ...] | None
    active_ports: tuple[str, ...]
    credits_exact: float = 0.0
    characters: int = 0
    error: str | None = None  # set on the validator step that ends the run as failed


@dataclass(frozen=True)
class RunPlan:
    lines: tuple[ScriptLine, ...]
    source_locale: str
    locales: tuple[str, ...]
    voices: dict[str, Voice]
    steps: tuple[PlannedStep, ...]
    takes: tuple[Take, ...]
    queue_delay_s: float
    characters: int


# --- what a run has done so far ---------------------------------------------------------------


@dataclass
class Step:
    id: str
    plan_index: int
    node_id: str
    node_type: str
    node_display_name: str
    iteration: int
    status: str
    started_at: datetime
    completed_at: datetime | None = None
    active_ports: tuple[str, ...] = ()
    locales: tuple[str, ...] | None = None
    error: str | None = None


@dataclass
class Run:
    id: str
    workflow_id: str
    workspace_id: str
    run_number: int
    triggered_by: User
    snapshot: JSON
    plan: RunPlan
    status: str
    created_at: datetime
    updated_at: datetime
    ready_at: datetime  # when a pending run gets a worker
    started_at: datetime | None = None
    completed_at: datetime | None = None
    pause_requested_at: datetime | None = None
    paused_at: datetime | None = None
    paused_ms: int = 0
    pause_reason: str | None = None
    pause_error: str | None = None
    error: str | None = None
    has_export: bool = False
    credits: int | None = None
    credits_absorbed: float = 0.0
    steps: list[Step] = field(default_factory=list)
    next_step: int = 0  # index in plan.steps of the next step to start

    @property
    def finished_plan_steps(self) -> int:
        """How many planned steps have completed: gates which takes and scores are visible."""
        return sum(1 for step in self.steps if step.status in ("completed", "failed"))

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


# --- presigned download links ------------------------------------------------------------------


@dataclass(frozen=True)
class FileLink:
    """A short-lived, unauthenticated URL on the sandbox itself (the sandbox's stand-in for S3)."""

    token: str
    filename: str
    content_type: str
    expires_at: datetime
    build: Callable[[], bytes]


@dataclass
class Store:
    """Everything the sandbox knows; `reset` replaces it with a fresh one from the seed."""

    workspace: Workspace
    user: User
    account: Account
    limits: PlanLimits
    workflows: dict[str, Workflow] = field(default_factory=dict)
    runs: dict[str, Run] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)
    voices: list[JSON] = field(default_factory=list)
    templates: list[JSON] = field(default_factory=list)
    node_catalog: list[JSON] = field(default_factory=list)
    files: dict[str, FileLink] = field(default_factory=dict)
    dictionary: dict[str, DictionaryEntry] = field(default_factory=dict)

    def workflow(self, workflow_id: str, workspace_id: str) -> Workflow | None:
        found = self.workflows.get(workflow_id)
        if found is None or found.deleted or found.workspace_id != workspace_id:
            return None
        return found

    def run(self, workflow: Workflow, run_id: str) -> Run | None:
        found = self.runs.get(run_id)
        if found is None or found.workflow_id != workflow.id:
            return None
        return found

    def dictionary_of(self, workspace_id: str) -> list[DictionaryEntry]:
        return [entry for entry in self.dictionary.values() if entry.workspace_id == workspace_id]

    def runs_of(self, workflow_id: str) -> list[Run]:
        return [run for run in self.runs.values() if run.workflow_id == workflow_id]

    def active_runs(self) -> list[Run]:
        return [run for run in self.runs.values() if run.active]

    def next_run_number(self, workflow_id: str) -> int:
        return 1 + max((run.run_number for run in self.runs_of(workflow_id)), default=0)
