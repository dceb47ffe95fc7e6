"""Browser and protocol defences over real HTTP: Content-Type, Host (DNS rebinding), Origin/CORS, header size,
the proxy key on every route but `/`, and bounded echoes of client input."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from ccm_tui.config import ConfigError, ProviderSettings, ServerSettings, parse_settings
from ccm_tui.proxy.guard import GuardPolicy, content_type_refusal, host_refusal, origin_refusal
from tests.mocks.upstreams import AnthropicMock

GOOD = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
JSON = {"content-type": "application/json"}


@pytest.fixture
async def upstream():
    async with AnthropicMock() as mock:
        yield mock


def anthropic(url: str) -> list[ProviderSettings]:
    return [ProviderSettings(name="anth", kind="anthropic", base_url=url, api_key_env="TEST_KEY")]


@pytest.fixture
async def proxy(start_proxy, upstream):
    return await start_proxy(anthropic(upstream.url))


def assert_anthropic_error(response: httpx.Response, status: int, error_type: str | None = None) -> str:
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["type"] == "error" and payload["request_id"].startswith("req_")
    assert response.headers["request-id"] == payload["request_id"]
    if error_type:
        assert payload["error"]["type"] == error_type
    return payload["error"]["message"]


async def raw_exchange(url: str, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """One request written byte for byte (clients refuse to send some of these headers)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(head + b"Connection: close\r\n\r\n" + body)
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    header_block, _, payload = data.partition(b"\r\n\r\n")
    return int(header_block.split(b" ", 2)[1]), payload


# --- Content-Type -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "text/plain;charset=UTF-8"},
        {"content-type": "application/x-www-form-urlencoded"},
        {"content-type": "multipart/form-data; boundary=x"},
        {},
    ],
    ids=["text-plain", "form", "multipart", "none"],
)
async def test_browser_simple_request_bodies_are_refused_with_415(proxy, upstream, headers) -> None:
    async with httpx.AsyncClient() as http:
        for path in ("/v1/messages", "/v1/messages/count_tokens"):
            response = await http.post(f"{proxy.url}{path}", content=orjson.dumps(GOOD), headers=headers)
            message = assert_anthropic_error(response, 415, "invalid_request_error")
            assert "application/json" in message
    assert upstream.requests == []


async def test_json_content_type_with_parameters_is_accepted(proxy, upstream) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{proxy.url}/v1/messages",
            content=orjson.dumps(GOOD),
            headers={"content-type": "Application/JSON; charset=utf-8"},
        )
    assert response.status_code == 200, response.text


# --- Host ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:9999", "127.0.0.1", "[::1]:8082", "api.localhost", "10.1.2.3"]
)
async def test_loopback_names_and_ip_addresses_are_answered(proxy, host) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{proxy.url}/v1/messages", json=GOOD, headers={"host": host})
    assert response.status_code == 200, response.text


async def test_a_rebound_dns_name_is_refused(proxy, upstream) -> None:
    async with httpx.AsyncClient() as http:
        for method, path in (("POST", "/v1/messages"), ("GET", "/health"), ("GET", "/")):
            response = await http.request(
                method, f"{proxy.url}{path}", json=GOOD if method == "POST" else None, headers={"host": "evil.example"}
            )
            message = assert_anthropic_error(response, 403, "permission_error")
            assert "allowed_hosts" in message
    assert upstream.requests == []


async def test_allowed_hosts_and_the_bound_name_are_answered(start_proxy, upstream) -> None:
    proxy = await start_proxy(
        anthropic(upstream.url), server=ServerSettings(host="devbox.lan", allowed_hosts=("ccm.example.org",))
    )
    async with httpx.AsyncClient() as http:
        for host in ("ccm.example.org", "CCM.example.org:443", "devbox.lan:8082"):
            response = await http.post(f"{proxy.url}/v1/messages", json=GOOD, headers={"host": host})
            assert response.status_code == 200, (host, response.text)
        refused = await http.post(f"{proxy.url}/v1/messages", json=GOOD, headers={"host": "other.example.org"})
    assert refused.status_code == 403


