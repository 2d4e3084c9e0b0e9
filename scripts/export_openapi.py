"""Write the gateway's OpenAPI document, as ``GET /openapi.json`` serves it, to a file (``make sdk``).

The app is built from default settings and asked in process (no lifespan, no servers), so the document is exactly
the one the gateway serves, whichever way the gateway produces it.

    python scripts/export_openapi.py libs/facemint-js/openapi.json
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from facemint_gateway.app import create_app
from facemint_gateway.settings import GatewaySettings


async def document() -> dict[str, Any]:
    """The document the gateway serves."""
    transport = httpx.ASGITransport(app=create_app(GatewaySettings()))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.get("/openapi.json")
    response.raise_for_status()
    doc: dict[str, Any] = response.json()
    return doc


def main() -> int:
    """Write the document to the path given (stdout without one)."""
    text = json.dumps(asyncio.run(document()), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
