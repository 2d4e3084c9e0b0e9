"""Entry point: ``facemint-gateway`` (or ``python -m facemint_gateway``)."""

from __future__ import annotations

from typing import Any

from facemint_core.lifecycle import ServiceRuntime, run_service
from facemint_core.settings import load_settings
from facemint_gateway.app import create_app
from facemint_gateway.settings import GatewaySettings


def main() -> None:
    """Run the gateway until SIGTERM."""
    settings = load_settings(GatewaySettings)

    async def setup(runtime: ServiceRuntime) -> None:
        return None

    def http_app(runtime: ServiceRuntime) -> Any:
        return create_app(settings, runtime)

    run_service("gateway", settings, setup, http_app)


if __name__ == "__main__":
    main()
