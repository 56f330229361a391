"""Settings: a pure function of an environment mapping and the official credentials file.

The key and base URL follow the official OnePin CLI (so `onepin login` configures this server
too): the key comes from `ONEPIN_API_KEY`, else `~/.onepin/credentials` `[default] api_key`; the
base URL is resolved on its own, `ONEPIN_BASE_URL` → the file's `[default] base_url` → the
production URL (`https://api.onepin.ai`), so pointing at another deployment never depends on
where the key came from.

Environment variables read here:

| variable | meaning | default |
|---|---|---|
| `ONEPIN_API_KEY` | API key (`op_live_…`); empty is ignored | credentials file |
| `ONEPIN_BASE_URL` | API base URL, http(s); a final `/api/v1` or `/api` is dropped | file, prod |
| `ONEPIN_WORKSPACE_ID` | sent as `X-Workspace-Id` (must be a UUID) | not sent |
| `ONEPIN_MCP_CONNECT_TIMEOUT_S` | seconds to establish a connection | 10 |
| `ONEPIN_MCP_READ_TIMEOUT_S` | seconds between bytes of a response | 30 |
| `ONEPIN_MCP_REQUEST_TIMEOUT_S` | seconds for one whole attempt, body included | 45 |
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

DEFAULT_BASE_URL = "https://api.onepin.ai"
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_READ_TIMEOUT_S = 30.0
# Under the 60 s many MCP clients allow a tool call, so one slow attempt still leaves room for
# the error to reach the agent.
DEFAULT_REQUEST_TIMEOUT_S = 45.0
# The largest clip get_audio_clip returns inline (the resource too). 2 MiB of 16-bit mono WAV is
# about 65 s at 16 kHz (47 s at 22 kHz), longer than any line a script should hold, and about
# 2.8 MB once base64-encoded into a result; a longer clip is answered with its link instead.
DEFAULT_MAX_CLIP_BYTES = 2 * 1024 * 1024

ENV_API_KEY = "ONEPIN_API_KEY"
ENV_BASE_URL = "ONEPIN_BASE_URL"
ENV_WORKSPACE_ID = "ONEPIN_WORKSPACE_ID"
ENV_CONNECT_TIMEOUT = "ONEPIN_MCP_CONNECT_TIMEOUT_S"
ENV_READ_TIMEOUT = "ONEPIN_MCP_READ_TIMEOUT_S"
ENV_REQUEST_TIMEOUT = "ONEPIN_MCP_REQUEST_TIMEOUT_S"

CREDENTIALS_PROFILE = "default"

# Every endpoint lives under /api/v1, which the client adds to the base URL itself. A base URL
# copied with that path (from the API reference, or from a request URL) would send every call to
# /api/v1/api/v1/…, where OnePin answers 404 to everything, so the path is dropped. Only at the
# end: a gateway's own prefix (https://gateway.example/onepin) is kept.
API_PATH_SUFFIXES = ("/api/v1", "/api")

_UUID_PATTERN = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)

KeySource = Literal["env", "credentials_file"]
BaseURLSource = Literal["env", "credentials_file", "default"]


class ConfigError(Exception):
    """The configuration cannot be used as given; the message says what to change."""


class CredentialsFileError(ConfigError):
    """The credentials file exists but is unusable. Never carries the file's contents."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(
            f"OnePin credentials file {path} is malformed: {problem}. "
            "Fix it, or run `onepin login` again to rewrite it."
        )


class InvalidBaseURLError(ConfigError):
    """A base URL that is not an absolute http(s) URL."""


class InvalidWorkspaceIdError(ConfigError):
    """`ONEPIN_WORKSPACE_ID` is not a UUID."""


class InvalidTimeoutError(ConfigError):
    """A timeout variable is not a positive number of seconds."""


