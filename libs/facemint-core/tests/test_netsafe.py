"""Tests of the SSRF-safe HTTP client against real HTTP(S) servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpcore
import pydantic
import pytest

from facemint_core.netsafe import (
    BlockedAddress,
    EndpointList,
    FetchFailed,
    FetchPolicy,
    FetchTimeout,
    InvalidUrl,
    IPAddress,
    NetworkList,
    SafeHttpClient,
    TooLarge,
    TooManyRedirects,
    block_reason,
    parse_endpoints,
    parse_networks,
    parse_url,
    redact_url,
)

LOOPBACK = parse_networks(["127.0.0.1/32"])
PUBLIC_TEST_ADDRESS = "93.184.216.34"


class _RouteToLoopback(httpcore.AsyncNetworkBackend):
    """Opens connections to PUBLIC_TEST_ADDRESS on 127.0.0.1, so a public host can be served by a local server."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()
        self.dialed: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: object = None,
    ) -> httpcore.AsyncNetworkStream:
        """Dial the local server for the public test address, anything else as asked."""
        self.dialed.append(host)
        target = "127.0.0.1" if host == PUBLIC_TEST_ADDRESS else host
        return await self._inner.connect_tcp(target, port, timeout, local_address)

    async def sleep(self, seconds: float) -> None:
        """Sleep."""
        await self._inner.sleep(seconds)


async def _public_resolver(host: str, port: int) -> list[IPAddress]:
    return [ipaddress.ip_address(PUBLIC_TEST_ADDRESS)]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    release: threading.Event
    seen: list[dict[str, str]]


class _Handler(BaseHTTPRequestHandler):
    """Routes: /ok, /echo, /redirect?to=URL&code=N, /loop, /forever, /hang, /slow-drip, /declared-huge, /status/N."""

    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature of the base class
        """Keep test output quiet."""

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        """Serve one route."""
        self.server.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/ok":
            self._send(200, b"hello world")
        elif url.path == "/echo":
            self._send(200, self.headers.get("Host", "").encode())
        elif url.path == "/redirect":
            self._send(int(query.get("code", "302")), b"", {"Location": query["to"]})
        elif url.path == "/loop":
            self._send(302, b"", {"Location": "/loop"})
        elif url.path.startswith("/status/"):
            self._send(int(url.path.rsplit("/", 1)[1]), b"nope")
        elif url.path == "/declared-huge":
            self.send_response(200)
            self.send_header("Content-Length", str(10**12))
            self.end_headers()
        elif url.path == "/forever":
            self.send_response(200)
            self.end_headers()
            chunk = b"x" * 65536
            try:
                while not self.server.release.is_set():
                    self.wfile.write(chunk)
            except OSError:
                return
        elif url.path == "/hang":
            self.server.release.wait(30)
        elif url.path == "/slow-drip":
            self.send_response(200)
            self.end_headers()
            try:
                while not self.server.release.wait(0.1):
                    self.wfile.write(b"x")
                    self.wfile.flush()
            except OSError:
                return
        else:
            self._send(404, b"not found")

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        """Echo the method and body, or redirect."""
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.server.seen.append({"path": self.path, "method": "POST", "body": body.decode()})
        if self.path.startswith("/redirect"):
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            self._send(int(query.get("code", "302")), b"", {"Location": query["to"]})
        else:
            self._send(200, b"POST " + body)


def _serve(tls: ssl.SSLContext | None = None) -> Iterator[tuple[_Server, int]]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.release = threading.Event()
    server.seen = []
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server, server.server_address[1]
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def http_server() -> Iterator[tuple[_Server, str]]:
    """A plain HTTP server on 127.0.0.1 and its base URL."""
    for server, port in _serve():
        yield server, f"http://127.0.0.1:{port}"


def _client(**overrides: object) -> SafeHttpClient:
    fields: dict[str, object] = {"allow": LOOPBACK, "connect_timeout": 2.0, "read_timeout": 2.0, "total_timeout": 10.0}
    fields.update(overrides)
    return SafeHttpClient(FetchPolicy(**fields))  # type: ignore[arg-type]


async def _get(client: SafeHttpClient, url: str, max_bytes: int | None = None) -> bytes:
    async with client.stream(url, max_bytes=max_bytes) as response:
        response.raise_for_status()
        return await response.read()


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.1.1", "link-local"),
        ("169.254.169.254", "cloud metadata endpoint"),
        ("100.64.0.1", "shared address space (CGNAT)"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd00:ec2::254", "cloud metadata endpoint"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "cloud metadata endpoint"),
        ("2002:7f00:1::", "IPv6 address embedding a loopback IPv4 address"),
        ("64:ff9b::a00:1", "IPv6 address embedding a private IPv4 address"),
    ],
)
def test_block_reason_refuses_non_public_addresses(address: str, reason: str) -> None:
    assert block_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_block_reason_admits_public_addresses(address: str) -> None:
    assert block_reason(ipaddress.ip_address(address)) is None


