"""Facemint's Python client (:class:`FacemintClient`, :class:`AdminClient`) and the ``facemint`` command line."""

from facemint_sdk.client import AdminClient, FacemintAPIError, FacemintClient, RateLimit

__all__ = ["AdminClient", "FacemintAPIError", "FacemintClient", "RateLimit"]
