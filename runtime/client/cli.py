"""`python -m runtime send|get|list|cancel|card URL ...`: the A2A client on the command line.

Output is for people by default: the agent's answer on stdout (streamed as it
arrives with --stream) and one line saying how the task ended on stderr, so
``send URL "..." > answer.txt`` keeps just the answer. ``--json`` prints the A2A
1.0 result instead (one JSON object; one per line for a stream).

The flags are `runtime.client.cli_flags` (re-exported here).

Exit codes: 0 done; 1 the agent said no (the task ended failed, canceled or
rejected, or the agent answered with an A2A error such as an unknown task);
2 usage or connection errors. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import uuid
from typing import Any, TextIO

import trio

from protocol.models import (
    AgentCard,
    Message,
    Part,
    StreamResponse,
    Task,
    TaskState,
    dump,
)
from protocol.states import ends_stream
from runtime.client.card_verify import CardKeys
from runtime.client.cli_flags import COMMANDS, TOKEN_ENV, add_client_parsers
from runtime.client.client import A2AClient, open_a2a_client
from runtime.client.errors import A2AClientError, A2AConnectionError, A2AHTTPError, A2ARpcError
from runtime.client.metrics import metrics_to_json
from runtime.client.signing import parse_hmac_key

__all__ = ["COMMANDS", "add_client_parsers", "run_client_command"]

FAILED = frozenset({TaskState.FAILED, TaskState.CANCELED, TaskState.REJECTED})


class UsageError(Exception):
    """A bad argument found after parsing (exit code 2)."""


# --- rendering ------------------------------------------------------------------------


def _state(state: TaskState) -> str:
    return state.value.removeprefix("TASK_STATE_").lower().replace("_", "-")


def _part_text(part: Part) -> str:
    if part.text is not None:
        return part.text
    if part.data is not None:
        return json.dumps(part.data)
    name = part.filename or part.url or "file"
    return f"[{name}{f' ({part.media_type})' if part.media_type else ''}]"


def _message_text(message: Message | None) -> str:
    return "".join(_part_text(p) for p in message.parts) if message is not None else ""


def _answer(task: Task) -> str:
    return "\n".join("".join(_part_text(p) for p in a.parts) for a in task.artifacts or ())


def _status_line(client: A2AClient, result: Task | Message | None, url: str) -> str:
    if isinstance(result, Message):
        line = "direct reply (no task)"
    elif result is None:
        return "the stream ended without a task"
    else:
        line = f"task {result.id} {_state(result.status.state)} (context {result.context_id})"
        if (why := _message_text(result.status.message)):
            line += f": {why}"
        if result.status.state is TaskState.INPUT_REQUIRED:
            line += f"\nanswer with: python -m runtime send {url} TEXT --task-id {result.id}"
    usage = client.metrics[-1] if client.metrics else None
    if usage is not None and usage.input_tokens is not None:
        line += f" [tokens: {usage.input_tokens} in, {usage.output_tokens} out]"
    return line


def _exit_code(result: Task | Message | None) -> int:
    return 1 if isinstance(result, Task) and result.status.state in FAILED else 0


class _Printer:
    def __init__(self, out: TextIO, err: TextIO, as_json: bool) -> None:
        self.out, self.err, self.as_json = out, err, as_json
        self._artifact: str | None = None
        self._open_line = False

    def json(self, obj: Any) -> None:
        print(json.dumps(obj, separators=(",", ":")), file=self.out, flush=True)

    def text(self, text: str) -> None:
        if text:
            print(text, file=self.out, flush=True)

    def event(self, ev: StreamResponse) -> None:
        """One stream event as it arrives: text to stdout, progress to stderr."""
        if self.as_json:
            self.json(dump(ev))
            return
        if (up := ev.artifact_update) is not None:
            if not up.append and self._artifact not in (None, up.artifact.artifact_id):
                self._newline()
            self._artifact = up.artifact.artifact_id
            chunk = "".join(_part_text(p) for p in up.artifact.parts)
            self.out.write(chunk)
            self.out.flush()
            self._open_line = self._open_line or bool(chunk)
        elif ev.message is not None:
            self._newline()
            self.text(_message_text(ev.message))
        elif ((st := ev.status_update) is not None and st.status.message is not None
              and not ends_stream(st.status.state)):  # the last one is in the status line
            print(f"[{_state(st.status.state)}] {_message_text(st.status.message)}",
                  file=self.err, flush=True)

    def _newline(self) -> None:
        if self._open_line:
            print(file=self.out, flush=True)
            self._open_line = False

    def end(self) -> None:
        self._newline()


# --- commands -------------------------------------------------------------------------


def _metadata(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"--metadata is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError("--metadata must be a JSON object, e.g. '{\"key\": \"value\"}'")
    return value


def _status_filter(raw: str | None) -> TaskState | None:
    if raw is None:
        return None
    name = raw.strip().upper().replace("-", "_")
    name = name if name.startswith("TASK_STATE_") else "TASK_STATE_" + name
    try:
        return TaskState(name)
    except ValueError:
        known = ", ".join(_state(s) for s in TaskState if s is not TaskState.UNSPECIFIED)
        raise UsageError(f"--status {raw!r} is not a task state (one of {known})") from None


def _check(args: argparse.Namespace) -> None:
    """Refuse what the agent would refuse anyway, before connecting."""
    if args.timeout <= 0 or args.wait_timeout < 0:
        raise UsageError("--timeout must be positive and --wait-timeout 0 (no bound) or more")
    if getattr(args, "history_length", None) is not None and args.history_length < 0:
        raise UsageError("--history-length must be 0 or more")
    page_size = getattr(args, "page_size", None)
    if page_size is not None and not 1 <= page_size <= 100:
        raise UsageError("--page-size must be between 1 and 100")
    if args.command == "send":
        _metadata(args.metadata)
    if args.command == "list":
        _status_filter(args.status)


async def _send(client: A2AClient, args: argparse.Namespace, p: _Printer) -> int:
    # A new task gets a context id of ours, so that a wait that times out can still
    # name the task it started (found by that context).
    context_id = args.context_id or (None if args.task_id else str(uuid.uuid4()))
    kw = {"metadata": _metadata(args.metadata), "context_id": context_id,
          "task_id": args.task_id}
    if args.stream:
        events = client.send_stream(args.text, **kw)
        try:
            async with events:
                async for ev in events:
                    p.event(ev)
        except A2AConnectionError as exc:
            p.end()
            task_id = events.task.id if events.task is not None else args.task_id
            raise _with_task(exc, task_id, args) from None
        p.end()
        result = events.result
    else:
        try:
            result = await client.send(args.text, blocking=not args.no_wait, **kw)
        except A2AConnectionError as exc:
            task_id = args.task_id or await _task_of_context(client, context_id)
            raise _with_task(exc, task_id, args) from None
        if p.as_json:
            p.json({"task" if isinstance(result, Task) else "message": dump(result)})
        else:
            p.text(_answer(result) if isinstance(result, Task) else _message_text(result))
    if not p.as_json:
        print(_status_line(client, result, args.url), file=p.err)
    return _exit_code(result)


async def _task_of_context(client: A2AClient, context_id: str | None) -> str | None:
    """The newest task of `context_id`, if the agent can list tasks and answers now."""
    if context_id is None or client.protocol != "1.0":
        return None
    with trio.move_on_after(5), contextlib.suppress(A2AClientError):
        page = await client.list_tasks(context_id=context_id, page_size=1)
        return page.tasks[0].id if page.tasks else None
    return None


def _with_task(exc: A2AConnectionError, task_id: str | None,
               args: argparse.Namespace) -> A2AConnectionError:
    """`exc`, naming the task the request started, so the user can look it up."""
    if task_id is None:
        return exc
    return A2AConnectionError(f"{exc}\n  the task goes on: python -m runtime get {args.url} "
                              f"{task_id}", url=exc.url)


async def _get(client: A2AClient, args: argparse.Namespace, p: _Printer) -> int:
    task = await client.get_task(args.task_id, history_length=args.history_length)
    if p.as_json:
        p.json(dump(task))
    else:
        p.text(_answer(task))
        print(_status_line(client, task, args.url), file=p.err)
    return _exit_code(task)


async def _list(client: A2AClient, args: argparse.Namespace, p: _Printer) -> int:
    page = await client.list_tasks(context_id=args.context_id,
                                   status=_status_filter(args.status),
                                   page_size=args.page_size, page_token=args.page_token)
    if p.as_json:
        p.json(dump(page))
        return 0
    for t in page.tasks:
        p.text(f"{t.id}  {_state(t.status.state):<14}  {t.status.timestamp or '-':<24}  "
               f"context {t.context_id}")
    more = f"; next page: --page-token {page.next_page_token}" if page.next_page_token else ""
    print(f"{len(page.tasks)} of {page.total_size} tasks{more}", file=p.err)
    return 0


async def _cancel(client: A2AClient, args: argparse.Namespace, p: _Printer) -> int:
    task = await client.cancel(args.task_id)
    if p.as_json:
        p.json(dump(task))
    else:
        print(_status_line(client, task, args.url), file=p.err)
    return 0


def _card_text(client: A2AClient, card: AgentCard) -> str:
    lines = [f"{card.name} {card.version}: {card.description}",
             f"speaking A2A {client.protocol} over JSON-RPC at {client.rpc_url} "
             f"(card: {client.card_url})", "interfaces:"]
    lines += [f"  {i.protocol_binding:<9} {i.protocol_version:<4} {i.url}"
              for i in card.supported_interfaces]
    caps = [n for n, on in (("streaming", card.capabilities.streaming),
                            ("push notifications", card.capabilities.push_notifications),
                            ("extended card", card.capabilities.extended_agent_card)) if on]
    lines.append(f"capabilities: {', '.join(caps) or 'none'}")
    if card.security_schemes:
        lines.append(f"auth: {', '.join(card.security_schemes)}")
    lines.append("skills:")
    lines += [f"  {s.id}: {s.description}" for s in card.skills]
    return "\n".join(lines)


async def _card(client: A2AClient, args: argparse.Namespace, p: _Printer) -> int:
    card = await client.card()
    if p.as_json:
        p.json(dump(card))
    else:
        p.text(_card_text(client, card))
    return 0


_RUN = {"send": _send, "get": _get, "list": _list, "cancel": _cancel, "card": _card}


async def _main(args: argparse.Namespace, p: _Printer) -> int:
    client: A2AClient | None = None
    try:
        signing = parse_hmac_key(args.signing_key) if args.signing_key else None
        card_keys = CardKeys(args.card_key.read_bytes()) if args.card_key else None
        async with open_a2a_client(args.url, token=args.token, timeout=args.timeout,
                                   wait_timeout=args.wait_timeout or None,
                                   protocol=args.protocol, signing_key=signing,
                                   card_keys=card_keys) as client:
            return await _RUN[args.command](client, args, p)
    finally:
        if args.metrics_json is not None:
            text = metrics_to_json(client.metrics if client is not None else [])
            try:
                args.metrics_json.write_text(text + "\n", encoding="utf-8")
            except OSError as exc:
                print(f"error: cannot write --metrics-json: {exc}", file=p.err)


def _client_error(exc: BaseException) -> BaseException | None:
    """The one error to report from `exc` (exception groups are unwrapped), if known."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, A2AClientError | UsageError | ValueError) else None


