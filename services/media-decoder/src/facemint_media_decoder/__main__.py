"""Entry point: ``python -m facemint_media_decoder`` or ``facemint-media-decoder``."""

from __future__ import annotations

from facemint_core.lifecycle import ServiceRuntime, run_service
from facemint_core.settings import load_settings
from facemint_media_decoder.decode import configure_pillow_bomb_guard
from facemint_media_decoder.service import setup
from facemint_media_decoder.settings import MediaDecoderSettings


def main() -> None:
    """Load settings from the environment and run the service until SIGTERM/SIGINT."""
    settings = load_settings(MediaDecoderSettings)
    configure_pillow_bomb_guard()

    async def start(runtime: ServiceRuntime) -> None:
        await setup(runtime, settings)

    run_service("media-decoder", settings, start)


if __name__ == "__main__":
    main()
