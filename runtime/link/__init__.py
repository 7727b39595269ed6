"""The server's end of the worker link: the endpoint, its WebSocket, HTTP and in-process
transports, and `mount_worker_link`. May import actors/, protocol/ and runtime.http.common.
"""
