"""The server's end of the worker link: the endpoint, its WebSocket, HTTP and in-process
transports, and `mount_worker_link`. May import actors/, protocol/, runtime.supervisor and
runtime.http's common, auth and sse modules.
"""
