"""A2A and JSON-RPC errors as exceptions, with every wire mapping they need.

Each error knows its JSON-RPC code, its ErrorInfo reason, its google.rpc status
name and the HTTP status of the HTTP+JSON binding (spec section 5.4), so the edges
render it for whichever binding and generation asked.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "A2AError",
    "ContentTypeNotSupportedError",
    "ExtendedAgentCardNotConfiguredError",
    "ExtensionSupportRequiredError",
    "InternalError",
    "InvalidAgentResponseError",
    "InvalidParamsError",
    "InvalidRequestError",
    "MethodNotFoundError",
    "ParseError",
    "PushNotificationNotSupportedError",
    "TaskNotCancelableError",
    "TaskNotFoundError",
    "UnsupportedOperationError",
    "VersionNotSupportedError",
    "ERROR_DOMAIN",
    "error_for_code",
]

ERROR_DOMAIN = "a2a-protocol.org"


class A2AError(Exception):
    """Base of every error the protocol can put on the wire."""

    code: ClassVar[int] = -32603
    reason: ClassVar[str] = "INTERNAL"
    grpc_status: ClassVar[str] = "INTERNAL"
    http_status: ClassVar[int] = 500
    default_message: ClassVar[str] = "Internal error"

    def __init__(self, message: str | None = None, *, metadata: dict[str, str] | None = None,
                 data: Any = None) -> None:
        self.message = message or self.default_message
        self.metadata = dict(metadata or {})
        self.data = data
        super().__init__(self.message)

    def error_info(self) -> dict[str, Any]:
        """The google.rpc.ErrorInfo object describing this error."""
        info: dict[str, Any] = {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": self.reason,
            "domain": ERROR_DOMAIN,
        }
        if self.metadata:
            info["metadata"] = {k: str(v) for k, v in self.metadata.items()}
        return info

    def to_jsonrpc(self, *, version: str) -> dict[str, Any]:
        """The JSON-RPC `error` member; 1.0 carries the ErrorInfo array in `data`."""
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if version == "1.0":
            err["data"] = [self.error_info()]
        elif self.data is not None:
            err["data"] = self.data
        return err

    def to_http(self) -> tuple[int, dict[str, Any]]:
        """HTTP status and google.rpc.Status body for the HTTP+JSON binding."""
        body = {
            "error": {
                "code": self.http_status,
                "status": self.grpc_status,
                "message": self.message,
                "details": [self.error_info()],
            }
        }
        return self.http_status, body


class ParseError(A2AError):
    code = -32700
    reason = "PARSE_ERROR"
    grpc_status = "INVALID_ARGUMENT"
    http_status = 400
    default_message = "Invalid JSON payload"


class InvalidRequestError(A2AError):
    code = -32600
    reason = "INVALID_REQUEST"
    grpc_status = "INVALID_ARGUMENT"
    http_status = 400
    default_message = "Request payload validation error"


class MethodNotFoundError(A2AError):
    code = -32601
    reason = "METHOD_NOT_FOUND"
    grpc_status = "UNIMPLEMENTED"
    http_status = 404
    default_message = "Method not found"


class InvalidParamsError(A2AError):
    code = -32602
    reason = "INVALID_PARAMS"
    grpc_status = "INVALID_ARGUMENT"
    http_status = 400
    default_message = "Invalid parameters"


class InternalError(A2AError):
    code = -32603
    reason = "INTERNAL"
    grpc_status = "INTERNAL"
    http_status = 500
    default_message = "Internal error"


class TaskNotFoundError(A2AError):
    code = -32001
    reason = "TASK_NOT_FOUND"
    grpc_status = "NOT_FOUND"
    http_status = 404
    default_message = "Task not found"


class TaskNotCancelableError(A2AError):
    code = -32002
    reason = "TASK_NOT_CANCELABLE"
    grpc_status = "FAILED_PRECONDITION"
    http_status = 400
    default_message = "Task cannot be canceled"


class PushNotificationNotSupportedError(A2AError):
    code = -32003
    reason = "PUSH_NOTIFICATION_NOT_SUPPORTED"
    grpc_status = "FAILED_PRECONDITION"
    http_status = 400
    default_message = "Push notifications are not supported"


class UnsupportedOperationError(A2AError):
    code = -32004
    reason = "UNSUPPORTED_OPERATION"
    grpc_status = "FAILED_PRECONDITION"
    http_status = 400
    default_message = "This operation is not supported"


class ContentTypeNotSupportedError(A2AError):
    code = -32005
    reason = "CONTENT_TYPE_NOT_SUPPORTED"
    grpc_status = "INVALID_ARGUMENT"
    http_status = 400
    default_message = "Incompatible content types"


class InvalidAgentResponseError(A2AError):
    code = -32006
    reason = "INVALID_AGENT_RESPONSE"
    grpc_status = "INTERNAL"
    http_status = 500
    default_message = "Invalid agent response"


class ExtendedAgentCardNotConfiguredError(A2AError):
    code = -32007
    reason = "EXTENDED_AGENT_CARD_NOT_CONFIGURED"
    grpc_status = "FAILED_PRECONDITION"
    http_status = 400
    default_message = "Extended agent card is not configured"


class ExtensionSupportRequiredError(A2AError):
    code = -32008
    reason = "EXTENSION_SUPPORT_REQUIRED"
    grpc_status = "FAILED_PRECONDITION"
    http_status = 400
    default_message = "A required extension is not supported by the client"


class VersionNotSupportedError(A2AError):
    code = -32009
    reason = "VERSION_NOT_SUPPORTED"
    grpc_status = "FAILED_PRECONDITION"
    http_status = 400
    default_message = "A2A version not supported"


_BY_CODE: dict[int, type[A2AError]] = {
    cls.code: cls
    for cls in (
        ParseError, InvalidRequestError, MethodNotFoundError, InvalidParamsError, InternalError,
        TaskNotFoundError, TaskNotCancelableError, PushNotificationNotSupportedError,
        UnsupportedOperationError, ContentTypeNotSupportedError, InvalidAgentResponseError,
        ExtendedAgentCardNotConfiguredError, ExtensionSupportRequiredError,
        VersionNotSupportedError,
    )
}


def error_for_code(code: int, message: str | None = None) -> A2AError:
    """Rebuild an error received from a peer (client side)."""
    cls = _BY_CODE.get(code, A2AError)
    err = cls(message)
    if cls is A2AError:
        err.code = code  # type: ignore[misc]
    return err
