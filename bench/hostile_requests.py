"""HTTP requests for the hostile-traffic fuzzer (`bench.hostile`): heads, headers
and framing, built from a seeded `random.Random`.

A request is built as a structure (`HttpRequest`) so the same one can go out
through httpx (well framed) or be written byte by byte on a raw socket with its
framing broken (`framing`). Headers are where the issue's faults hide: two
Authorization headers, wrong Content-Length, odd content types and A2A-Version
values; each builder mostly sends what an honest client would and sometimes not,
so the paths behind the checks get exercised too.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from bench.hostile_payloads import (
    Pool,
    RawJson,
    message,
    mutate_obj,
    mutate_text,
    routed_send,
    rpc_body,
    stored_odd_value,
    task_id,
)

SOFT_WAIT = 0.2
"""Seconds a step waits for an answer that may or may not come before the body."""


@dataclass(frozen=True)
class Target:
    """The server under test and what cases may name."""

    port: int
    token: str
    """The fuzzing principal's client token."""
    owner_token: str
    """The honest tasks' owner: sent only beside another Authorization header."""
    worker_token: str
    pool: Pool
    card_etag: str = '"none"'
    card_modified: str = "Thu, 01 Jan 2026 00:00:00 GMT"


@dataclass
class HttpRequest:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def head(self, target: Target, *, length: str | None = "auto", extra: str = "") -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: 127.0.0.1:{target.port}"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        if length == "auto" and (self.body or self.method in ("POST", "PUT", "PATCH")):
            lines.append(f"Content-Length: {len(self.body)}")
        elif length not in (None, "auto"):
            lines.append(f"Content-Length: {length}")
        text = "\r\n".join(lines) + "\r\n" + extra + "\r\n"
        return text.encode("utf-8", "surrogateescape")

    def wire(self, target: Target) -> bytes:
        return self.head(target) + self.body


@dataclass
class Step:
    data: bytes
    methods: tuple[str, ...] = ()
    """Methods of the requests this step completes (their answers are awaited)."""
    wait: str = "all"
    """'all': until every awaited answer, a close or the deadline (then: stuck);
    'soft': up to SOFT_WAIT seconds; 'none': no wait."""
    pause: float = 0.0
    drip: float = 0.0
    """Write the bytes in a few pieces with this many seconds between them."""
    then: str = ""
    """After writing: '' nothing, 'shut' half-close, 'close', 'reset' (RST)."""



def auth(rng: random.Random, t: Target, *, owner: float = 0.01) -> list[tuple[str, str]]:
    """Authorization headers: mostly the fuzzer's token, else missing, wrong, odd, or two."""
    roll = rng.random()
    good = ("Authorization", f"Bearer {t.token}")
    if roll < owner:  # the owner's token beside another: must never act as the owner
        pair = [("Authorization", f"Bearer {t.owner_token}"),
                rng.choice([good, ("Authorization", "Bearer wrong"), ("Authorization", "")])]
        rng.shuffle(pair)
        return pair
    if roll < 0.70:
        return [good]
    if roll < 0.76:
        return []
    if roll < 0.84:
        return [("Authorization", rng.choice(
            ["Bearer wrong", "Bearer", "Basic dXNlcjpwYXNz", f"bearer  {t.token}",
             f"Bearer {t.token} extra", f"Bearer {t.token}, Bearer x", f"{t.token}",
             f"Bearer {t.worker_token}", "Bearer " + "A" * 5000]))]
    return [good, rng.choice([good, ("Authorization", "Bearer wrong")])]


def content_type(rng: random.Random, kind: str = "application/json") -> list[tuple[str, str]]:
    roll = rng.random()
    if roll < 0.8:
        return [("Content-Type", kind)]
    if roll < 0.85:
        return []
    return [("Content-Type", rng.choice(
        ["text/plain", "application/json; charset=utf-16", "multipart/form-data; boundary=x",
         "application/x-www-form-urlencoded", "application/a2a+json", "*/*", "ÿ", "",
         "application/json, text/plain"]))] * rng.choice([1, 1, 2])


def version(rng: random.Random, v: str | None) -> list[tuple[str, str]]:
    roll = rng.random()
    if roll < 0.85:
        return [] if v is None else [("A2A-Version", v)]
    if roll < 0.92:
        return [("A2A-Version", rng.choice(["", "0.3", "0.3.0", "1.0.0", "2.0", "1", "abc",
                                            "1.0, 0.3", " 1.0 ", "0.2"]))]
    return [("A2A-Version", "1.0"), ("A2A-Version", "0.3")]


