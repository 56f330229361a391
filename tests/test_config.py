"""Configuration is a pure function of an environment mapping and the credentials file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from onepin_mcp.api.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_READ_TIMEOUT_S,
    DEFAULT_REQUEST_TIMEOUT_S,
    ConfigError,
    CredentialsFileError,
    InvalidBaseURLError,
    InvalidTimeoutError,
    InvalidWorkspaceIdError,
    Settings,
    credentials_path,
    load_settings,
)

ENV_KEY = "op_live_EnvKey0000000000000000000000000"
FILE_KEY = "op_live_FileKey000000000000000000000000"
WORKSPACE = "5b0d7a3e-2f4c-4e8a-9c1d-3a6f8b2e4d71"


def write_credentials(home: Path, text: str) -> Path:
    path = credentials_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_like_the_official_cli(home: Path, api_key: str, base_url: str) -> Path:
    """Reproduce what `onepin login` writes: a 0700 directory, a 0600 file, `[default]` table."""
    directory = home / ".onepin"
    directory.mkdir(mode=0o700)
    path = directory / "credentials"
    path.write_text(f'[default]\napi_key = "{api_key}"\nbase_url = "{base_url}"\n')
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    return path


def test_without_any_configuration_there_is_no_key_and_the_production_url() -> None:
    settings = load_settings({}, None)
    assert settings.api_key is None
    assert settings.key_source is None
    assert settings.base_url == DEFAULT_BASE_URL
    assert settings.base_url_source == "default"
    assert settings.workspace_id is None


def test_a_missing_credentials_file_is_not_an_error(tmp_path: Path) -> None:
    settings = load_settings({}, tmp_path)
    assert settings.api_key is None
    assert settings.credentials_path == tmp_path / ".onepin" / "credentials"


def test_the_environment_key_wins_over_the_credentials_file(tmp_path: Path) -> None:
    write_credentials(tmp_path, f'[default]\napi_key = "{FILE_KEY}"\n')
    settings = load_settings({"ONEPIN_API_KEY": ENV_KEY}, tmp_path)
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == ENV_KEY
    assert settings.key_source == "env"


def test_the_credentials_file_key_is_used_when_the_environment_has_none(tmp_path: Path) -> None:
    write_credentials(tmp_path, f'[default]\napi_key = "{FILE_KEY}"\n')
    settings = load_settings({}, tmp_path)
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == FILE_KEY
    assert settings.key_source == "credentials_file"


def test_an_empty_environment_key_is_ignored_in_favour_of_the_file(tmp_path: Path) -> None:
    write_credentials(tmp_path, f'[default]\napi_key = "{FILE_KEY}"\n')
    settings = load_settings({"ONEPIN_API_KEY": "  ", "ONEPIN_BASE_URL": ""}, tmp_path)
    assert settings.key_source == "credentials_file"
    assert settings.base_url == DEFAULT_BASE_URL


def test_the_base_url_is_resolved_independently_of_where_the_key_came_from(
    tmp_path: Path,
) -> None:
    write_credentials(
        tmp_path, f'[default]\napi_key = "{FILE_KEY}"\nbase_url = "https://dev-api.onepin.ai"\n'
    )
    from_env = load_settings({"ONEPIN_BASE_URL": "http://127.0.0.1:8123"}, tmp_path)
    assert from_env.key_source == "credentials_file"
    assert from_env.base_url == "http://127.0.0.1:8123"
    assert from_env.base_url_source == "env"

    key_from_env = load_settings({"ONEPIN_API_KEY": ENV_KEY}, tmp_path)
    assert key_from_env.key_source == "env"
    assert key_from_env.base_url == "https://dev-api.onepin.ai"
    assert key_from_env.base_url_source == "credentials_file"


def test_a_trailing_slash_and_an_upper_case_scheme_are_normalised() -> None:
    settings = load_settings({"ONEPIN_BASE_URL": "HTTPS://api.onepin.ai/"}, None)
    assert settings.base_url == "https://api.onepin.ai"
    with_prefix = load_settings({"ONEPIN_BASE_URL": "http://proxy.local:8080/onepin//"}, None)
    assert with_prefix.base_url == "http://proxy.local:8080/onepin"


@pytest.mark.parametrize(
    ("given", "served", "dropped"),
    [
        ("https://api.onepin.ai/api/v1", "https://api.onepin.ai", "/api/v1"),
        ("https://api.onepin.ai/api/v1/", "https://api.onepin.ai", "/api/v1"),
        ("https://api.onepin.ai/api", "https://api.onepin.ai", "/api"),
        ("https://api.onepin.ai/api//", "https://api.onepin.ai", "/api"),
        ("HTTPS://api.onepin.ai/API/V1", "https://api.onepin.ai", "/api/v1"),
        ("http://gateway.local:8080/onepin/api/v1/", "http://gateway.local:8080/onepin", "/api/v1"),
    ],
)
def test_a_base_url_ending_in_the_api_path_is_used_without_it_and_a_notice_says_so(
    given: str, served: str, dropped: str
) -> None:
    settings = load_settings({"ONEPIN_BASE_URL": given}, None)
    assert settings.base_url == served
    notice = settings.base_url_notice
    assert notice is not None
    assert notice.startswith(f"ONEPIN_BASE_URL ends in {dropped},")
    assert f"using {served}." in notice
    assert "\n" not in notice


def test_an_api_path_in_the_credentials_files_base_url_is_dropped_and_the_notice_names_the_file(
    tmp_path: Path,
) -> None:
    path = write_credentials(
        tmp_path, '[default]\nbase_url = "https://dev-api.onepin.ai/api/v1/"\n'
    )
    settings = load_settings({}, tmp_path)
    assert settings.base_url == "https://dev-api.onepin.ai"
    assert settings.base_url_notice is not None
    assert f"base_url in {path} ends in /api/v1" in settings.base_url_notice


@pytest.mark.parametrize(
    "url",
    [
        "https://api.onepin.ai",
        "https://gateway.local/myapi",
        "https://gateway.local/api/v2",
        "https://gateway.local/api/v1/extra",
        "https://gateway.local/rapi",
    ],
)
def test_a_base_url_not_ending_in_the_api_path_is_kept_as_it_is_without_a_notice(url: str) -> None:
    settings = load_settings({"ONEPIN_BASE_URL": url}, None)
    assert settings.base_url == url
    assert settings.base_url_notice is None


def test_settings_built_directly_drop_the_api_path_too() -> None:
    # The sandbox and tests build Settings themselves: one rule for every way in.
    assert Settings(base_url="http://127.0.0.1:8787/api/v1/").base_url == "http://127.0.0.1:8787"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://api.onepin.ai",
        "file:///etc/passwd",
        "api.onepin.ai",
        "https://",
        "https://api.onepin.ai?x=1",
        "https://api.onepin.ai:99999",
    ],
)
def test_a_base_url_that_is_not_an_absolute_http_url_is_refused(url: str) -> None:
    with pytest.raises(InvalidBaseURLError, match="ONEPIN_BASE_URL"):
        load_settings({"ONEPIN_BASE_URL": url}, None)


def test_a_base_url_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(InvalidBaseURLError) as caught:
        load_settings({"ONEPIN_BASE_URL": "https://user:hunter2@api.onepin.ai"}, None)
    assert "hunter2" not in str(caught.value)


def test_a_bad_base_url_in_the_credentials_file_names_the_file(tmp_path: Path) -> None:
    path = write_credentials(tmp_path, '[default]\nbase_url = "gopher://old.host"\n')
    with pytest.raises(InvalidBaseURLError, match=str(path)):
        load_settings({}, tmp_path)


def test_malformed_toml_is_a_credentials_file_error_that_names_the_file_but_not_the_key(
    tmp_path: Path,
) -> None:
    path = write_credentials(tmp_path, f"[default]\napi_key = {FILE_KEY}\n")
    with pytest.raises(CredentialsFileError) as caught:
        load_settings({}, tmp_path)
    assert str(path) in str(caught.value)
    assert "not valid TOML" in str(caught.value)
    assert FILE_KEY not in str(caught.value)
    assert caught.value.path == path


def test_a_malformed_file_is_an_error_even_when_the_environment_has_a_key(tmp_path: Path) -> None:
    # Never silently ignored: a broken file is something the user should hear about.
    write_credentials(tmp_path, "[default\n")
    with pytest.raises(CredentialsFileError):
        load_settings({"ONEPIN_API_KEY": ENV_KEY}, tmp_path)


def test_a_default_entry_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    write_credentials(tmp_path, f'default = "{FILE_KEY}"\n')
    with pytest.raises(CredentialsFileError, match=r"\[default\] must be a table, not a string"):
        load_settings({}, tmp_path)


def test_a_non_string_api_key_is_refused_without_showing_its_value(tmp_path: Path) -> None:
    write_credentials(tmp_path, "[default]\napi_key = 123456789\n")
    with pytest.raises(CredentialsFileError, match="api_key must be a string, not a integer") as e:
        load_settings({}, tmp_path)
    assert "123456789" not in str(e.value)


def test_a_non_string_base_url_is_refused(tmp_path: Path) -> None:
    write_credentials(tmp_path, '[default]\nbase_url = ["https://a"]\n')
    with pytest.raises(CredentialsFileError, match="base_url must be a string, not a array"):
        load_settings({}, tmp_path)


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = credentials_path(tmp_path)
    path.parent.mkdir()
    path.write_bytes(b'[default]\napi_key = "\xff\xfe"\n')
    with pytest.raises(CredentialsFileError, match="not UTF-8"):
        load_settings({}, tmp_path)


def test_a_file_without_a_default_table_gives_no_key(tmp_path: Path) -> None:
    write_credentials(tmp_path, f'[staging]\napi_key = "{FILE_KEY}"\n')
    assert load_settings({}, tmp_path).api_key is None


def test_a_credentials_file_written_by_the_official_cli_is_read(tmp_path: Path) -> None:
    path = write_like_the_official_cli(tmp_path, FILE_KEY, "https://api.onepin.ai")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    settings = load_settings({}, tmp_path)
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == FILE_KEY
    assert settings.key_source == "credentials_file"
    assert settings.base_url == "https://api.onepin.ai"
    assert settings.base_url_source == "credentials_file"


def test_a_workspace_id_is_validated_and_lower_cased() -> None:
    settings = load_settings({"ONEPIN_WORKSPACE_ID": WORKSPACE.upper()}, None)
    assert settings.workspace_id == WORKSPACE


@pytest.mark.parametrize("value", ["acme", "5b0d7a3e2f4c4e8a9c1d3a6f8b2e4d71x", "../x"])
def test_a_workspace_id_that_is_not_a_uuid_is_a_clear_error(value: str) -> None:
    with pytest.raises(InvalidWorkspaceIdError, match="ONEPIN_WORKSPACE_ID must be a workspace"):
        load_settings({"ONEPIN_WORKSPACE_ID": value}, None)


def test_timeouts_default_and_can_be_overridden() -> None:
    defaults = load_settings({}, None)
    assert (defaults.connect_timeout_s, defaults.read_timeout_s, defaults.request_timeout_s) == (
        DEFAULT_CONNECT_TIMEOUT_S,
        DEFAULT_READ_TIMEOUT_S,
        DEFAULT_REQUEST_TIMEOUT_S,
    )
    custom = load_settings(
        {
            "ONEPIN_MCP_CONNECT_TIMEOUT_S": "2.5",
            "ONEPIN_MCP_READ_TIMEOUT_S": "7",
            "ONEPIN_MCP_REQUEST_TIMEOUT_S": "12",
        },
        None,
    )
    assert (custom.connect_timeout_s, custom.read_timeout_s, custom.request_timeout_s) == (
        2.5,
        7.0,
        12.0,
    )


@pytest.mark.parametrize("value", ["soon", "0", "-1", "inf", "nan"])
def test_a_timeout_that_is_not_a_positive_number_is_refused(value: str) -> None:
    with pytest.raises(InvalidTimeoutError, match="ONEPIN_MCP_READ_TIMEOUT_S"):
        load_settings({"ONEPIN_MCP_READ_TIMEOUT_S": value}, None)


def test_every_configuration_error_shares_one_base_class() -> None:
    for error in (CredentialsFileError, InvalidBaseURLError, InvalidWorkspaceIdError):
        assert issubclass(error, ConfigError)


def test_settings_never_show_the_key_in_repr_str_or_json() -> None:
    settings = load_settings({"ONEPIN_API_KEY": ENV_KEY}, None)
    for text in (repr(settings), str(settings), settings.model_dump_json(), f"{settings}"):
        assert ENV_KEY not in text
    assert settings.has_api_key


def test_settings_are_frozen() -> None:
    settings = load_settings({}, None)
    with pytest.raises(ValidationError):
        settings.base_url = "https://elsewhere.example"


def test_settings_built_directly_are_validated_like_loaded_ones() -> None:
    assert Settings(base_url="http://localhost:9/").base_url == "http://localhost:9"
    with pytest.raises(InvalidBaseURLError):
        Settings(base_url="ws://localhost:9")
    with pytest.raises(InvalidWorkspaceIdError):
        Settings(workspace_id="not-a-uuid")


def test_loading_reads_no_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEPIN_API_KEY", ENV_KEY)
    monkeypatch.setenv("ONEPIN_BASE_URL", "http://127.0.0.1:1")
    settings = load_settings({}, None)
    assert settings.api_key is None
    assert settings.base_url == DEFAULT_BASE_URL
