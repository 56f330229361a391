"""What the client reads from OnePin, as pydantic models.

Tolerant by design: unknown fields are ignored (the API adds fields in minor releases) and only
the fields an agent decides on are required (ids and statuses). Run status is a closed,
documented enum and is typed as such; step and node statuses, pause reasons and similar values
are documented as open-ended strings and stay `str`. Untyped API objects (step results, usage
summaries, node configs) stay `dict[str, Any]`.

Workflow definitions are the exception to "ignore unknown fields": they are read *and* written
back (create, replace, validate), so their models keep every field they receive.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

RunStatus = Literal["pending", "running", "paused", "completed", "failed", "cancelled"]
RUN_STATUSES: Final[tuple[RunStatus, ...]] = (
    "pending",
    "running",
    "paused",
    "completed",
    "failed",
    "cancelled",
)
TERMINAL_STATUSES: Final[frozenset[RunStatus]] = frozenset({"completed", "failed", "cancelled"})
ACTIVE_STATUSES: Final[frozenset[RunStatus]] = frozenset({"pending", "running", "paused"})

# Filter values of GET /workflows: derived from each workflow's latest run, not a run status.
WorkflowListStatus = Literal["draft", "running", "completed", "failed", "paused"]
WorkflowSortField = Literal["name", "updated_at", "runs_count"]
RunSortField = Literal["created_at", "started_at", "completed_at", "status"]
SortOrder = Literal["asc", "desc"]


def is_terminal(status: RunStatus) -> bool:
    return status in TERMINAL_STATUSES


class ApiModel(BaseModel):
    """Base of the models read from the API: immutable, unknown fields ignored."""

    # Built on first use, not at import: a server start reads none of them before a tool call.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, defer_build=True)


class _OpenModel(BaseModel):
    """Base of models that are sent back to the API, so nothing received may be lost."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


# --- pagination -------------------------------------------------------------------------------

ItemT = TypeVar("ItemT")


class PageInfo(ApiModel):
    """Where a page sits in its list and how to ask for the next one."""

    total: int | None = None  # rows matching the filters; None for lists the API doesn't count
    limit: int
    offset: int
    next_offset: int | None = None  # None: this is the last page

    @classmethod
    def compute(
        cls, *, count: int, total: int | None, limit: int, offset: int, has_next_link: bool | None
    ) -> PageInfo:
        """Derive `next_offset` from the total when known, else from the page being full.

        Offsets advance by the rows actually returned, so a server that returns fewer rows than
        `limit` mid-list (it shouldn't) still never skips any.
        """
        following = offset + count
        if count == 0:
            next_offset = None
        elif total is not None:
            next_offset = following if following < total else None
        elif has_next_link is not None:
            next_offset = following if has_next_link else None
        else:
            next_offset = following if count >= limit else None
        return cls(total=total, limit=limit, offset=offset, next_offset=next_offset)


class Page(PageInfo, Generic[ItemT]):
    """One page of a list endpoint."""

    items: list[ItemT] = Field(default_factory=list)


# --- workflows --------------------------------------------------------------------------------


class NodePosition(_OpenModel):
    x: float = 0.0
    y: float = 0.0


class GraphNode(_OpenModel):
    id: str
    type: str  # a NodeType value; left open so new node types don't break reading
    name: str | None = None
    position: NodePosition | None = None
    config: dict[str, Any] | None = None
    config_version: int | None = None


class GraphEdge(_OpenModel):
    """An edge; ports are camelCase on the wire (`sourcePort`, `targetPort`)."""

    id: str
    source: str
    source_port: str = Field(alias="sourcePort")
    target: str
    target_port: str = Field(alias="targetPort")


class Graph(_OpenModel):
    nodes: list[GraphNode] = Field(default_factory=list)
    edges: list[GraphEdge] = Field(default_factory=list)


