"""The A2A server, wired and embeddable: `open_server(config)`.

The server is a tree of actors under one supervisor (rest_for_one): the task
store's committer, the dispatcher (queue, leases, reaper), the local workers,
push delivery and the HTTP listener (quart-trio on hypercorn's
trio worker). `open_server` starts them in dependency order, each reporting
readiness through `nursery.start` (the dispatcher re-queues what a previous run
left unfinished), and hands back the bound address. Leaving the block stops everything,
gracefully: the dispatcher drains (no offers, no claims); new client requests get 503
and those in flight get `shutdown_grace` to finish (`runtime.http.grace`: then streams
end with a final notice, blocking sends answer with the task as it stands); the
embedded workers stop and their tasks are queued again at once (for the other replicas
on a shared database),
remote workers are told to move to another replica (``goaway``) and given
`handover_timeout` to do so, then the tree stops. The server logs one line when it stops.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import socket
import uuid
from collections.abc import AsyncIterator, Sequence

import attrs
import trio

from actors.a2a_service import A2AService, ServiceSettings
from actors.dispatcher import Dispatcher
from actors.push_delivery import PushDelivery
from actors.release import CallRelease
from actors.task_store import ServerTaskStore
from actors.worker import Backoff, OutputConfig, SessionConfig
from protocol.models import AgentSkill
from runtime.admin import mount_admin
from runtime.grpc.child import GrpcChild
from runtime.http.app import create_asgi
from runtime.http.auth import TokenAuth
from runtime.http.card import CardDocument, LiveCard, build_card
from runtime.http.common import AppState, ASGIApp
from runtime.http.grace import GracefulCalls
from runtime.http.listener import AcceptMonitor, AcceptStatistics
from runtime.http.listener import listen_socket as _listen  # (tests import it from here)
from runtime.http.mount import normalize_base_path
from runtime.http.push_sender import HttpxPushSender
from runtime.http.serve import serve_asgi
from runtime.link.endpoint import WorkerLinkEndpoint
from runtime.link.handover import REASON as HANDOVER_REASON
from runtime.link.handover import LocalStops, hand_over
from runtime.link.local import open_in_process_link
from runtime.link.mount import mount_worker_link
from runtime.observe import ServerObservability
from runtime.security import link_closed, open_security, worker_link_refusal
from runtime.server_config import ServerConfig
from runtime.store.choose import open_backend
from runtime.supervisor import ChildSpec, Supervisor, unwrap_single
from runtime.worker import RunningWorker, WorkerConfig, open_worker

__all__ = ["RunningServer", "ServerConfig", "ServerStatistics", "open_server",
           "worker_link_refusal"]

log = logging.getLogger(__name__)

@attrs.frozen
class ServerStatistics:
    """What a readiness check looks at, from `RunningServer.statistics()`."""

    accept: AcceptStatistics
    """The HTTP listener's accept loop: `fd_exhausted` while it cannot take
    connections for lack of file descriptors."""


@attrs.frozen
class RunningServer:
    """What `open_server` hands back."""

    url: str
    host: str
    port: int
    service: A2AService
    store: ServerTaskStore
    dispatcher: Dispatcher
    workers: list[RunningWorker]
    """The embedded workers (`local_workers`), current ones: a restart replaces one."""
    push: PushDelivery
    supervisor: Supervisor
    accept: AcceptMonitor = attrs.field(factory=AcceptMonitor, repr=False)
    grpc: GrpcChild | None = attrs.field(default=None, repr=False)
    """The gRPC binding (`grpc.port`, `grpc.monitor.statistics()`) when it is on."""
    calls: GracefulCalls | None = attrs.field(default=None, repr=False)

    def hurry(self) -> None:
        """Cut a graceful stop's `shutdown_grace` short (a second SIGTERM)."""
        if self.calls is not None:
            self.calls.hurry()

    async def hurry_on(self, signals: AsyncIterator[object]) -> None:
        """`hurry()` on each of `signals` (the CLI's signals after the first)."""
        async for _ in signals:
            self.hurry()

    def statistics(self) -> ServerStatistics:
        return ServerStatistics(accept=self.accept.statistics())


