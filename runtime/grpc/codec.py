"""The gRPC wire shapes of A2A 1.0: the spec's `lf.a2a.v1.A2AService` and its errors.

The messages are the generated classes of `a2a.proto` that the official SDK
ships (`a2a.types.a2a_pb2`); the method table is read from that service's
descriptor, so every rpc the proto declares is served, with its request and
response types and whether it streams. Our canonical models are ProtoJSON-shaped
(A2A 1.0's JSON *is* ProtoJSON), so a request is turned into the same dict a
JSON-RPC call carries as `params` (and checked by the same limits), and a result
is parsed from the same JSON the other bindings send: one translation, no second
model. Errors become a gRPC status with a `google.rpc.Status` in the
`grpc-status-details-bin` trailer carrying the `google.rpc.ErrorInfo` (spec §10.6),
as the SDK's client reads it.
"""

from __future__ import annotations

from typing import Any

import attrs
import grpc
from a2a.types import a2a_pb2
from google.protobuf import any_pb2, json_format, message_factory
from google.protobuf.message import Message as ProtoMessage
from google.rpc import error_details_pb2, status_pb2

from protocol.errors import ERROR_DOMAIN, A2AError

__all__ = [
    "SERVICE_NAME",
    "STATUS_DETAILS_KEY",
    "RpcShape",
    "grpc_status",
    "params_from_proto",
    "proto_from_json",
    "service_methods",
    "status_trailer",
]

SERVICE_NAME = "lf.a2a.v1.A2AService"
STATUS_DETAILS_KEY = "grpc-status-details-bin"


@attrs.frozen
class RpcShape:
    """One rpc of the service: its name (also the 1.0 JSON-RPC method name)."""

    name: str
    request: type[ProtoMessage]
    response: type[ProtoMessage]
    streaming: bool


def service_methods() -> dict[str, RpcShape]:
    """Every rpc of `lf.a2a.v1.A2AService`, from the generated descriptor."""
    service = a2a_pb2.DESCRIPTOR.services_by_name["A2AService"]
    return {
        m.name: RpcShape(
            name=m.name,
            request=message_factory.GetMessageClass(m.input_type),
            response=message_factory.GetMessageClass(m.output_type),
            streaming=m.server_streaming,
        )
        for m in service.methods
    }


def params_from_proto(request: ProtoMessage) -> dict[str, Any]:
    """The request as the ProtoJSON dict a JSON-RPC call would carry as `params`.

    Fields left at their proto3 defaults are absent, as a JSON client leaves
    them out; fields with presence (`historyLength`, ...) keep an explicit 0."""
    return json_format.MessageToDict(request, preserving_proto_field_name=False)


def proto_from_json(body: bytes, cls: type[ProtoMessage]) -> ProtoMessage:
    """A result rendered as 1.0 JSON by the shared methods, as the rpc's message.

    Members the proto does not know (the 0.3 fields the card carries for old
    clients) are dropped."""
    msg = cls()
    json_format.Parse(body, msg, ignore_unknown_fields=True)
    return msg


def grpc_status(err: A2AError) -> grpc.StatusCode:
    """The gRPC code of an error (spec §5.4's table, kept on each error class)."""
    return grpc.StatusCode[err.grpc_status]


def status_trailer(err: A2AError) -> tuple[tuple[str, bytes], ...]:
    """The `grpc-status-details-bin` trailer: a google.rpc.Status with the ErrorInfo.

    Its code and message are those of the call's status, as the SDK client checks."""
    info = error_details_pb2.ErrorInfo(
        reason=err.reason, domain=ERROR_DOMAIN,
        metadata={k: str(v) for k, v in err.metadata.items()},
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=grpc_status(err).value[0], message=err.message,
                               details=[detail])
    return ((STATUS_DETAILS_KEY, status.SerializeToString()),)
