"""Toolset `dictionary` (off by default): OnePin's pronunciation dictionary, how a word is said
in one language.

Runs read the dictionary when they start, so a rerun after adding the right entries says the
words right while the script, and every other language's takes, stay as they were: the fix for
a pronunciation check that rejected takes. A suggestion saves nothing; adds, changes and
deletes are writes, recorded and confirmed as `WritePolicy.confirm` says (a delete like every
deletion), and hidden in read-only mode.

An add of several words is one call and one question: each word is sent once (a POST that
creates is never retried), and a word that fails doesn't stop the others; the answer says which
were added and why the others weren't.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from mcp.server.mcpserver import Context, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, ConfigDict, Field

from onepin_mcp.api.client import UNSET
from onepin_mcp.api.errors import OnePinAPIError, OnePinError, OnePinTransportError
from onepin_mcp.api.models import DictionaryLocale
from onepin_mcp.failures import explain
from onepin_mcp.params import DictionaryEntryId, Offset
from onepin_mcp.state import AppState
from onepin_mcp.tools import ToolSpec, onepin, read_tool, write_tool
from onepin_mcp.views.dictionary import (
    AddedEntries,
    ChangedEntry,
    DeletedEntry,
    DictionaryPage,
    Entry,
    NotAdded,
    Suggestion,
)
from onepin_mcp.writes import Outcome, asks, confirmed_write, quoted

READ: Final = ("dictionary:read",)
WRITE: Final = ("dictionary:write",)
MAX_WORD_CHARS: Final = 100
MAX_PRONUNCIATION_CHARS: Final = 200
# One round of fixes: a failed run rarely has more distinct words at fault than this.
MAX_NEW_ENTRIES: Final = 20

Word = Annotated[
    str, Field(min_length=1, max_length=MAX_WORD_CHARS, description="as the script writes it")
]
Respelling = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=MAX_PRONUNCIATION_CHARS,
        description="how it sounds, e.g. KOOB-control; omit for OnePin's suggestion",
    ),
]
Ipa = Annotated[
    str | None,
    Field(min_length=1, max_length=MAX_PRONUNCIATION_CHARS, description="the same in IPA"),
]
PageSize = Annotated[int, Field(ge=1, le=50, description="page size")]


class NewEntry(BaseModel):
    # No docstring: it would be the schema's description, which the parameter's already says.
    model_config = ConfigDict(extra="forbid")

    word: Word
    pronunciation: Respelling = None
    ipa: Ipa = None


# --- asking first ------------------------------------------------------------------------------


async def _new_entries(ctx: Context[AppState, Any], language: str, entries: list[NewEntry]) -> str:
    words = ", ".join(quoted(entry.word) for entry in entries)
    return f"{len(entries)} {language} entr{'y' if len(entries) == 1 else 'ies'} ({words})"


async def _entry(ctx: Context[AppState, Any], entry_id: str) -> str:
    return f"entry {entry_id}"


_ASK_ADD = asks(
    "Add {} to the pronunciation dictionary? Runs started later use them.", _new_entries
)
_ASK_CHANGE = asks("Change pronunciation dictionary {}?", _entry)
_ASK_DELETE = asks("Delete pronunciation dictionary {}? This cannot be undone.", _entry)


# --- the tools ---------------------------------------------------------------------------------


async def list_dictionary(
    ctx: Context[AppState, Any],
    language: DictionaryLocale | None = None,
    search: Annotated[
        str | None,
        Field(min_length=1, max_length=MAX_WORD_CHARS, description="part of a word"),
    ] = None,
    offset: Offset = 0,
    limit: PageSize = 20,
) -> DictionaryPage:
    """Pronunciation dictionary entries of a language, or those whose word contains search (in
    that language or all); with neither, the languages that have entries and their counts."""
    client = onepin(ctx)
    if search is not None:
        page = await client.search_dictionary_entries(
            search, language=[language] if language else None, offset=offset, limit=limit
        )
        return DictionaryPage.of(page, f"entries matching {quoted(search)}")
    if language is not None:
        page = await client.list_dictionary_entries(language, offset=offset, limit=limit)
        return DictionaryPage.of(page, f"{language} entries")
    return DictionaryPage.of_languages(await client.list_dictionary_languages())


async def suggest_pronunciation(
    word: Word, language: DictionaryLocale, ctx: Context[AppState, Any]
) -> Suggestion:
    """OnePin's suggested pronunciation of a word in a language; saves nothing."""
    suggestion = await onepin(ctx).suggest_pronunciation(word, language)
    return Suggestion.of(word, language, suggestion)