async def _run_local_worker(config: ServerConfig, endpoint: WorkerLinkEndpoint,
                            workers: list[RunningWorker], stopping: LocalStops,
                            obs: ServerObservability, index: int, *,
                            task_status: trio.TaskStatus[None]) -> None:
    """One embedded worker: `open_worker` over the in-process link, ready once registered.
    On a graceful stop it stops its sessions (the server then queues their tasks again)
    and waits for the tree to end it."""
    async with open_worker(
        "in-process", token=None, agent=config.agent, concurrency=config.max_concurrent_tasks,
        name=f"local-{index}", worker_id=f"local-{index}-{uuid.uuid4().hex[:8]}",
        connect=lambda: open_in_process_link(endpoint, durable_acks=endpoint.store.shared,
                                             in_process=True),
        # No first-frame linger: with no network to save a round trip on, `working`
        # shows the moment the agent starts.
        config=WorkerConfig(reconnect=Backoff(base=0.05, max=1.0), sessions=obs.sessions(
            SessionConfig(output=OutputConfig(first_frame_linger=0)))),
    ) as worker:
        if index < len(workers):
            workers[index] = worker
        else:
            workers.append(worker)
        await worker.wait_registered()
        task_status.started()
        await stopping.requested.wait()
    stopping.one_stopped()
    await trio.sleep_forever()  # permanent: returning would restart it


