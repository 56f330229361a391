"""Pronunciation dictionary endpoints: list, search, languages, suggest, create, update, delete.

Entries are per workspace and per locale; a `(word, language)` pair exists once (words compared
without case, as runs match them), and a second one is a 409. Runs read the dictionary when they
start, through the phoneme injector (`engine.run_lexicon`), so editing it never changes a run
that is already under way.
"""

from __future__ import annotations

import re
import uuid

from starlette.responses import Response

from onepin_mcp.sandbox import render
from onepin_mcp.sandbox.call import ApiCall
from onepin_mcp.sandbox.errors import ApiError, invalid
from onepin_mcp.sandbox.parsing import BodyReader, QueryReader, json_body
from onepin_mcp.sandbox.store import DictionaryEntry

# The locales the API's dictionary filters name (its `language` enums).
LANGUAGES = (
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
)
METHODS = ("spelled", "recorded")
_SORTS = ("uses_count", "created_at", "word")
_MAX_LIMIT = 50

# Respellings for terms voices are known to stumble on; in ja-jp and ko-kr the reading in the
# local script, since a Latin respelling doesn't help a Japanese or Korean voice.
_KNOWN: dict[str, dict[str, str]] = {
    "kubernetes": {"": "koo-ber-NET-eez", "ja": "クバネティス", "ko": "쿠버네티스"},
    "kubectl": {"": "KOOB-control", "ja": "キューブコントロール", "ko": "큐브컨트롤"},
    "nginx": {"": "EN-jin-eks", "ja": "エンジンエックス", "ko": "엔진엑스"},
    "grafana": {"": "gruh-FAH-nuh", "ja": "グラファナ", "ko": "그라파나"},
    "terraform": {"": "TEH-ruh-form", "ja": "テラフォーム", "ko": "테라폼"},
    "oauth": {"": "OH-awth", "ja": "オーオース", "ko": "오어스"},
    "sqlite": {"": "ess-kyoo-EL-ite", "ja": "エスキューライト", "ko": "에스큐라이트"},
}
_SYLLABLE = re.compile(r"[^aeiouy]*[aeiouy]+(?:[^aeiouy]+$)?|[^aeiouy]+$")


def list_entries(call: ApiCall) -> Response:
    query = call.query()
    language = query.required("language")
    if language is not None:
        language = query.choice("language", LANGUAGES)
    methods = query.choices("method", METHODS)
    sort, order, offset, limit = _ordering(query)
    query.done()
    assert language is not None
    found = [
        entry
        for entry in call.store.dictionary_of(call.workspace_id)
        if entry.language == language and (not methods or entry.method in methods)
    ]
    return _page(call, found, sort, order, offset, limit)


def search_entries(call: ApiCall) -> Response:
    query = call.query()
    search = query.required("search")
    languages = query.choices("language", LANGUAGES)
    sort, order, offset, limit = _ordering(query)
    query.done()
    assert search is not None
    found = [
        entry
        for entry in call.store.dictionary_of(call.workspace_id)
        if search.lower() in entry.word.lower() and (not languages or entry.language in languages)
    ]
    return _page(call, found, sort, order, offset, limit)


def languages(call: ApiCall) -> Response:
    counts: dict[str, int] = {}
    for entry in call.store.dictionary_of(call.workspace_id):
        counts[entry.language] = counts.get(entry.language, 0) + 1
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return call.single([{"code": code, "count": count} for code, count in rows])


def suggest(call: ApiCall) -> Response:
    body = BodyReader(json_body(call.body, required=True))
    word = body.string("word", required=True, min_length=1, max_length=200)
    language = body.string("language", required=True, min_length=2, max_length=35)
    body.done()
    assert word is not None
    assert language is not None
    return call.single({"pronunciation": suggestion(word, language), "ipa": None})


def suggestion(word: str, language: str) -> str:
    """A respelling: the known reading of a tech term, else stressed syllables of the word."""
    family = language.strip().lower()[:2]
    known = _KNOWN.get(word.strip().lower())
    if known is not None:
        return known.get(family, known[""])
    words = []
    for part in word.strip().split():
        syllables = _SYLLABLE.findall(part.lower()) or [part.lower()]
        words.append("-".join([syllables[0].upper(), *syllables[1:]]))
    return " ".join(words)


def create_entry(call: ApiCall) -> Response:
    body = BodyReader(json_body(call.body, required=True))
    word = body.string("word", required=True, min_length=1, max_length=200)
    method = _method(body, required=True)
    language = body.string("language", required=True, min_length=2, max_length=35)
    description = body.string("description", max_length=500)
    pronunciation = body.string("pronunciation", max_length=500)
    upload_id = body.string("upload_id")
    ipa = body.string("ipa", max_length=500)
    body.done()
    assert word is not None
    assert method is not None
    assert language is not None
    entry = DictionaryEntry(
        id=str(uuid.uuid4()),
        workspace_id=call.workspace_id,
        word=_word(word),
        language=_language(language),
        method=method,
        pronunciation=pronunciation,
        ipa=ipa,
        description=description,
        created_by=None,  # created with an API key, as the API records it
        created_at=call.now,
        updated_at=call.now,
    )
    _check_method(entry, upload_id)
    _check_unique(call, entry)
    call.store.dictionary[entry.id] = entry
    return call.single(render.dictionary_entry(entry), status=201)


