"""Errors shared by every service, and how they cross process boundaries.

Exception tree::

    FacemintError                      code            HTTP  gRPC
    +-- InvalidRequest                 invalid_request 400   INVALID_ARGUMENT
    +-- InvalidMedia                   invalid_media   400   INVALID_ARGUMENT
    +-- Unauthorized                   unauthorized    401   UNAUTHENTICATED
    +-- Forbidden                      forbidden       403   PERMISSION_DENIED
    +-- NotFound                       not_found       404   NOT_FOUND
    +-- Conflict                       conflict        409   FAILED_PRECONDITION
    +-- PayloadTooLarge                payload_too_large 413 OUT_OF_RANGE
    +-- NoFacesDetected                no_faces_detected 422 FAILED_PRECONDITION
    +-- RateLimited                    rate_limited    429   RESOURCE_EXHAUSTED
    +-- InternalError                  internal_error  500   INTERNAL
    +-- ServiceUnavailable             service_unavailable 503 UNAVAILABLE

Inside the platform an error travels as a gRPC status whose trailing metadata carries the public ``code``
(key ``facemint-error-code``); :func:`from_rpc_error` rebuilds the same exception on the caller's side and the
gateway renders it in the public error envelope.
"""

from __future__ import annotations

from typing import ClassVar

import grpc

ERROR_CODE_METADATA_KEY = "facemint-error-code"
RETRY_AFTER_METADATA_KEY = "facemint-retry-after"


class FacemintError(Exception):
    """Base of every error with a public code."""

    code: ClassVar[str] = "internal_error"
    http_status: ClassVar[int] = 500
    grpc_status: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(FacemintError):
    """Malformed JSON, a missing or wrongly typed field, or a value out of range."""

    code = "invalid_request"
    http_status = 400
    grpc_status = grpc.StatusCode.INVALID_ARGUMENT


class InvalidMedia(FacemintError):
    """Media that cannot be fetched or decoded, or that exceeds a format limit."""

    code = "invalid_media"
    http_status = 400
    grpc_status = grpc.StatusCode.INVALID_ARGUMENT


class Unauthorized(FacemintError):
    """Missing or invalid credentials."""

    code = "unauthorized"
    http_status = 401
    grpc_status = grpc.StatusCode.UNAUTHENTICATED


class Forbidden(FacemintError):
    """The caller may not touch this resource."""

    code = "forbidden"
    http_status = 403
    grpc_status = grpc.StatusCode.PERMISSION_DENIED


class NotFound(FacemintError):
    """The task, library, person or face does not exist."""

    code = "not_found"
    http_status = 404
    grpc_status = grpc.StatusCode.NOT_FOUND


class Conflict(FacemintError):
    """The resource is in a state that forbids the operation."""

    code = "conflict"
    http_status = 409
    grpc_status = grpc.StatusCode.FAILED_PRECONDITION


class PayloadTooLarge(FacemintError):
    """Media bytes over the cap for their kind."""

    code = "payload_too_large"
    http_status = 413
    grpc_status = grpc.StatusCode.OUT_OF_RANGE


class NoFacesDetected(FacemintError):
    """No face met the thresholds."""

    code = "no_faces_detected"
    http_status = 422
    grpc_status = grpc.StatusCode.FAILED_PRECONDITION


class RateLimited(FacemintError):
    """Too many requests; ``retry_after``: seconds the client should wait (0: unknown), carried across gRPC in the
    ``facemint-retry-after`` trailing metadata and answered as ``Retry-After``."""

    code = "rate_limited"
    http_status = 429
    grpc_status = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, retry_after: int = 0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InternalError(FacemintError):
    """A transient failure inside the platform."""

    code = "internal_error"


class ServiceUnavailable(FacemintError):
    """A dependency is down or overloaded."""

    code = "service_unavailable"
    http_status = 503
    grpc_status = grpc.StatusCode.UNAVAILABLE


_BY_CODE: dict[str, type[FacemintError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        InvalidMedia,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        NoFacesDetected,
        RateLimited,
        InternalError,
        ServiceUnavailable,
    )
}

_BY_GRPC_STATUS: dict[grpc.StatusCode, type[FacemintError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
    grpc.StatusCode.UNAUTHENTICATED: Unauthorized,
    grpc.StatusCode.PERMISSION_DENIED: Forbidden,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: Conflict,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RateLimited,
    grpc.StatusCode.UNAVAILABLE: ServiceUnavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: ServiceUnavailable,
}


def error_class(code: str) -> type[FacemintError]:
    """Return the exception class of a public error code (InternalError when unknown)."""
    return _BY_CODE.get(code, InternalError)


def from_rpc_error(exc: grpc.aio.AioRpcError | grpc.RpcError) -> FacemintError:
    """Rebuild the FacemintError that a peer raised from its gRPC status and trailing metadata."""
    code, retry_after = "", ""
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    for key, value in trailing or ():
        text = value if isinstance(value, str) else value.decode()
        if key == ERROR_CODE_METADATA_KEY:
            code = text
        elif key == RETRY_AFTER_METADATA_KEY:
            retry_after = text
    status = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else None) or str(exc)
    cls = _BY_CODE.get(code) or _BY_GRPC_STATUS.get(status, InternalError)
    if cls is RateLimited:
        return RateLimited(details, int(retry_after) if retry_after.isdigit() else 0)
    return cls(details)
