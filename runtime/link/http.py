"""The server's end of the worker link over plain HTTP, for networks that block WebSockets.

``GET /worker/link`` (``Authorization: Bearer <worker token>``) opens a link: a
Server-Sent Events stream whose first event (``event: link``) names the link id,
followed by the server's pushes (``event: offer|cancel|drain``, ``id:`` the
frame id, ``data:`` the frame) and keep-alive comments. The worker sends each
frame with ``POST /worker/link/{op}`` (header ``Worker-Link: <link id>``, body
the frame exactly as on the WebSocket); the response body is its ack.

There is one server code path for both transports: each HTTP link is an
`HttpLinkSocket` (the `LinkSocket` of runtime.link.endpoint) served by the
unchanged `WorkerLinkEndpoint.serve` for the lifetime of the stream. POSTed
frames go in as received messages; the acks `serve` sends go back to the POST
waiting for that frame id; everything else it sends is a push, written to the
stream. When the stream ends (the worker went away, a proxy cut it, the server
stops) the link closes: the worker is unregistered, as when a WebSocket closes,
and later POSTs naming it get ``UNKNOWN_LINK`` (404).

Pushes are not acked over HTTP (an ack POST is accepted and ignored): offers are
hints, and heartbeat replies repeat cancellations and drain. So when the stream
falls behind, a push is dropped with a warning rather than stalling the acks.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import attrs
import trio
from quart import Response, request

from protocol import worker_link as wl
from protocol.sse import encode_comment, encode_event
from runtime.http.auth import RepeatedAuthorization, one_authorization
from runtime.http.signing_settings import SIGNED_BY
from runtime.http.sse import sse_response

if TYPE_CHECKING:
    from quart_trio import QuartTrio

    from runtime.link.endpoint import WorkerLinkEndpoint

__all__ = [
    "LINK_HEADER",
    "LINK_PATH",
    "HttpLinkSocket",
    "WorkerHttpLinks",
    "WorkerHttpStatistics",
    "register_worker_http_routes",
]

log = logging.getLogger(__name__)

LINK_PATH = "/worker/link"
LINK_HEADER = "Worker-Link"
_JSON = "application/json"
_KEEPALIVE = encode_comment("keep-alive")


@attrs.define(eq=False)
class _Waiter:
    event: trio.Event = attrs.Factory(trio.Event)
    reply: str | None = None
    ok: bool = True
    code: str | None = None


class HttpLinkSocket:
    """One HTTP link as a `LinkSocket`: POSTed frames in, acks back to their POSTs,
    pushes out to the stream."""

    def __init__(self, link_id: str, principal: str, *, inbound: int = 16,
                 push_queue: int = 256) -> None:
        self.link_id = link_id
        self.principal = principal
        self._in_send, self._in_receive = trio.open_memory_channel[str | bytes](inbound)
        self._out_send, self.events = trio.open_memory_channel[bytes](push_queue)
        self._waiters: dict[str, _Waiter] = {}
        self.attached = trio.Event()
        """Set once the stream is being sent (a link nobody reads is closed)."""
        self.closed = False
        self.scope = trio.CancelScope()
        self.dropped_pushes = 0

    # --- LinkSocket, for WorkerLinkEndpoint.serve ---------------------------------

    async def receive(self) -> str | bytes:
        return await self._in_receive.receive()

    async def send(self, data: str) -> None:
        head = json.loads(data)
        op, frame_id = head.get("op"), head.get("id")
        if op == wl.ACK:
            waiter = self._waiters.get(frame_id) if isinstance(frame_id, str) else None
            if waiter is None:  # its POST went away: the worker resends if it cares
                log.debug("ack with no waiting request dropped",
                          extra={"link_id": self.link_id, "frame_id": frame_id})
                return
            waiter.reply, waiter.ok = data, head.get("ok") is True
            waiter.code = (head.get("error") or {}).get("code")
            waiter.event.set()
            return
        try:
            self._out_send.send_nowait(encode_event(data, event=op, id=frame_id))
        except trio.WouldBlock:
            self.dropped_pushes += 1
            log.warning("worker link stream is behind; push dropped",
                        extra={"link_id": self.link_id, "op": op, "frame_id": frame_id})
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    # --- the POST side ------------------------------------------------------------

    def in_flight(self, frame_id: str) -> bool:
        return frame_id in self._waiters

    async def submit(self, frame_id: str, data: bytes) -> _Waiter | None:
        """Hand one frame to the link and wait for its ack; None if the link closed first."""
        waiter = self._waiters[frame_id] = _Waiter()
        try:
            await self._in_send.send(data)
            await waiter.event.wait()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return None
        finally:
            del self._waiters[frame_id]
        return waiter if waiter.reply is not None else None

    async def submit_ack(self, data: bytes) -> bool:
        """Hand an ack of a push to the link (nothing answers it); False if it is closed."""
        try:
            await self._in_send.send(data)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        return True

    def close(self) -> None:
        """End the link: its stream ends, waiting POSTs get UNKNOWN_LINK, serve is cancelled."""
        if self.closed:
            return
        self.closed = True
        self.scope.cancel()
        self._in_send.close()
        self._in_receive.close()
        self._out_send.close()
        for waiter in self._waiters.values():
            waiter.event.set()


@attrs.frozen
class WorkerHttpStatistics:
    open_links: int
    opened: int
    dropped_pushes: int
    """Pushes dropped because a stream fell behind (heartbeat replies repeat them)."""


class WorkerHttpLinks:
    """The open HTTP links of one server, by id; each served by the shared endpoint."""

    def __init__(self, endpoint: WorkerLinkEndpoint, *, keepalive: float = 15.0,
                 attach_timeout: float = 10.0, push_queue: int = 256,
                 inbound: int = 16) -> None:
        self.endpoint = endpoint
        self.keepalive = keepalive
        self.attach_timeout = attach_timeout
        self.push_queue = push_queue
        self.inbound = inbound
        self._links: dict[str, HttpLinkSocket] = {}
        self._opened = 0
        self._dropped = 0

    def statistics(self) -> WorkerHttpStatistics:
        dropped = self._dropped + sum(link.dropped_pushes for link in self._links.values())
        return WorkerHttpStatistics(open_links=len(self._links), opened=self._opened,
                                    dropped_pushes=dropped)

    def get(self, link_id: str, principal: str) -> HttpLinkSocket | None:
        """The open link `link_id` of `principal` (another principal's link is not found)."""
        link = self._links.get(link_id)
        if link is None or link.closed or link.principal != principal:
            return None
        return link

    def open(self, principal: str) -> HttpLinkSocket:
        link = HttpLinkSocket(secrets.token_urlsafe(18), principal, inbound=self.inbound,
                              push_queue=self.push_queue)
        self._links[link.link_id] = link
        self._opened += 1
        return link

    def close(self, link: HttpLinkSocket) -> None:
        if self._links.pop(link.link_id, None) is not None:
            self._dropped += link.dropped_pushes
        link.close()

    async def run(self, link: HttpLinkSocket, *, peer: str,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve `link` until its stream ends (or is never read: `attach_timeout`)."""
        extra = {"link_id": link.link_id, "principal": link.principal, "peer": peer}
        log.info("http worker link opened", extra=extra)
        try:
            with link.scope:
                task_status.started()
                with trio.move_on_after(self.attach_timeout):
                    await link.attached.wait()
                if not link.attached.is_set():
                    log.warning("http worker link stream never read; closed", extra=extra)
                    return
                await self.endpoint.serve(link, principal=link.principal, peer=peer)
        except (trio.EndOfChannel, trio.ClosedResourceError):
            pass  # closed while serve was reading: the stream ended
        except Exception:
            log.exception("http worker link failed", extra=extra)
        finally:
            self.close(link)
            log.info("http worker link closed", extra=extra)

    async def stream(self, link: HttpLinkSocket) -> AsyncIterator[bytes]:
        """The SSE body of `link`: its id, then pushes and keep-alives until it closes."""
        link.attached.set()
        try:
            hello = json.dumps({"linkId": link.link_id, "keepalive": self.keepalive},
                               separators=(",", ":"))
            yield encode_event(hello, event="link")
            while True:
                chunk: bytes | None = None
                with trio.move_on_after(self.keepalive):
                    try:
                        chunk = await link.events.receive()
                    except (trio.EndOfChannel, trio.ClosedResourceError):
                        return
                yield _KEEPALIVE if chunk is None else chunk
        finally:
            self.close(link)  # the worker is unregistered as the serve task unwinds


def _ack_response(text: str, code: str | None = None, *,
                  headers: dict[str, str] | None = None) -> Response:
    status = 200 if code is None else wl.LINK_HTTP_STATUS.get(code, 500)
    return Response(text, status=status, content_type=_JSON, headers=headers)


def _refused(frame_id: str | None, code: str, message: str) -> Response:
    headers = ({"WWW-Authenticate": 'Bearer realm="trio-a2a-worker"'}
               if code == wl.UNAUTHORIZED else None)
    return _ack_response(wl.error_ack(frame_id, code, message), code, headers=headers)


def _peer() -> str:
    client = request.scope.get("client")
    return f"{client[0]}:{client[1]}" if client else ""


def _frame_head(data: bytes) -> tuple[str | None, object]:
    """The frame's id (None if unreadable) and op, without validating the body."""
    try:
        obj = json.loads(data)
    except ValueError:
        return None, None
    if not isinstance(obj, dict):
        return None, None
    frame_id = obj.get("id")
    return (frame_id if isinstance(frame_id, str) and frame_id else None), obj.get("op")


def _unreadable(data: bytes) -> Response:
    """The answer to a frame with no usable id: its ack could not be routed on the link."""
    try:
        wl.decode_frame(data)
    except wl.LinkProtocolError as exc:
        return _ack_response(exc.to_ack(), exc.code)
    return _refused(None, wl.INVALID_FRAME, "id: must be a non-empty string")


def register_worker_http_routes(app: QuartTrio, endpoint: WorkerLinkEndpoint, *,
                                keepalive: float = 15.0) -> WorkerHttpLinks:
    """Add ``GET /worker/link`` and ``POST /worker/link/<op>`` served by `endpoint`."""
    links = WorkerHttpLinks(endpoint, keepalive=keepalive)
    endpoint.http_links = links  # its statistics(), for the server's metrics
    unauthorized = endpoint.unauthorized

    async def authenticate() -> tuple[str | None, str]:
        """The worker principal of this request (None to refuse it), and why not: a
        worker bound to a `required` signing key must sign every request."""
        try:
            authorization = one_authorization(request.headers.getlist("Authorization"))
        except RepeatedAuthorization as exc:
            return None, str(exc)
        principal = await endpoint.authenticate(authorization)
        if principal is None:
            return None, unauthorized
        unsigned = endpoint.signature_refusal(principal, request.scope.get(SIGNED_BY))
        return (None, unsigned) if unsigned else (principal, unauthorized)

    async def open_link() -> Response:
        principal, why = await authenticate()
        peer = _peer()
        if principal is None:
            log.warning("http worker link refused", extra={"peer": peer, "reason": why})
            return _refused(None, wl.UNAUTHORIZED, why)
        if endpoint.going_away is not None:  # a worker should connect to another replica
            text = wl.error_ack(None, wl.INTERNAL, f"this server is stopping "
                                f"({endpoint.going_away}): connect to another one")
            return Response(text, status=503, content_type=_JSON)
        link = links.open(principal)
        # The link outlives this handler (it lasts as long as its stream), so it runs
        # in the app's nursery; the stream's end cancels it.
        await app.nursery.start(functools.partial(links.run, link, peer=peer))
        return sse_response(links.stream(link))

    async def post_frame(op: str) -> Response:
        principal, why = await authenticate()
        if principal is None:
            return _refused(None, wl.UNAUTHORIZED, why)
        if op not in wl.WORKER_OPS and op != wl.ACK:
            known = ", ".join(sorted([*wl.WORKER_OPS, wl.ACK]))
            return _refused(None, wl.UNKNOWN_OP, f"POST {LINK_PATH}/{op}: {op!r} is not an op "
                                                 f"a worker sends (one of {known})")
        link_id = request.headers.get(LINK_HEADER, "").strip()
        if not link_id:
            return _refused(None, wl.INVALID_FRAME,
                            f"{LINK_HEADER}: header required, the linkId of the first event "
                            f"of GET {LINK_PATH}")
        link = links.get(link_id, principal)
        if link is None:
            return _refused(None, wl.UNKNOWN_LINK,
                            f"{LINK_HEADER}: no open worker link {link_id!r} for this token "
                            f"(its stream ended): open GET {LINK_PATH} again")
        data = await request.get_data(cache=False)
        assert isinstance(data, bytes)
        frame_id, frame_op = _frame_head(data)
        if op == wl.ACK:
            if frame_op != wl.ACK:
                return _refused(frame_id, wl.INVALID_FRAME,
                                f"op: {frame_op!r} is not an ack (POST {LINK_PATH}/ack)")
            if not await link.submit_ack(data):
                return _refused(None, wl.UNKNOWN_LINK, f"worker link {link_id!r} closed")
            return Response(b"", status=204)
        if frame_id is None:
            return _unreadable(data)
        if frame_op != op:
            return _refused(frame_id, wl.INVALID_FRAME,
                            f"op: the frame's op {frame_op!r} does not match the path "
                            f"{LINK_PATH}/{op}")
        if link.in_flight(frame_id):
            return _refused(frame_id, wl.INVALID_FRAME,
                            f"id: frame {frame_id!r} is already in flight on this link")
        waiter = await link.submit(frame_id, data)
        if waiter is None or waiter.reply is None:
            return _refused(frame_id, wl.UNKNOWN_LINK,
                            f"worker link {link_id!r} closed before frame {frame_id!r} was "
                            f"answered: open GET {LINK_PATH} again and resend it")
        return _ack_response(waiter.reply, None if waiter.ok else waiter.code or wl.INTERNAL)

    app.add_url_rule(LINK_PATH, "worker_link_open", open_link, methods=["GET"])
    app.add_url_rule(f"{LINK_PATH}/<op>", "worker_link_post", post_frame, methods=["POST"])
    return links
