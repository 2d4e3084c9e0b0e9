"""Facemint's Python SDK: :class:`FacemintClient` (sync), :class:`AsyncFacemintClient` (asyncio), :class:`AdminClient`,
typed models (:mod:`facemint_sdk.models`), :func:`verify_webhook`, and the ``facemint`` command line."""

from facemint_sdk._core import FacemintAPIError, RateLimit, RetryPolicy
from facemint_sdk.aio import AsyncFacemintClient
from facemint_sdk.client import AdminClient, FacemintClient
from facemint_sdk.webhooks import WebhookVerificationError, sign_webhook, verify_webhook

__all__ = [
    "AdminClient",
    "AsyncFacemintClient",
    "FacemintAPIError",
    "FacemintClient",
    "RateLimit",
    "RetryPolicy",
    "WebhookVerificationError",
    "sign_webhook",
    "verify_webhook",
]