def test_allow_list_readmits_addresses_but_never_metadata_endpoints() -> None:
    allow = parse_networks(["127.0.0.1/32", "169.254.0.0/16", "fd00::/8"])
    assert block_reason(ipaddress.ip_address("127.0.0.1"), allow) is None
    assert block_reason(ipaddress.ip_address("::ffff:127.0.0.1"), allow) is None
    assert block_reason(ipaddress.ip_address("127.0.0.2"), allow) == "loopback"
    assert block_reason(ipaddress.ip_address("169.254.169.254"), allow) == "cloud metadata endpoint"
    assert block_reason(ipaddress.ip_address("fd00:ec2::254"), allow) == "cloud metadata endpoint"


def test_endpoint_entries_parse_as_address_and_port() -> None:
    assert parse_endpoints(["127.0.0.3:8333", " [::1]:9000 ", ""]) == (
        (ipaddress.ip_address("127.0.0.3"), 8333),
        (ipaddress.ip_address("::1"), 9000),
    )
    for bad in ("127.0.0.3", "127.0.0.3:0", "127.0.0.3:http", "store.local:8333"):
        with pytest.raises(ValueError):
            parse_endpoints([bad])


def test_allow_list_settings_fields_refuse_a_bad_entry_when_loaded() -> None:
    class Policy(pydantic.BaseModel):
        cidrs: NetworkList = []
        endpoints: EndpointList = []

    assert Policy(cidrs=["10.0.0.0/8"], endpoints=["127.0.0.1:80"]).endpoints == ["127.0.0.1:80"]
    for bad in ({"cidrs": ["10.0.0.0/33"]}, {"endpoints": ["store.local:8333"]}):
        with pytest.raises(pydantic.ValidationError):
            Policy(**bad)


async def test_an_allowed_endpoint_admits_its_port_only(http_server: tuple[_Server, str]) -> None:
    # The object store's S3 port is allowed; its filer on another port of the same address is not.
    _, url = http_server
    allowed = parse_endpoints([url.removeprefix("http://")])
    with ThreadingHTTPServer(("127.0.0.1", 0), _Handler) as other:
        other_url = f"http://127.0.0.1:{other.server_address[1]}/ok"
    async with _client(allow=(), allow_endpoints=allowed) as client:
        assert await _get(client, f"{url}/ok") == b"hello world"
        with pytest.raises(BlockedAddress, match=r"127.0.0.1 is a loopback address \(port"):
            await _get(client, other_url)
        with pytest.raises(BlockedAddress):  # nor after a redirect
            await _get(client, f"{url}/redirect?to={other_url}")

    async def store_resolver(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("127.0.0.1")]

    policy = FetchPolicy(allow_endpoints=allowed, connect_timeout=2.0, read_timeout=2.0, total_timeout=10.0)
    async with SafeHttpClient(policy, resolver=store_resolver) as client:  # a name: checked when resolved
        port = url.rsplit(":", 1)[1]
        assert await _get(client, f"http://store.test:{port}/ok") == b"hello world"
        with pytest.raises(BlockedAddress, match="'store.test' resolves to 127.0.0.1"):
            await _get(client, other_url.replace("127.0.0.1", "store.test"))
    metadata = FetchPolicy(allow_endpoints=parse_endpoints(["169.254.169.254:80"]))
    assert metadata.block_reason(ipaddress.ip_address("169.254.169.254"), 80) == "cloud metadata endpoint"


def test_redact_url_drops_query_fragment_and_credentials() -> None:
    url = "https://user:pw@bucket.s3.amazonaws.com:8443/k/v.mp4?X-Amz-Signature=secret#frag"
    assert redact_url(url) == "https://bucket.s3.amazonaws.com:8443/k/v.mp4"
    assert redact_url("http://[::1]/a?b") == "http://[::1]/a"


async def test_stream_returns_body_from_allowed_server(http_server: tuple[_Server, str]) -> None:
    _, base = http_server
    async with _client() as client:
        assert await _get(client, f"{base}/ok") == b"hello world"


async def test_loopback_is_refused_without_allow_list(http_server: tuple[_Server, str]) -> None:
    server, base = http_server
    async with _client(allow=()) as client:
        with pytest.raises(BlockedAddress, match="loopback"):
            await _get(client, f"{base}/ok")
    assert server.seen == []