def rpc_request(rng: random.Random, t: Target) -> tuple[HttpRequest, str, bool]:
    v = rng.choice(["1.0", "0.3"])
    if rng.random() < 0.03:
        data = json.dumps(routed_send(rng, t.pool, v)).encode()
        label, streaming, honest = "routed send (stays queued)", False, True
    else:
        data, label, streaming, honest = rpc_body(rng, t.pool, v)
    if honest:
        headers = [("Authorization", f"Bearer {t.token}"), ("Content-Type", "application/json")]
        headers += [("A2A-Version", "1.0")] if v == "1.0" else []
    else:
        headers = auth(rng, t) + content_type(rng) + version(rng, "1.0" if v == "1.0" else None)
    if rng.random() < 0.05:
        headers.append(("Last-Event-ID", rng.choice(["0", "3", "-1", "x", "99999999999999"])))
    path = "/" if rng.random() < 0.97 else rng.choice(["/?A2A-Version=1.0", "/?x=%zz"])
    return HttpRequest("POST", path, headers, data), f"JSON-RPC {v}: {label}", streaming


REST_OPS = (("POST", "/message:send"), ("POST", "/message:stream"), ("GET", "/tasks"),
            ("GET", "/tasks/{id}"), ("POST", "/tasks/{id}:cancel"),
            ("GET", "/tasks/{id}:subscribe"), ("POST", "/tasks/{id}:subscribe"),
            ("POST", "/tasks/{id}/pushNotificationConfigs"),
            ("GET", "/tasks/{id}/pushNotificationConfigs"),
            ("GET", "/tasks/{id}/pushNotificationConfigs/c1"),
            ("DELETE", "/tasks/{id}/pushNotificationConfigs/c1"), ("GET", "/extendedAgentCard"),
            ("GET", "/card"), ("GET", "/worker/link"), ("POST", "/worker/link/ack"),
            ("GET", "/nope"), ("POST", "/tasks/{id}:explode"), ("GET", "/%2e%2e/tasks"),
            ("GET", "//tasks"), ("PUT", "/tasks/{id}"))
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "FOO", "get")


def rest_request(rng: random.Random, t: Target) -> tuple[HttpRequest, str, bool]:
    method, path = rng.choice(REST_OPS)
    prefix = rng.choice(["", "", "/v1", "/v1", "/acme", "/x" * 3, "/%E2%98%83"])
    tid = task_id(rng, t.pool)
    path = prefix + path.replace("{id}", str(tid).replace("/", "%2F").replace(" ", "%20")
                                 .replace("\r", "%0D").replace("\n", "%0A"))
    if method == "GET" and rng.random() < 0.3:
        path += "?" + rng.choice(["pageSize=0", "pageSize=10", "historyLength=-1",
                                  "A2A-Version=2", "status=TASK_STATE_WORKING", "pageSize=abc",
                                  "pageToken=%ff", "a=" + "b" * 2000])
    if rng.random() < 0.1:
        method = rng.choice(METHODS)
    v = "0.3" if prefix == "/v1" else "1.0"
    body = b""
    label = f"REST {method} {path[:80]}"
    if method in ("POST", "PUT", "PATCH") and rng.random() < 0.9:
        raw = RawJson()
        obj: object = {"message": message(rng, t.pool, v)} if "message:" in path else (
            {"url": "http://127.0.0.1:9/h", "token": "t"} if "push" in path else {})
        if rng.random() < 0.2 and "message:" in path:
            label += f"; {stored_odd_value(rng, obj, raw)}"  # type: ignore[arg-type]
        elif rng.random() < 0.5:
            obj, what = mutate_obj(rng, obj, t.pool, raw)
            label += f"; {what}"
        body = raw.encode(obj).encode("utf-8", "surrogatepass")
        if rng.random() < 0.1:
            body, what = mutate_text(rng, body)
            label += f"; {what}"
    headers = auth(rng, t) + (content_type(rng, "application/a2a+json") if body else []) \
        + version(rng, None if rng.random() < 0.5 else v)
    streaming = "stream" in path or "subscribe" in path or "worker/link" in path
    return HttpRequest(method, path, headers, body), label, streaming


