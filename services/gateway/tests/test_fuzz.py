"""Property-based fuzzing of every gateway route: no request is answered 5xx, and none that is refused stores a row.

A gateway process runs with everything its routes need: the session's orchestrator and PostgreSQL
(``gateway_stack``), a webhook dispatcher process, an object store, and the library service (in a thread of this
process, with its scripted media-decoder from ``facemint_library.testing``, as in ``test_library_routes``).
Hypothesis picks a route of the app (all of them, read from the app itself, so a new route is fuzzed without
touching this file), fills its path parameters and query string, and sends a body that is one of: a valid body of
the route with one field replaced by a hostile value (NaN, Infinity, lone surrogates, NUL, huge or deeply nested
values, wrong types, URLs that other parsers read differently), any JSON value, deeply nested brackets, huge number
literals, or bytes that are not JSON at all. The examples are bounded (``MAX_EXAMPLES``) to keep the run short.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import asyncpg
import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode, checks
from starlette.routing import Route

from facemint_core.schemas import service_dsn
from facemint_gateway.app import create_app
from facemint_gateway.settings import GatewaySettings
from facemint_library.testing import TEST_CALIBRATIONS, TEST_MODEL, harness_settings, make_face, serve_library
from facemint_local.procs import ManagedProcess, free_port, wait_until
from facemint_local.servers import NatsServer, ObjectStore

if TYPE_CHECKING:
    from conftest import GatewayStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAX_EXAMPLES = 300
SCHEMATHESIS_EXAMPLES = 300
ENROLLED_IMAGE = "https://images.example.com/fuzz/person.jpg"
STORED_TABLES = ("tasks", "libraries", "library_persons", "library_faces", "accounts", "api_keys")
ROWS_SQL = "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in STORED_TABLES)

VALID_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/create-detection-task"): {
        "type": "image", "media_url": "https://images.example.com/a.jpg", "attributes": ["age"], "top_k": 2,
        "callback_url": "https://hooks.example.com/cb", "metadata": {"order": 1},
    },
    ("POST", "/v1/library"): {"library_id": "fuzz-new", "name": "n", "description": "d"},
    ("PATCH", "/v1/library/{library_id}"): {"name": "n", "description": "d"},
    ("POST", "/v1/library/{library_id}/face"): {
        "person_id": "p2", "name": "n", "image_url": ENROLLED_IMAGE, "metadata": {"team": "x"},
    },
    ("POST", "/v1/compare"): {"source_image_url": ENROLLED_IMAGE, "target_image_url": ENROLLED_IMAGE},
    ("POST", "/v1/uploads"): {"type": "image", "filename": "a.jpg"},
    ("POST", "/v1/keys"): {"name": "k", "expires_in_seconds": 3600},
    ("POST", "/v1/keys/{key_id}/rotate"): {"grace_seconds": 60},
    ("POST", "/v1/webhook-secret/rotate"): {"grace_seconds": 60},
    ("POST", "/admin/v1/accounts"): {"name": "a", "plan": "free", "limits": {"concurrent_tasks": 2}},
    ("PATCH", "/admin/v1/accounts/{account_id}"): {"name": "a", "plan": "starter"},
    ("POST", "/admin/v1/accounts/{account_id}/keys"): {"name": "k"},
    ("POST", "/admin/v1/keys/{key_id}/rotate"): {"grace_seconds": 0},
}  # fmt: skip
QUERY_NAMES = ("limit", "cursor", "status", "type", "created_after")
WAITS = ("nan", "-1", "1e999", "31", "0", "")  # valid waits would hold a queued task's GET for seconds
HOSTILE_STRINGS = (
    "\ud800", "a\udfffb", "\x00", "a\u0000b", "\r\n", " ", "", "\U0001f600", "\ufeff", "x" * 10_000,
    "http://0177.0.0.1/a.jpg", "http://2130706433/", "http://0x7f.1/", "https://u:p@example.com/a.jpg",
    "https://example.com/a.jpg\r\nX: 1", "https://example.com/\x00", "file:///etc/passwd", "javascript:alert(1)",
    "https://images.example.com/a.jpg", "image", "video", "age", "1", "NaN", "fuzz-lib", "p1",
)  # fmt: skip
HOSTILE_NUMBERS = (float("nan"), float("inf"), float("-inf"), 10**30, -(10**30), 2**63, -1, 0, 1, 0.5, 1e308)


def _routes() -> list[tuple[str, str]]:
    """(method, path template) of every route the app serves."""
    app = create_app(GatewaySettings())
    return sorted(
        (method, route.path)
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    )


ROUTES = _routes()

scalars = (
    st.none() | st.booleans() | st.sampled_from(HOSTILE_NUMBERS) | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(HOSTILE_STRINGS)
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
)  # fmt: skip
keys = st.text(max_size=8) | st.sampled_from(HOSTILE_STRINGS)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4), max_leaves=12
)


def _deep(depth: int, opener: str) -> str:
    """JSON text nested ``depth`` deep (written out: ``json.dumps`` itself recurses)."""
    if opener == "[":
        return "[" * depth + "1" + "]" * depth
    return '{"a": ' * depth + "1" + "}" * depth


def _encode(value: Any, ascii_only: bool) -> bytes:
    """JSON text as a careless client writes it: NaN and Infinity allowed, lone surrogates as escapes or raw bytes."""
    return json.dumps(value, allow_nan=True, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def bodies(draw: st.DrawFn, method: str, path: str) -> bytes | None:
    """A request body for the route (None: no body)."""
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "json", "deep", "literal", "bytes", "none"]))
    ascii_only = draw(st.booleans())
    if kind == "mutated":
        body = dict(VALID_BODIES.get((method, path), {}))
        field = draw(st.sampled_from(sorted({*body, "metadata", "attributes", "limits", "name", "unknown"})))
        depth = draw(st.sampled_from([0, 0, 0, 0, 60, 63, 64, 65, 2_000]))
        if depth:
            body[field] = "\ufdd0"  # a placeholder, replaced by the nested text
            return _encode(body, True).replace(b'"\\ufdd0"', _deep(depth, draw(st.sampled_from("[{"))).encode())
        if draw(st.integers(0, 5)) == 0:
            body.pop(field, None)
        else:
            body[field] = draw(json_values)
        return _encode(body, ascii_only)
    if kind == "json":
        return _encode(draw(json_values), ascii_only)
    if kind == "deep":
        depth = draw(st.sampled_from([64, 65, 1_000, 5_000, 100_000]))
        closed = draw(st.booleans())
        return (b"[" * depth + (b"]" * depth if closed else b"")) if draw(st.booleans()) else (
            b'{"metadata": ' + b'{"a": ' * depth + b"1" + (b"}" * depth if closed else b"") + b"}"
        )  # fmt: skip
    if kind == "literal":
        digits = draw(st.sampled_from([20, 309, 400, 5_000]))
        field = draw(st.sampled_from(["top_k", "sample_rate", "grace_seconds", "expires_in_seconds", "metadata"]))
        sign = draw(st.sampled_from(["", "-"]))
        return f'{{"{field}": {sign}{"9" * digits}}}'.encode()
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    return None


def _path_value(known: list[str]) -> st.SearchStrategy[str]:
    raw = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40).map(lambda s: quote(s, safe=""))
    return st.sampled_from(known) | raw | st.sampled_from(["%00", "%ED%A0%80", "%FF", "x" * 300, "%2F..%2F"])


@st.composite
def fuzz_requests(draw: st.DrawFn, ids: dict[str, list[str]]) -> tuple[str, str, dict[str, str], bytes | None]:
    """(method, URL path with query, extra headers, body)."""
    method, template = draw(st.sampled_from(ROUTES))
    path = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: draw(_path_value(ids.get(m.group(1), ["x"]))), template)
    values = st.sampled_from(HOSTILE_STRINGS) | st.text(max_size=12)
    query = draw(st.dictionaries(st.sampled_from(QUERY_NAMES), values, max_size=3))
    if draw(st.booleans()):
        query["wait"] = draw(st.sampled_from(WAITS))
    if query:
        path += "?" + urlencode(query, encoding="utf-8", errors="surrogatepass")
    headers = {"content-type": "application/json"}
    if method == "POST" and draw(st.booleans()):
        headers["idempotency-key"] = draw(st.uuids()).hex
    return method, path, headers, draw(bodies(method, template))


@pytest.fixture(scope="module")
def library_target(gateway_stack: GatewayStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The library service (edge vector store, the stack's database) served from a thread; its target."""
    started: queue.Queue[str | BaseException] = queue.Queue()
    stop = threading.Event()
    library_settings = harness_settings("edge", tmp_path_factory.mktemp("fuzz-library"), gateway_stack.dsn)

    async def serve() -> None:
        try:
            async with serve_library(library_settings, TEST_CALIBRATIONS) as lib:
                lib.decoder.images[ENROLLED_IMAGE] = [make_face(np.full(64, 0.125), TEST_MODEL)]
                started.put(lib.target)
                while not stop.is_set():
                    await asyncio.sleep(0.05)
        except BaseException as exc:  # reported to the test
            started.put(exc)

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    result = started.get(timeout=60)
    if isinstance(result, BaseException):
        raise result
    yield result
    stop.set()
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def webhook_target(gateway_stack: GatewayStack, nats_server: NatsServer) -> Iterator[str]:
    """A webhook dispatcher process on the stack's database; its gRPC target."""
    grpc_port, http_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEMINT_")} | {
        "FACEMINT_WEBHOOK_DISPATCHER_DATABASE__DSN": service_dsn(gateway_stack.dsn, "webhook-dispatcher"),
        "FACEMINT_WEBHOOK_DISPATCHER_NATS__URL": nats_server.url,
        "FACEMINT_WEBHOOK_DISPATCHER_GRPC__PORT": str(grpc_port),
        "FACEMINT_WEBHOOK_DISPATCHER_HTTP__PORT": str(http_port),
        "FACEMINT_WEBHOOK_DISPATCHER_EVENTS__DURABLE": f"fuzz-{uuid.uuid4().hex[:8]}",
    }
    log = gateway_stack.log_dir / "fuzz-dispatcher.log"
    proc = ManagedProcess("fuzz-dispatcher", [sys.executable, "-m", "facemint_webhook_dispatcher"], log, env=env)
    proc.start()

    def ready() -> bool:
        if not proc.alive():
            raise RuntimeError(f"dispatcher exited:\n{proc.tail()}")
        try:
            return httpx.get(f"http://127.0.0.1:{http_port}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, 60, "dispatcher", interval=0.2)
        yield f"127.0.0.1:{grpc_port}"
    finally:
        proc.stop()


@dataclass
class Target:
    """The fuzzed gateway, the fuzzing account's client, ids of existing resources, a row counter and the logs of
    the processes behind it."""

    url: str
    api: httpx.Client
    admin_headers: dict[str, str]
    ids: dict[str, list[str]]
    stored: Callable[[], tuple[int, ...]]
    logs: Callable[[], str]

    def exchange(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> None:
        """Send one request; assert that it is not answered 5xx and that, if refused, it stored nothing."""
        if path.startswith("/admin/"):
            headers = {**headers, **self.admin_headers}
        before = self.stored()
        self.check_answer(f"{method} {path}", self.api.request(method, path, content=body, headers=headers), before)

    def check_answer(self, request: str, resp: httpx.Response, before: tuple[int, ...]) -> None:
        """No 5xx (the message quotes what the services logged for that request); no stored row for a refused
        (4xx) request."""
        if resp.status_code >= 500:
            request_id = resp.headers.get("x-request-id") or "no request id"
            logged = [line for line in self.logs().splitlines() if request_id in line]
            pytest.fail(f"{request} -> {resp.status_code} {resp.text[:500]}\nlogged:\n" + "\n".join(logged)[-4000:])
        if resp.status_code >= 400:
            after = self.stored()
            assert after == before, f"{request} was refused ({resp.status_code}: {resp.text[:200]}) but stored rows"


@pytest.fixture(scope="module")
def target(
    gateway_stack: GatewayStack,
    module_gateway: Callable[..., str],
    library_target: str,
    webhook_target: str,
    object_store: ObjectStore,
) -> Iterator[Target]:
    """A gateway process with every dependency of its routes, an account without rate limits, a library with an
    enrolled person, and a task."""
    url = module_gateway(
        FACEMINT_GATEWAY_LIBRARY_TARGET=library_target,
        FACEMINT_GATEWAY_WEBHOOK_TARGET=webhook_target,
        FACEMINT_GATEWAY_OBJECT_STORE__ENDPOINT=object_store.endpoint,
        FACEMINT_GATEWAY_OBJECT_STORE__ACCESS_KEY=object_store.access_key,
        FACEMINT_GATEWAY_OBJECT_STORE__SECRET_KEY=object_store.secret_key,
    )
    unlimited = {"requests_per_minute": 10**6, "concurrent_tasks": 10**6, "monthly_minutes": 10**6}
    _, key, _ = gateway_stack.new_account("scale", **unlimited)
    other_account, _, other_key = gateway_stack.new_account("free")
    with httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=60) as api:
        assert api.post("/v1/library", json={"library_id": "fuzz-lib"}).status_code == 201
        enrolled = api.post("/v1/library/fuzz-lib/face", json={"person_id": "p1", "image_url": ENROLLED_IMAGE})
        assert enrolled.status_code == 201, enrolled.text
        task = api.post("/v1/create-detection-task", json=VALID_BODIES[("POST", "/v1/create-detection-task")])
        assert task.status_code == 201, task.text
        ids = {  # the fuzzing account's own key and account are left alone, so that it keeps working
            "library_id": ["fuzz-lib", "nope"],
            "person_id": ["p1", "nope"],
            "face_id": [enrolled.json()["face_id"], "face_nope"],
            "task_id": [task.json()["task_id"], "task_nope"],
            "account_id": [other_account, "acct_nope"],
            "key_id": [other_key, "key_nope"],
            "name": ["index.html", "app.js", "../etc/passwd"],
        }
        loop = asyncio.new_event_loop()
        conn = loop.run_until_complete(asyncpg.connect(gateway_stack.dsn))

        def stored() -> tuple[int, ...]:
            return tuple(loop.run_until_complete(conn.fetchrow(ROWS_SQL)) or ())

        try:
            admin = {"authorization": f"Bearer {gateway_stack.admin_token}"}
            yield Target(url, api, admin, ids, stored, gateway_stack.logs)
        finally:
            loop.run_until_complete(conn.close())
            loop.close()


FUZZ_SETTINGS = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))


def test_no_route_answers_5xx_and_a_refused_request_stores_nothing(target: Target) -> None:
    @settings(FUZZ_SETTINGS, max_examples=MAX_EXAMPLES)
    @given(fuzz_requests(target.ids))
    def check(request: tuple[str, str, dict[str, str], bytes | None]) -> None:
        target.exchange(*request)

    check()


RESPONSE_CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


def test_schemathesis_cases_of_the_openapi_document_are_answered_as_documented_and_never_5xx(target: Target) -> None:
    document = httpx.get(f"{target.url}/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    cases = schema.as_strategy(GenerationMode.POSITIVE) | schema.as_strategy(GenerationMode.NEGATIVE)

    @settings(FUZZ_SETTINGS, max_examples=SCHEMATHESIS_EXAMPLES)
    @given(cases)
    def check(case: Case) -> None:
        before = target.stored()
        resp = case.call(base_url=target.url, headers=dict(target.api.headers))
        target.check_answer(f"{case.method} {case.formatted_path}", resp, before)
        case.validate_response(resp, checks=RESPONSE_CHECKS)  # status, headers and body as documented

    check()
