"""Views of the `catalog` toolset: node types, voices and templates, trimmed for choosing."""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import AfterValidator, Field

from onepin_mcp.api.models import NodeType, Page, Template, Voice
from onepin_mcp.views import CleanName, View, clean_text

# Catalog descriptions are blurbs: a sentence or two is what helps choosing, and lists are long.
MAX_BLURB_CHARS: Final = 300
# Some voices speak dozens of languages; the count says how many were left out.
MAX_LANGUAGES: Final = 12
MAX_MODELS: Final = 5


def _blurb(value: str) -> str:
    return clean_text(value, MAX_BLURB_CHARS)


Blurb = Annotated[str, AfterValidator(_blurb)]

# NodeCategory of the API (source, operator, validation, output, decision), as the node type's
# prefix encodes it; GET /nodes doesn't carry the category itself.
_CATEGORY_BY_PREFIX: Final = {
    "source": "source",
    "operator": "operator",
    "validator": "validation",
    "sink": "output",
    "decision": "decision",
}


def node_category(node_type: str) -> str | None:
    return _CATEGORY_BY_PREFIX.get(node_type.split("_", 1)[0])


def _more(tool: str, next_offset: int | None, what: str) -> str | None:
    if next_offset is None:
        return None
    return f"More {what}: call {tool} with the same filters and offset={next_offset}."


# --- list_node_types ------------------------------------------------------------------------------


class NodeTypeRow(View):
    """A building block of workflow graphs, with the ports that edges connect."""

    node_type: CleanName = Field(description="the `type` of a graph node")
    display_name: CleanName
    category: str | None = Field(description="source, operator, validation, output or decision")
    description: Blurb | None = None
    inputs: list[CleanName] = Field(description="input port names (an edge's targetPort)")
    outputs: list[CleanName] = Field(description="output port names (an edge's sourcePort)")
    config_fields: list[CleanName] = Field(description="keys its `config` accepts")
    beta: bool = False

    @classmethod
    def of(cls, node: NodeType) -> NodeTypeRow:
        return cls(
            node_type=node.node_type,
            display_name=node.display_name,
            category=node_category(node.node_type),
            description=node.description,
            inputs=[port.name for port in node.inputs],
            outputs=[port.name for port in node.outputs],
            config_fields=list(node.config_schema or {}),
            beta=bool(node.beta),
        )


class NodeTypeList(View):
    items: list[NodeTypeRow]
    total: int

    @classmethod
    def of(cls, nodes: list[NodeType]) -> NodeTypeList:
        return cls(items=[NodeTypeRow.of(node) for node in nodes], total=len(nodes))


# --- list_voices ---------------------------------------------------------------------------------


class VoiceRow(View):
    id: str = Field(description="the catalog voice id")
    name: CleanName
    provider: CleanName
    provider_voice_id: CleanName | None = None
    gender: CleanName | None = None
    accent: CleanName | None = None
    languages: list[CleanName] = Field(description=f"locales it speaks, first {MAX_LANGUAGES}")
    language_count: int
    models: list[CleanName] = Field(description="provider models that can use it")
    sample_url: str | None = Field(default=None, description="audio sample, valid about 1 hour")

    @classmethod
    def of(cls, voice: Voice) -> VoiceRow:
        languages = voice.supported_languages or []
        return cls(
            id=voice.id,
            name=voice.name,
            provider=voice.provider,
            provider_voice_id=voice.provider_voice_id,
            gender=voice.gender,
            accent=voice.accent,
            languages=languages[:MAX_LANGUAGES],
            language_count=len(languages),
            models=(voice.supported_models or [])[:MAX_MODELS],
            sample_url=voice.sample_url,
        )


class VoiceList(View):
    """One page of voices; `next_offset` is None on the last page."""

    items: list[VoiceRow]
    total: int | None
    offset: int
    next_offset: int | None
    next: str | None = Field(default=None, description="how to get the next page, if any")

    @classmethod
    def of(cls, page: Page[Voice]) -> VoiceList:
        return cls(
            items=[VoiceRow.of(voice) for voice in page.items],
            total=page.total,
            offset=page.offset,
            next_offset=page.next_offset,
            next=_more("list_voices", page.next_offset, "voices"),
        )


# --- list_templates ------------------------------------------------------------------------------


class TemplateRow(View):
    id: str = Field(description="the template id")
    name: CleanName
    category: CleanName | None = None
    description: Blurb | None = None
    uses_count: int | None = None

    @classmethod
    def of(cls, template: Template) -> TemplateRow:
        return cls(
            id=template.id,
            name=template.name,
            category=template.category,
            description=template.description,
            uses_count=template.uses_count,
        )


class TemplateList(View):
    """One page of the public template gallery; `next_offset` is None on the last page."""

    items: list[TemplateRow]
    total: int | None = Field(description="None: OnePin doesn't count templates")
    offset: int
    next_offset: int | None
    next: str | None = Field(default=None, description="how to get the next page, if any")

    @classmethod
    def of(cls, page: Page[Template]) -> TemplateList:
        return cls(
            items=[TemplateRow.of(template) for template in page.items],
            total=page.total,
            offset=page.offset,
            next_offset=page.next_offset,
            next=_more("list_templates", page.next_offset, "templates"),
        )