def normalize_base_url(value: str, *, origin: str = "base URL") -> str:
    """Return `value` as `scheme://host[:port][/path]` without a trailing slash, and without
    the API's own path (`/api/v1` or `/api`) at its end: the client adds that to every request.

    Only http and https are accepted, like the official CLI. Credentials, queries and fragments
    are refused: they would be copied into every request URL and into logs.
    """
    candidate = value.strip()
    parts = urlsplit(candidate)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidBaseURLError(
            f"{origin} must start with http:// or https://, got {_shorten(candidate)!r}"
        )
    if not parts.hostname:
        raise InvalidBaseURLError(f"{origin} has no host: {_shorten(candidate)!r}")
    if parts.username is not None or parts.password is not None:
        # The value itself is not echoed: it contains a credential.
        raise InvalidBaseURLError(f"{origin} must not contain user credentials")
    if parts.query or parts.fragment:
        raise InvalidBaseURLError(
            f"{origin} must not contain a query or fragment: {_shorten(candidate)!r}"
        )
    try:
        parts.port  # noqa: B018 - accessing it validates the port number
    except ValueError:
        raise InvalidBaseURLError(
            f"{origin} has an invalid port: {_shorten(candidate)!r}"
        ) from None
    path = parts.path.rstrip("/")
    suffix = api_path_suffix(path)
    if suffix is not None:
        path = path[: -len(suffix)]
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def api_path_suffix(url_or_path: str) -> str | None:
    """The API path (`/api/v1` or `/api`) a base URL ends in, trailing slashes aside; else None.

    Compared without regard to case: no deployment serves the API under /API/V1, so such a path
    can only be the API path typed in capitals."""
    tail = url_or_path.rstrip("/").lower()
    return next((suffix for suffix in API_PATH_SUFFIXES if tail.endswith(suffix)), None)


def _dropped_api_path_notice(given: str, normalized: str, origin: str) -> str | None:
    """One line saying the API path was dropped from a configured base URL; None if it wasn't."""
    suffix = api_path_suffix(urlsplit(given.strip()).path)
    if suffix is None:
        return None
    return (
        f"{origin} ends in {suffix}, which onepin-mcp adds to every request itself; using "
        f"{normalized}. Set it to {normalized} to silence this notice."
    )


def normalize_workspace_id(value: str) -> str:
    candidate = value.strip()
    if not _UUID_PATTERN.match(candidate):
        raise InvalidWorkspaceIdError(
            f"{ENV_WORKSPACE_ID} must be a workspace UUID such as "
            f"'5b0d7a3e-2f4c-4e8a-9c1d-3a6f8b2e4d71', got {_shorten(candidate)!r}"
        )
    return candidate.lower()


