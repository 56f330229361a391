"""Catalog endpoints: node types, voices and templates, with the API's filters and sorts."""

from __future__ import annotations

from starlette.responses import Response

from onepin_mcp.sandbox.call import ApiCall
from onepin_mcp.sandbox.parsing import matches


def nodes(call: ApiCall) -> Response:
    catalog = call.store.node_catalog
    return call.paged(catalog, offset=0, limit=max(len(catalog), 1), total=None)


def voices(call: ApiCall) -> Response:
    query = call.query()
    offset, limit = query.page()
    filters = {
        name: query.params.getlist(name)
        for name in ("source", "gender", "age", "category", "accent", "provider")
    }
    models = query.params.getlist("model")
    languages = [lang.replace("_", "-").lower() for lang in query.params.getlist("language")]
    search = query.text("search", max_length=200)
    sort = query.choice("sort", ("name", "created_at", "uses_count")) or "name"
    order = query.choice("order", ("asc", "desc"))
    favorites = query.boolean("favorites_only", False)
    query.done()
    found = [
        voice
        for voice in call.store.voices
        if all(not wanted or voice.get(name) in wanted for name, wanted in filters.items())
        and (not models or set(models) & set(voice.get("supported_models") or []))
        and (not languages or set(languages) & set(voice.get("supported_languages") or []))
        and (
            not search
            or matches(search, voice["name"], voice.get("description"), *voice.get("tags") or [])
        )
        and (not favorites or voice.get("is_favorite"))
    ]
    descending = (order or ("asc" if sort == "name" else "desc")) == "desc"
    found.sort(key=lambda v: v["id"])
    found.sort(
        key=lambda v: v.get(sort) or 0 if sort == "uses_count" else str(v.get(sort)),
        reverse=descending,
    )
    return call.paged(found[offset : offset + limit], offset=offset, limit=limit, total=len(found))


def templates(call: ApiCall) -> Response:
    query = call.query()
    offset, limit = query.page()
    categories = query.choices(
        "category", ("media", "creative", "business", "education", "wellness")
    )
    search = query.text("search", max_length=200)
    sort = query.choice("sort", ("popular", "recent", "name")) or "popular"
    favorites = query.boolean("favorites_only", False)
    query.done()
    found = [
        template
        for template in call.store.templates
        if (not categories or template.get("category") in categories)
        and (not search or matches(search, template["name"], template.get("description")))
        and (not favorites or template.get("is_favorite"))
    ]
    if sort == "name":
        found.sort(key=lambda t: (t["name"].lower(), t["id"]))
    elif sort == "recent":
        found.sort(key=lambda t: (t["created_at"], t["id"]), reverse=True)
    else:
        found.sort(key=lambda t: (-t["uses_count"], t["id"]))
    return call.paged(found[offset : offset + limit], offset=offset, limit=limit, total=None)
