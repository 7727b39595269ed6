"""Load generator of ``python -m bench subscribers``: many SSE streams, one process.

``python -m bench.sub_clients --port P --tasks FILE --subscribers K --index I --of N``
opens K SubscribeToTask streams (JSON-RPC, A2A 1.0, one HTTP/1.1 keep-alive
connection each) on every task of FILE (one id a line) whose line number is I
mod N, in one trio program on raw sockets with h11 for the framing (chunked
bodies) and `protocol.sse` for the events. Stdout protocol, one line each:
``OPEN {json}`` once every stream has its first event (the task snapshot),
``DONE {json}`` once every stream has ended, with the checks' counts.

A stream is good when its first event is the task, its later `id:`s run on
without a gap, every event after the snapshot arrived (`--events` of them) and
the last is the completed status.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import h11
import trio

from protocol.sse import SSEDecoder

__all__ = ["main"]

HOST = "127.0.0.1"


class Stream:
    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.ids: list[int] = []
        self.first_is_task = False
        self.completed = False
        self.error = ""
        self.counted = False


def _request(port: int, task_id: str, n: int) -> h11.Request:
    body = json.dumps({"jsonrpc": "2.0", "id": n, "method": "SubscribeToTask",
                       "params": {"id": task_id}}).encode()
    return h11.Request(method="POST", target="/", headers=[
        ("Host", f"{HOST}:{port}"), ("Content-Type", "application/json"),
        ("A2A-Version", "1.0"), ("Accept", "text/event-stream"),
        ("Content-Length", str(len(body)))]), body


async def run_stream(port: int, st: Stream, n: int, opened: trio.CapacityLimiter,
                     on_open: trio.Event, counter: list[int], total: int) -> None:
    async with opened:
        sock = await trio.open_tcp_stream(HOST, port)
    async with sock:
        conn = h11.Connection(h11.CLIENT)
        req, body = _request(port, st.task_id, n)
        await sock.send_all(conn.send(req) + conn.send(h11.Data(data=body))
                            + conn.send(h11.EndOfMessage()))
        decoder = SSEDecoder()
        first = True
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                data = await sock.receive_some(16384)
                conn.receive_data(data)
                continue
            if isinstance(ev, h11.Response):
                if ev.status_code != 200:
                    st.error = f"HTTP {ev.status_code}"
                continue
            if isinstance(ev, h11.Data):
                for sse in decoder.feed(bytes(ev.data)):
                    msg = json.loads(sse.data)
                    result = msg.get("result") or {}
                    if first:
                        st.first_is_task = "task" in result
                        first = False
                        _mark(st, counter, total, on_open)
                    if sse.id is not None:
                        st.ids.append(int(sse.id))
                    if "error" in msg:
                        st.error = f"error event: {sse.data[:200]}"
                    state = (result.get("statusUpdate") or {}).get("status", {}).get("state")
                    st.completed = state == "TASK_STATE_COMPLETED"
                continue
            if isinstance(ev, (h11.EndOfMessage, h11.ConnectionClosed)):
                return


def _mark(st: Stream, counter: list[int], total: int, on_open: trio.Event) -> None:
    """Count a stream as open (its first event came, or it ended without one)."""
    if not st.counted:
        st.counted = True
        counter[0] += 1
        if counter[0] == total:
            on_open.set()


def check(st: Stream, events: int) -> str:
    """'' when the stream got every event in order, else why not."""
    if st.error:
        return st.error
    if not st.first_is_task:
        return "first event is not the task"
    later = st.ids[1:]
    if any(b != a + 1 for a, b in zip(st.ids, later, strict=False)):
        return "ids with a gap or out of order"
    if len(later) != events:
        return f"{len(later)} events after the snapshot, not {events}"
    if not st.completed:
        return "last event is not the completed status"
    return ""


async def run(args: argparse.Namespace, ids: list[str]) -> None:
    mine = [t for i, t in enumerate(ids) if i % args.of == args.index]
    streams = [Stream(t) for t in mine for _ in range(args.subscribers)]
    opened = trio.CapacityLimiter(args.connect_concurrency)
    on_open = trio.Event()
    counter = [0]
    failed: list[str] = []
    t0 = time.monotonic()

    async def one(i: int, st: Stream) -> None:
        try:
            await run_stream(args.port, st, i, opened, on_open, counter, len(streams))
        except (OSError, trio.BrokenResourceError, h11.ProtocolError, ValueError) as exc:
            st.error = f"{type(exc).__name__}: {exc}"
            failed.append(st.error)
        _mark(st, counter, len(streams), on_open)  # so that OPEN is still reported

    async with trio.open_nursery() as nursery:
        for i, st in enumerate(streams):
            nursery.start_soon(one, i, st)
        if not streams:
            on_open.set()
        await on_open.wait()
        print("OPEN " + json.dumps({"streams": len(streams), "failed": len(failed),
                                    "seconds": time.monotonic() - t0}), flush=True)
    bad: dict[str, int] = {}
    for st in streams:
        why = check(st, args.events)
        if why:
            bad[why] = bad.get(why, 0) + 1
    events = sum(max(len(st.ids) - 1, 0) for st in streams)
    print("DONE " + json.dumps({"streams": len(streams), "good": len(streams) - sum(bad.values()),
                                "events": events, "bad": bad,
                                "seconds": time.monotonic() - t0}), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sub_clients")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tasks", required=True, help="file of task ids, one a line")
    p.add_argument("--subscribers", type=int, default=10)
    p.add_argument("--events", type=int, default=20)
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--of", type=int, default=1)
    p.add_argument("--connect-concurrency", type=int, default=32)
    args = p.parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with open(args.tasks) as f:
        ids = f.read().split()
    trio.run(run, args, ids)
    return 0


if __name__ == "__main__":
    sys.exit(main())
