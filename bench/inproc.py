"""In-process micro-benchmark: the A2A work of a blocking SendMessage without HTTP.

Runs `open_server(ServerConfig(port=0, store="memory"))` in this trio program and
has `--clients` tasks send echo messages back to back, through the JSON-RPC
method layer (params dict in, response bytes out: validation, the service, the
embedded worker, the store, rendering) or, with ``--layer service``, through
`A2AService.send_message` alone. Prints CPU time per task (process time, so other
load on the machine matters less than for wall time); the minimum of the runs is
the figure to compare::

    python -m bench.inproc                    # 5 runs of 3,000 tasks, 16 clients
    python -m bench.inproc --layer service --tasks 2000 --runs 3
"""

from __future__ import annotations

import argparse
import collections
import gc
import time
import uuid

import trio

from protocol.jsonrpc import parse_payload
from protocol.models import SendMessageRequest
from runtime.http.rpc_methods import CallContext, send_message
from runtime.server import ServerConfig, open_server

TEXT = "hello from the benchmark"


def _body(rpc_id: int) -> bytes:
    return (
        '{"jsonrpc":"2.0","id":' + str(rpc_id) + ',"method":"SendMessage","params":'
        '{"message":{"messageId":"' + uuid.uuid4().hex + '","role":"ROLE_USER",'
        '"parts":[{"text":"' + TEXT + '"}]}}}'
    ).encode()


class _Steps(trio.abc.Instrument):
    """Counts trio task steps by task name (``--steps``)."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.counts[task.name] += 1


async def _run(layer: str, tasks: int, clients: int, steps: _Steps | None = None) -> float:
    """CPU seconds per task for `tasks` sends spread over `clients` concurrent tasks."""
    async with open_server(ServerConfig(port=0, store="memory")) as server:
        svc = server.service
        ctx = CallContext(principal="", version="1.0")

        async def one(i: int) -> None:
            if layer == "service":
                req = SendMessageRequest.model_validate({"message": {
                    "messageId": uuid.uuid4().hex, "role": "ROLE_USER",
                    "parts": [{"text": TEXT}]}})
                out = await svc.send_message(req)
                assert out.record.task.status.state.value == "TASK_STATE_COMPLETED"
            else:
                item = parse_payload(_body(i), version="1.0").items[0]
                out_bytes = await send_message(svc, item.params, ctx)
                assert b"TASK_STATE_COMPLETED" in out_bytes

        async def client(n: int) -> None:
            for i in range(n):
                await one(i)

        await client(50)  # warm-up
        gc.collect()
        gc.freeze()
        if steps is not None:
            trio.lowlevel.add_instrument(steps)
        start = time.process_time()
        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(client, tasks // clients)
        cpu = time.process_time() - start
        if steps is not None:
            trio.lowlevel.remove_instrument(steps)
        return cpu / (tasks // clients * clients)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layer", choices=("rpc", "service"), default="rpc")
    ap.add_argument("--tasks", type=int, default=3000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--steps", action="store_true",
                    help="count trio task steps per task, by task name (slower: not for CPU)")
    args = ap.parse_args()
    gc.set_threshold(50_000, 20, 20)  # as the server CLI sets it (runtime/cli.py)
    if args.steps:
        steps = _Steps()
        trio.run(_run, args.layer, args.tasks, args.clients, steps)
        done = args.tasks // args.clients * args.clients
        for name, count in steps.counts.most_common(25):
            print(f"{count / done:6.2f}  {name}")
        print(f"{sum(steps.counts.values()) / done:6.2f}  trio task steps per task")
        return
    figures = []
    for _ in range(args.runs):
        figures.append(trio.run(_run, args.layer, args.tasks, args.clients) * 1e6)
        print(f"{figures[-1]:.0f} µs CPU per task")
    print(f"min {min(figures):.0f} µs CPU per task ({args.layer}, {args.clients} clients, "
          f"{args.tasks} tasks)")


if __name__ == "__main__":
    main()
