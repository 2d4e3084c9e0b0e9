"""The OpenAPI document covers every public route the app serves."""

from __future__ import annotations

from facemint_gateway.app import create_app
from facemint_gateway.openapi import EXTRA_PATHS, document
from facemint_gateway.settings import GatewaySettings


def test_every_v1_route_is_documented() -> None:
    app = create_app(GatewaySettings())
    doc = document(EXTRA_PATHS)
    assert doc["openapi"] == "3.1.0"
    missing = []
    for route in app.routes:
        path, methods = getattr(route, "path", ""), getattr(route, "methods", None) or set()
        if not path.startswith("/v1/"):
            continue
        for method in methods - {"HEAD"}:
            if method.lower() not in doc["paths"].get(path, {}):
                missing.append(f"{method} {path}")
    assert missing == []


def test_every_reference_resolves() -> None:
    doc = document(EXTRA_PATHS)

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