async def test_host_name_resolving_to_loopback_is_refused(http_server: tuple[_Server, str]) -> None:
    server, base = http_server
    port = base.rsplit(":", 1)[1]
    async with _client(allow=()) as client:
        with pytest.raises(BlockedAddress, match="'localhost' resolves to .* loopback"):
            await _get(client, f"http://localhost:{port}/ok")
    assert server.seen == []


async def test_any_forbidden_address_among_several_refuses_the_host() -> None:
    async def resolver(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.0.0.7")]

    async with SafeHttpClient(FetchPolicy(), resolver=resolver) as client:
        with pytest.raises(BlockedAddress, match="10.0.0.7, a private address"):
            await _get(client, "http://mixed.example/x")


async def test_connection_goes_to_the_vetted_address_with_the_original_host_header(
    http_server: tuple[_Server, str],
) -> None:
    server, base = http_server
    port = int(base.rsplit(":", 1)[1])
    answers: list[str] = []

    async def resolver(host: str, port: int) -> list[IPAddress]:
        answers.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    async with SafeHttpClient(FetchPolicy(allow=LOOPBACK), resolver=resolver) as client:
        body = await _get(client, f"http://media.test:{port}/echo")
    assert body == f"media.test:{port}".encode()
    assert answers == ["media.test"]
    assert server.seen[0]["accept-encoding"] == "identity"


async def test_redirect_to_loopback_is_refused_when_not_allowed(http_server: tuple[_Server, str]) -> None:
    server, base = http_server
    port = int(base.rsplit(":", 1)[1])

    async def resolver(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("127.0.0.1")] if host == "public.test" else []

    # public.test is pinned to 127.0.0.1 and allowed through a /32 that does not cover 127.0.0.2.
    client = SafeHttpClient(FetchPolicy(allow=LOOPBACK), resolver=resolver)
    async with client:
        with pytest.raises(BlockedAddress, match="127.0.0.2 is a loopback address"):
            await _get(client, f"http://public.test:{port}/redirect?to=http://127.0.0.2:{port}/ok")
    assert [s["path"] for s in server.seen] == [f"/redirect?to=http://127.0.0.2:{port}/ok"]


async def test_redirect_from_a_public_host_to_127_0_0_1_is_refused(http_server: tuple[_Server, str]) -> None:
    server, base = http_server
    port = int(base.rsplit(":", 1)[1])
    router = _RouteToLoopback()
    client = SafeHttpClient(FetchPolicy(), resolver=_public_resolver, network_backend=router)
    async with client:
        assert await _get(client, f"http://public.example:{port}/ok") == b"hello world"
        with pytest.raises(BlockedAddress, match="127.0.0.1 is a loopback address"):
            await _get(client, f"http://public.example:{port}/redirect?to=http://127.0.0.1:{port}/ok")
    assert set(router.dialed) == {PUBLIC_TEST_ADDRESS}  # 127.0.0.1 was never dialled
    assert len(server.seen) == 2


@pytest.mark.parametrize(
    "target",
    ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://metadata.google.internal/"],
)
async def test_redirect_to_metadata_endpoint_is_refused(http_server: tuple[_Server, str], target: str) -> None:
    server, base = http_server
    async with _client(allow=parse_networks(["127.0.0.1/32", "169.254.0.0/16"])) as client:
        with pytest.raises(BlockedAddress, match="metadata"):
            await _get(client, f"{base}/redirect?to={target}")
    assert len(server.seen) == 1


async def test_redirects_are_followed_and_rechecked(http_server: tuple[_Server, str]) -> None:
    server, base = http_server
    async with _client() as client:
        async with client.stream(f"{base}/redirect?code=307&to=/redirect%3Fto%3D/ok") as response:
            assert response.redirects == 2
            assert response.url.path == "/ok"
            assert await response.read() == b"hello world"


async def test_redirect_loop_stops_after_the_policy_limit(http_server: tuple[_Server, str]) -> None:
    server, base = http_server
    async with _client(max_redirects=3) as client:
        with pytest.raises(TooManyRedirects):
            await _get(client, f"{base}/loop")
    assert len(server.seen) == 4


async def test_post_redirected_with_303_continues_as_get(http_server: tuple[_Server, str]) -> None:
    server, base = http_server
    async with _client() as client:
        async with client.stream(
            f"{base}/redirect?code=303&to=/ok", method="POST", content=b'{"a":1}', headers={"Authorization": "x"}
        ) as response:
            assert await response.read() == b"hello world"
    assert server.seen[0]["body"] == '{"a":1}'
    assert server.seen[1]["path"] == "/ok" and server.seen[1]["authorization"] == "x"


async def test_https_only_refuses_plain_http(http_server: tuple[_Server, str]) -> None:
    _, base = http_server
    async with _client(https_only=True) as client:
        with pytest.raises(InvalidUrl, match="scheme 'http' is not allowed"):
            await _get(client, f"{base}/ok")


@pytest.mark.parametrize("url", ["ftp://example.com/a", "file:///etc/passwd", "http://user:pw@example.com/", "nope"])
async def test_invalid_urls_are_refused(url: str) -> None:
    async with _client() as client:
        with pytest.raises(InvalidUrl):
            await _get(client, url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://0177.0.0.1/a.jpg", "Invalid IPv4 address"),
        ("http://2130706433/a.jpg", "not an IPv4 address in dotted-decimal form"),
        ("http://0x7f.1/a.jpg", "not an IPv4 address in dotted-decimal form"),
        ("http://0X7F000001/", "not an IPv4 address in dotted-decimal form"),
        ("http://127.1/", "not an IPv4 address in dotted-decimal form"),
        ("http://1.2.3.4./", "not an IPv4 address in dotted-decimal form"),
        ("http://example.123/", "not an IPv4 address in dotted-decimal form"),
        ("https://example.com/a.jpg\r\nHost: evil", "whitespace or control characters"),
        ("https://example.com/a\x00.jpg", "whitespace or control characters"),
        ("https://example.com/a b.jpg", "whitespace or control characters"),
        ("\thttps://example.com/a.jpg", "whitespace or control characters"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://user@example.com/", "credentials"),
        ("gopher://example.com/", "scheme 'gopher' is not allowed"),
        ("https:///a.jpg", "no host"),
    ],
)
def test_parse_url_refuses_forms_that_other_parsers_read_differently(url: str, reason: str) -> None:
    with pytest.raises(InvalidUrl, match=reason):
        parse_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a.jpg?X-Amz-Signature=abc%20def",
        "http://93.184.216.34:8080/a.jpg",
        "http://[::ffff:93.184.216.34]/a.jpg",
        "https://bücher.example/a.jpg",
        "https://cdn-1.example.com./a.jpg",
    ],
)
def test_parse_url_accepts_ordinary_urls(url: str) -> None:
    assert parse_url(url).host


