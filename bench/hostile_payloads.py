"""JSON bodies for the hostile-traffic fuzzer (`bench.hostile`): well-formed A2A
requests of both generations, and seeded mutations of them.

Why a generator of its own rather than random bytes: random bytes die in the JSON
parser. Starting from a request the server accepts and breaking one or two things
in it (a field dropped or of the wrong type, a huge or deeply nested value, an
unknown method, a batch, a notification) reaches the validation, the service and
the store, where a crash or a lost task would hurt. Every choice comes from the
`random.Random` handed in, so a body is rebuilt exactly from its seed and index.

Special JSON tokens that Python's encoder will not write (``1e400``, ``NaN``, a
lone surrogate, duplicate keys, nesting thousands deep) are spliced into the text
after encoding, so building them never recurses in this process.
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass
from typing import Any

STREAMING = frozenset({"SendStreamingMessage", "SubscribeToTask", "message/stream",
                       "tasks/resubscribe", "tasks/sendSubscribe"})
NOT_A_WORKER = "trio-a2a-hostile/no-worker-has-this"
"""A capability no worker offers: a task asking for it stays queued (and cancelable)."""

# Push URLs are IP literals the server refuses (loopback, private, documentation), or
# not URLs at all: a hostname would make the server resolve it, and a public address
# would make it deliver there. The fuzzer never reaches past loopback.
PUSH_URLS = ("http://127.0.0.1:9/hook", "http://[::1]/x", "https://10.1.2.3/p",
             "http://192.0.2.7/doc", "ftp://127.0.0.1/", "javascript:alert(1)", "",
             "http://localhost/x", "not a url", "http://[::ffff:127.0.0.1]/")


@dataclass(frozen=True)
class Pool:
    """What generated requests may refer to: the fuzzing principal's own tasks, and
    the honest tasks of another principal (read or attacked, never legitimately)."""

    own_done: tuple[str, ...]
    own_queued: tuple[str, ...]
    honest: tuple[str, ...]
    max_body: int


def weird_string(rng: random.Random) -> str:
    return rng.choice(["", " ", "\u0000", "../../etc/passwd", "%2e%2e%2f", "\u202eevil",
                       "a" * rng.choice([256, 5000]), "☃" * 50, "null", "{}",
                       "\ud7ff\ue000", "0", "-1", "tasks/x", "\r\nX-Injected: 1"])


def task_id(rng: random.Random, pool: Pool) -> Any:
    roll = rng.random()
    if roll < 0.3 and pool.own_done:
        return rng.choice(pool.own_done)
    if roll < 0.5 and pool.own_queued:
        return rng.choice(pool.own_queued)
    if roll < 0.7 and pool.honest:
        return rng.choice(pool.honest)
    if roll < 0.85:
        return f"{rng.getrandbits(128):032x}"
    return rng.choice([weird_string(rng), 123, None, ["x"], {"id": "x"}])


def _mid(rng: random.Random) -> str:
    return f"hm-{rng.getrandbits(64):016x}"


def _text(rng: random.Random) -> str:
    return rng.choice(["hello", "", "ünïcødé ✓", "x" * rng.randint(1, 300), "a\nb\tc",
                       "<script>", "'; DROP TABLE tasks; --"])


def message(rng: random.Random, pool: Pool, version: str) -> dict[str, Any]:
    """A user message of the generation; sometimes continuing a task or a context."""
    if version == "1.0":
        part = rng.choice([{"text": _text(rng)},
                           {"raw": base64.b64encode(b"\x00\x01bytes").decode(),
                            "mediaType": "application/octet-stream"},
                           {"url": "http://127.0.0.1/f.txt", "filename": "f.txt"},
                           {"data": {"k": [1, 2, {"z": None}]}}])
        msg: dict[str, Any] = {"messageId": _mid(rng), "role": "ROLE_USER", "parts": [part]}
    else:
        part = rng.choice([{"kind": "text", "text": _text(rng)},
                           {"kind": "data", "data": {"k": 1}},
                           {"kind": "file", "file": {"uri": "http://127.0.0.1/f",
                                                     "mimeType": "text/plain"}}])
        msg = {"kind": "message", "messageId": _mid(rng), "role": "user", "parts": [part]}
    roll = rng.random()
    if roll < 0.1:
        msg["taskId"] = task_id(rng, pool)
    elif roll < 0.2:
        msg["contextId"] = rng.choice([f"ctx-{rng.getrandbits(32):x}", weird_string(rng)])
    if rng.random() < 0.1:
        msg["metadata"] = {"note": _text(rng), "n": rng.randint(-5, 5)}
    return msg


def _push(rng: random.Random, version: str, tid: Any) -> dict[str, Any]:
    config = {"url": rng.choice(PUSH_URLS), "token": f"t{rng.getrandbits(16)}"}
    if rng.random() < 0.3:
        config["id"] = rng.choice(["c1", weird_string(rng)])
    if version == "1.0":
        return {"taskId": tid, **config}
    return {"taskId": tid, "pushNotificationConfig": config}


def rpc_params(rng: random.Random, pool: Pool, method: str, version: str) -> Any:
    """Valid-looking params for `method` (it may name a task that is not there)."""
    tid = task_id(rng, pool)
    if method in ("SendMessage", "SendStreamingMessage", "message/send", "message/stream",
                  "tasks/send", "tasks/sendSubscribe"):
        params: dict[str, Any] = {"message": message(rng, pool, version)}
        if rng.random() < 0.3:
            conf: dict[str, Any] = {"historyLength": rng.choice([0, 1, 5])}
            if rng.random() < 0.3:
                conf["acceptedOutputModes"] = ["text/plain"]
            params["configuration"] = conf
        return params
    if method in ("GetTask", "tasks/get"):
        return {"id": tid, **({"historyLength": rng.choice([0, 2, 100])} if rng.random() < .3
                              else {})}
    if method in ("ListTasks", "tasks/list"):
        return rng.choice([{}, {"pageSize": rng.choice([1, 10, 100])},
                           {"status": "TASK_STATE_COMPLETED"}, {"pageToken": "bogus"},
                           {"contextId": f"ctx-{rng.getrandbits(16)}"},
                           {"statusTimestampAfter": "2020-01-01T00:00:00Z"}])
    if method in ("CancelTask", "tasks/cancel", "SubscribeToTask", "tasks/resubscribe",
                  "ListTaskPushNotificationConfigs", "tasks/pushNotificationConfig/list"):
        key = "taskId" if method == "ListTaskPushNotificationConfigs" else "id"
        return {key: tid}
    if method in ("CreateTaskPushNotificationConfig", "tasks/pushNotificationConfig/set"):
        return _push(rng, version, tid)
    if method in ("GetTaskPushNotificationConfig", "DeleteTaskPushNotificationConfig"):
        return {"taskId": tid, "id": rng.choice(["c1", str(tid)])}
    if method in ("tasks/pushNotificationConfig/get", "tasks/pushNotificationConfig/delete"):
        return {"id": tid, "pushNotificationConfigId": rng.choice(["c1", str(tid)])}
    return {}


METHODS = {
    "1.0": ("SendMessage", "SendMessage", "SendStreamingMessage", "GetTask", "GetTask",
            "ListTasks", "CancelTask", "SubscribeToTask", "CreateTaskPushNotificationConfig",
            "GetTaskPushNotificationConfig", "ListTaskPushNotificationConfigs",
            "DeleteTaskPushNotificationConfig", "GetExtendedAgentCard"),
    "0.3": ("message/send", "message/send", "message/stream", "tasks/get", "tasks/get",
            "tasks/list", "tasks/cancel", "tasks/resubscribe",
            "tasks/pushNotificationConfig/set", "tasks/pushNotificationConfig/get",
            "tasks/pushNotificationConfig/list", "tasks/pushNotificationConfig/delete",
            "agent/getAuthenticatedExtendedCard", "tasks/send", "tasks/sendSubscribe"),
}
ODD_METHODS = ("", "sendmessage", " SendMessage", "SendMessage\u0000", "rpc.discover",
               "tasks/../get", "message/send/", "A" * 3000, "Send Message", "tasks/*")


def rpc_request(rng: random.Random, pool: Pool, version: str, *,
                notification: bool = False) -> dict[str, Any]:
    method = rng.choice(METHODS[version])
    req: dict[str, Any] = {"jsonrpc": "2.0", "method": method,
                           "params": rpc_params(rng, pool, method, version)}
    if not notification:
        req["id"] = rng.choice([rng.randint(1, 10**6), f"id-{rng.getrandbits(24):x}", 0])
    return req


def routed_send(rng: random.Random, pool: Pool, version: str) -> dict[str, Any]:
    """A non-blocking send asking for a capability nobody has: the task stays queued."""
    msg = message(rng, pool, version)
    msg.pop("taskId", None)
    msg["metadata"] = {"trio-a2a/capabilities": [NOT_A_WORKER],
                       "trio-a2a/priority": rng.randint(-3, 3)}
    conf = {"returnImmediately": True} if version == "1.0" else {"blocking": False}
    return {"jsonrpc": "2.0", "id": rng.randint(1, 999), "method":
            "SendMessage" if version == "1.0" else "message/send",
            "params": {"message": msg, "configuration": conf}}


# --- mutation -------------------------------------------------------------------------


class RawJson:
    """Raw JSON tokens spliced into the encoded text in place of marker strings."""

    def __init__(self) -> None:
        self.tokens: list[str] = []

    def put(self, token: str) -> str:
        self.tokens.append(token)
        return f"@@RAW{len(self.tokens) - 1}@@"

    def encode(self, obj: Any) -> str:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
        for i, token in enumerate(self.tokens):
            text = text.replace(f'"@@RAW{i}@@"', token, 1)
        return text


def deep_token(rng: random.Random) -> str:
    depth = rng.choice([64, 200, 250, 256, 300, 500, 990, 1000, 5000, 100_000])
    if rng.random() < 0.5:
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def _odd_value(rng: random.Random, raw: RawJson, pool: Pool) -> Any:
    roll = rng.randrange(14)
    if roll == 0:
        return raw.put(deep_token(rng))
    if roll == 1:
        size = rng.choice([1_000, 20_000, 100_000, max(1, pool.max_body // 2)])
        return "x" * size
    if roll == 2:
        return raw.put(rng.choice(["1e400", "-1e400", "NaN", "Infinity", "-0", "1e-400",
                                   "123456789012345678901234567890123456789"]))
    if roll == 3:
        return raw.put(rng.choice(['"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"',
                                   '{"a":1,"a":2}', '"\\x"']))
    if roll == 4:
        return [0] * rng.choice([1_000, 10_000])
    if roll == 5:
        return {f"k{i}": i for i in range(rng.choice([100, 2_000]))}
    return rng.choice([None, True, False, 0, -1, 1.5, 2**63, "", "x", [], {}, [None],
                       {"": ""}, weird_string(rng)])


def _slots(obj: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _slots(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:20]):
            out += _slots(v, (*path, i))
    return out


def _get(obj: Any, path: tuple) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def stored_odd_value(rng: random.Random, params: dict[str, Any], raw: RawJson) -> str:
    """Put a deep, huge or wide value where a valid send stores it (metadata, a data
    part, the text), so it reaches the task store rather than the validator."""
    msg = params.setdefault("message", {})
    roll = rng.randrange(5)
    if roll == 0:
        value = "t" * rng.choice([10_000, 100_000, 200_000])
        msg["parts"] = [{"text": value} if "kind" not in msg else {"kind": "text", "text": value}]
        return f"a text part of {len(value)} chars"
    token = deep_token(rng) if roll < 4 else json.dumps(list(range(rng.choice([1000, 20000]))))
    where = rng.choice(["message.metadata", "params.metadata", "data part"])
    if where == "message.metadata":
        msg["metadata"] = {"k": raw.put(token)}
    elif where == "params.metadata":
        params["metadata"] = {"k": raw.put(token)}
    else:
        part = {"data": {"k": raw.put(token)}}
        msg["parts"] = [part if "kind" not in msg else {"kind": "data", **part}]
    return f"{where} holding {token[:12]}... ({len(token)} chars)"


def mutate_obj(rng: random.Random, obj: Any, pool: Pool, raw: RawJson) -> tuple[Any, str]:
    """One structural change to `obj` (a fresh copy); what it did, for the report."""
    slots = [s for s in _slots(obj) if s]
    op = rng.randrange(6)
    if not slots or op == 5:
        return _odd_value(rng, raw, pool), "whole body replaced"
    path = rng.choice(slots)
    parent = _get(obj, path[:-1])
    where = ".".join(str(p) for p in path)
    if op == 0:
        del parent[path[-1]]
        return obj, f"dropped {where}"
    if op == 1 and isinstance(parent, dict):
        parent[rng.choice(["zz", "__proto__", "kind", "id", "tenant", "☃"])] = \
            _odd_value(rng, raw, pool)
        return obj, f"unknown field next to {where}"
    if op == 2 and path[-1] == "method":
        parent["method"] = rng.choice((*ODD_METHODS, *METHODS["1.0"], *METHODS["0.3"]))
        return obj, f"method {parent['method'][:40]!r}"
    parent[path[-1]] = _odd_value(rng, raw, pool)
    return obj, f"odd value at {where}"


def mutate_text(rng: random.Random, text: bytes) -> tuple[bytes, str]:
    """A change to the encoded bytes: truncation, garbage, a BOM, bad UTF-8."""
    op = rng.randrange(8)
    if op == 0 and text:
        cut = rng.randrange(len(text))
        return text[:cut], f"truncated at {cut}"
    if op == 1:
        return text + rng.choice([b"}", b" garbage", b"\x00", b",{}", b"\n\n[]"]), "trailer"
    if op == 2:
        return b"\xef\xbb\xbf" + text, "UTF-8 BOM"
    if op == 3 and text:
        i = rng.randrange(len(text))
        return text[:i] + bytes([rng.randrange(256)]) + text[i + 1:], f"byte {i} changed"
    if op == 4:
        return text.replace(b'"', b"'", 1), "single quote"
    if op == 5:
        return rng.choice([b"", b" ", b"null", b"[]", b"1", b'"s"', b"{", b"\xff\xfe{}",
                           b"[[]]", b"{}"]), "replaced"
    if op == 6:
        return text.decode("utf-8", "replace").encode("utf-16"), "UTF-16"
    return b"[" + text + b"]", "batch of one"


def rpc_body(rng: random.Random, pool: Pool, version: str) -> tuple[bytes, str, bool, bool]:
    """A JSON-RPC body: (bytes, what it is, whether its answer may be an SSE stream,
    whether it should go with honest headers to reach what it aims at)."""
    raw = RawJson()
    roll = rng.random()
    if roll < 0.15:  # batch
        size = rng.choice([0, 1, 2, 5, 20, 100])
        items = [rpc_request(rng, pool, version, notification=rng.random() < 0.2)
                 for _ in range(size)]
        if items and rng.random() < 0.5:
            i = rng.randrange(len(items))
            items[i], what = mutate_obj(rng, items[i], pool, raw)
        else:
            what = "valid items"
        if rng.random() < 0.1:
            items = [items]
        return raw.encode(items).encode(), f"batch of {size} ({what})", False, False
    if roll < 0.3:
        req = rpc_request(rng, pool, version)
        req["method"] = rng.choice(METHODS[version][:3])
        req["params"] = rpc_params(rng, pool, req["method"], version)
        what = stored_odd_value(rng, req["params"], raw)
        return raw.encode(req).encode(), f"{req['method']} with {what}", True, True
    notification = roll < 0.4
    req = rpc_request(rng, pool, version, notification=notification)
    label = f"{req['method']}{' notification' if notification else ''}"
    if rng.random() < 0.3:
        return raw.encode(req).encode(), f"valid {label}", True, False
    for _ in range(rng.choice([1, 1, 2, 3])):
        req, what = mutate_obj(rng, req, pool, raw)
        label += f"; {what}"
    body = raw.encode(req).encode("utf-8", "surrogatepass")
    if rng.random() < 0.15:
        body, what = mutate_text(rng, body)
        label += f"; {what}"
    return body, label, True, False