@pytest.mark.parametrize("path", ["/", "/health", "/v1/messages"])
@pytest.mark.parametrize(
    "host",
    [b"a" * 64 + b".example", b"a..b", b"[::1", b"localhost:http", b"x" * 300],
    ids=["label-64", "empty-label", "open-bracket", "named-port", "name-300"],
)
async def test_a_malformed_host_is_an_anthropic_shaped_400(proxy, path, host) -> None:
    method = b"POST" if path == "/v1/messages" else b"GET"
    body = orjson.dumps(GOOD)
    head = (
        method + b" " + path.encode() + b" HTTP/1.1\r\nHost: " + host + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
    )
    status, payload = await raw_exchange(proxy.url, head, body)
    assert status == 400
    error = orjson.loads(payload)
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert "Host" in error["error"]["message"] and len(payload) < 400


# --- Origin and CORS ------------------------------------------------------------------------------------------------


async def test_a_foreign_browser_origin_is_refused(proxy, upstream) -> None:
    async with httpx.AsyncClient() as http:
        post = await http.post(f"{proxy.url}/v1/messages", json=GOOD, headers={"origin": "https://evil.example"})
        get = await http.get(f"{proxy.url}/v1/models", headers={"origin": "null"})
        preflight = await http.options(
            f"{proxy.url}/v1/messages",
            headers={
                "origin": "https://evil.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type,x-api-key",
            },
        )
    assert "allowed_origins" in assert_anthropic_error(post, 403, "permission_error")
    assert_anthropic_error(get, 403)
    assert_anthropic_error(preflight, 403)
    for response in (post, get, preflight):
        assert not [name for name in response.headers if name.startswith("access-control-")]
    assert upstream.requests == []


async def test_options_without_an_origin_gets_no_cors_headers(proxy) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.options(f"{proxy.url}/v1/messages", headers={"access-control-request-method": "POST"})
    assert not [name for name in response.headers if name.startswith("access-control-")]


async def test_an_allowed_origin_gets_cors_headers_and_a_preflight(start_proxy, upstream) -> None:
    proxy = await start_proxy(
        anthropic(upstream.url), server=ServerSettings(allowed_origins=("https://app.example:8443",))
    )
    origin = "https://app.example:8443"
    async with httpx.AsyncClient() as http:
        preflight = await http.options(
            f"{proxy.url}/v1/messages",
            headers={
                "origin": origin,
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type,x-api-key,anthropic-version",
            },
        )
        post = await http.post(f"{proxy.url}/v1/messages", json=GOOD, headers={"origin": origin})
        other = await http.post(f"{proxy.url}/v1/messages", json=GOOD, headers={"origin": "https://app.example"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-headers"] == "content-type,x-api-key,anthropic-version"
    assert post.status_code == 200 and post.headers["access-control-allow-origin"] == origin
    assert post.headers["vary"] == "Origin"
    assert other.status_code == 403


# --- header size --------------------------------------------------------------------------------------------------


async def test_oversized_headers_get_an_anthropic_shaped_431(proxy, upstream) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{proxy.url}/v1/messages", json=GOOD, headers={"x-filler": "a" * 40_000})
    assert "KiB" in assert_anthropic_error(response, 431)
    assert upstream.requests == []


# --- the proxy key --------------------------------------------------------------------------------------------------


async def test_with_a_proxy_key_every_route_but_root_requires_it(start_proxy, upstream) -> None:
    proxy = await start_proxy(
        anthropic(upstream.url),
        server=ServerSettings(auth_key_env="PROXY_KEY"),
        environ={"TEST_KEY": "up", "PROXY_KEY": "s3cret"},
    )
    routes = [
        ("GET", "/health"),
        ("GET", "/metrics"),
        ("GET", "/v1/models"),
        ("GET", "/v1/models/claude-sonnet-4-5"),
        ("POST", "/v1/messages"),
        ("POST", "/v1/messages/count_tokens"),
        ("GET", "/no/such/route"),
    ]
    async with httpx.AsyncClient() as http:
        for method, path in routes:
            body = GOOD if method == "POST" else None
            denied = await http.request(method, f"{proxy.url}{path}", json=body)
            assert_anthropic_error(denied, 401, "authentication_error")
            allowed = await http.request(method, f"{proxy.url}{path}", json=body, headers={"x-api-key": "s3cret"})
            assert allowed.status_code != 401, path
            assert "s3cret" not in denied.text
        assert (await http.get(f"{proxy.url}/")).status_code == 200
        assert (await http.head(f"{proxy.url}/")).status_code == 200


# --- bounded echoes -----------------------------------------------------------------------------------------------


async def test_client_input_echoed_in_errors_is_bounded(proxy, upstream) -> None:
    async with httpx.AsyncClient() as http:
        huge_model = await http.post(f"{proxy.url}/v1/messages", json={**GOOD, "model": "m" * 5_000_000})
        long_path = await http.get(f"{proxy.url}/{'p' * 30_000}")
        long_model_id = await http.get(f"{proxy.url}/v1/models/{'m' * 30_000}")
    assert "at most 256 characters" in assert_anthropic_error(huge_model, 400)
    assert_anthropic_error(long_path, 404)
    assert_anthropic_error(long_model_id, 404)
    for response in (huge_model, long_path, long_model_id):
        assert len(response.content) < 1000
    status, payload = await raw_exchange(proxy.url, b"X" * 20_000 + b" / HTTP/1.1\r\nHost: localhost\r\n")
    assert status == 405 and orjson.loads(payload)["type"] == "error" and len(payload) < 1000
    assert upstream.requests == []


# --- pure decisions and configuration -------------------------------------------------------------------------------

POLICY = GuardPolicy.create("127.0.0.1", ["ccm.example.org"], ["https://app.example"])


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ("localhost:8082", None),
        ("LOCALHOST.", None),
        ("127.0.0.1:1", None),
        ("[::1]", None),
        ("ccm.example.org:80", None),
        ("evil.example", 403),
        ("localhost.evil.example", 403),
        ("a" * 64, 400),
        ("host:99999", 400),
        ("ho st", 400),
        ("", 400),
    ],
)
def test_host_decision(header: str, status: int | None) -> None:
    refusal = host_refusal(header, POLICY)
    assert (refusal.status if refusal else None) == status