@contextlib.asynccontextmanager
async def open_server(config: ServerConfig = ServerConfig()) -> AsyncIterator[RunningServer]:
    """Run the whole server inside the caller's trio program until the block exits.

    Raises `runtime.supervisor.SupervisorGaveUp` if the server's tree gives up
    (more than `max_restarts` restarts in `restart_window`); an exception raised in
    the block comes out as itself. Raises ValueError, before listening, for a worker
    link that would be open to anyone under client auth (`worker_link_refusal`), or
    for a `base_path` that is no path."""
    refusal = worker_link_refusal(config)
    if refusal is not None:
        raise ValueError(refusal)
    base_path = normalize_base_path(config.base_path)  # ValueError for a bad one
    sock = _listen(config.host, config.port)
    host, port = sock.getsockname()[:2]
    url_host = f"[{host}]" if ":" in host else host
    base_url = (config.public_url or f"http://{url_host}:{port}").rstrip("/")
    card_agent = config.agent if config.local_workers > 0 else None
    replica_id = config.replica_id or f"{socket.gethostname()}:{port}"
    try:
        grpc = None if config.grpc_port is None else GrpcChild(
            config.grpc_host or config.host, config.grpc_port, max_calls=config.grpc_max_calls,
            max_message=config.max_body, keepalive=config.keepalive, base_url=base_url)
    except BaseException:
        sock.close()
        raise

    def render_card(skills: Sequence[AgentSkill]) -> CardDocument:
        return secured.card(build_card(
            base_url + base_path, settings=config.card, agent=card_agent, skills=skills,
            push_notifications=config.push_notifications, grpc_url=grpc and grpc.url,
            auth_schemes=secured.auth_schemes, extended_card=secured.enabled))

    listening = [sock]
    outcome: dict[str, object] = {"graceful": False}
    accept = AcceptMonitor()  # one for the server's life: the listener may restart
    obs = ServerObservability(config.tracer_provider, access_log=config.access_log)
    if grpc is not None and obs.tracing is not None:
        grpc.request_span = obs.tracing.request

    async def serve_http(app: ASGIApp, *, task_status: trio.TaskStatus[None]) -> None:
        # The first start serves the socket bound above; a restart binds it again.
        current = listening.pop() if listening else _listen(host, port)
        try:
            await serve_asgi(app, current, header_timeout=config.header_timeout,
                             accept=accept, task_status=task_status)
        finally:
            current.close()

    try:
        # One failure, one exception: the tree giving up (SupervisorGaveUp) or what the
        # caller's block raised, not a group the caller has to take apart.
        with unwrap_single():
            async with open_backend(config) as backend, \
                    open_security(config, backend) as secured, \
                    trio.open_nursery() as nursery:
                store = ServerTaskStore(backend, poll_interval=config.store_poll_interval,
                                        **obs.store_ports())
                dispatcher = Dispatcher(store, lease_ttl=config.lease_ttl,
                                        reap_interval=config.reap_interval,
                                        max_attempts=config.max_attempts,
                                        max_output_bytes=config.max_output_bytes,
                                        rescan_interval=config.queue_rescan_interval,
                                        replica_id=replica_id)
                worker_auth = TokenAuth(config.worker_tokens)
                endpoint = WorkerLinkEndpoint(dispatcher, store, worker_auth=worker_auth,
                                              client_auth=secured.token_auth,
                                              remote_open=not link_closed(config),
                                              identities=secured.worker_identities,
                                              signing=config.security.request_signing)
                workers: list[RunningWorker] = []
                stopping = LocalStops()
                sender = HttpxPushSender(timeout=config.push_timeout,
                                         allow_private=config.allow_private_push_urls)
                push = PushDelivery(store, sender, max_attempts=config.push_max_attempts,
                                    replica_id=replica_id, claim_ttl=config.push_lease_ttl)
                settings = ServiceSettings(
                    push_notifications=config.push_notifications, keepalive=config.keepalive,
                    allow_private_push_urls=config.allow_private_push_urls,
                    cancel_timeout=config.cancel_timeout, traceparent=obs.traceparent,
                    release=CallRelease())
                service = A2AService(store, dispatcher, push=push, settings=settings)
                # the card lists the skills of the agents whose workers are connected
                card = LiveCard(render_card, dispatcher.worker_skills)

                def not_ready() -> list[str]:
                    reasons = []
                    accepting = accept.statistics()
                    if accepting.fd_exhausted:
                        reasons.append(f"out of file descriptors: {accepting.error}")
                    if not getattr(backend, "healthy", True):
                        reasons.append("the task store's database cannot be reached")
                    if dispatcher.draining is not None:
                        reasons.append(f"draining: {dispatcher.draining}")
                    return reasons

                state = AppState(service=service, card=card, auth=secured.token_auth,
                                 extended_card=secured.enabled,
                                 max_body=config.max_body, limits=config.limits,
                                 worker_auth=worker_auth, not_ready=not_ready,
                                 base_path=base_path, path_aliases=config.codetether_paths)
                state = mount_worker_link(secured.state(state), endpoint)
                mcp_children: list[ChildSpec] = []
                if config.mcp:
                    # imported here: the MCP SDK is a cost only a server serving it pays
                    from runtime.mcp import McpEndpoint, McpTools, mount_mcp

                    mcp = McpEndpoint(McpTools(service, dispatcher.connected_workers,
                                               limits=config.limits),
                                      state, max_body=config.max_body)
                    state = mount_mcp(state, mcp)
                    mcp_children.append(ChildSpec("mcp", mcp.run))
                state = mount_admin(state, config.admin, dispatcher, service, endpoint, replica_id)
                # inside the observing layer: the 503s of a stopping server are counted
                calls = GracefulCalls(secured.app(create_asgi(state), config.max_body),
                                      settings.release)
                app = obs.wrap(calls, dispatcher, store, push, workers, endpoint, grpc)
                # rest_for_one: a child depends on the ones before it; when one fails,
                # it and everything started after it start again, in order.
                tree = Supervisor(
                    "server",
                    [
                        ChildSpec("store", store.run),
                        ChildSpec("dispatcher", dispatcher.run),
                        *(ChildSpec(f"local-worker-{i}", functools.partial(
                            _run_local_worker, config, endpoint, workers, stopping, obs, i))
                          for i in range(config.local_workers)),
                        ChildSpec("push", push.run),
                        ChildSpec("http", functools.partial(serve_http, app),
                                  shutdown_timeout=5.0),
                        *([grpc.spec(state)] if grpc else []),
                        # last: a failing MCP session manager restarts alone, never the
                        # listener every A2A client is connected to (/mcp answers 503 between)
                        *mcp_children,
                    ],
                    strategy="rest_for_one", max_restarts=config.max_restarts,
                    max_seconds=config.restart_window, rng=random.Random(),
                )
                await nursery.start(tree.run)
                log.info("server listening", extra={"url": base_url, "store": config.store,
                                                    "replica_id": replica_id})
                yield RunningServer(url=base_url, host=host, port=port, service=service,
                                    store=store, dispatcher=dispatcher, workers=workers,
                                    push=push, supervisor=tree, accept=accept, grpc=grpc,
                                    calls=calls)
                # Client calls first, while the workers still run their tasks: no new
                # claims here meanwhile, new requests refused, those in flight get the grace.
                dispatcher.drain(HANDOVER_REASON)
                outcome.update(await calls.stop(config.shutdown_grace))
                outcome.update(await hand_over(
                    dispatcher, endpoint, stopping, local_workers=config.local_workers,
                    drain_timeout=config.drain_timeout,
                    handover_timeout=config.handover_timeout))
                # Push configs go to another replica now, not when their leases run out.
                await push.hand_over()
                nursery.cancel_scope.cancel()
    finally:
        sock.close()
        if grpc:
            grpc.close()
        how = ("handed over: {requeued} task(s) queued again, {workers_moved} worker(s) "
               "moved".format(**outcome) if outcome.get("graceful") else "without handing over")
        if "streams_closed" in outcome:
            how += ("; client calls in the grace: {requests_finished} request(s) and "
                    "{streams_finished} stream(s) finished, {requests_answered} request(s) "
                    "answered as the task stood, {streams_closed} stream(s) closed, "
                    "{requests_refused} refused".format(**outcome))
        log.info("server stopped, %s", how, extra={"replica_id": replica_id, "url": base_url,
                                                   **outcome})

