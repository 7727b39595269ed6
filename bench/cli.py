"""The command line of the throughput bench (``python -m bench [options]``)."""

from __future__ import annotations

import argparse
import shlex

from bench.profiling import PROFILE_EXT
from bench.targets import DEFAULT_TARGETS, Target


def parse_added(spec: str) -> Target:
    name, sep, cmd = spec.partition("=")
    if not sep or not name.strip() or not cmd.strip():
        raise argparse.ArgumentTypeError(f"--add-target wants NAME=COMMAND, got {spec!r}")
    return Target(
        name=name.strip(),
        argv=shlex.split(cmd),
        description=f"ad-hoc target: {cmd.strip()}",
        ours=True,
    )


def levels(spec: str) -> list[int]:
    try:
        levels = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        levels = []
    if not levels or any(n < 1 for n in levels):
        raise argparse.ArgumentTypeError(
            f"--clients wants positive integers separated by commas (e.g. 1,16), got {spec!r}"
        )
    return list(dict.fromkeys(levels))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m bench",
        description="Blocking SendMessage (JSON-RPC, A2A 1.0) throughput and latency, "
        "side by side for several A2A servers. Each server runs in its own "
        "subprocess on 127.0.0.1; the load generator runs in another. "
        "`python -m bench idle-workers --help`: the idle-workers mode; "
        "`python -m bench hostile --help`: hostile traffic, the hardening acceptance check; "
        "`python -m bench replicas --help`: PostgreSQL replicas, throughput and latencies; "
        "`python -m bench subscribers --help`: many SSE subscribers on one server; "
        "`python -m bench startup --help`: process time of the CLI commands; "
        "`python -m bench all --help`: every performance target in one run, one check table.",
    )
    ap.add_argument(
        "--targets",
        default=",".join(DEFAULT_TARGETS),
        help="comma-separated target names, or 'all' (default: %(default)s). See --list.",
    )
    ap.add_argument(
        "--clients",
        type=levels,
        default=[16],
        metavar="N[,N...]",
        help="concurrent clients; several levels separated by commas (e.g. 1,16) run every "
        "target at each level and report one table per level (default 16)",
    )
    ap.add_argument(
        "--duration", type=float, default=10.0, help="measured seconds per target (default 10)"
    )
    ap.add_argument(
        "--warmup", type=float, default=2.0, help="unmeasured seconds first (default 2)"
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="run the target list this many times, interleaved, and report medians "
        "(default 3): the machine's speed drifts during a run, and interleaving spreads "
        "that drift over every target",
    )
    ap.add_argument(
        "--add-target",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        type=parse_added,
        help="extra target run after the selected ones: a server command line with "
        "{python} {port} {host} {data_dir} {database_url} {bench} {repo} placeholders "
        "({database_url}: a fresh PostgreSQL database on TRIO_A2A_BENCH_DATABASE_URL's "
        "server, default postgresql://postgres@127.0.0.1:5432/postgres); it must serve "
        "/.well-known/agent-card.json and A2A 1.0 JSON-RPC on POST /. Repeatable.",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="record our (trio-a2a) targets with py-spy during the measured window",
    )
    ap.add_argument("--profile-format", choices=sorted(PROFILE_EXT), default="speedscope")
    ap.add_argument("--profile-rate", type=int, default=250, help="py-spy samples/s")
    ap.add_argument(
        "--pin",
        action="store_true",
        help="pin the server to CPU 0 and the load generator to the other CPUs",
    )
    ap.add_argument("--keep-data", action="store_true",
                    help="keep each target's temp dir (and its PostgreSQL database)")
    ap.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    ap.add_argument("--list", action="store_true", help="list the targets and exit")
    return ap

