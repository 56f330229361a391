"""The pieces of the HTTP app (`onepin_mcp.http`, `http_guards`, `http_auth`) in process:
Host/Origin allow-lists, the bearer gate, and the per-caller client cache of passthrough mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import httpx
import pytest
from mcp.server.mcpserver import Context
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from onepin_mcp.api.errors import OnePinAPIError, OnePinAuthConfigError
from onepin_mcp.http_auth import BearerGate, PassthroughClients, is_onepin_key, token_checker
from onepin_mcp.http_guards import AllowedHosts, accepted_hosts, transport_security
from onepin_mcp.options import ServeOptions
from onepin_mcp.sandbox import ApiKey, Sandbox

pytestmark = pytest.mark.anyio

KEY_A = "op_live_" + "A" * 32
KEY_B = "op_live_" + "B" * 32
KEY_C = "op_live_" + "C" * 32


def _http(host: str = "127.0.0.1", *allowed: str) -> ServeOptions:
    return ServeOptions(
        transport="streamable-http", host=host, auth="passthrough", allowed_hosts=allowed
    )


def test_a_loopback_bind_accepts_loopback_hosts_and_origins_on_any_port() -> None:
    security = transport_security(_http())
    assert security.enable_dns_rebinding_protection
    assert {"127.0.0.1:*", "localhost:*", "[::1]:*"} <= set(security.allowed_hosts)
    assert "http://localhost:*" in security.allowed_origins
    assert not any("evil" in host for host in security.allowed_hosts)


def test_a_wildcard_bind_keeps_the_check_on_and_adds_the_allowed_hosts() -> None:
    security = transport_security(_http("0.0.0.0", "mcp.example.com", "api.example.com:8443"))
    assert security.enable_dns_rebinding_protection
    hosts = set(security.allowed_hosts)
    assert {"mcp.example.com", "mcp.example.com:*", "api.example.com:8443"} <= hosts
    assert "api.example.com:8443:*" not in hosts
    assert "0.0.0.0:*" not in hosts
    assert {"https://mcp.example.com", "https://api.example.com:8443"} <= set(
        security.allowed_origins
    )


def test_a_specific_address_bind_accepts_that_address_as_a_host() -> None:
    security = transport_security(_http("10.1.2.3"))
    assert "10.1.2.3:*" in security.allowed_hosts
    v6 = transport_security(_http("fd00::5"))
    assert "[fd00::5]:*" in v6.allowed_hosts


def test_an_allowed_host_star_switches_the_check_off() -> None:
    assert not transport_security(_http("0.0.0.0", "*")).enable_dns_rebinding_protection


def test_the_token_check_accepts_only_the_exact_token() -> None:
    accept = token_checker("s3cret-token-of-some-length")
    assert accept("s3cret-token-of-some-length")
    assert not accept("s3cret-token-of-some-lengt")
    assert not accept("s3cret-token-of-some-length ")
    assert not accept("ß3cret-token-of-some-length")  # non-ASCII must not raise


@pytest.mark.parametrize(
    ("credential", "accepted"),
    [(KEY_A, True), (KEY_A + "x", False), ("op_live_short", False), ("op_test_" + "A" * 32, False)],
)
def test_passthrough_accepts_only_credentials_shaped_like_an_onepin_key(
    credential: str, accepted: bool
) -> None:
    assert is_onepin_key(credential) is accepted


async def test_the_gate_lets_healthz_through_and_refuses_other_paths_without_a_credential() -> None:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    inner = Starlette(routes=[Route("/healthz", hello), Route("/mcp", hello, methods=["POST"])])
    gate = BearerGate(inner, accept=token_checker("t" * 20), expects="the token")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gate), base_url="http://127.0.0.1"
    ) as http:
        assert (await http.get("/healthz")).status_code == 200
        missing = await http.post("/mcp")
        wrong = await http.post("/mcp", headers={"Authorization": "Bearer " + "u" * 20})
        right = await http.post("/mcp", headers={"Authorization": "bearer " + "t" * 20})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="onepin-mcp"'
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert right.status_code == 200
    assert right.text == "hello"


@dataclass
class _Request:
    """What `Context.headers` reads: the transport's request object with its headers."""

    headers: dict[str, str]


@dataclass
class _RequestContext:
    request: _Request


