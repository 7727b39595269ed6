"""The cases of the hostile-traffic fuzzer (`bench.hostile`): what one connection
sends and what it waits for.

A case is a short script on one TCP connection (`Step`s: write these bytes, maybe
slowly or after a pause; then wait for the answers, or half-close, close or reset)
or one well-framed request sent through httpx. It is built from
``random.Random(f"{seed}/{index}")`` alone, so any case is rebuilt from the seed
and its index whatever ran before or beside it: that is how a failure is replayed
(``python -m bench hostile --seed S --replay INDEX``).

The kinds follow the hardening issue: JSON-RPC of both generations, REST paths and
methods, the card with validators, bad and duplicate headers, broken framing and
truncated bodies, early closes, answers that come before the body (then the body
and a next request on the same connection: where a keep-alive connection wedges),
bodies over the limit, pipelines and keep-alive sequences, slow heads, SSE streams
closed early, WebSocket handshakes to the wrong places, garbage, and requests that
carry the honest tasks' owner's token beside another one.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.hostile_payloads import message
from bench.hostile_requests import (
    HttpRequest,
    Step,
    Target,
    any_request,
    auth,
    card_request,
    framing,
    plain_request,
    rest_request,
    rpc_request,
)

__all__ = ["KINDS", "Case", "make_case"]


@dataclass
class Case:
    index: int
    kind: str
    label: str
    steps: list[Step] = field(default_factory=list)
    http: HttpRequest | None = None
    """Sent through httpx instead of the steps."""
    linger: float = 0.0
    """Seconds to go on reading an SSE stream before closing it."""
    allowed_5xx: tuple[int, ...] = ()
    """5xx statuses HTTP itself prescribes for this request (RFC 9112: 501 for a
    transfer coding the server does not know, 505 for an HTTP version it does not
    speak): not server errors."""

    @property
    def requests(self) -> int:
        if self.http is not None:
            return 1
        return max(1, sum(len(s.methods) for s in self.steps))


Build = Callable[[random.Random, Target], tuple[HttpRequest, str, bool]]


def httpx_safe(req: HttpRequest) -> bool:
    """httpx can send it as it is: printable ASCII path and headers."""
    parts = [req.path, req.method, *(f"{k}{v}" for k, v in req.headers)]
    return all(p.isascii() and p.isprintable() for p in parts) and " " not in req.path \
        and req.method.isupper()


def _one(rng: random.Random, kind: str, build: Build, t: Target) -> Case:
    req, label, streaming = build(rng, t)
    if rng.random() < 0.2 and httpx_safe(req):
        return Case(0, kind, f"[httpx] {label}", http=req)
    return Case(0, kind, label, [Step(req.wire(t), (req.method,))],
                linger=rng.uniform(0, 0.2) if streaming else 0.0)


def _headers(rng: random.Random, t: Target) -> Case:
    req, label, _ = plain_request(rng, t)
    odd = rng.choice([
        ("X-Big: " + "v" * rng.choice([8_000, 20_000, 70_000]), "huge header"),
        ("".join(f"X-H{i}: {i}\r\n" for i in range(rng.choice([100, 1000])))[:-2],
         "many headers"),
        ("NoColonHere", "header without colon"), ("X-Fold: a\r\n  folded", "obs-fold"),
        ("X-Nul: a\x00b", "NUL in a value"), ("X-Utf: \u00ff\u2603", "non-ASCII value"),
        ("Content-Type : application/json", "space before colon"),
        (f"Host: 127.0.0.1:{t.port}", "two Host headers"),
        ("Expect: 100-continue", "Expect 100-continue"), ("Connection: close", "close"),
        ("Connection: keep-alive, Upgrade\r\nUpgrade: h2c", "h2c upgrade"),
        ("Cookie: " + "; ".join(f"c{i}=v" for i in range(300)), "many cookies"),
    ])
    data = req.head(t, extra=odd[0] + "\r\n") + req.body
    return Case(0, "headers", f"{odd[1]}: {label}", [Step(data, (req.method,), then=_shut(rng))])


def _shut(rng: random.Random) -> str:
    """Half-close after a complete request, or not: clients do both."""
    return rng.choice(["", "shut"])


def _early_close(rng: random.Random, t: Target) -> Case:
    req, label, _ = any_request(rng, t)
    wire = req.wire(t)
    how = rng.choice(["close", "reset"])
    where = rng.choice(["after request", "mid head", "mid body", "after soft wait"])
    if where == "mid head":
        wire = wire[:rng.randint(1, max(1, wire.find(b"\r\n\r\n")))]
    elif where == "mid body" and req.body:
        wire = wire[:len(wire) - rng.randint(1, len(req.body))]
    wait = "soft" if where == "after soft wait" else "none"
    return Case(0, "early_close", f"{how} {where}: {label}",
                [Step(wire, (req.method,) if wait == "soft" else (), wait=wait, then=how)])


EARLY = (("POST", "/message:send", False), ("POST", "/nope", True),
         ("POST", "/tasks/{id}", True), ("POST", "/.well-known/agent-card.json", True),
         ("POST", "/v1/message:send", False), ("PUT", "/tasks", True),
         ("POST", "/", False), ("POST", "/tasks/{id}:cancel", False))


def _early_answer(rng: random.Random, t: Target) -> Case:
    """A head the server can refuse at once (401, 404, 405), then its body and a next
    request on the same connection: both must be answered, or the connection closed."""
    method, path, authed = rng.choice(EARLY)
    path = path.replace("{id}", rng.choice(t.pool.own_done or ("x",)))
    body = json.dumps({"message": message(rng, t.pool, "1.0")}).encode()
    body = body * rng.choice([1, 1, 20, 200])
    headers = (auth(rng, t) if authed else []) + [("Content-Type", "application/json")]
    req = HttpRequest(method, path, headers, body)
    nxt, label, _ = plain_request(rng, t)
    return Case(0, "early_answer",
                f"{method} {path} ({len(body)} B) answered early, then body + {label}",
                [Step(req.head(t), (method,), wait="soft"),
                 Step(body + nxt.wire(t), (nxt.method,))])


def _oversize(rng: random.Random, t: Target) -> Case:
    """A body over --max-body: declared and not sent (the answer must not wait for it),
    or sent for real."""
    path = rng.choice(["/", "/message:send", "/v1/message:send", "/tasks/x:cancel"])
    headers = auth(rng, t) + [("Content-Type", "application/json"), ("A2A-Version", "1.0")]
    mb = t.pool.max_body
    if rng.random() < 0.7:
        declared = rng.choice([mb + 1, mb * 4, 10**9])
        part = b"[" * rng.choice([0, 100, 16_000])
        req = HttpRequest("POST", path, headers)
        return Case(0, "oversize", f"POST {path} declares {declared} B, sends {len(part)}",
                    [Step(req.head(t, length=str(declared)) + part, ("POST",))])
    body = b'"' + b"x" * (mb + rng.randint(1, 1000)) + b'"'
    req = HttpRequest("POST", path, headers, body)
    return Case(0, "oversize", f"POST {path} with a {len(body)} B body",
                [Step(req.wire(t), ("POST",))])


def _pipeline(rng: random.Random, t: Target) -> Case:
    reqs = [plain_request(rng, t) for _ in range(rng.randint(2, 4))]
    data = b"".join(r.wire(t) for r, _, _ in reqs)
    return Case(0, "pipeline", " | ".join(label for _, label, _ in reqs),
                [Step(data, tuple(r.method for r, _, _ in reqs))])


def _sequence(rng: random.Random, t: Target) -> Case:
    reqs = [plain_request(rng, t) for _ in range(rng.randint(2, 4))]
    return Case(0, "keepalive", " ; ".join(label for _, label, _ in reqs),
                [Step(r.wire(t), (r.method,)) for r, _, _ in reqs])


def _slow(rng: random.Random, t: Target) -> Case:
    req, label, _ = plain_request(rng, t)
    drip = rng.uniform(0.05, 0.25)
    return Case(0, "slow", f"head in pieces {drip:.2f} s apart: {label}",
                [Step(req.wire(t), (req.method,), drip=drip)])


def _sse(rng: random.Random, t: Target) -> Case:
    pool = t.pool
    queued = rng.choice(pool.own_queued or pool.own_done or ("x",))
    v = rng.choice(["1.0", "0.3"])
    rpc = rng.choice([
        ("SubscribeToTask" if v == "1.0" else "tasks/resubscribe", {"id": queued}),
        ("SendStreamingMessage" if v == "1.0" else "message/stream",
         {"message": message(rng, pool, v)})])
    headers = auth(rng, t, owner=0) + [("Content-Type", "application/json")]
    if rng.random() < 0.6:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": rpc[0], "params": rpc[1]})
        headers += [("A2A-Version", "1.0")] if v == "1.0" else []
        if rng.random() < 0.3:
            headers.append(("Last-Event-ID", rng.choice(["0", "1", "5"])))
        req = HttpRequest("POST", "/", headers, body.encode())
    else:
        req = rng.choice([HttpRequest("GET", f"/tasks/{queued}:subscribe", headers),
                          HttpRequest("POST", f"/v1/tasks/{queued}:subscribe", headers),
                          HttpRequest("POST", "/message:stream", headers, json.dumps(
                              {"message": message(rng, pool, "1.0")}).encode())])
    return Case(0, "sse", f"{req.method} {req.path} {rpc[0] if req.path == '/' else ''}, "
                "closed early", [Step(req.wire(t), (req.method,), then=rng.choice(
                    ["", "reset"]))], linger=rng.uniform(0, 0.3))


def _websocket(rng: random.Random, t: Target) -> Case:
    path = rng.choice(["/worker/wsx", "/", "/ws", "/tasks", "/.well-known/agent-card.json",
                       "/worker/ws", "/worker/ws/", "/worker/link"])
    key = base64.b64encode(rng.randbytes(16)).decode() if rng.random() < 0.8 else "short"
    headers = [("Upgrade", rng.choice(["websocket", "WebSocket", "h2c"])),
               ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key),
               ("Sec-WebSocket-Version", rng.choice(["13", "8", ""]))]
    headers += auth(rng, t, owner=0)
    req = HttpRequest("GET", path, headers)
    return Case(0, "websocket", f"WebSocket handshake to {path}",
                [Step(req.wire(t), ("GET",))], linger=0.05)


GARBAGE = (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n",
           b"GET / HTTP/1.0\r\n\r\n", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
           b"GET http://evil.invalid/ HTTP/1.1\r\nHost: x\r\n\r\n",
           b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\n\r\n",
           b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", b"\r\n\r\n\r\n", b"GET  /  HTTP/1.1\r\n",
           b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"GET /" + b"a" * 70_000)


def _garbage(rng: random.Random, t: Target) -> Case:
    if rng.random() < 0.5:
        data = rng.choice(GARBAGE)
    else:
        data = rng.randbytes(rng.choice([1, 16, 300, 5000]))
    # what ends its head may be waited on; anything else needs the EOF to be judged
    then = _shut(rng) if data.endswith(b"\r\n\r\n") else "shut"
    return Case(0, "garbage", f"garbage {data[:24]!r} ({len(data)} B)",
                [Step(data, ("GET",), then=then)],
                allowed_5xx=(505,) if b"HTTP/2.0" in data else ())


def _owner(rng: random.Random, t: Target) -> Case:
    """Writes on the honest tasks with the owner's token beside another Authorization
    header: acting as the owner here changes a task the check compares."""
    honest = rng.choice(t.pool.honest or ("x",))
    pair = [("Authorization", f"Bearer {t.owner_token}"),
            rng.choice([("Authorization", f"Bearer {t.token}"),
                        ("Authorization", "Bearer wrong"), ("Authorization", "Basic eA==")])]
    rng.shuffle(pair)
    headers = pair + [("Content-Type", "application/json")]
    v = rng.choice(["1.0", "0.3"])
    method, params = rng.choice([
        ("CancelTask" if v == "1.0" else "tasks/cancel", {"id": honest}),
        ("SendMessage" if v == "1.0" else "message/send",
         {"message": message(rng, t.pool, v)}),
        ("CreateTaskPushNotificationConfig", {"taskId": honest, "url": "http://127.0.0.1:9/"}),
    ])
    if rng.random() < 0.5:
        body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
        req = HttpRequest("POST", "/", headers + ([("A2A-Version", "1.0")] if v == "1.0"
                                                  else []), json.dumps(body).encode())
    else:
        req = rng.choice([HttpRequest("POST", f"/tasks/{honest}:cancel", headers, b"{}"),
                          HttpRequest("POST", "/message:send", headers, json.dumps(
                              {"message": message(rng, t.pool, "1.0")}).encode())])
    label = f"two Authorization (owner's and another): {req.method} {req.path} {method}"
    if rng.random() < 0.3 and httpx_safe(req):
        return Case(0, "owner", f"[httpx] {label}", http=req)
    return Case(0, "owner", label, [Step(req.wire(t), (req.method,))])


def _framing(rng: random.Random, t: Target) -> Case:
    req, label, _ = plain_request(rng, t)
    steps, what = framing(rng, req, t)
    return Case(0, "framing", f"{what}: {label}", steps,
                allowed_5xx=(501,) if what.startswith("Transfer-Encoding") else ())


KINDS = (("rpc", 28), ("rest", 16), ("card", 5), ("headers", 5), ("framing", 6),
         ("early_close", 6), ("early_answer", 5), ("oversize", 2), ("pipeline", 6),
         ("keepalive", 4), ("slow", 1), ("sse", 5), ("websocket", 2), ("garbage", 3),
         ("owner", 2))
_BUILD = {"rpc": lambda r, t: _one(r, "rpc", rpc_request, t),
          "rest": lambda r, t: _one(r, "rest", rest_request, t),
          "card": lambda r, t: _one(r, "card", card_request, t),
          "headers": _headers, "framing": _framing, "early_close": _early_close,
          "early_answer": _early_answer, "oversize": _oversize, "pipeline": _pipeline,
          "keepalive": _sequence, "slow": _slow, "sse": _sse, "websocket": _websocket,
          "garbage": _garbage, "owner": _owner}


def make_case(seed: int, index: int, t: Target, kinds: tuple[str, ...] = ()) -> Case:
    """Case `index` of the run seeded `seed`; `kinds` limits the choice (all if empty)."""
    rng = random.Random(f"{seed}/{index}")
    table = [(k, w) for k, w in KINDS if not kinds or k in kinds]
    kind = rng.choices([k for k, _ in table], [w for _, w in table])[0]
    case = _BUILD[kind](rng, t)
    case.index = index
    return case
