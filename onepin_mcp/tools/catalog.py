"""Toolset `catalog` (off by default): what workflows are built from: node types, voices and
templates. Read-only."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from onepin_mcp.params import Limit, Offset
from onepin_mcp.state import AppState
from onepin_mcp.tools import ToolSpec, onepin, read_tool
from onepin_mcp.views.catalog import NodeTypeList, TemplateList, VoiceList

# A locale as the voice filter takes it (en-us, ko-kr; `_` is accepted and normalized).
LOCALE_PATTERN: Final = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$"

Search = Annotated[
    str | None,
    Field(description="words in names or descriptions", min_length=1, max_length=200),
]


async def list_node_types(ctx: Context[AppState, Any]) -> NodeTypeList:
    """List the node types workflow graphs are built from: category, description, input and
    output ports, config keys. Use before writing a definition."""
    return NodeTypeList.of(await onepin(ctx).list_nodes())


async def list_voices(
    ctx: Context[AppState, Any],
    search: Search = None,
    language: Annotated[
        str | None,
        Field(description="a locale it speaks, e.g. en-us", pattern=LOCALE_PATTERN),
    ] = None,
    gender: Annotated[Literal["male", "female", "neutral"] | None, Field()] = None,
    provider: Annotated[
        str | None,
        Field(description="e.g. elevenlabs", min_length=1, max_length=50),
    ] = None,
    offset: Offset = 0,
    limit: Limit = 20,
) -> VoiceList:
    """Search the voice catalog by name, language, gender or provider: ids, providers, accents,
    languages and a sample URL, for a generator node's voices."""
    page = await onepin(ctx).list_voices(
        search=search,
        language=[language.lower().replace("_", "-")] if language else None,
        gender=[gender] if gender else None,
        provider=[provider] if provider else None,
        offset=offset,
        limit=limit,
    )
    return VoiceList.of(page)


async def list_templates(
    ctx: Context[AppState, Any],
    search: Search = None,
    category: Annotated[
        Literal["media", "creative", "business", "education", "wellness"] | None,
        Field(),
    ] = None,
    offset: Offset = 0,
    limit: Limit = 20,
) -> TemplateList:
    """Browse the public gallery of ready-made workflow templates, most used first: name,
    category, description."""
    page = await onepin(ctx).list_templates(
        search=search,
        category=[category] if category else None,
        offset=offset,
        limit=limit,
    )
    return TemplateList.of(page)


TOOLS: tuple[ToolSpec, ...] = (
    # GET /nodes needs no key at all.
    read_tool(list_node_types, toolset="catalog", title="List node types", scopes=()),
    read_tool(list_voices, toolset="catalog", title="List voices", scopes=("voices:read",)),
    read_tool(
        list_templates, toolset="catalog", title="List templates", scopes=("templates:read",)
    ),
)
