"""The HTTP face: the ASGI app, the JSON-RPC endpoint, the HTTP+JSON binding, SSE, the card,
auth, keep-alive, and the push sender. May import actors/ and protocol/; never runtime.link.
"""
