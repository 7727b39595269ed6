"""`python -m runtime send|get|list|cancel|card` against a real server opened in the test.

The exit codes, the stdout/stderr split and "never a traceback" are checked on
real processes. Every process start-up costs a few tenths of a second of CPU
(trio, httpx and the models), so the output of each command is checked in-process
too: `run_client_command` on a worker thread, with its own `trio.run`.
"""

from __future__ import annotations

import io
import json
import os
import socket
import sys
from pathlib import Path

import trio

from protocol.models import ListTasksRequest
from runtime.cli import build_parser
from runtime.client.cli import run_client_command
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import Controls

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 30  # each process starts Python and imports the runtime


async def cli(*args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``python -m runtime ARGS``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIO_A2A_")}
    proc = await trio.run_process([sys.executable, "-m", "runtime", *args], cwd=REPO, env=env,
                                  capture_stdout=True, capture_stderr=True, check=False)
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert "Traceback" not in err, err
    return proc.returncode, out, err


async def cli_all(*commands: tuple[str, ...]) -> list[tuple[int, str, str]]:
    """Several independent commands at once."""
    results: list[tuple[int, str, str]] = [(0, "", "")] * len(commands)

    async def one(i: int) -> None:
        results[i] = await cli(*commands[i])

    async with trio.open_nursery() as nursery:
        for i in range(len(commands)):
            nursery.start_soon(one, i)
    return results


async def run(*args: str) -> tuple[int, str, str]:
    """The same command in this process (parsed by the real parser)."""
    out, err = io.StringIO(), io.StringIO()
    parsed = build_parser().parse_args(args)
    code = await trio.to_thread.run_sync(run_client_command, parsed, out, err)
    assert "Traceback" not in err.getvalue()
    return code, out.getvalue(), err.getvalue()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- real processes ---------------------------------------------------------------------


async def test_processes_exit_codes_and_output(server: RunningServer, tmp_path: Path) -> None:
    url, down = server.url, f"http://127.0.0.1:{closed_port()}"
    metrics = tmp_path / "metrics.json"
    with trio.fail_after(TIMEOUT):
        plain, stream_json, failed, unknown, refused, missing = await cli_all(
            ("send", url, "hello cli"),
            ("send", url, "chunks 2", "--stream", "--json", "--metrics-json", str(metrics)),
            ("send", url, "fail"),
            ("get", url, "no-such-task"),
            ("send", down, "hello"),
            ("send", url),
        )
    assert plain[0] == 0 and plain[1] == "hello cli\n"  # the answer alone on stdout
    assert " completed (context " in plain[2]
    assert stream_json[0] == 0
    lines = [json.loads(line) for line in stream_json[1].splitlines()]
    assert [next(iter(e)) for e in lines] == ["task", "statusUpdate", "artifactUpdate",
                                              "artifactUpdate", "statusUpdate"]
    assert lines[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    card, send = json.loads(metrics.read_text())
    assert card["method"] == "GetAgentCard"
    assert send["method"] == "SendStreamingMessage" and send["ok"] and send["events"] == 5
    assert 0 <= send["first_s"] <= send["total_s"]
    assert send["state"] == "TASK_STATE_COMPLETED"
    assert failed[0] == 1 and "failed (context" in failed[2] and "scripted failure" in failed[2]
    assert unknown[0] == 1 and "-32001" in unknown[2] and f"{url}/" in unknown[2]
    assert refused[0] == 2
    assert refused[2].startswith(f"error: cannot connect to {down}/.well-known/agent-card.json")
    assert len(refused[2].splitlines()) == 1
    assert missing[0] == 2 and "required: TEXT" in missing[2]


# --- in-process ------------------------------------------------------------------------


async def test_send_output(server: RunningServer) -> None:
    url = server.url
    with trio.fail_after(TIMEOUT):
        streamed = await run("send", url, "chunks 3", "--stream")
        as_json = await run("send", url, "hello json", "--json")
        reply = await run("send", url, "reply hi")
        rejected = await run("send", url, "reject", "--stream")
    assert streamed == (0, "c0c1c2\n", streamed[2]) and "completed" in streamed[2]
    task = json.loads(as_json[1])["task"]
    assert as_json[0] == 0 and task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert "".join(p["text"] for p in task["artifacts"][0]["parts"]) == "hello json"
    assert reply[:2] == (0, "direct: hi\n") and "direct reply" in reply[2]
    assert rejected[0] == 1 and "rejected (context" in rejected[2]
    assert "not doing that" in rejected[2]


async def test_get_list_cancel_and_card(server: RunningServer, controls: Controls) -> None:
    url = server.url
    with trio.fail_after(TIMEOUT):
        code, out, _ = await run("send", url, "wait", "--no-wait", "--json")
        assert code == 0
        task_id = json.loads(out)["task"]["id"]
        await controls.wait_started(task_id)
        code, _, err = await run("cancel", url, task_id)
        assert code == 0 and f"task {task_id} canceled" in err
        got = await run("get", url, task_id)
        listed = await run("list", url, "--json", "--status", "canceled")
        table = await run("list", url, "--page-size", "1")
        card = await run("card", url)
    assert got[0] == 1 and f"task {task_id} canceled" in got[2]  # a canceled task exits 1
    assert listed[0] == 0
    assert [t["id"] for t in json.loads(listed[1])["tasks"]] == [task_id]
    assert table[0] == 0 and table[1].startswith(f"{task_id}  canceled")
    assert "1 of 1 tasks" in table[2]
    assert card[0] == 0 and card[1].startswith("scripted ")
    assert f"speaking A2A 1.0 over JSON-RPC at {url}/" in card[1]
    assert "  JSONRPC   0.3  " in card[1]


async def test_input_required_then_answer_with_task_id(server: RunningServer) -> None:
    with trio.fail_after(TIMEOUT):
        code, _, err = await run("send", server.url, "ask")
        assert code == 0
        assert "input-required (context" in err and "what is your name?" in err
        task_id = err.split("task ", 1)[1].split()[0]
        assert f"--task-id {task_id}" in err
        code, out, err = await run("send", server.url, "ask bob", "--task-id", task_id)
    assert code == 0 and out == "answer: ask bob\n" and "completed" in err


async def test_0_3_on_request(server: RunningServer) -> None:
    with trio.fail_after(TIMEOUT):
        streamed = await run("send", server.url, "chunks 2", "--stream", "--protocol", "0.3")
        listed = await run("list", server.url, "--protocol", "0.3")
    assert streamed[:2] == (0, "c0c1\n")
    assert listed[0] == 2 and "listing tasks needs A2A 1.0" in listed[2]


async def test_usage_errors_exit_2_before_connecting() -> None:
    down = f"http://127.0.0.1:{closed_port()}"
    with trio.fail_after(TIMEOUT):
        status = await run("list", down, "--status", "bogus")
        bad_url = await run("card", "localhost:1234")
        bad_meta = await run("send", down, "x", "--metadata", "[1]")
        page = await run("list", down, "--page-size", "0")
    assert status[0] == 2 and "--status 'bogus' is not a task state" in status[2]
    assert bad_url[0] == 2 and "not an http(s) URL" in bad_url[2]
    assert bad_meta[0] == 2 and "--metadata must be a JSON object" in bad_meta[2]
    assert page[0] == 2 and "--page-size must be between 1 and 100" in page[2]


# --- errors a person can act on -----------------------------------------------------------


async def test_a_wait_that_times_out_names_the_task(server: RunningServer,
                                                    controls: Controls) -> None:
    """The task goes on after the client gave up; the error says how to look it up."""
    url = server.url
    with trio.fail_after(TIMEOUT):
        blocking = await run("send", url, "wait", "--wait-timeout", "0.5")
        streaming = await run("send", url, "wait", "--stream", "--wait-timeout", "0.5")
        controls.gate.set()
        tasks = (await server.service.list_tasks(ListTasksRequest())).tasks
    started = {t.id for t in tasks}
    for code, _, err in (blocking, streaming):
        assert code == 2 and "no answer from" in err, err
        line = err.splitlines()[-1].strip()
        assert line.startswith(f"the task goes on: python -m runtime get {url} "), err
        assert line.rsplit(" ", 1)[1] in started


async def test_auth_errors_name_the_flag_once() -> None:
    config = ServerConfig(port=0, store="memory", tokens={"s3cret": "alice"})
    async with open_server(config) as srv:
        with trio.fail_after(TIMEOUT):
            missing = await run("send", srv.url, "hello")
            wrong = await run("send", srv.url, "hello", "--token", "nope")
            right = await run("send", srv.url, "echo hello", "--token", "s3cret")
    assert missing[0] == 2 and wrong[0] == 2 and right[0] == 0
    assert missing[2].count("bearer token") == 1, missing[2]
    assert "--token TOKEN or TRIO_A2A_CLIENT_TOKEN" in missing[2]
    assert "the token given (--token or TRIO_A2A_CLIENT_TOKEN) was refused" in wrong[2]


async def test_https_against_plain_http_says_so(server: RunningServer) -> None:
    https = server.url.replace("http://", "https://")
    with trio.fail_after(TIMEOUT):
        code, _, err = await run("send", https, "hello")
    assert code == 2
    assert "does not speak TLS there" in err and server.url in err, err


async def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(
        server: RunningServer) -> None:
    """`python -m runtime card URL | head -1`: the reader closes the pipe before the
    card is printed. The command stops with exit code 1 and no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line
    with os.fdopen(write_end, "w") as out:
        err = io.StringIO()
        parsed = build_parser().parse_args(["card", server.url])
        code = await trio.to_thread.run_sync(run_client_command, parsed, out, err)
    assert code == 1
    assert "Traceback" not in err.getvalue() and "BrokenPipe" not in err.getvalue()