class WorkflowDefinition(_OpenModel):
    graph: Graph | None = None
    execution: dict[str, Any] | None = None

    def to_api(self) -> dict[str, Any]:
        """The JSON the API expects: camelCase edge ports, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class RunStatusCounts(ApiModel):
    pending: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    paused: int = 0


class WorkflowListItem(ApiModel):
    id: str
    name: str
    name_source: str | None = None  # placeholder | generated | user
    user_id: str | None = None
    description: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    runs_count: int | None = None
    last_run_at: datetime | None = None
    last_run_status: RunStatus | None = None
    run_status_counts: RunStatusCounts | None = None
    definition: WorkflowDefinition | None = None  # only with include_definition=true


class Workflow(WorkflowListItem):
    definition: WorkflowDefinition = Field(default_factory=WorkflowDefinition)


class NameAvailability(ApiModel):
    name: str
    available: bool


class WorkflowMarkdown(ApiModel):
    workflow_id: str
    name: str
    markdown: str


class ValidationIssue(ApiModel):
    rule: str
    message: str
    node_id: str | None = None
    node_name: str | None = None


class ValidationBlock(ApiModel):
    code: str
    message: str


class WorkflowValidation(ApiModel):
    valid: bool
    summary: dict[str, Any] = Field(default_factory=dict)
    errors: list[ValidationIssue] = Field(default_factory=list)
    warnings: list[ValidationIssue] = Field(default_factory=list)
    blocked: list[ValidationBlock] = Field(default_factory=list)


class NodeEstimate(ApiModel):
    node_id: str
    node_type: str
    min_credits: int
    expected_credits: int
    max_credits: int


class Estimate(ApiModel):
    """Preview of what a run would cost; `can_run` applies the start gate to the balance."""

    min_credits: int
    expected_credits: int
    max_credits: int
    current_balance: int
    can_run: bool
    deficit_at_max: int = 0
    breakdown: list[NodeEstimate] = Field(default_factory=list)
    overage_rate_cents_per_credit: float | None = None
    will_incur_overage: bool | None = None
    estimated_overage_cents: int | None = None


class Upload(ApiModel):
    id: str
    filename: str
    category: str
    status: str  # pending | uploaded
    content_type: str | None = None
    format: str | None = None
    size_bytes: int | None = None
    char_count: int | None = None
    line_count: int | None = None
    detected_language: str | None = None
    download_url: str | None = None
    created_at: datetime | None = None


# --- runs -------------------------------------------------------------------------------------


class TriggeredBy(ApiModel):
    user_id: str
    user_name: str | None = None


class HeldNode(ApiModel):
    node_id: str
    locales: list[str] | None = None


class _RunProgress(ApiModel):
    """Fields shared by every run representation."""

    id: str
    status: RunStatus
    run_number: int | None = None
    total_nodes: int | None = None
    finished_nodes: int | None = None
    total_steps: int | None = None
    finished_steps: int | None = None
    usage_summary: dict[str, Any] | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    pause_requested_at: datetime | None = None
    paused_at: datetime | None = None
    paused_ms: int | None = None
    pause_reason: str | None = None  # user | provider_outage | provider_rate_limited | ...
    pause_error: str | None = None
    triggered_by: TriggeredBy | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class RunListItem(_RunProgress):
    """A row of GET …/runs (no workflow_id, error or has_export there)."""

    credits: int | None = None
    output_line_count: int | None = None
    delivered_audio_ms: int | None = None


class RunState(_RunProgress):
    """GET …/runs/{id}/status: the cheap poll, a run without credits or snapshot."""

    workflow_id: str
    updated_at: datetime | None = None
    error: str | None = None
    has_export: bool | None = None
    held_nodes: list[HeldNode] | None = None
    token_cost: int | None = None  # billing units, not credits


class Run(RunState):
    """What start, cancel, pause and resume return."""

    credits: int | None = None


class RunDetail(Run):
    """GET …/runs/{id}: the full record with the immutable definition snapshot."""

    credits_absorbed: float | None = None
    definition_snapshot: dict[str, Any] | None = None
    public_share_id: str | None = None
    shared_at: datetime | None = None


class RunStep(ApiModel):
    id: str
    node_id: str
    node_type: str
    status: str  # open-ended per the API reference; don't enum-validate
    node_display_name: str | None = None
    iteration: int | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error: str | None = None
    has_result: bool | None = None
    result: dict[str, Any] | None = None  # only with include_result=true
    active_ports: list[str] | None = None
    locales: list[str] | None = None
    pause_reason: str | None = None
    pause_error: str | None = None


class RunsSummary(ApiModel):
    total_runs: int
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    pending: int = 0
    running: int = 0
    paused: int = 0
    pass_rate: float | None = None
    average_duration_seconds: float | None = None
    delivered_audio_ms: int | None = None


class DownloadUrl(ApiModel):
    """A presigned URL (about 15 minutes): re-request instead of caching."""

    url: str
    filename: str | None = None
    expires_at: datetime | None = None


# --- run results: overview, data, outputs, analysis ---------------------------------------------


class OverviewWorkflow(ApiModel):
    id: str
    name: str


class OverviewRun(ApiModel):
    id: str
    status: RunStatus
    run_number: int | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    paused_ms: int | None = None
    has_export: bool | None = None
    error: str | None = None


class OverviewMetric(ApiModel):
    key: str
    label: str
    formatted_value: str | None = None
    value: int | float | str | None = None
    unit: str | None = None
    status: str  # available | not_ready | unsupported | unavailable
    reason: str | None = None


class OverviewMetricSection(ApiModel):
    key: str
    title: str | None = None
    metrics: list[OverviewMetric] = Field(default_factory=list)


class LanguageAudio(ApiModel):
    locale_code: str
    line_count: int
    total_duration_ms: int
    avg_duration_ms: int | None = None


class ValidatorSummary(ApiModel):
    node_id: str
    kind: str
    label: str
    status: str
    avg_score: float | None = None
    pass_rate: float | None = None
    pass_count: int | None = None
    fail_count: int | None = None
    retry_count: int | None = None
    reason: str | None = None


class NodeState(ApiModel):
    node_id: str
    node_type: str
    status: str
    node_display_name: str | None = None
    iteration: int | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: int | None = None
    error: str | None = None


class WorkflowSnapshot(ApiModel):
    definition: dict[str, Any] = Field(default_factory=dict)
    node_states: list[NodeState] = Field(default_factory=list)


class RunOverview(ApiModel):
    workflow: OverviewWorkflow
    run: OverviewRun
    metric_sections: list[OverviewMetricSection] = Field(default_factory=list)
    audio_by_language: list[LanguageAudio] = Field(default_factory=list)
    validators: list[ValidatorSummary] = Field(default_factory=list)
    workflow_snapshot: WorkflowSnapshot = Field(default_factory=WorkflowSnapshot)


class AnalysisRun(ApiModel):
    id: str
    status: RunStatus
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: int | None = None
    paused_ms: int | None = None


class RunAnalysis(ApiModel):
    """Delivered vs replaced audio, per-validator scores, per-node credits; blocks kept loose."""

    run: AnalysisRun
    audio: dict[str, Any] = Field(default_factory=dict)
    validators: list[dict[str, Any]] = Field(default_factory=list)
    credits: dict[str, Any] = Field(default_factory=dict)


class CardAudio(ApiModel):
    status: str
    playback_url: str | None = None  # only expected when status == "available"
    duration_ms: int | None = None
    content_type: str | None = None
    provider: str | None = None
    model: str | None = None
    reason: str | None = None


class CardSegment(ApiModel):
    """A stretch of a take's text a validator flagged (a word it heard wrong or mispronounced)."""

    text: str
    status: str | None = None
    severity: str | None = None  # critical: it failed the take; minor: noted only


