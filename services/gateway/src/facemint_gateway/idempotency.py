"""``Idempotency-Key`` on POST: the first response is stored in PostgreSQL and replayed for 24 hours.

Scope: the authenticated account for ``/v1`` (the admin API has its own scope, ``admin``), so two accounts may
use the same key. The request is identified by a fingerprint of its method, path, query and body (JSON bodies in
canonical form, so that key order and whitespace do not matter).

- First request with a key: the key is claimed (status NULL), the request runs, its response is stored.
- Same key, same fingerprint, stored response: the response is replayed (same status, same body, so the same
  ``task_id``), with ``Idempotent-Replayed: true``.
- Same key, different fingerprint: 409 ``conflict``.
- Same key while the first request is still running: 409 ``conflict`` with ``Retry-After: 1``.
- Responses 429 and 5xx are not stored (the claim is released): they are transient and the client should retry.
- Secrets are never stored: any API key in a response body (key creation and rotation) is replaced by ``null``
  in the stored copy, so a replay of those requests returns the key's metadata without the secret.
- A claim whose request died (process killed) is taken over after ``idempotency_lock_seconds``.

A request that runs with a key also gets a creation id derived from the key and the fingerprint
(:func:`creation_id`), which the task route passes to the orchestrator: a retry after a 5xx whose task was stored
after all (the claim was released) then gets that task back instead of a second one (ADR 9).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

import asyncpg
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facemint_core.apikeys import looks_like_key
from facemint_core.errors import Conflict, InvalidRequest
from facemint_gateway.http import error_response, parse_json

HEADER = b"idempotency-key"
_DERIVED_ID = "facemint_idempotent_creation_id"
MAX_KEY_LENGTH = 255
ADMIN_SCOPE = "admin"
_NOT_STORED_HEADERS = frozenset(
    {b"content-length", b"date", b"server", b"retry-after", b"x-request-id", b"idempotent-replayed"}
)

_CLAIM_SQL = """
INSERT INTO idempotency_keys AS i (scope, idempotency_key, fingerprint, locked_until)
VALUES ($1, $2, $3, now() + make_interval(secs => $4))
ON CONFLICT (scope, idempotency_key) DO UPDATE
    SET fingerprint = EXCLUDED.fingerprint, status = NULL, headers = NULL, body = NULL,
        created_at = now(), locked_until = EXCLUDED.locked_until
    WHERE i.created_at < now() - make_interval(secs => $5)
       OR (i.status IS NULL AND i.locked_until < now() AND i.fingerprint = EXCLUDED.fingerprint)
