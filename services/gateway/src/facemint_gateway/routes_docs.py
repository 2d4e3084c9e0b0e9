"""The API's reference: the OpenAPI 3.1 document (``/openapi.json``, generated from the contract's models) and its
reference page (``/docs``, Swagger UI served from this process)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from facemint_core.errors import NotFound
from facemint_gateway.contract.document import document

DOCS_PAGE = (Path(__file__).parent / "docs.html").read_text()
DOCS_SCRIPT = (Path(__file__).parent / "docs.js").read_text()


def _swagger_ui_assets() -> Path:
    """The static files of the installed ``swagger-ui-py`` package, found without importing it (its package
    imports web-framework glue that the gateway does not use)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed (make setup)")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


SWAGGER_UI_ASSETS = _swagger_ui_assets()
ASSET_TYPES = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}
"""The files of Swagger UI that /docs uses, and nothing else of the package."""


async def openapi_json(_: Request) -> Response:
    """GET /openapi.json: generated from the contract's models (:mod:`facemint_gateway.contract.document`)."""
    return JSONResponse(document())


async def docs_page(_: Request) -> Response:
    """GET /docs: the API reference (Swagger UI, served from this process: no CDN, works offline)."""
    return HTMLResponse(DOCS_PAGE)


async def docs_script(_: Request) -> Response:
    """GET /docs/facemint-docs.js: starts Swagger UI on /openapi.json."""
    return Response(DOCS_SCRIPT, media_type="text/javascript")


async def docs_asset(request: Request) -> Response:
    """GET /docs/assets/{name}: one of :data:`ASSET_TYPES`, cacheable for a day."""
    name = request.path_params["name"]
    if name not in ASSET_TYPES:
        raise NotFound(f"no documentation asset {name!r}")
    return FileResponse(
        SWAGGER_UI_ASSETS / name, media_type=ASSET_TYPES[name], headers={"Cache-Control": "public, max-age=86400"}
    )


def routes() -> list[BaseRoute]:
    """The documentation routes (no API key needed)."""
    return [
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs", docs_page, methods=["GET"]),
        Route("/docs/facemint-docs.js", docs_script, methods=["GET"]),
        Route("/docs/assets/{name}", docs_asset, methods=["GET"]),
    ]