class Settings(BaseModel):
    """Everything the client needs. Immutable; the key is a `SecretStr`, so it never prints."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr | None = None
    key_source: KeySource | None = None
    base_url: str = DEFAULT_BASE_URL
    base_url_source: BaseURLSource = "default"
    workspace_id: str | None = None
    connect_timeout_s: float = Field(default=DEFAULT_CONNECT_TIMEOUT_S, gt=0, allow_inf_nan=False)
    read_timeout_s: float = Field(default=DEFAULT_READ_TIMEOUT_S, gt=0, allow_inf_nan=False)
    request_timeout_s: float = Field(default=DEFAULT_REQUEST_TIMEOUT_S, gt=0, allow_inf_nan=False)
    max_clip_bytes: int = Field(default=DEFAULT_MAX_CLIP_BYTES, gt=0)
    # Where the key would be read from; lets a doctor command say which file it looked at.
    credentials_path: Path | None = None
    # Said once at startup (and by the doctor) when the configured base URL was corrected:
    # serving a URL other than the one configured must not happen silently.
    base_url_notice: str | None = None

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        return normalize_base_url(value)

    @field_validator("workspace_id")
    @classmethod
    def _check_workspace_id(cls, value: str | None) -> str | None:
        return None if value is None else normalize_workspace_id(value)

    @property
    def has_api_key(self) -> bool:
        return self.api_key is not None


def credentials_path(home: Path) -> Path:
    """Where `onepin login` writes the key: `<home>/.onepin/credentials`."""
    return home / ".onepin" / "credentials"


def load_settings(env: Mapping[str, str], home: Path | None) -> Settings:
    """Build `Settings` from `env` and, when `home` is given, its credentials file.

    Reads nothing but that one file; a missing file is normal (no login yet), a malformed one is
    a `CredentialsFileError` rather than a silently ignored key.
    """
    path = credentials_path(home) if home is not None else None
    profile = _read_credentials_profile(path) if path is not None else {}

    api_key: SecretStr | None = None
    key_source: KeySource | None = None
    env_key = env.get(ENV_API_KEY, "").strip()
    file_key = profile.get("api_key", "").strip()
    if env_key:
        api_key, key_source = SecretStr(env_key), "env"
    elif file_key:
        api_key, key_source = SecretStr(file_key), "credentials_file"

    base_url = DEFAULT_BASE_URL
    base_url_source: BaseURLSource = "default"
    base_url_notice: str | None = None
    env_base_url = env.get(ENV_BASE_URL, "").strip()
    file_base_url = profile.get("base_url", "").strip()
    given, origin = (
        (env_base_url, ENV_BASE_URL) if env_base_url else (file_base_url, f"base_url in {path}")
    )
    if given:
        base_url = normalize_base_url(given, origin=origin)
        base_url_source = "env" if env_base_url else "credentials_file"
        base_url_notice = _dropped_api_path_notice(given, base_url, origin)

    workspace_raw = env.get(ENV_WORKSPACE_ID, "").strip()
    workspace_id = normalize_workspace_id(workspace_raw) if workspace_raw else None

    return Settings(
        api_key=api_key,
        key_source=key_source,
        base_url=base_url,
        base_url_source=base_url_source,
        workspace_id=workspace_id,
        connect_timeout_s=_timeout(env, ENV_CONNECT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT_S),
        read_timeout_s=_timeout(env, ENV_READ_TIMEOUT, DEFAULT_READ_TIMEOUT_S),
        request_timeout_s=_timeout(env, ENV_REQUEST_TIMEOUT, DEFAULT_REQUEST_TIMEOUT_S),
        credentials_path=path,
        base_url_notice=base_url_notice,
    )


def _read_credentials_profile(path: Path) -> dict[str, str]:
    """The `[default]` table's string values we use; {} when the file does not exist."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CredentialsFileError(path, f"cannot be read ({reason})") from None
    try:
        document: dict[str, Any] = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise CredentialsFileError(path, "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        # The decoder's message names a line and column, never the value found there.
        raise CredentialsFileError(path, f"not valid TOML ({exc})") from None

    if CREDENTIALS_PROFILE not in document:
        return {}
    profile = document[CREDENTIALS_PROFILE]
    if not isinstance(profile, dict):
        raise CredentialsFileError(
            path, f"[{CREDENTIALS_PROFILE}] must be a table, not a {_toml_type(profile)}"
        )
    values: dict[str, str] = {}
    for name in ("api_key", "base_url"):
        if name not in profile:
            continue
        value = profile[name]
        if not isinstance(value, str):
            raise CredentialsFileError(
                path,
                f"[{CREDENTIALS_PROFILE}] {name} must be a string, not a {_toml_type(value)}",
            )
        values[name] = value
    return values


def _timeout(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidTimeoutError(
            f"{name} must be a number of seconds, got {_shorten(raw)!r}"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise InvalidTimeoutError(f"{name} must be a positive number of seconds, got {raw!r}")
    return value


def _toml_type(value: object) -> str:
    names = {
        bool: "boolean",
        int: "integer",
        float: "float",
        str: "string",
        list: "array",
        dict: "table",
    }
    return names.get(type(value), type(value).__name__)


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