async def add_dictionary_entries(
    language: DictionaryLocale,
    entries: Annotated[
        list[NewEntry], Field(min_length=1, max_length=MAX_NEW_ENTRIES, description="words")
    ],
    ctx: Context[AppState, Any],
    confirmation: Annotated[Outcome, Resolve(_ASK_ADD)],
) -> AddedEntries:
    """Add how words are said in one language; runs started afterwards use them. A word that
    already has an entry is reported, not changed (update_dictionary_entry changes it)."""
    client = onepin(ctx)
    added: list[Entry] = []
    failed: list[NotAdded] = []
    async with confirmed_write(
        ctx, confirmation, action=f"add {language} pronunciation dictionary entries"
    ) as record:
        for new in entries:
            try:
                pronunciation, ipa = new.pronunciation, new.ipa
                if pronunciation is None and ipa is None:
                    suggestion = await client.suggest_pronunciation(new.word, language)
                    pronunciation, ipa = suggestion.pronunciation, suggestion.ipa
                created = await client.create_dictionary_entry(
                    word=new.word, language=language, pronunciation=pronunciation, ipa=ipa
                )
            except OnePinError as error:
                failed.append(NotAdded(word=new.word, error=_not_added(error, new.word)))
                continue
            record.entry_ids.append(created.id)
            added.append(Entry.of(created))
        if not added:
            reasons = " ".join(f"{quoted(item.word)}: {item.error}" for item in failed)
            raise ToolError(f"No entry was added. {reasons}")
    if failed:
        advice = "Some words were not added (see failed); the others are saved."
    else:
        advice = "Saved. Runs started from now on use them; start_run reruns the workflow."
    return AddedEntries(added=added, failed=failed, next=advice)


async def update_dictionary_entry(
    entry_id: DictionaryEntryId,
    ctx: Context[AppState, Any],
    confirmation: Annotated[Outcome, Resolve(_ASK_CHANGE)],
    pronunciation: Annotated[
        Respelling, Field(description="how it sounds, e.g. KOOB-control")
    ] = None,
    ipa: Ipa = None,
    word: Annotated[Word | None, Field(description="a corrected spelling")] = None,
) -> ChangedEntry:
    """Change a dictionary entry's pronunciation, IPA or word; give at least one. Runs already
    started keep what they read."""
    nothing = pronunciation is None and ipa is None and word is None
    async with confirmed_write(
        ctx,
        confirmation,
        action=f"change dictionary entry {entry_id}",
        refusal="Give pronunciation, ipa or word to change; nothing was sent." if nothing else None,
    ) as record:
        record.entry_ids.append(entry_id)
        entry = await onepin(ctx).update_dictionary_entry(
            entry_id,
            word=UNSET if word is None else word,
            pronunciation=UNSET if pronunciation is None else pronunciation,
            ipa=UNSET if ipa is None else ipa,
        )
    return ChangedEntry(entry=Entry.of(entry), next="Saved; runs started from now on use it.")


async def delete_dictionary_entry(
    entry_id: DictionaryEntryId,
    ctx: Context[AppState, Any],
    confirmation: Annotated[Outcome, Resolve(_ASK_DELETE)],
) -> DeletedEntry:
    """Delete a dictionary entry; runs started afterwards say the word as the voice does."""
    async with confirmed_write(
        ctx, confirmation, action=f"delete dictionary entry {entry_id}"
    ) as record:
        record.entry_ids.append(entry_id)
        await onepin(ctx).delete_dictionary_entry(entry_id)
    return DeletedEntry(id=entry_id.lower(), deleted=True)


def _not_added(error: OnePinError, word: str) -> str:
    """Why one word of an add failed, and what to do about it."""
    if isinstance(error, OnePinAPIError) and error.status == 409:
        return (
            "it already has an entry in this language; list_dictionary with search="
            f"{quoted(word)} shows it, update_dictionary_entry changes it."
        )
    if isinstance(error, OnePinTransportError) and error.sent:
        return (
            f"{explain(error)} It may have been added: list_dictionary with search="
            f"{quoted(word)} shows whether it was."
        )
    return explain(error)


TOOLS: tuple[ToolSpec, ...] = (
    read_tool(list_dictionary, toolset="dictionary", title="List dictionary", scopes=READ),
    # A POST, but it saves nothing.
    read_tool(
        suggest_pronunciation, toolset="dictionary", title="Suggest pronunciation", scopes=READ
    ),
    write_tool(
        add_dictionary_entries,
        toolset="dictionary",
        title="Add dictionary entries",
        scopes=WRITE,
        destructive=False,
        idempotent=False,
        confirm="writes",
    ),
    write_tool(
        update_dictionary_entry,
        toolset="dictionary",
        title="Update dictionary entry",
        scopes=WRITE,
        destructive=True,
        idempotent=True,
        confirm="writes",
    ),
    write_tool(
        delete_dictionary_entry,
        toolset="dictionary",
        title="Delete dictionary entry",
        scopes=WRITE,
        destructive=True,
        idempotent=True,
        confirm="destructive",
    ),
)
