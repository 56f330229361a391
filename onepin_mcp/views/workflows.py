"""Views of the `workflows` toolset: compact list rows, and one workflow as summary, graph or
markdown.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from onepin_mcp.api.models import (
    GraphNode,
    Page,
    RunListItem,
    RunStatus,
    RunStatusCounts,
    Workflow,
    WorkflowListItem,
    WorkflowMarkdown,
)
from onepin_mcp.text import trim_json
from onepin_mcp.views import CleanName, CleanText, View, clean_text

# The markdown rendering of a big workflow can run long; past this an agent should page the
# graph instead (view="definition").
MAX_MARKDOWN_CHARS = 8000
# Long strings inside a definition are scripts; the summary view already counts their lines.
MAX_DEFINITION_TEXT_CHARS = 4000


def _clean_markdown(value: str) -> str:
    return clean_text(value, MAX_MARKDOWN_CHARS)


CleanMarkdown = Annotated[str, AfterValidator(_clean_markdown)]


def nonzero_counts(counts: RunStatusCounts | None) -> dict[str, int]:
    """Run counts per status, without the zeros (most workflows use two or three statuses)."""
    if counts is None:
        return {}
    return {status: n for status, n in counts.model_dump().items() if n}


# --- list_workflows -------------------------------------------------------------------------------


class WorkflowRow(View):
    id: str
    name: CleanName
    runs_count: int | None = None
    run_status_counts: dict[str, int] = Field(
        default_factory=dict, description="runs per status over all runs; zeros left out"
    )
    last_run_id: str | None = Field(
        default=None, description="the latest run: the active one, if any (one per workflow)"
    )
    last_run_number: int | None = None
    last_run_status: RunStatus | None = None
    last_run_at: datetime | None = None

    @classmethod
    def of(cls, item: WorkflowListItem, latest: RunListItem | None) -> WorkflowRow:
        if latest is None:
            # Never run, or its latest run could not be looked up: the listing's own fields.
            status, created_at = item.last_run_status, item.last_run_at
        else:
            # Status and time from the same record as the id, so the three never describe two
            # different runs (one may have started between the listing and the lookup).
            status, created_at = latest.status, latest.created_at or item.last_run_at
        return cls(
            id=item.id,
            name=item.name,
            runs_count=item.runs_count,
            run_status_counts=nonzero_counts(item.run_status_counts),
            last_run_id=latest.id if latest else None,
            last_run_number=latest.run_number if latest else None,
            last_run_status=status,
            last_run_at=created_at,
        )


class WorkflowList(View):
    """One page of workflows; `next_offset` is None on the last page."""

    items: list[WorkflowRow]
    total: int | None
    offset: int
    next_offset: int | None
    next: str | None = Field(default=None, description="how to get the next page, if any")
    note: str | None = Field(default=None, description="latest runs that could not be looked up")

    @classmethod
    def of(
        cls,
        page: Page[WorkflowListItem],
        latest: Mapping[str, RunListItem],
        *,
        lookups_failed: int = 0,
    ) -> WorkflowList:
        more = None
        if page.next_offset is not None:
            more = f"More workflows: call list_workflows with offset={page.next_offset}."
        note = None
        if lookups_failed:
            note = (
                f"The latest run of {lookups_failed} workflow(s) could not be looked up, so "
                "their last_run_id is missing: list_runs with the workflow_id gives it."
            )
        return cls(
            items=[WorkflowRow.of(item, latest.get(item.id)) for item in page.items],
            total=page.total,
            offset=page.offset,
            next_offset=page.next_offset,
            next=more,
            note=note,
        )


# --- get_workflow ---------------------------------------------------------------------------------


class NodeSummary(View):
    """A graph node; the settings an agent most often needs ride along where they apply."""

    id: CleanName
    type: CleanName
    name: CleanName | None = None
    target_languages: list[CleanName] | None = Field(
        default=None, description="translators: the languages it produces"
    )
    threshold: float | None = Field(default=None, description="validators: the passing score")
    max_retries: int | None = Field(default=None, description="validators: regenerations allowed")

    @classmethod
    def of(cls, node: GraphNode) -> NodeSummary:
        config = node.config or {}
        targets = config.get("target_languages")
        is_validator = node.type.startswith("validator_")
        return cls(
            id=node.id,
            type=node.type,
            name=node.name,
            target_languages=[str(t) for t in targets] if isinstance(targets, list) else None,
            threshold=_number(config.get("threshold")) if is_validator else None,
            max_retries=_integer(config.get("max_retries")) if is_validator else None,
        )


class LastRun(View):
    id: str
    status: RunStatus
    run_number: int | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None

    @classmethod
    def of(cls, run: RunListItem) -> LastRun:
        return cls(
            id=run.id,
            status=run.status,
            run_number=run.run_number,
            created_at=run.created_at,
            completed_at=run.completed_at,
        )


class WorkflowView(View):
    """One workflow. Which fields are filled depends on `view`: summary fills description,
    nodes, script and run fields; definition fills `definition`; markdown fills `markdown`."""

    id: str
    name: CleanName
    view: Literal["summary", "definition", "markdown"]
    description: CleanText | None = None
    nodes: list[NodeSummary] | None = None
    source_language: CleanName | None = Field(default=None, description="of the saved script")
    script_lines: int | None = Field(
        default=None, description="non-empty lines of the saved script (None: from an upload)"
    )
    runs_count: int | None = None
    run_status_counts: dict[str, int] | None = None
    last_run: LastRun | None = None
    definition: dict[str, Any] | None = Field(
        default=None, description="the graph (nodes, edges) and execution order, as stored"
    )
    truncated: bool = Field(
        default=False,
        description="long text (scripts, markdown) was cut; the onepin://workflows/{id} "
        "resource has it whole",
    )
    markdown: CleanMarkdown | None = None

    @classmethod
    def of_summary(cls, workflow: Workflow, last_run: RunListItem | None) -> WorkflowView:
        graph = workflow.definition.graph
        nodes = graph.nodes if graph else []
        source = next((node for node in nodes if node.type == "source_script"), None)
        config = (source.config or {}) if source else {}
        script = config.get("script_text")
        language = config.get("source_language")
        return cls(
            id=workflow.id,
            name=workflow.name,
            view="summary",
            description=workflow.description,
            nodes=[NodeSummary.of(node) for node in nodes],
            source_language=language if isinstance(language, str) and language else None,
            script_lines=_line_count(script) if isinstance(script, str) else None,
            runs_count=workflow.runs_count,
            run_status_counts=nonzero_counts(workflow.run_status_counts),
            last_run=LastRun.of(last_run) if last_run else None,
        )

    @classmethod
    def of_definition(cls, workflow: Workflow) -> WorkflowView:
        definition, cut = trim_json(
            workflow.definition.to_api(), max_text=MAX_DEFINITION_TEXT_CHARS
        )
        return cls(
            id=workflow.id,
            name=workflow.name,
            view="definition",
            definition=definition,
            truncated=cut,
        )

    @classmethod
    def of_markdown(cls, markdown: WorkflowMarkdown) -> WorkflowView:
        return cls(
            id=markdown.workflow_id,
            name=markdown.name,
            view="markdown",
            markdown=markdown.markdown,
            truncated=len(markdown.markdown) > MAX_MARKDOWN_CHARS,
        )


def _line_count(script: str) -> int:
    return sum(1 for line in script.splitlines() if line.strip())


def _number(value: Any) -> float | None:
    # bool is an int in Python, but never a threshold.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
