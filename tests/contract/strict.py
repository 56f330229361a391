"""A strict reading of JSON against the official SDK's pydantic models.

The SDK's generated models are built with ``extra="allow"``, so on their own they accept a payload
with a misspelt or renamed field: the unknown key rides along as an extra and the field it should
have filled silently keeps its default (usually ``None``). That is right for a client (the API may
grow fields), but useless for a contract test. This module validates exactly as the SDK does
(``onepin.core.pydantic_utilities.parse_obj_as``) and then walks the model and the JSON side by
side, reporting

* keys the model does not declare (by their wire names, that is, their aliases),
* required fields that are absent,
* JSON values of the wrong JSON type where pydantic's lax mode would coerce them
  (``"3"`` for an int, a number for a string, a naive or non-ISO datetime),
* values outside the SDK's known literals, including its open enums (``Literal[...] | Any``),
  which the SDK accepts but which a faithful OnePin never sends.
"""

from __future__ import annotations

import datetime as dt
import enum
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import pydantic
from onepin.core.pydantic_utilities import parse_obj_as

T = TypeVar("T")

_NONE_TYPE = type(None)


def strict_problems(annotation: Any, value: Any, *, path: str = "$") -> list[str]:
    """Every way `value` departs from `annotation` (an SDK model or a typing annotation)."""
    problems: list[str] = []
    _walk(annotation, value, path, problems)
    return problems


def assert_strict(annotation: type[T], value: Any, *, where: str = "") -> T:
    """Parse `value` as the SDK would, then fail on anything the strict walk finds."""
    problems = strict_problems(annotation, value)
    try:
        parsed: T = parse_obj_as(annotation, value)
    except pydantic.ValidationError as exc:
        problems.append(f"the SDK itself rejects the payload: {exc}")
    if problems:
        label = f"{where}: " if where else ""
        listing = "\n".join(f"  - {p}" for p in problems)
        raise AssertionError(f"{label}payload departs from {_name(annotation)}:\n{listing}")
    return parsed


def _name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or repr(annotation)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel)


def _wire_name(name: str, field: Any) -> str:
    alias = field.validation_alias if isinstance(field.validation_alias, str) else field.alias
    return alias or name


def _walk(annotation: Any, value: Any, path: str, problems: list[str]) -> None:
    origin = typing.get_origin(annotation)

    if origin is typing.Annotated:
        _walk(typing.get_args(annotation)[0], value, path, problems)
        return
    if annotation is Any or annotation is object:
        return
    if origin is typing.Union or origin is types.UnionType:
        _walk_union(typing.get_args(annotation), value, path, problems)
        return
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed or type(value) not in {type(a) for a in allowed}:
            problems.append(f"{path}: {value!r} is not one of {list(allowed)!r}")
        return
    if _is_model(annotation):
        _walk_model(annotation, value, path, problems)
        return
    if origin in (list, Sequence, tuple, set, frozenset):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a JSON array, got {_json_type(value)}")
            return
        (item,) = typing.get_args(annotation)[:1] or (Any,)
        for index, element in enumerate(value):
            _walk(item, element, f"{path}[{index}]", problems)
        return
    if origin in (dict, Mapping) or annotation is dict:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a JSON object, got {_json_type(value)}")
            return
        args = typing.get_args(annotation)
        item = args[1] if len(args) == 2 else Any
        for key, element in value.items():
            _walk(item, element, f"{path}.{key}", problems)
        return
    if annotation is list:
        if not isinstance(value, list):
            problems.append(f"{path}: expected a JSON array, got {_json_type(value)}")
        return
    if isinstance(annotation, type):
        _walk_scalar(annotation, value, path, problems)
        return
    raise TypeError(f"{path}: the strict checker does not understand the annotation {annotation!r}")


def _walk_union(members: tuple[Any, ...], value: Any, path: str, problems: list[str]) -> None:
    if value is None:
        if _NONE_TYPE not in members:
            problems.append(f"{path}: null where the model requires a value")
        return
    candidates = [m for m in members if m is not _NONE_TYPE]
    literals = [m for m in candidates if typing.get_origin(m) is typing.Literal]
    if literals and any(m is Any for m in candidates):
        # An open enum: the SDK tolerates unknown values for forward compatibility, but the
        # sandbox imitates this API version, whose values are exactly these.
        known = [v for lit in literals for v in typing.get_args(lit)]
        if value not in known:
            problems.append(f"{path}: {value!r} is not one of the SDK's known values {known!r}")
        return
    if any(m is Any for m in candidates):
        return
    if len(candidates) == 1:
        _walk(candidates[0], value, path, problems)
        return
    attempts: list[list[str]] = []
    for member in candidates:
        found: list[str] = []
        _walk(member, value, path, found)
        if not found:
            return
        attempts.append(found)
    best = min(attempts, key=len)
    names = " | ".join(_name(m) for m in candidates)
    problems.append(f"{path}: matches none of {names}; closest: {best[0]}")
    problems.extend(best[1:])


def _walk_model(
    model: type[pydantic.BaseModel], value: Any, path: str, problems: list[str]
) -> None:
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a {model.__name__} object, got {_json_type(value)}")
        return
    fields = {_wire_name(name, field): field for name, field in model.model_fields.items()}
    python_names = {name: _wire_name(name, field) for name, field in model.model_fields.items()}
    for key in value:
        if key not in fields:
            hint = ""
            if key in python_names:
                hint = f" (the wire name is {python_names[key]!r})"
            problems.append(f"{path}.{key}: not a field of {model.__name__}{hint}")
    for key, field in fields.items():
        if key not in value:
            if field.is_required():
                problems.append(f"{path}.{key}: required by {model.__name__} but missing")
            continue
        _walk(field.annotation, value[key], f"{path}.{key}", problems)


def _walk_scalar(annotation: type, value: Any, path: str, problems: list[str]) -> None:
    if value is None:
        problems.append(f"{path}: null where the model requires {annotation.__name__}")
        return
    if issubclass(annotation, enum.Enum):
        allowed = [member.value for member in annotation]
        if value not in allowed:
            problems.append(f"{path}: {value!r} is not one of {allowed!r}")
        return
    if annotation is bool:
        ok = isinstance(value, bool)
    elif annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif annotation is str:
        ok = isinstance(value, str)
    elif annotation is dt.datetime:
        ok = _is_aware_iso_datetime(value)
    elif annotation is dt.date:
        ok = isinstance(value, str) and _parses(dt.date.fromisoformat, value)
    else:
        raise TypeError(f"{path}: the strict checker does not understand the type {annotation!r}")
    if not ok:
        problems.append(f"{path}: {value!r} is not a JSON {_expected(annotation)}")


def _is_aware_iso_datetime(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return False
    return parsed.tzinfo is not None


def _parses(parse: Any, value: str) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True


def _expected(annotation: type) -> str:
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        dt.datetime: "ISO-8601 datetime with a UTC offset",
        dt.date: "ISO-8601 date",
    }.get(annotation, annotation.__name__)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__