@pytest.mark.parametrize(
    ("origin", "refused"),
    [(None, False), ("https://app.example", False), ("HTTPS://APP.EXAMPLE/", False), ("https://evil", True)],
)
def test_origin_decision(origin: str | None, refused: bool) -> None:
    assert (origin_refusal(origin, POLICY) is not None) == refused


@pytest.mark.parametrize(
    ("method", "content_type", "refused"),
    [("POST", "application/json", False), ("POST", None, True), ("POST", "text/json", True), ("GET", None, False)],
)
def test_content_type_decision(method: str, content_type: str | None, refused: bool) -> None:
    assert (content_type_refusal(method, content_type) is not None) == refused


def test_allowed_hosts_and_origins_parse() -> None:
    settings = parse_settings(
        {"server": {"allowed_hosts": ["ccm.example.org", "[::1]"], "allowed_origins": ["https://app.example"]}}, "t"
    )
    assert settings.server.allowed_hosts == ("ccm.example.org", "[::1]")
    assert settings.server.allowed_origins == ("https://app.example",)
    assert settings.with_server(port=1).server.allowed_origins == ("https://app.example",)


@pytest.mark.parametrize(
    ("server", "fragment"),
    [
        ({"allowed_hosts": "x"}, "server.allowed_hosts: must be a list of strings"),
        ({"allowed_hosts": ["http://x"]}, "server.allowed_hosts: 'http://x' is not a host name"),
        ({"allowed_hosts": ["x:80"]}, "no scheme, no port"),
        ({"allowed_origins": ["app.example"]}, "server.allowed_origins: 'app.example' is not an origin"),
        ({"allowed_origins": ["https://app.example/path"]}, "is not an origin"),
    ],
)
def test_bad_allowed_values_are_config_errors(server: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        parse_settings({"server": server}, "t")


@pytest.mark.parametrize("port", ["\xb2", "\xb9\xb2", "99999", "8o"])
def test_non_ascii_or_absurd_ports_are_malformed_hosts(port: str) -> None:
    from ccm_tui.core.hosts import host_of

    assert host_of(f"localhost:{port}") is None