def update_entry(call: ApiCall) -> Response:
    entry = _entry(call)
    body = BodyReader(json_body(call.body, required=False))
    for name in ("word", "method", "language"):
        if body.has(name) and body.body[name] is None:
            raise invalid(name, f"'{name}' can't be null: every entry has one.")
    word = body.string("word", min_length=1, max_length=200)
    method = _method(body, required=False)
    language = body.string("language", min_length=2, max_length=35)
    description = body.string("description", max_length=500)
    pronunciation = body.string("pronunciation", max_length=500)
    upload_id = body.string("upload_id")
    ipa = body.string("ipa", max_length=500)
    body.done()
    changed = DictionaryEntry(
        id=entry.id,
        workspace_id=entry.workspace_id,
        word=_word(word) if word is not None else entry.word,
        language=_language(language) if language is not None else entry.language,
        method=method or entry.method,
        pronunciation=pronunciation if body.has("pronunciation") else entry.pronunciation,
        ipa=ipa if body.has("ipa") else entry.ipa,
        description=description if body.has("description") else entry.description,
        created_by=entry.created_by,
        created_at=entry.created_at,
        updated_at=call.now,
    )
    _check_method(changed, upload_id, previous=entry)
    _check_unique(call, changed)
    call.store.dictionary[entry.id] = changed
    return call.single(render.dictionary_entry(changed))


def delete_entry(call: ApiCall) -> Response:
    entry = _entry(call)
    del call.store.dictionary[entry.id]
    return call.single({})


# --- pieces ------------------------------------------------------------------------------------


def _ordering(query: QueryReader) -> tuple[str, str, int, int]:
    sort = query.choice("sort", _SORTS) or "word"
    order = query.choice("order", ("asc", "desc")) or ("asc" if sort == "word" else "desc")
    offset = query.integer("offset", 0, ge=0)
    limit = query.integer("limit", 20, ge=1, le=_MAX_LIMIT)
    return sort, order, offset, limit


def _page(
    call: ApiCall, found: list[DictionaryEntry], sort: str, order: str, offset: int, limit: int
) -> Response:
    found.sort(key=lambda entry: entry.id)
    if sort == "word":
        found.sort(key=lambda entry: (entry.word.lower(), entry.language), reverse=order == "desc")
    elif sort == "created_at":
        found.sort(key=lambda entry: entry.created_at, reverse=order == "desc")
    # uses_count is never incremented (as on the API), so that order is the id order.
    page = [render.dictionary_entry(entry) for entry in found[offset : offset + limit]]
    # An uncounted list, as the API's `ApiListResponse` is (no `total`).
    return call.paged(page, offset=offset, limit=limit, total=None)


def _entry(call: ApiCall) -> DictionaryEntry:
    entry_id = call.request.path_params["entry_id"]
    found = call.store.dictionary.get(entry_id)
    if found is None or found.workspace_id != call.workspace_id:
        raise ApiError(404, "NOT_FOUND", "Dictionary entry not found.")
    return found


def _method(body: BodyReader, *, required: bool) -> str | None:
    method = body.string("method", required=required)
    if method is not None and method not in METHODS:
        body.issues.append(
            {
                "loc": ["body", "method"],
                "msg": "Input should be 'spelled' or 'recorded'",
                "type": "enum",
                "input": method,
                "ctx": {"expected": "'spelled' or 'recorded'"},
            }
        )
        return None
    return method


def _word(word: str) -> str:
    trimmed = word.strip()
    if not trimmed:
        raise invalid("word", "Word must not be blank.")
    return trimmed


def _language(language: str) -> str:
    code = language.strip().replace("_", "-").lower()
    if code not in LANGUAGES:
        raise invalid(
            "language",
            f"Unsupported language {language!r}; use one of {', '.join(LANGUAGES)}.",
        )
    return code


def _check_method(
    entry: DictionaryEntry, upload_id: str | None, previous: DictionaryEntry | None = None
) -> None:
    if entry.method == "spelled" and not (entry.pronunciation or "").strip():
        raise invalid("pronunciation", "A spelled entry needs a pronunciation (a respelling).")
    if entry.method == "recorded" and upload_id is None:
        if previous is not None and previous.method == "recorded":
            return  # keeps its reference audio
        raise invalid("upload_id", "A recorded entry needs the upload_id of its reference audio.")
    if upload_id is not None:
        # The sandbox has no staging uploads of category `dictionary`, so none is ever complete.
        raise invalid("upload_id", f"Upload {upload_id} not found or not a completed upload.")


def _check_unique(call: ApiCall, entry: DictionaryEntry) -> None:
    for other in call.store.dictionary_of(call.workspace_id):
        if (
            other.id != entry.id
            and other.language == entry.language
            and other.word.lower() == entry.word.lower()
        ):
            raise ApiError(
                409,
                "CONFLICT",
                f"An entry for '{other.word}' in {other.language} already exists ({other.id}).",
            )
