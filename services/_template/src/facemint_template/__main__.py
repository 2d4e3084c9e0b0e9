"""Entry point ``facemint-template``: build the settings, then run until SIGTERM."""

from __future__ import annotations

from facemint_core.lifecycle import run_service
from facemint_core.settings import load_settings
from facemint_template.app import setup
from facemint_template.settings import TemplateSettings


def main() -> None:
    """Run the service; a bad setting stops start-up with exit status 2 and one line per problem."""
    settings = load_settings(TemplateSettings)
    run_service("template", settings, setup)


if __name__ == "__main__":
    main()
