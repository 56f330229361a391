"""Views of the `workflow_admin` toolset: a saved workflow in brief, a validation report, a
deletion, and a page of a workflow's uploads."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from pydantic import Field

from onepin_mcp.api.models import (
    Page,
    Upload,
    ValidationBlock,
    ValidationIssue,
    Workflow,
    WorkflowValidation,
)
from onepin_mcp.views import CleanName, CleanText, View

# A definition with hundreds of nodes can fail on every one; the first ones show the pattern.
MAX_ISSUES: Final = 50


class SavedWorkflow(View):
    """A workflow as just created, changed or copied: enough to refer to it and check the graph."""

    id: str = Field(description="the workflow id")
    name: CleanName
    node_count: int
    edge_count: int
    updated_at: datetime | None = None
    next: str

    @classmethod
    def of(cls, workflow: Workflow, next_step: str) -> SavedWorkflow:
        graph = workflow.definition.graph
        return cls(
            id=workflow.id,
            name=workflow.name,
            node_count=len(graph.nodes) if graph else 0,
            edge_count=len(graph.edges) if graph else 0,
            updated_at=workflow.updated_at,
            next=next_step,
        )


class DeletedWorkflow(View):
    id: str = Field(description="the deleted workflow's id")
    deleted: bool


class Issue(View):
    """A problem found by validation: which rule, where, and what."""

    rule: CleanName
    node_id: CleanName | None = None
    node_name: CleanName | None = None
    message: CleanText

    @classmethod
    def of(cls, issue: ValidationIssue) -> Issue:
        return cls(
            rule=issue.rule, node_id=issue.node_id, node_name=issue.node_name, message=issue.message
        )


class Block(View):
    """A plan entitlement that would stop the run; it doesn't make the definition invalid."""

    code: CleanName
    message: CleanText

    @classmethod
    def of(cls, block: ValidationBlock) -> Block:
        return cls(code=block.code, message=block.message)


class ValidationView(View):
    """Whether a definition would pass every run-start gate, and what stands in the way."""

    valid: bool
    errors: list[Issue]
    warnings: list[Issue]
    blocked: list[Block] = Field(description="plan limits that would refuse the run")
    truncated: bool = Field(description=f"more than {MAX_ISSUES} errors or warnings; first shown")
    next: str

    @classmethod
    def of(cls, report: WorkflowValidation) -> ValidationView:
        errors, cut_errors = _first(report.errors)
        warnings, cut_warnings = _first(report.warnings)
        if report.valid:
            advice = "Valid: create_workflow or update_workflow saves it."
        else:
            advice = "Invalid: fix each error (rule, node and message) and validate again."
        if report.blocked:
            advice += " The blocked items are plan limits: the account's plan must allow them."
        return cls(
            valid=report.valid,
            errors=[Issue.of(issue) for issue in errors],
            warnings=[Issue.of(issue) for issue in warnings],
            blocked=[Block.of(block) for block in report.blocked[:MAX_ISSUES]],
            truncated=cut_errors or cut_warnings,
            next=advice,
        )


def _first(issues: Sequence[ValidationIssue]) -> tuple[Sequence[ValidationIssue], bool]:
    return issues[:MAX_ISSUES], len(issues) > MAX_ISSUES


class UploadRow(View):
    id: str
    filename: CleanName
    category: CleanName
    status: CleanName = Field(description="uploaded, or pending while the upload is unconfirmed")
    format: CleanName | None = None
    size_bytes: int | None = None
    line_count: int | None = None
    char_count: int | None = None
    detected_language: CleanName | None = None
    created_at: datetime | None = None

    @classmethod
    def of(cls, upload: Upload) -> UploadRow:
        return cls(
            id=upload.id,
            filename=upload.filename,
            category=upload.category,
            status=upload.status,
            format=upload.format,
            size_bytes=upload.size_bytes,
            line_count=upload.line_count,
            char_count=upload.char_count,
            detected_language=upload.detected_language,
            created_at=upload.created_at,
        )


class UploadList(View):
    """One page of a workflow's uploads, newest first; `next_offset` is None on the last page."""

    items: list[UploadRow]
    total: int | None = Field(description="None: OnePin doesn't count uploads")
    offset: int
    next_offset: int | None
    next: str | None = Field(default=None, description="how to get the next page, if any")

    @classmethod
    def of(cls, page: Page[Upload], workflow_id: str) -> UploadList:
        more = None
        if page.next_offset is not None:
            more = (
                f"More uploads: call list_workflow_uploads with workflow_id={workflow_id}, "
                f"offset={page.next_offset}."
            )
        return cls(
            items=[UploadRow.of(upload) for upload in page.items],
            total=page.total,
            offset=page.offset,
            next_offset=page.next_offset,
            next=more,
        )
