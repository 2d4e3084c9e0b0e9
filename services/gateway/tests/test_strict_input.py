"""Bad JSON and bad URLs through real gateway processes: 400 ``invalid_request`` at once, never 500, nothing stored.

Issue #13 items 5 and 6: non-finite numbers, deep nesting, lone surrogates, huge integer literals, NUL characters,
URLs that other parsers read differently (``0177.0.0.1``), CR/LF or credentials in URLs, wrong types. Library
routes are checked too: their bodies are refused by the gateway before the library service is asked, so the
stack needs none.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest

if TYPE_CHECKING:
    from conftest import GatewayStack

pytestmark = [pytest.mark.integration]

TASK = {"type": "image", "media_url": "https://example.com/a.jpg"}
FACE = {"person_id": "p1", "image_url": "https://example.com/a.jpg"}


@pytest.fixture(scope="module")
def account(gateway_stack: GatewayStack) -> tuple[str, str]:
    """(account_id, key) of an account on the scale plan."""
    account_id, key, _ = gateway_stack.new_account("scale")
    return account_id, key


@pytest.fixture(scope="module")
def client(gateway_stack: GatewayStack, account: tuple[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_stack.url, headers={"x-api-key": account[1]}, timeout=30) as c:
        yield c


def rows(stack: GatewayStack, account_id: str) -> tuple[int, int]:
    """The account's stored tasks and libraries."""

    async def count() -> tuple[int, int]:
        conn = await asyncpg.connect(stack.dsn)
        try:
            row = await conn.fetchrow(
                """SELECT (SELECT count(*) FROM tasks WHERE account_id = $1) AS tasks,
                          (SELECT count(*) FROM libraries WHERE account_id = $1) AS libraries""",
                account_id,
            )
            assert row is not None
            return row["tasks"], row["libraries"]
        finally:
            await conn.close()

    return asyncio.run(count())


def refused(client: httpx.Client, path: str, raw: bytes | str, *, headers: dict[str, str] | None = None) -> str:
    """POST ``raw`` as the body; assert 400 ``invalid_request`` and return the message."""
    resp = client.post(path, content=raw, headers={"content-type": "application/json", **(headers or {})})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_request", error
    return str(error["message"])


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def with_metadata(base: dict[str, Any], metadata_json: str) -> str:
    return json.dumps(base)[:-1] + f', "metadata": {metadata_json}}}'


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e999"])
@pytest.mark.parametrize(
    ("path", "base"),
    [("/v1/create-detection-task", TASK), ("/v1/library/lib-1/face", FACE)],
    ids=["task", "enrolment"],
)
def test_non_finite_numbers_in_metadata_are_refused_and_nothing_is_stored(
    gateway_stack: GatewayStack,
    client: httpx.Client,
    account: tuple[str, str],
    path: str,
    base: dict[str, Any],
    constant: str,
) -> None:
    before = rows(gateway_stack, account[0])
    refused(client, path, with_metadata(base, f'{{"x": {constant}}}'))
    assert rows(gateway_stack, account[0]) == before


@pytest.mark.parametrize(
    "body",
    ['{"type": NaN}', '{"library_id": "a", "name": Infinity}', '{"name": -Infinity}', '{"grace_seconds": NaN}'],
)
@pytest.mark.parametrize("path", ["/v1/create-detection-task", "/v1/library", "/v1/keys", "/v1/webhook-secret/rotate"])
def test_non_finite_numbers_are_refused_on_every_json_route(client: httpx.Client, path: str, body: str) -> None:
    assert "malformed JSON" in refused(client, path, body)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/create-detection-task", nested(100_000)),
        ("/v1/create-detection-task", "[" * 5_000),
        ("/v1/create-detection-task", with_metadata(TASK, '{"a": ' * 3_000 + "1" + "}" * 3_000)),
        ("/v1/library/lib-1/face", with_metadata(FACE, '{"a": ' * 2_000 + "1" + "}" * 2_000)),
        ("/v1/library", '{"library_id": ' + nested(100_000) + "}"),
        ("/v1/keys", '{"name": ' + nested(1_000) + "}"),
    ],
    ids=["100000-deep", "5000-open-brackets", "metadata-3000-deep", "enrolment-2000-deep", "library", "keys"],
)
def test_deeply_nested_json_is_refused(
    gateway_stack: GatewayStack, client: httpx.Client, account: tuple[str, str], path: str, body: str
) -> None:
    before = rows(gateway_stack, account[0])
    refused(client, path, body)
    refused(client, path, body, headers={"Idempotency-Key": uuid.uuid4().hex})  # the fingerprint parses it too
    assert rows(gateway_stack, account[0]) == before