class CardValidation(ApiModel):
    kind: str
    status: str
    label: str | None = None
    score: float | None = None
    reason: str | None = None
    wer: float | None = None
    cer: float | None = None
    transcript: str | None = None
    segments: list[CardSegment] = Field(default_factory=list)


class CardVoice(ApiModel):
    status: str
    display_name: str | None = None


class DataCard(ApiModel):
    id: str  # "<line_id>:<locale>:<audio_id>"
    locale_code: str | None = None
    script: str | None = None
    audio: CardAudio | None = None
    validations: list[CardValidation] = Field(default_factory=list)
    voice: CardVoice | None = None
    status: str | None = None  # delivered | generated | not_delivered | dropped
    retry_count: int | None = None

    @property
    def audio_id(self) -> str | None:
        """The 16-hex id that GET …/audio/{audio_id}/url accepts, when the card id carries one."""
        tail = self.id.rsplit(":", 1)[-1]
        if len(tail) == 16 and all(c in "0123456789abcdef" for c in tail.lower()):
            return tail.lower()
        return None


class DataRow(ApiModel):
    id: str
    line_index: int | None = None
    line_id: str | None = None
    script: str | None = None
    script_status: str | None = None
    cards: list[DataCard] = Field(default_factory=list)


class DataPartial(ApiModel):
    status: str  # "available" when nothing is still being computed
    reason: str | None = None


