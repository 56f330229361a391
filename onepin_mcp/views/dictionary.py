"""Views of the `dictionary` toolset: pronunciation dictionary entries, a page of them, the
languages that have some, a suggestion, and what an add or a change did."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from onepin_mcp.api.models import (
    DictionaryEntry,
    DictionaryLanguage,
    Page,
    PronunciationSuggestion,
)
from onepin_mcp.views import CleanName, CleanText, View


class Entry(View):
    """How one word is said in one language."""

    id: str = Field(description="the entry id")
    word: CleanName
    language: str
    method: str = Field(description="spelled (a respelling) or recorded (audio)")
    pronunciation: CleanName | None = None
    ipa: CleanName | None = None

    @classmethod
    def of(cls, entry: DictionaryEntry) -> Entry:
        return cls(
            id=entry.id,
            word=entry.word,
            language=entry.language,
            method=entry.method,
            pronunciation=entry.pronunciation,
            ipa=entry.ipa,
        )


class Language(View):
    code: str
    count: int


class DictionaryPage(View):
    """Entries of one language or a search; with neither, the languages that have entries."""

    entries: list[Entry]
    total: int | None = None
    next_offset: int | None = None
    languages: list[Language] | None = None
    next: str

    @classmethod
    def of(cls, page: Page[DictionaryEntry], what: str) -> DictionaryPage:
        more = f" More: offset={page.next_offset}." if page.next_offset is not None else ""
        if page.items:
            count = len(page.items) if page.total is None else page.total
            advice = f"{count} {what}.{more} update_dictionary_entry changes one."
        else:
            advice = f"No {what}. add_dictionary_entries adds some."
        return cls(
            entries=[Entry.of(entry) for entry in page.items],
            total=page.total,
            next_offset=page.next_offset,
            next=advice,
        )

    @classmethod
    def of_languages(cls, languages: Sequence[DictionaryLanguage]) -> DictionaryPage:
        return cls(
            entries=[],
            languages=[Language(code=item.code, count=item.count) for item in languages],
            next="Give a language for its entries, or search for a word in every language.",
        )


class Suggestion(View):
    word: CleanName
    language: str
    pronunciation: CleanName
    ipa: CleanName | None = None
    next: str

    @classmethod
    def of(cls, word: str, language: str, suggestion: PronunciationSuggestion) -> Suggestion:
        return cls(
            word=word,
            language=language,
            pronunciation=suggestion.pronunciation,
            ipa=suggestion.ipa,
            next="Nothing saved. add_dictionary_entries saves it (or a corrected one).",
        )


class NotAdded(View):
    word: CleanName
    error: CleanText


class AddedEntries(View):
    """What an add did, entry by entry: some may be added while others fail."""

    added: list[Entry]
    failed: list[NotAdded]
    next: str


class ChangedEntry(View):
    entry: Entry
    next: str


class DeletedEntry(View):
    id: str = Field(description="the deleted entry's id")
    deleted: bool