def test_nesting_up_to_the_documented_limit_of_64_is_parsed(client: httpx.Client) -> None:
    deepest = '{"x": ' + nested(63) + "}"  # the body object and 63 arrays
    assert "unknown field(s): x" in refused(client, "/v1/create-detection-task", deepest)
    too_deep = '{"x": ' + nested(64) + "}"
    assert "nested more than 64 levels" in refused(client, "/v1/create-detection-task", too_deep)


@pytest.mark.parametrize(
    "body",
    [
        '{"type": "image", "media_url": "https://example.com/\\ud800.jpg"}',
        '{"type": "\\udc00", "media_url": "https://example.com/a.jpg"}',
        '{"type": "image", "media_url": "https://example.com/a.jpg", "metadata": {"\\ud800": 1}}',
        '{"type": "image", "media_url": "https://example.com/a.jpg", "metadata": {"k": ["\\ud83d"]}}',
    ],
    ids=["media_url", "type", "metadata-key", "metadata-value"],
)
def test_lone_surrogates_are_refused(
    gateway_stack: GatewayStack, client: httpx.Client, account: tuple[str, str], body: str
) -> None:
    before = rows(gateway_stack, account[0])
    assert "surrogate" in refused(client, "/v1/create-detection-task", body)
    assert rows(gateway_stack, account[0]) == before


def test_a_surrogate_pair_is_one_character_and_accepted(client: httpx.Client) -> None:
    body = json.dumps({**TASK, "metadata": {"emoji": "\U0001f600"}}, ensure_ascii=True)
    assert "\\ud83d\\ude00" in body
    resp = client.post("/v1/create-detection-task", content=body)
    assert resp.status_code == 201, resp.text
    task = client.get(f"/v1/task/{resp.json()['task_id']}").json()
    assert task["metadata"] == {"emoji": "\U0001f600"}


@pytest.mark.parametrize("literal", ["1" * 5_000, "1" * 400, "-" + "9" * 5_000])
def test_huge_integer_literals_are_refused(client: httpx.Client, literal: str) -> None:
    refused(client, "/v1/create-detection-task", json.dumps(TASK)[:-1] + f', "top_k": {literal}}}')


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("media_url", "http://0177.0.0.1/a.jpg"),
        ("media_url", "http://2130706433/a.jpg"),
        ("media_url", "http://0x7f.1/a.jpg"),
        ("media_url", "http://127.1/a.jpg"),
        ("media_url", "https://example.com/a.jpg\r\nX-Injected: 1"),
        ("media_url", "https://example.com/a b.jpg"),
        ("media_url", "https://user:secret@example.com/a.jpg"),
        ("media_url", "ftp://example.com/a.jpg"),
        ("callback_url", "https://0177.0.0.1/cb"),
        ("callback_url", "https://hooks.example.com/cb\n"),
        ("callback_url", "https://user:pw@hooks.example.com/cb"),
    ],
)
def test_invalid_urls_are_refused_at_creation(
    gateway_stack: GatewayStack, client: httpx.Client, account: tuple[str, str], field: str, url: str
) -> None:
    before = rows(gateway_stack, account[0])
    message = refused(client, "/v1/create-detection-task", json.dumps({**TASK, field: url}))
    assert f"'{field}'" in message
    assert rows(gateway_stack, account[0]) == before