def _ctx(authorization: str | None) -> Context[Any, Any]:
    headers = {"authorization": authorization} if authorization else {}
    return Context(request_context=cast(Any, _RequestContext(_Request(headers))))


@pytest.fixture
def sandbox() -> Sandbox:
    # KEY_A can only read: whoami's scopes tell which key a request was sent with.
    read_only = ApiKey(KEY_A, scopes=frozenset({"workflows:read"}))
    return Sandbox(manual_clock=True, api_keys=[read_only, KEY_B, KEY_C])


def _provider(sandbox: Sandbox, max_clients: int = 2) -> PassthroughClients:
    from onepin_mcp.api.settings import Settings

    settings = Settings(base_url="http://sandbox.onepin.test")
    return PassthroughClients(settings, transport=sandbox.transport(), max_clients=max_clients)


async def test_each_caller_gets_a_client_with_their_own_key_reused_across_requests(
    sandbox: Sandbox,
) -> None:
    provider = _provider(sandbox)
    try:
        a = provider.client_for(_ctx(f"Bearer {KEY_A}"))
        assert provider.client_for(_ctx(f"Bearer {KEY_A}")) is a
        b = provider.client_for(_ctx(f"Bearer {KEY_B}"))
        assert b is not a
        assert (await a.whoami()).scopes == ["workflows:read"]
        assert "workflows:run" in (await b.whoami()).scopes
    finally:
        await provider.aclose()


async def test_the_cache_is_bounded_and_an_evicted_client_keeps_working(
    sandbox: Sandbox,
) -> None:
    provider = _provider(sandbox, max_clients=2)
    try:
        a = provider.client_for(_ctx(f"Bearer {KEY_A}"))
        provider.client_for(_ctx(f"Bearer {KEY_B}"))
        provider.client_for(_ctx(f"Bearer {KEY_C}"))
        assert len(provider) == 2
        assert provider.client_for(_ctx(f"Bearer {KEY_A}")) is not a
        # A request still holding the evicted client (a long wait_for_run) is not broken.
        assert (await a.whoami()).user_id
    finally:
        await provider.aclose()


async def test_a_request_without_a_caller_key_is_refused_before_any_call(
    sandbox: Sandbox,
) -> None:
    provider = _provider(sandbox)
    try:
        for authorization in (None, "Bearer not-a-key", f"Basic {KEY_A}"):
            with pytest.raises(OnePinAuthConfigError):
                provider.client_for(_ctx(authorization))
        assert len(sandbox.requests) == 0
    finally:
        await provider.aclose()


async def test_closing_the_provider_closes_the_shared_pool(sandbox: Sandbox) -> None:
    provider = _provider(sandbox)
    client = provider.client_for(_ctx(f"Bearer {KEY_A}"))
    await provider.aclose()
    assert len(provider) == 0
    with pytest.raises(RuntimeError, match="closed"):
        await client.whoami()


async def test_a_refused_caller_key_surfaces_as_the_api_401(sandbox: Sandbox) -> None:
    provider = _provider(sandbox)
    try:
        stranger = provider.client_for(_ctx("Bearer op_live_" + "Z" * 32))
        with pytest.raises(OnePinAPIError) as refused:
            await stranger.whoami()
        assert refused.value.status == 401
    finally:
        await provider.aclose()


def test_host_matching_is_exact_and_a_port_given_with_a_name_is_the_only_one_accepted() -> None:
    hosts = AllowedHosts(accepted_hosts(_http("0.0.0.0", "mcp.example.com:8443", "api.example")))
    assert hosts.accepts_host("mcp.example.com:8443")
    assert not hosts.accepts_host("mcp.example.com:8444")
    assert not hosts.accepts_host("mcp.example.com")
    for plain in ("api.example", "api.example:1", "localhost:8000", "[::1]:8000"):
        assert hosts.accepts_host(plain), plain
    for forged in ("api.example:1@evil", "api.example.evil", "api.example:1:2", "0.0.0.0:8000"):
        assert not hosts.accepts_host(forged), forged
    assert hosts.accepts_origin("https://mcp.example.com:8443")
    assert not hosts.accepts_origin("https://mcp.example.com:8443/")
    assert not hosts.accepts_origin("null")
    # --allowed-host '*' switches the check off: no allow-list at all.
    assert accepted_hosts(_http("127.0.0.1", "*")) is None
