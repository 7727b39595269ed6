"""The errors of the security model: refused for lack of permission, or over a limit.

Kept apart from `protocol.errors` (the A2A-defined errors); codes in -32040..-32049
are this runtime's, outside the ranges A2A defines.
"""

from __future__ import annotations

import math

from protocol.errors import A2AError

__all__ = ["PermissionDeniedError", "RateLimitedError", "SignatureRequiredError",
           "TenantMismatchError", "UnauthenticatedError"]


class PermissionDeniedError(A2AError):
    """The caller's roles do not allow the operation (HTTP 403)."""

    code = -32040
    reason = "PERMISSION_DENIED"
    grpc_status = "PERMISSION_DENIED"
    http_status = 403
    default_message = "permission denied"


class TenantMismatchError(A2AError):
    """The request names a tenant other than the caller's (HTTP 403)."""

    code = -32041
    reason = "TENANT_MISMATCH"
    grpc_status = "PERMISSION_DENIED"
    http_status = 403
    default_message = "the request's tenant is not the caller's tenant"


class RateLimitedError(A2AError):
    """Over the caller's request rate (HTTP 429 with Retry-After)."""

    code = -32042
    reason = "RATE_LIMITED"
    grpc_status = "RESOURCE_EXHAUSTED"
    http_status = 429
    default_message = "rate limit exceeded"

    def __init__(self, message: str | None = None, *, retry_after: float = 1.0) -> None:
        self.retry_after = retry_after
        self.retry_seconds = max(1, math.ceil(retry_after))
        super().__init__(message, metadata={"retryAfterSeconds": str(self.retry_seconds)})


class SignatureRequiredError(A2AError):
    """The caller's requests must be signed with its own key, and this one is not (401)."""

    code = -32044
    reason = "SIGNATURE_REQUIRED"
    grpc_status = "UNAUTHENTICATED"
    http_status = 401
    default_message = "this caller's requests must be signed with its key"


class UnauthenticatedError(A2AError):
    """No valid credential (HTTP 401): what a binding without its own 401 answers
    (gRPC's UNAUTHENTICATED, the token service's -32043); never says which check failed."""

    code = -32043
    reason = "UNAUTHENTICATED"
    grpc_status = "UNAUTHENTICATED"
    http_status = 401
    default_message = "the credential is not valid"
