"""The account dashboard at ``/dashboard``: plain HTML, CSS and ES modules, no build step.

The page signs in with an API key (kept in the tab's ``sessionStorage`` only) and calls the public ``/v1`` API
with it: usage against the plan, key management, recent tasks, new tasks (signed upload or media URL) and a task
result drawn over its image or video frame. Only the files listed in :data:`ASSETS` are served, from memory,
with a strict Content-Security-Policy (scripts from this origin only, nothing inline).
"""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from facemint_core.errors import NotFound

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "overlay.js": "text/javascript; charset=utf-8",
}

# Media (and presigned upload targets) live on other origins: images, video and PUT uploads may go anywhere;
# scripts, styles and everything else only come from the gateway itself.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src * data: blob:; media-src * blob:; "
        "connect-src 'self' http: https:; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _load() -> dict[str, bytes]:
    package = resources.files(__name__)
    return {name: (package / name).read_bytes() for name in ASSETS}


_FILES = _load()


async def asset(request: Request) -> Response:
    """GET /dashboard/{name}: one of the dashboard's files."""
    name = request.path_params.get("name") or "index.html"
    if name not in ASSETS:
        raise NotFound(f"no dashboard file {name}")
    return Response(_FILES[name], media_type=ASSETS[name], headers=SECURITY_HEADERS)


async def to_index(_: Request) -> Response:
    """GET /dashboard: redirect to the page, so that relative module paths resolve."""
    return RedirectResponse("/dashboard/", status_code=308)


def routes() -> list[BaseRoute]:
    """The dashboard routes."""
    return [
        Route("/dashboard", to_index, methods=["GET"]),
        Route("/dashboard/", asset, methods=["GET"]),
        Route("/dashboard/{name}", asset, methods=["GET"]),
    ]
