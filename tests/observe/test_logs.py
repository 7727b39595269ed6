"""Log lines parsed back: text key=value fields, JSON values and timestamps, the
httpx request lines at DEBUG, and the access log of a real server."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import trio

from runtime.logs import JsonLogFormatter, TextLogFormatter, setup_logging
from runtime.server import ServerConfig, open_server
from tests.conftest import Rpc, user_message

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
PAIR = re.compile(r' (\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def _record(msg: str = "task released", **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("actors.test", logging.INFO, __file__, 1, msg, None, None)
    record.created, record.msecs = 1796669941.123, 123.0  # 2026-12-07T18:59:01.123Z
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def parse_text(line: str) -> tuple[str, str, str, str, dict[str, Any]]:
    """(ts, level, logger, message, fields) of one text line."""
    ts, level, rest = line.split(" ", 2)
    logger, _, body = rest.partition(": ")
    first = PAIR.search(" " + body)
    message = body if first is None else body[:first.start() - 1]
    fields: dict[str, Any] = {}
    for key, raw in PAIR.findall(body[len(message):]):
        fields[key] = json.loads(raw) if raw[0] in '"[{' else raw
    return ts, level, logger, message, fields


FIELDS = {"task_id": "t-1", "context_id": "c-1", "worker_id": "w-1", "attempt_id": "a-1",
          "principal": "alice smith", "tools": ["read_file", "grep"]}


def test_text_lines_show_the_structured_fields() -> None:
    line = TextLogFormatter().format(_record(**FIELDS))
    ts, level, logger, message, fields = parse_text(line)
    assert (ts, level, logger, message) == ("2026-12-07T18:59:01.123Z", "INFO", "actors.test",
                                            "task released")
    assert fields == FIELDS


def test_json_lines_hold_json_values() -> None:
    line = JsonLogFormatter().format(_record(**FIELDS, ids={"b", "a"}, n=3, ok=True,
                                             nested={"k": [1, None]}))
    out = json.loads(line)
    assert out["ts"] == "2026-12-07T18:59:01.123Z" and TS.match(out["ts"])
    assert out["tools"] == ["read_file", "grep"]  # a list, not "['read_file', 'grep']"
    assert out["ids"] == ["a", "b"] and out["n"] == 3 and out["ok"] is True
    assert out["nested"] == {"k": [1, None]}
    assert {k: out[k] for k in FIELDS} == FIELDS


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:], root.level = handlers, level


@pytest.mark.usefixtures("root_logging")
def test_httpx_request_lines_are_debug(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("info", "json")
    logging.getLogger("httpx").info("HTTP Request: POST http://x/v1 \"HTTP/1.1 200 OK\"")
    logging.getLogger("runtime.test").info("kept")
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert [x["msg"] for x in lines] == ["kept"]
    setup_logging("debug", "json")
    logging.getLogger("httpx").info("HTTP Request: GET http://x/models")
    (line,) = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert line["level"] == "debug" and line["logger"] == "httpx"


async def test_access_log_one_line_per_request(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="runtime.access")
    config = ServerConfig(port=0, store="memory", access_log=True, tokens={"tok": "alice"})
    with trio.fail_after(20):
        async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as c:
            rpc = Rpc(c, "1.0", headers={"Authorization": "Bearer tok"})
            await rpc.call("SendMessage", {"message": user_message("hi")})
            await c.get("/healthz")
            await c.get("/nowhere")
    formatter = JsonLogFormatter()
    lines = [json.loads(formatter.format(r)) for r in caplog.records
             if r.name == "runtime.access"]
    assert [(x["msg"], x["binding"], x["a2a_method"], x["status"], x["outcome"],
             x["principal"]) for x in lines] == [
        ("POST / 200", "jsonrpc", "SendMessage", 200, "ok", "alice"),
        ("GET /healthz 200", "probe", "GET", 200, "ok", ""),
        ("GET /nowhere 404", "other", "GET", 404, "client_error", ""),
    ]
    assert all(isinstance(x["duration_ms"], float) and x["client"].startswith("127.0.0.1:")
               for x in lines)


async def test_access_log_is_off_by_default(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="runtime.access")
    with trio.fail_after(20):
        async with open_server(ServerConfig(port=0, store="memory")) as srv, \
                httpx.AsyncClient(base_url=srv.url) as c:
            assert (await c.get("/healthz")).status_code == 200
    assert [r for r in caplog.records if r.name == "runtime.access"] == []
