"""The OpenAPI document, generated from the contract's models, covers every public route the app serves with its
statuses, headers and examples, and the examples are valid instances of the models."""

from __future__ import annotations

import re

import httpx

from facemint_gateway.app import create_app
from facemint_gateway.contract.base import parse
from facemint_gateway.contract.document import OPERATIONS, document
from facemint_gateway.contract.tasks import Task, TaskEvent, TaskResult
from facemint_gateway.settings import GatewaySettings


def test_every_v1_route_is_documented() -> None:
    app = create_app(GatewaySettings())
    doc = document()
    assert doc["openapi"] == "3.1.0"
    served = {
        (method.lower(), route.path)
        for route in app.routes
        if getattr(route, "path", "").startswith("/v1/")
        for method in (getattr(route, "methods", None) or set()) - {"HEAD"}
    }
    documented = {(method, path) for path, item in doc["paths"].items() for method in item}
    assert served - documented == set(), "routes the document lacks"
    assert documented - served == set(), "documented operations no route serves"


def test_every_reference_resolves() -> None:
    doc = document()

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(doc):
        _, section, kind, name = ref.split("/")
        assert name in doc[section][kind], ref


def test_every_operation_documents_its_headers_statuses_and_idempotency() -> None:
    doc = document()
    responses = doc["components"]["responses"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            for status, response in op["responses"].items():
                if "$ref" in response:
                    response = responses[response["$ref"].rsplit("/", 1)[1]]
                headers = set(response.get("headers", {}))
                assert "x-request-id" in headers, (where, status)
                if status != "401":
                    assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= headers, where
                if status in ("429", "503"):
                    assert "Retry-After" in headers, (where, status)
                if status == "201":
                    assert "Location" in headers, where
            assert {"429", "503"} <= set(op["responses"]), where
            names = {p["name"] for p in op.get("parameters", [])}
            assert ("Idempotency-Key" in names) == (method == "post"), where
    assert "201" in doc["paths"]["/v1/keys/{key_id}/rotate"]["post"]["responses"]
    assert "404" in doc["paths"]["/v1/create-detection-task"]["post"]["responses"]
    schemas = doc["components"]["schemas"]
    task = schemas["Task"]["properties"]
    assert {"estimated_seconds", "result_summary", "result"} <= set(task) and "metadata" in schemas["TaskResult"][
        "properties"
    ]
    assert "estimated_seconds" in schemas["TaskCreated"]["required"]


def test_no_schema_is_left_untyped() -> None:
    schemas = document()["components"]["schemas"]
    untyped = [
        name for name, schema in schemas.items() if schema.get("type") == "object" and not schema.get("properties")
    ]
    assert untyped == []
    for op in OPERATIONS:  # every answer and body is a named, typed schema
        assert op.reply.__name__ in schemas and (op.body is None or op.body.__name__ in schemas), op.path


def test_every_operation_has_examples_and_they_are_valid() -> None:
    doc = document()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            success = next(r for s, r in op["responses"].items() if s.startswith("2"))
            assert "example" in success["content"]["application/json"], (method, path)
            if "requestBody" in op:
                assert "example" in op["requestBody"]["content"]["application/json"], (method, path)
    for op in OPERATIONS:
        op.reply.model_validate(op.reply.examples[0])
        if op.body is not None:
            parse(op.body, op.body.examples[0], {"metadata_max_bytes": 2048})
    for task in (*Task.examples, TaskEvent.examples[0]["result"]):
        TaskResult.model_validate(task["result"])
    TaskEvent.model_validate(TaskEvent.examples[0])


def test_the_webhook_callback_is_documented_with_its_signature() -> None:
    hook = document()["webhooks"]["task.completed"]["post"]
    headers = {p["name"] for p in hook["parameters"]}
    assert {"X-Facemint-Event", "X-Facemint-Timestamp", "X-Facemint-Signature", "X-Facemint-Delivery"} <= headers
    assert 'timestamp + "." + raw_body' in hook["description"]
    ref = hook["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = document()["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(body["required"]) == {
        "event", "task_id", "status", "result"
    }  # fmt: skip


async def test_docs_is_swagger_ui_served_offline_from_the_gateway() -> None:
    transport = httpx.ASGITransport(app=create_app(GatewaySettings()))  # no lifespan: the docs need no services
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        page = await client.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert not re.search(r"(src|href)=\"(https?:)?//", page.text), "no asset from another host"
        for path in re.findall(r"(?:src|href)=\"(/docs/[^\"]+)\"", page.text):
            asset = await client.get(path)
            assert asset.status_code == 200 and len(asset.content) > 0, path
        bundle = (await client.get("/docs/assets/swagger-ui-bundle.js")).text
        assert "SwaggerUIBundle" in bundle and re.search(r'"5\.\d+\.\d+"', bundle), "Swagger UI 5 reads OpenAPI 3.1"
        assert 'url: "/openapi.json"' in (await client.get("/docs/facemint-docs.js")).text
        assert (await client.get("/docs/assets/swagger-editor-bundle.js")).status_code == 404