async def test_redirect_to_a_non_canonical_ipv4_address_is_refused(http_server: tuple[_Server, str]) -> None:
    server, base = http_server
    async with _client() as client:
        with pytest.raises(InvalidUrl, match="dotted-decimal"):
            await _get(client, f"{base}/redirect?to=http://2130706433/secret")
    assert [s["path"] for s in server.seen] == ["/redirect?to=http://2130706433/secret"]


async def test_declared_length_over_limit_fails_before_reading(http_server: tuple[_Server, str]) -> None:
    _, base = http_server
    async with _client() as client:
        with pytest.raises(TooLarge, match="Content-Length"):
            await _get(client, f"{base}/declared-huge", max_bytes=1000)


async def test_endless_body_is_cut_at_max_bytes(http_server: tuple[_Server, str]) -> None:
    _, base = http_server
    async with _client() as client:
        async with client.stream(f"{base}/forever", max_bytes=1_000_000) as response:
            with pytest.raises(TooLarge):
                async for _ in response.iter_bytes():
                    pass
            assert 1_000_000 < response.bytes_read <= 1_000_000 + 65536 * 2


async def test_server_that_never_answers_times_out(http_server: tuple[_Server, str]) -> None:
    _, base = http_server
    started = time.monotonic()
    async with _client(read_timeout=0.5) as client:
        with pytest.raises(FetchTimeout):
            await _get(client, f"{base}/hang")
    assert time.monotonic() - started < 3


async def test_total_timeout_bounds_a_slow_drip(http_server: tuple[_Server, str]) -> None:
    _, base = http_server
    started = time.monotonic()
    async with _client(read_timeout=5.0, total_timeout=0.8) as client:
        with pytest.raises(FetchTimeout, match="in total"):
            await _get(client, f"{base}/slow-drip")
    assert time.monotonic() - started < 3


async def test_error_status_raises_fetch_failed_without_query_string(http_server: tuple[_Server, str]) -> None:
    _, base = http_server
    async with _client() as client:
        with pytest.raises(FetchFailed) as info:
            await _get(client, f"{base}/status/403?X-Amz-Signature=secret")
    assert info.value.status_code == 403
    assert "secret" not in str(info.value)