class RunData(ApiModel):
    """One page of per-line script and audio cards; `page` says how to fetch the next rows."""

    workflow_id: str
    run_id: str
    run_status: RunStatus
    rows: list[DataRow] = Field(default_factory=list)
    partial: DataPartial | None = None
    dropped_truncated: bool | None = None
    page: PageInfo


class OutputDelivery(ApiModel):
    passed: bool
    failing_checks: list[dict[str, Any]] = Field(default_factory=list)


class OutputLine(ApiModel):
    audio_files: list[dict[str, Any]] = Field(default_factory=list)
    recommended_audio_file_index: int | None = None
    delivery: OutputDelivery | None = None


class SinkOutput(ApiModel):
    node_id: str
    node_type: str
    status: str
    display_name: str | None = None
    lines: list[OutputLine] = Field(default_factory=list)
    line_count: int | None = None
    truncated: bool = False


class RunOutputs(ApiModel):
    run_id: str
    run_status: RunStatus
    credits: int | None = None
    credits_absorbed: float | None = None
    outputs: list[SinkOutput] = Field(default_factory=list)


# --- account and catalog ------------------------------------------------------------------------


class Whoami(ApiModel):
    auth_kind: str  # api_key | clerk
    user_id: str
    workspace_id: str | None = None
    api_key_id: str | None = None
    scopes: list[str] = Field(default_factory=list)


class Balance(ApiModel):
    """Credits; `balance` is the authoritative spendable amount."""

    balance: int
    plan_tier: str | None = None  # free | paid | custom
    plan_grant: int | None = None
    used: int | None = None
    remaining: int | None = None
    quota: int | None = None
    monthly_balance: int | None = None
    free_balance: int | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    overage_rate_cents_per_credit: float | None = None
    overage_cents: int | None = None


class PlanLimits(ApiModel):
    monthly_credits: int | None = None
    concurrent_runs_per_user: int | None = None
    workspaces_per_owner: int | None = None
    storage_bytes_per_workspace: int | None = None
    retention_days: int | None = None
    downloads_enabled: bool | None = None
    credits_renewal: str | None = None


class Port(ApiModel):
    name: str
    fields: list[str] | None = None


class NodeType(ApiModel):
    """A node type of the catalog (GET /nodes), what a workflow graph can be built from."""

    node_type: str
    display_name: str
    description: str | None = None
    version: int | None = None
    beta: bool | None = None
    inputs: list[Port] = Field(default_factory=list)
    outputs: list[Port] = Field(default_factory=list)
    config_schema: dict[str, Any] | None = None


class Voice(ApiModel):
    id: str
    name: str
    provider: str
    provider_voice_id: str | None = None
    description: str | None = None
    is_active: bool | None = None
    gender: str | None = None
    accent: str | None = None
    age: str | None = None
    category: str | None = None
    source: str | None = None
    availability: str | None = None
    supported_languages: list[str] | None = None
    supported_models: list[str] | None = None
    sample_url: str | None = None


class Template(ApiModel):
    id: str
    name: str
    description: str | None = None
    category: str | None = None
    is_starter: bool | None = None
    is_public: bool | None = None
    uses_count: int | None = None
    definition: WorkflowDefinition | None = None


# --- pronunciation dictionary -----------------------------------------------------------------


