"""The flags of `python -m runtime send|get|list|cancel|card`, apart from the commands.

`python -m runtime --help` builds every command's parser; kept here, the client's
take argparse and nothing else (the commands, httpx and the models are
`runtime.client.cli`, imported only when a client command runs).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["COMMANDS", "TOKEN_ENV", "add_client_parsers"]

COMMANDS = frozenset({"send", "get", "list", "cancel", "card"})
TOKEN_ENV = "TRIO_A2A_CLIENT_TOKEN"


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("url", metavar="URL", help="the agent's base URL (or its agent card's URL)")
    p.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                   help=f"bearer token for the agent [{TOKEN_ENV}]")
    p.add_argument("--signing-key", default=os.environ.get("A2A_SIGNING_KEY"),
                   help="sign every request with this HMAC key, KEY_ID:SECRET "
                   "[A2A_SIGNING_KEY]")
    p.add_argument("--card-key", type=Path, metavar="PEM",
                   help="trust the agent card only if signed by this public key (PEM file)")
    p.add_argument("--protocol", choices=("auto", "1.0", "0.3"), default="auto",
                   help="A2A generation to speak; 'auto' follows the agent card, preferring "
                   "1.0 (default auto)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to connect and for each plain request (default 30)")
    p.add_argument("--wait-timeout", type=float, default=600.0,
                   help="seconds a blocking send or a quiet stream may wait; 0 for no bound "
                   "(default 600)")
    p.add_argument("--json", action="store_true",
                   help="print the A2A 1.0 result as JSON (one object per line for a stream)")
    p.add_argument("--metrics-json", type=Path, metavar="FILE",
                   help="write per-request latency and token figures to FILE as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="log requests to stderr")
    return p


def add_client_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register send, get, list, cancel and card."""
    common = [_common()]
    s = sub.add_parser("send", parents=common, help="send a message to an A2A agent",
                       description="Send a text message to an A2A agent and print its answer.")
    s.add_argument("text", metavar="TEXT", help="the message text")
    s.add_argument("--stream", action="store_true", help="stream the answer as it arrives")
    s.add_argument("--no-wait", action="store_true",
                   help="return as soon as the task exists instead of when it ends")
    s.add_argument("--context-id", help="continue this conversation")
    s.add_argument("--task-id", help="continue this task (e.g. answer an input-required task)")
    s.add_argument("--metadata", metavar="JSON", help="request metadata, a JSON object")
    g = sub.add_parser("get", parents=common, help="show an A2A task",
                       description="Show a task: its answer on stdout, its state on stderr.")
    g.add_argument("task_id", metavar="TASK_ID")
    g.add_argument("--history-length", type=int, help="at most this many history messages")
    ls = sub.add_parser("list", parents=common, help="list A2A tasks (A2A 1.0 agents)",
                        description="List the tasks you may see, newest first.")
    ls.add_argument("--context-id", help="only tasks of this conversation")
    ls.add_argument("--status", help="only tasks in this state (e.g. completed, working)")
    ls.add_argument("--page-size", type=int, help="tasks per page (1-100, server default 50)")
    ls.add_argument("--page-token", help="the page after a previous listing")
    c = sub.add_parser("cancel", parents=common, help="cancel an A2A task",
                       description="Ask the agent to cancel a task.")
    c.add_argument("task_id", metavar="TASK_ID")
    sub.add_parser("card", parents=common, help="show an A2A agent card",
                   description="Show the agent card and the protocol this client would use.")