async def test_connection_refused_raises_fetch_failed() -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), _Handler) as closed:
        port = closed.server_address[1]
    async with _client() as client:
        with pytest.raises(FetchFailed):
            await _get(client, f"http://127.0.0.1:{port}/ok")


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def _raw_server(handle: Handler) -> AsyncIterator[int]:
    """A TCP server on a free port that runs ``handle`` for each connection; yields the port. On exit every handler
    has ended and its connection is closed (none is left for the closed event loop to destroy)."""
    handlers: set[asyncio.Task[object]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await handle(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


async def test_keep_alive_connections_are_reused_and_replaced_once_the_server_closed_them() -> None:
    # HTTP/1.1 with keep-alive: the asyncio backend must report an idle connection the server has closed as
    # readable (at EOF), so that the pool opens a new one instead of sending into a dead socket.
    connections: list[int] = []
    close_after_reply = False

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections))
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            if close_after_reply:
                break

    async with _raw_server(serve) as port, _client() as client:
        url = f"http://127.0.0.1:{port}/"
        assert [await _get(client, url), await _get(client, url)] == [b"ok", b"ok"]
        assert len(connections) == 1  # the second request went over the pooled connection
        close_after_reply = True
        assert await _get(client, url) == b"ok"  # still the pooled one; the server closes it afterwards
        await asyncio.sleep(0.05)  # the close reaches the client
        assert await _get(client, url) == b"ok"
        assert len(connections) == 2  # the closed connection was noticed and replaced


@pytest.mark.parametrize(
    ("bad_reply", "reuses"),
    [
        # Content-Length 100 on a 59 KB body: the rest would be read as the next response ("illegal status line")
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 59_000, False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged", False),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", True),  # exactly framed: kept
    ],
    ids=["longer-than-declared", "smuggled-response", "chunked", "exact"],
)
async def test_a_connection_goes_back_to_the_pool_only_after_an_exactly_framed_response(
    bad_reply: bytes, reuses: bool
) -> None:
    connections: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections))
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while request := await reader.readuntil(b"\r\n\r\n"):
                bad = request.startswith(b"GET /bad ")
                writer.write(bad_reply if bad else b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood")
                await writer.drain()

    async with _raw_server(serve) as port, _client() as client:
        base = f"http://127.0.0.1:{port}"
        await _get(client, f"{base}/bad")
        assert await _get(client, f"{base}/next") == b"good"  # the next fetch from the host is unharmed
        assert len(connections) == (1 if reuses else 2)


async def test_bytes_arriving_on_an_idle_pooled_connection_retire_it() -> None:
    # A correctly framed response, then, once the connection is back in the pool, a stray response: the next fetch
    # must not read it as its own.
    connections: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections))
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood")
                await writer.drain()
                await asyncio.sleep(0.05)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged")
                await writer.drain()

    async with _raw_server(serve) as port, _client() as client:
        url = f"http://127.0.0.1:{port}/"
        assert await _get(client, url) == b"good"
        await asyncio.sleep(0.2)  # the stray bytes reach the idle connection
        assert await _get(client, url) == b"good"
        assert len(connections) == 2


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a certificate for ``media.test`` signed by it (made with the openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is missing: run `make system-deps`")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=facemint test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=media.test")
    (tmp_path / "ext.cnf").write_text(
        "subjectAltName=DNS:media.test\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid\n"
    )
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
        "leaf.pem", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    return tmp_path / "ca.pem", tmp_path / "leaf.pem", tmp_path / "leaf.key"


async def test_https_pins_the_address_and_keeps_sni_and_certificate_checks(tls_files: tuple[Path, Path, Path]) -> None:
    ca, cert, key = tls_files
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    sni: list[str | None] = []
    server_tls.sni_callback = lambda _sock, name, _ctx: sni.append(name)

    async def resolver(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("127.0.0.1")]

    for _, port in _serve(server_tls):
        policy = FetchPolicy(allow=LOOPBACK, https_only=True, connect_timeout=3.0)
        trusted = ssl.create_default_context(cafile=str(ca))
        async with SafeHttpClient(policy, resolver=resolver, ssl_context=trusted) as client:
            assert await _get(client, f"https://media.test:{port}/echo") == f"media.test:{port}".encode()
        assert sni == ["media.test"]
        async with SafeHttpClient(policy, resolver=resolver) as untrusting:
            with pytest.raises(FetchFailed, match="CERTIFICATE_VERIFY_FAILED"):
                await _get(untrusting, f"https://media.test:{port}/ok")
