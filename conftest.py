"""Root pytest configuration: fixtures that start real servers come from the local-platform package."""

pytest_plugins = ["facemint_local.pytest_plugin"]