def card_request(rng: random.Random, t: Target) -> tuple[HttpRequest, str, bool]:
    path = rng.choice(["/.well-known/agent-card.json", "/.well-known/agent.json",
                       "/.well-known/agent-card.json?x=1", "/.well-known/agent-card.json/"])
    headers: list[tuple[str, str]] = []
    for _ in range(rng.randint(0, 2)):
        headers.append(rng.choice([
            ("If-None-Match", t.card_etag), ("If-None-Match", "*"),
            ("If-None-Match", f"W/{t.card_etag}"), ("If-None-Match", '"a", "b", ' + t.card_etag),
            ("If-None-Match", "garbage"), ("If-Modified-Since", t.card_modified),
            ("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT"),
            ("If-Modified-Since", "yesterday"), ("If-Modified-Since", "Fri, 31 Dec 9999 23:59:59"),
            ("Accept", "text/html"), ("Accept-Encoding", "gzip, br")]))
    method = rng.choice(["GET"] * 6 + ["HEAD", "POST", "DELETE", "OPTIONS"])
    body = b'{"x":1}' if method == "POST" and rng.random() < 0.7 else b""
    return HttpRequest(method, path, headers + auth(rng, t), body), f"card {method} {path}", False


def any_request(rng: random.Random, t: Target) -> tuple[HttpRequest, str, bool]:
    roll = rng.random()
    if roll < 0.5:
        return rpc_request(rng, t)
    if roll < 0.85:
        return rest_request(rng, t)
    return card_request(rng, t)


def plain_request(rng: random.Random, t: Target) -> tuple[HttpRequest, str, bool]:
    """A request whose answer always ends (no stream), for pipelines and sequences."""
    for _ in range(20):
        req, label, streaming = any_request(rng, t)
        if not streaming:
            return req, label, False
    return card_request(rng, t)


def framing(rng: random.Random, req: HttpRequest, t: Target) -> tuple[list[Step], str]:
    """The request with broken framing: Content-Length or Transfer-Encoding wrong."""
    body = req.body or b'{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"x"}}'
    n = len(body)
    choice = rng.randrange(9)
    if choice == 0:  # declares more than it sends, then half-closes
        return [Step(req.head(t, length=str(n + rng.randint(1, 500))) + body, (req.method,),
                     then="shut")], "Content-Length too large, then EOF"
    if choice == 1:
        return [Step(req.head(t, length=str(max(0, n - rng.randint(1, n)))) + body,
                     (req.method,), then="shut")], "Content-Length too small"
    if choice == 2:
        value = rng.choice(["-1", "abc", "1e3", "+5", " 5", "0x10", "99999999999999999999999"])
        return [Step(req.head(t, length=value) + body, (req.method,), then="shut")], \
            f"Content-Length {value!r}"
    if choice == 3:
        return [Step(req.head(t, length=None, extra=f"Content-Length: {n}\r\n"
                              f"Content-Length: {n + rng.choice([0, 1])}\r\n") + body,
                     (req.method,), then="shut")], "two Content-Length headers"
    if choice == 4:
        return [Step(req.head(t, length=str(n), extra="Transfer-Encoding: chunked\r\n")
                     + f"{n:x}\r\n".encode() + body + b"\r\n0\r\n\r\n", (req.method,),
                     then="shut")], "Content-Length and chunked"
    if choice == 5:  # valid chunked body, in odd pieces
        cut = rng.randint(1, n)
        chunks = f"{cut:x};ext=1\r\n".encode() + body[:cut] + b"\r\n" + (
            f"{n - cut:X}\r\n".encode() + body[cut:] + b"\r\n" if cut < n else b"") \
            + b"0\r\n\r\n"
        return [Step(req.head(t, length=None, extra="Transfer-Encoding: chunked\r\n") + chunks,
                     (req.method,), then=rng.choice(["", "shut"]))], "chunked body"
    if choice == 6:
        bad = rng.choice([b"zz\r\n", b"ffffffffffffffff\r\nab", b"5\r\nabc", b"-1\r\n"])
        return [Step(req.head(t, length=None, extra="Transfer-Encoding: chunked\r\n") + bad,
                     (req.method,), then="shut")], f"bad chunk {bad[:12]!r}"
    if choice == 7:
        te = rng.choice(["gzip, chunked", "chunked, identity", "identity", "xchunked"])
        return [Step(req.head(t, length=None, extra=f"Transfer-Encoding: {te}\r\n") + body,
                     (req.method,), then="shut")], f"Transfer-Encoding {te!r}"
    return [Step(req.head(t, length=None) + body, (req.method,), then=rng.choice(["", "shut"]))], \
        "body without Content-Length"