def test_a_nul_character_in_a_string_is_refused(
    gateway_stack: GatewayStack, client: httpx.Client, account: tuple[str, str]
) -> None:
    before = rows(gateway_stack, account[0])
    body = json.dumps({**TASK, "media_url": "https://example.com/a\u0000.jpg"})
    assert "NUL" in refused(client, "/v1/create-detection-task", body)
    assert "NUL" in refused(client, "/v1/library", json.dumps({"library_id": "a", "name": "x\u0000"}))
    assert rows(gateway_stack, account[0]) == before


@pytest.mark.parametrize("url", ["http://0177.0.0.1/a.jpg", "https://u:p@example.com/a.jpg", "https://e.com/\r\n"])
def test_invalid_urls_are_refused_by_enrolment_and_compare(client: httpx.Client, url: str) -> None:
    assert "'image_url'" in refused(client, "/v1/library/lib-1/face", json.dumps({**FACE, "image_url": url}))
    body = {"source_image_url": "https://example.com/a.jpg", "target_image_url": url}
    assert "'target_image_url'" in refused(client, "/v1/compare", json.dumps(body))


@pytest.mark.parametrize("value", [False, 0, "", {}, "age"])
def test_attributes_of_the_wrong_type_are_refused(client: httpx.Client, value: Any) -> None:
    assert "'attributes'" in refused(client, "/v1/create-detection-task", json.dumps({**TASK, "attributes": value}))


@pytest.mark.parametrize(("field", "value"), [("recognize", 1.0), ("recognize", True)])
def test_recognize_must_be_the_integer_0_or_1(client: httpx.Client, field: str, value: Any) -> None:
    assert f"'{field}'" in refused(client, "/v1/create-detection-task", json.dumps({**TASK, field: value}))


@pytest.mark.parametrize("name", [False, 0, []])
def test_a_key_name_of_the_wrong_type_is_refused(client: httpx.Client, name: Any) -> None:
    assert "'name'" in refused(client, "/v1/keys", json.dumps({"name": name}))


def test_a_task_stored_with_nan_metadata_before_the_fix_is_still_readable(
    gateway_stack: GatewayStack, client: httpx.Client, account: tuple[str, str]
) -> None:
    task_id = f"task_{uuid.uuid4().hex[:16]}"
    spec = {**TASK, "metadata_json": '{"x":NaN,"y":[Infinity,-Infinity],"z":1}'}

    async def insert() -> None:
        conn = await asyncpg.connect(gateway_stack.dsn)
        try:
            await conn.execute(
                """INSERT INTO tasks (task_id, account_id, type, status, spec, completed_at)
                   VALUES ($1, $2, 'image', 'cancelled', $3, now())""",
                task_id,
                account[0],
                json.dumps(spec),
            )
        finally:
            await conn.close()

    asyncio.run(insert())
    resp = client.get(f"/v1/task/{task_id}")
    assert resp.status_code == 200, resp.text
    assert resp.json()["metadata"] == {"x": None, "y": [None, None], "z": 1}
    page = client.get("/v1/tasks", params={"status": "cancelled", "limit": 100})
    assert page.status_code == 200, page.text
    assert any(t["task_id"] == task_id for t in page.json()["tasks"])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/task/task_%00"),
        ("DELETE", "/v1/library/%00"),
        ("GET", "/v1/library/lib/person/p%001"),
        ("GET", "/v1/tasks?cursor=%00"),
        ("GET", "/v1/libraries?cursor=a%00b"),
    ],
)
def test_a_nul_in_the_path_or_query_string_is_refused(client: httpx.Client, method: str, path: str) -> None:
    resp = client.request(method, path)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "invalid_request" and "NUL" in resp.json()["error"]["message"]