def _hint(exc: BaseException, args: argparse.Namespace) -> str:
    """What the user can do about an error, in the CLI's own words."""
    if isinstance(exc, A2AHTTPError) and exc.status_code in (401, 403):
        if args.token:
            return f"\n  the token given (--token or {TOKEN_ENV}) was refused"
        return f"\n  pass a token with --token TOKEN or {TOKEN_ENV}"
    return ""


def _reader_gone(exc: BaseException, out: TextIO) -> bool:
    """True when output failed only because its reader closed the pipe (`... | head`):
    the command stops quietly, as a Unix filter does, instead of a traceback. Output
    still buffered is pointed at /dev/null so the interpreter's final flush cannot
    fail again."""
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(BrokenPipeError)
        if matched is None or rest is not None:
            return False
    elif not isinstance(exc, BrokenPipeError):
        return False
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
    return True


def run_client_command(args: argparse.Namespace, out: TextIO | None = None,
                       err: TextIO | None = None) -> int:
    """Run a parsed client subcommand; the exit code."""
    out, err = out or sys.stdout, err or sys.stderr
    if args.verbose:  # otherwise warnings reach stderr through logging's last resort
        logging.basicConfig(stream=err, level=logging.DEBUG,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        _check(args)
    except UsageError as exc:
        print(f"python -m runtime {args.command}: error: {exc}", file=err)
        return 2
    try:
        return trio.run(_main, args, _Printer(out, err, args.json))
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return 130
    except BaseException as exc:  # only the errors above are for people; a bug still shows
        if _reader_gone(exc, out):
            return 1
        known = _client_error(exc)
        if known is None:
            raise
        prefix = "" if isinstance(known, A2AClientError) else f"python -m runtime {args.command}: "
        print(f"{prefix}error: {known}{_hint(known, args)}", file=err)
        return 1 if isinstance(known, A2ARpcError) else 2