# The locales the dictionary endpoints accept (the API's `language` enum for them).
DictionaryLocale = Literal[
    "de-de",
    "en-gb",
    "en-us",
    "es-es",
    "es-mx",
    "fr-fr",
    "ja-jp",
    "ko-kr",
    "pt-br",
    "pt-pt",
    "zh-cn",
]


class DictionaryEntry(ApiModel):
    """How one word is said in one locale (`method` spelled: `pronunciation` is a respelling)."""

    id: str
    word: str
    language: str
    method: str  # spelled | recorded
    pronunciation: str | None = None
    ipa: str | None = None
    description: str | None = None
    audio_url: str | None = None
    uses_count: int | None = None
    created_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class DictionaryLanguage(ApiModel):
    code: str
    count: int


class PronunciationSuggestion(ApiModel):
    pronunciation: str
    ipa: str | None = None


# --- usage ------------------------------------------------------------------------------------


UsageRange = Literal["30d", "60d", "90d"]
UsageView = Literal["daily", "weekly", "monthly"]


class UsagePeriod(ApiModel):
    start: datetime
    end: datetime


class UsageTotal(ApiModel):
    total: int = 0


class UsageCredits(ApiModel):
    """The caller's own credits in the current billing period (not the rolling window)."""

    used: int
    quota: int | None = None
    percent: float | None = None


class UsageLines(ApiModel):
    total: int = 0
    avg_chars_per_line: float | None = None


class UsageAudio(ApiModel):
    total_ms: int = 0


class UsageRuns(ApiModel):
    total: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    running: int = 0
    pending: int = 0
    paused: int | None = None


class UsageDay(ApiModel):
    date: str  # YYYY-MM-DD in the requested timezone
    credits: int
    characters: int = 0
    lines: int = 0
    runs: int = 0


class UsageBucket(ApiModel):
    label: str
    start: datetime
    end: datetime
    credits: int
    characters: int = 0
    lines: int = 0
    runs: int = 0


class UsagePeak(ApiModel):
    value: int
    label: str
    start: datetime | None = None
    end: datetime | None = None


class UsageActivityChart(ApiModel):
    view: str
    bucket_unit: str | None = None
    range_label: str | None = None
    buckets: list[UsageBucket] = Field(default_factory=list)
    total: int = 0
    avg: float | None = None
    peak: UsagePeak | None = None


class UsageSummary(ApiModel):
    """GET /usage/summary: window totals (`daily` adds up to the window's credits), the caller's
    billing-period credits, and a chart series bucketed by `activity_view`."""

    range: str | None = None
    activity_view: str | None = None
    timezone: str = "UTC"
    period: UsagePeriod
    credits: UsageCredits
    characters: UsageTotal = Field(default_factory=UsageTotal)
    corrected: UsageTotal | None = None
    lines: UsageLines = Field(default_factory=UsageLines)
    audio: UsageAudio = Field(default_factory=UsageAudio)
    runs: UsageRuns = Field(default_factory=UsageRuns)
    activity: UsageActivityChart | None = None
    daily: list[UsageDay] | None = None


class UsageLanguage(ApiModel):
    locale_code: str
    display_name: str | None = None
    share: float = 0.0  # 0..1
    credits: int = 0
    characters: int = 0
    corrected: int | None = None
    lines: int = 0
    allocation_basis: str | None = None


class UsageByLanguage(ApiModel):
    range: str | None = None  # None when `activity_view` set the period
    activity_view: str | None = None
    timezone: str = "UTC"
    period: UsagePeriod
    languages: list[UsageLanguage] = Field(default_factory=list)
    total_credits: int | None = None
    untagged_credits: int | None = None


class UsageActor(ApiModel):
    id: str
    name: str | None = None


class UsageResource(ApiModel):
    type: str
    id: str | None = None
    name: str | None = None


class UsageEvent(ApiModel):
    id: str
    timestamp: datetime
    user: UsageActor | None = None
    action: str
    kind: str | None = None
    resource: UsageResource
    metadata: dict[str, Any] | None = None


class UsageActivityPage(ApiModel):
    """A page of the activity feed, newest first; `next_cursor` None on the last page."""

    items: list[UsageEvent] = Field(default_factory=list)
    next_cursor: str | None = None
