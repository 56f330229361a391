"""Who may call the sandbox's API: API keys, their scopes and role, and the workspace header."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from . import seed
from .errors import ApiError
from .requestlog import key_id_of
from .store import ApiKey

API_KEY_FORMAT = re.compile(r"op_live_[A-Za-z0-9]{32}")

Scope = Literal[
    "workflows:read",
    "workflows:run",
    "workflows:write",
    "voices:read",
    "templates:read",
    "dictionary:read",
    "dictionary:write",
    "workspace:read",
]


@dataclass(frozen=True)
class Caller:
    key: ApiKey = field(repr=False)
    key_id: str


class KeyRing:
    """Which keys the sandbox accepts. Without a list, any key of the official form is accepted."""

    def __init__(self, keys: Sequence[ApiKey | str] | None) -> None:
        self.open = keys is None
        self._keys: dict[str, ApiKey] = {}
        for entry in keys or ():
            key = entry if isinstance(entry, ApiKey) else ApiKey(entry)
            if not API_KEY_FORMAT.fullmatch(key.key):
                raise ValueError("an API key is op_live_ followed by 32 letters or digits")
            self._keys[key.key] = key

    @property
    def example_key(self) -> str:
        return next(iter(self._keys)) if self._keys else seed.EXAMPLE_KEY

    def authenticate(self, authorization: str | None) -> Caller:
        if not authorization:
            raise ApiError(
                401,
                "UNAUTHORIZED",
                "Missing credentials: send 'Authorization: Bearer <API key>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        key = self._keys.get(token)
        if key is None and self.open and API_KEY_FORMAT.fullmatch(token):
            key = ApiKey(token)
        if scheme.lower() != "bearer" or key is None:
            raise ApiError(
                401,
                "UNAUTHORIZED",
                "Invalid or revoked API key.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Caller(key=key, key_id=key_id_of(key.key))


def authorize(
    keys: KeyRing,
    workspace_id: str,
    *,
    authorization: str | None,
    workspace_header: str | None,
    scope: Scope | None,
    editor: bool,
) -> Caller:
    """The caller, once its key, workspace header, scope and role all allow the request."""
    caller = keys.authenticate(authorization)
    if workspace_header is not None and workspace_header.strip().lower() != workspace_id:
        raise ApiError(403, "FORBIDDEN", "X-Workspace-Id does not match the API key's workspace.")
    if scope is not None and scope not in caller.key.scopes:
        raise ApiError(403, "FORBIDDEN", f"API key lacks the {scope} scope.")
    if editor and caller.key.role == "viewer":
        raise ApiError(
            403,
            "FORBIDDEN",
            "This action needs the editor role in the workspace; this key's role is viewer.",
        )
    return caller
