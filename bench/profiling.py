"""py-spy around a target's measured window (``python -m bench --profile``)."""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess

from bench.procs import log
from bench.targets import BENCH_DIR, Target

RESULTS_DIR = BENCH_DIR / "results"
PROFILE_EXT = {"speedscope": "speedscope.json", "flamegraph": "svg", "raw": "txt"}


def start_profile(target: Target, pid: int, args: argparse.Namespace, stamp: str):
    pyspy = shutil.which("py-spy")
    if pyspy is None:
        log("--profile: py-spy not found (pip install py-spy); running without profiler")
        return None
    out = RESULTS_DIR / f"{stamp}-{target.name}.{PROFILE_EXT[args.profile_format]}"
    cmd = [
        pyspy, "record", "--pid", str(pid), "--subprocesses", "--nonblocking",
        "--rate", str(args.profile_rate),
        "--duration", str(max(1, math.ceil(args.duration))),
        "--format", args.profile_format, "--output", str(out),
    ]  # fmt: skip
    log(f"{target.name}: profiling with py-spy -> {out}")
    p = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
    )
    return p, out


def finish_profile(spy) -> dict:
    p, out = spy
    try:
        text, _ = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        text, _ = p.communicate()
    ok = p.returncode == 0 and out.exists()
    if not ok:
        log(f"py-spy failed (exit {p.returncode}): {text.strip()[-300:]}")
    return {"file": str(out) if ok else None, "py_spy_output": text.strip()[-300:]}