RETURNING 1
"""


@dataclass(frozen=True)
class StoredResponse:
    """A recorded response (``status`` None: the first request is still running)."""

    fingerprint: str
    status: int | None
    headers: list[list[str]]
    body: bytes


def fingerprint(method: str, path: str, query: bytes, body: bytes) -> str:
    """Hash of what identifies a request; a JSON body is canonicalised first."""
    try:
        canonical = json.dumps(parse_json(body), sort_keys=True, separators=(",", ":")).encode()
    except InvalidRequest:  # refused by the route too
        canonical = body
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query, canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def derived_creation_id(scope: Scope) -> str | None:
    """The creation id derived from the request's Idempotency-Key and fingerprint (a retry with the same key and
    body derives it again); None without a key."""
    derived = scope.get(_DERIVED_ID)
    return str(derived) if derived else None


def creation_id(scope: Scope) -> str:
    """The id that makes creating a resource from this request idempotent: :func:`derived_creation_id`, else a new
    random id (the request's own retries, such as gRPC's, reuse it)."""
    return derived_creation_id(scope) or f"rnd_{secrets.token_hex(20)}"


def redact_secrets(value: Any) -> Any:
    """A copy of a JSON value with every API key replaced by None."""
    if isinstance(value, dict):
        return {k: redact_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_secrets(v) for v in value]
    if isinstance(value, str) and looks_like_key(value):
        return None
    return value


def _storable_body(body: bytes) -> bytes:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body
    redacted = redact_secrets(doc)
    if redacted == doc:
        return body
    return json.dumps(redacted, ensure_ascii=False, separators=(",", ":")).encode()


class IdempotencyStore:
    """Claims, records and replays idempotent POSTs in ``idempotency_keys``."""

    def __init__(self, pool: asyncpg.Pool, ttl_seconds: int, lock_seconds: float) -> None:
        self.pool = pool
        self.ttl_seconds = ttl_seconds
        self.lock_seconds = lock_seconds

    async def claim(self, scope_id: str, key: str, fp: str) -> StoredResponse | None:
        """Claim the key for this request (None), or return the record that holds it."""
        for _ in range(3):
            if await self.pool.fetchval(_CLAIM_SQL, scope_id, key, fp, self.lock_seconds, float(self.ttl_seconds)):
                return None
            row = await self.pool.fetchrow(
                """SELECT fingerprint, status, headers, body FROM idempotency_keys
                   WHERE scope = $1 AND idempotency_key = $2""",
                scope_id,
                key,
            )
            if row is not None:
                headers = json.loads(row["headers"]) if row["headers"] else []
                return StoredResponse(row["fingerprint"], row["status"], headers, bytes(row["body"] or b""))
        raise Conflict("the Idempotency-Key is changing concurrently; retry")

    async def complete(self, scope_id: str, key: str, status: int, headers: list[list[str]], body: bytes) -> None:
        """Record the response of a claimed key."""
        await self.pool.execute(
            """UPDATE idempotency_keys SET status = $3, headers = $4, body = $5
               WHERE scope = $1 AND idempotency_key = $2""",
            scope_id,
            key,
            status,
            json.dumps(headers),
            _storable_body(body),
        )

    async def release(self, scope_id: str, key: str) -> None:
        """Forget a claim whose request failed transiently, so that a retry runs again."""
        await self.pool.execute(
            "DELETE FROM idempotency_keys WHERE scope = $1 AND idempotency_key = $2 AND status IS NULL", scope_id, key
        )

    async def cleanup(self) -> None:
        """Delete records older than the TTL."""
        await self.pool.execute(
            "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)", float(self.ttl_seconds)
        )


def _idempotency_key(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == HEADER:
            key = str(value.decode("latin-1")).strip()
            if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
                raise InvalidRequest(f"'Idempotency-Key' must be 1 to {MAX_KEY_LENGTH} printable ASCII characters")
            return key
    return None


def _scope_id(scope: Scope) -> str | None:
    account = scope.get("facemint_account")
    if account is not None:
        return str(account.account_id)
    if scope.get("facemint_admin"):
        return ADMIN_SCOPE
    return None


async def _read_body(receive: Receive, max_bytes: int) -> bytes | None:
    """The whole request body (None when the client went away)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise InvalidRequest(f"request body exceeds {max_bytes} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class IdempotencyMiddleware:
    """Applies :class:`IdempotencyStore` to authenticated POSTs that carry an ``Idempotency-Key`` header."""

    def __init__(self, app: ASGIApp, store_getter: Any, max_body_bytes: int) -> None:
        self.app = app
        self.store_getter = store_getter
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        key = _idempotency_key(scope)
        scope_id = _scope_id(scope)
        if key is None or scope_id is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive, self.max_body_bytes)
        if body is None:
            return
        store: IdempotencyStore = self.store_getter()
        fp = fingerprint(scope["method"], scope["path"], scope.get("query_string", b""), body)
        stored = await store.claim(scope_id, key, fp)
        if stored is not None:
            await self._answer_from_record(scope, receive, send, stored, fp)
            return

        scope[_DERIVED_ID] = "key_" + hashlib.sha256(f"{key}\n{fp}".encode()).hexdigest()[:40]
        delivered = False

        async def replay_receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status = 0
        headers: list[list[str]] = []
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers.extend(
                    [n.decode("latin-1"), v.decode("latin-1")]
                    for n, v in message.get("headers", [])
                    if n.lower() not in _NOT_STORED_HEADERS and not n.lower().startswith(b"x-ratelimit-")
                )
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_receive, capture)
        except BaseException:
            await store.release(scope_id, key)
            raise
        if status == 429 or status >= 500 or status == 0:
            await store.release(scope_id, key)
        else:
            await store.complete(scope_id, key, status, headers, b"".join(chunks))

    async def _answer_from_record(
        self, scope: Scope, receive: Receive, send: Send, stored: StoredResponse, fp: str
    ) -> None:
        rid = str(scope.get("facemint_request_id", ""))
        if stored.fingerprint != fp:
            error = Conflict(
                "this Idempotency-Key was already used with a different request (method, path or body); "
                "use a new key for a new request"
            )
            await error_response(rid, error)(scope, receive, send)
            return
        if stored.status is None:
            error = Conflict("a request with this Idempotency-Key is still being processed; retry shortly")
            await error_response(rid, error, {"Retry-After": "1"})(scope, receive, send)
            return
        raw_headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in stored.headers]
        raw_headers += [(b"content-length", str(len(stored.body)).encode()), (b"idempotent-replayed", b"true")]
        await send({"type": "http.response.start", "status": stored.status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": stored.body})
