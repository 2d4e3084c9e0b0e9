"""The dashboard's files: served from memory with a strict Content-Security-Policy, nothing else reachable."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from facemint_gateway.app import create_app
from facemint_gateway.dashboard import ASSETS
from facemint_gateway.settings import GatewaySettings


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """The app in process (no lifespan needed: the dashboard's files do not touch the database)."""
    transport = httpx.ASGITransport(app=create_app(GatewaySettings()))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield client


async def test_dashboard_redirects_to_its_page(client: httpx.AsyncClient) -> None:
    resp = await client.get("/dashboard")
    assert resp.status_code == 308 and resp.headers["location"] == "/dashboard/"


async def test_page_and_modules_are_served_with_security_headers(client: httpx.AsyncClient) -> None:
    page = await client.get("/dashboard/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    referenced = set(re.findall(r'(?:src|href)="([\w.]+)"', page.text))
    assert referenced == {"style.css", "app.js"}
    for name in ASSETS:
        resp = await client.get(f"/dashboard/{name}")
        assert resp.status_code == 200 and resp.headers["content-type"] == ASSETS[name]
    imports = re.findall(r'from "\./([\w.]+)"', (await client.get("/dashboard/app.js")).text)
    assert set(imports) <= set(ASSETS) and imports


@pytest.mark.parametrize("name", ["__init__.py", "missing.js", "..%2Fauth.py", "%2E%2E/settings.py"])
async def test_only_listed_files_are_served(client: httpx.AsyncClient, name: str) -> None:
    resp = await client.get(f"/dashboard/{name}")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"


def test_the_page_never_renders_api_data_as_html() -> None:
    from importlib import resources

    for name in ("app.js", "api.js", "overlay.js"):
        source = (resources.files("facemint_gateway.dashboard") / name).read_text()
        assert "innerHTML" not in source and "insertAdjacentHTML" not in source and "eval(" not in source
