"""The A2A server, wired and embeddable: `open_server(config)`.

The server is a tree of actors under one nursery: the task store's committer,
the dispatcher (queue, leases, reaper), the local workers, push delivery and the
HTTP listener (quart-trio on hypercorn's
trio worker). `open_server` starts them in dependency order, each reporting
readiness through `nursery.start` (the dispatcher re-queues what a previous run
left unfinished), and hands back the bound address. Leaving the block stops everything.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import attrs
import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.config import Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app

from actors.a2a_service import A2AService, ServiceSettings
from actors.agent import AgentSpec
from actors.dispatcher import Dispatcher
from actors.local_worker import LocalWorker
from actors.push_delivery import PushDelivery
from actors.store_port import TaskBackend
from actors.task_store import ServerTaskStore
from runtime.agents import echo_agent
from runtime.auth import TokenAuth
from runtime.card import build_card
from runtime.http_app import AppState, create_asgi
from runtime.http_coalesce import install as install_coalescing
from runtime.push_sender import HttpxPushSender
from runtime.store import open_memory_backend, open_sqlite_backend

__all__ = ["RunningServer", "ServerConfig", "open_server"]

log = logging.getLogger(__name__)


@attrs.frozen
class ServerConfig:
    """Everything `python -m runtime server` can be told; defaults serve out of the box."""

    host: str = "127.0.0.1"
    port: int = 8000
    """0 picks a free port (tests, embedding)."""
    public_url: str | None = None
    """Base URL published in the agent card; default http://host:port."""
    store: Literal["sqlite", "memory"] = "sqlite"
    data_dir: Path = Path("data")
    sqlite_synchronous: Literal["normal", "full"] = "normal"
    tokens: dict[str, str] = attrs.field(factory=dict)
    """{token: principal}; empty means auth is off."""
    agent: AgentSpec = echo_agent
    push_notifications: bool = True
    allow_private_push_urls: bool = False
    max_body: int = 10 * 1024 * 1024
    keepalive: float = 15.0
    max_concurrent_tasks: int = 256
    """Agent runs in parallel per local worker."""
    local_workers: int = 1
    """Workers inside the server process running `agent`; 0 for remote-only deployments."""
    lease_ttl: float = 30.0
    """How long a claimed task stays with its worker without a heartbeat."""
    reap_interval: float = 5.0
    """How often expired leases are looked for."""
    max_attempts: int = 3
    """Claims a task gets before a lost lease fails it."""
    cancel_timeout: float = 10.0
    push_timeout: float = 15.0
    push_max_attempts: int = 8


@attrs.frozen
class RunningServer:
    """What `open_server` hands back."""

    url: str
    host: str
    port: int
    service: A2AService
    store: ServerTaskStore
    dispatcher: Dispatcher
    workers: tuple[LocalWorker, ...]
    push: PushDelivery


@contextlib.asynccontextmanager
async def open_backend(config: ServerConfig) -> AsyncIterator[TaskBackend]:
    if config.store == "memory":
        async with open_memory_backend() as backend:
            yield backend
    elif config.store == "sqlite":
        path = Path(config.data_dir) / "tasks.sqlite3"
        async with open_sqlite_backend(path, synchronous=config.sqlite_synchronous) as backend:
            yield backend
    else:
        raise ValueError(f"unknown store {config.store!r}: use 'sqlite' or 'memory'")


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _hypercorn_config() -> HyperConfig:
    install_coalescing()
    hc = HyperConfig()
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.keep_alive_timeout = 75
    hc.graceful_timeout = 3
    hc.backlog = 1024
    return hc


@contextlib.asynccontextmanager
async def open_server(config: ServerConfig = ServerConfig()) -> AsyncIterator[RunningServer]:
    """Run the whole server inside the caller's trio program until the block exits."""
    sock = _listen(config.host, config.port)
    host, port = sock.getsockname()[:2]
    url_host = f"[{host}]" if ":" in host else host
    base_url = (config.public_url or f"http://{url_host}:{port}").rstrip("/")
    auth = TokenAuth(config.tokens)
    card = build_card(config.agent, base_url, push_notifications=config.push_notifications,
                      auth_schemes=("bearer",) if auth.enabled else (),
                      extended_card=auth.enabled)
    try:
        async with open_backend(config) as backend, trio.open_nursery() as nursery:
            store = ServerTaskStore(backend)
            await nursery.start(store.run)
            dispatcher = Dispatcher(store, lease_ttl=config.lease_ttl,
                                    reap_interval=config.reap_interval,
                                    max_attempts=config.max_attempts)
            await nursery.start(dispatcher.run)
            workers = tuple(
                LocalWorker(dispatcher, config.agent, max_concurrent=config.max_concurrent_tasks)
                for _ in range(config.local_workers)
            )
            for worker in workers:
                await nursery.start(worker.run)
            sender = HttpxPushSender(timeout=config.push_timeout,
                                     allow_private=config.allow_private_push_urls)
            push = PushDelivery(store, sender, max_attempts=config.push_max_attempts)
            await nursery.start(push.run)
            settings = ServiceSettings(
                push_notifications=config.push_notifications,
                allow_private_push_urls=config.allow_private_push_urls,
                cancel_timeout=config.cancel_timeout,
                keepalive=config.keepalive,
            )
            service = A2AService(store, dispatcher, push=push, settings=settings)
            state = AppState(service=service, card=card, auth=auth,
                             extended_card=card.data if auth.enabled else None,
                             max_body=config.max_body)
            app = create_asgi(state)
            hc = _hypercorn_config()
            sockets = Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])
            await nursery.start(
                lambda task_status: worker_serve(
                    wrap_app(app, hc.wsgi_max_body_size, "asgi"), hc, sockets=sockets,
                    task_status=task_status,
                )
            )
            log.info("server listening", extra={"url": base_url, "store": config.store})
            yield RunningServer(url=base_url, host=host, port=port, service=service, store=store,
                                dispatcher=dispatcher, workers=workers, push=push)
            nursery.cancel_scope.cancel()
    finally:
        sock.close()
