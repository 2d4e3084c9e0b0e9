"""Settings of the template service, read from ``FACEMINT_TEMPLATE_*`` environment variables.

Nested groups use a double underscore (``FACEMINT_TEMPLATE_GRPC__PORT=50051``); the common groups (``http``,
``grpc``, ``log``, ``tracing``) come from :class:`facemint_core.settings.ServiceSettings`. A gRPC dependency is a
``<dep>_target`` field, set by the Helm chart as ``FACEMINT_<SVC>_<DEP>_TARGET=<release>-<dep>:50051``.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from facemint_core.settings import ServiceSettings


class TemplateSettings(ServiceSettings):
    """Everything the template service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="FACEMINT_TEMPLATE_", env_nested_delimiter="__", extra="ignore")

    inference_target: str = Field(default="", description="host:port of the inference service; empty: not used")
    work_concurrency: int = Field(default=4, ge=1, le=256, description="Requests handled at once")
