"""The gRPC binding of A2A 1.0 (`lf.a2a.v1.A2AService`) on its own port.

An adapter at the edge onto the same `A2AService` and the same 1.0 methods the
JSON-RPC binding calls (`runtime.http.rpc_methods`): `service` maps the rpcs,
`codec` the wire shapes and errors, `bridge` hands each call from grpcio's threads
to trio, `serve` runs grpcio's server, `child` puts it in the server's tree. Needs
the `grpc` extra (grpcio, and the SDK's generated `a2a_pb2`); only `child` is
imported without it. May import actors/, protocol/, runtime.supervisor and
runtime.http's common, auth and rpc_methods modules.
"""
