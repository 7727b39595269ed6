"""Bad input to `python -m runtime server` ends in one precise line, never a traceback.

Each case runs the real command as a process (bounded by `trio.fail_after`): an
out-of-range port, a task store that cannot be opened, a token file that would
silently turn auth off or take a malformed line as a token. The cases of one
point run at once, since every process start costs about a second of CPU.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

import pytest
import trio

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 30  # each process starts Python and imports the runtime
USAGE = "python -m runtime server: error: "  # argparse, on the subcommand's flags
CHECK = USAGE  # the checks after parsing: also the subcommand's usage


async def _server_all(*cases: list[str], env: dict[str, str] | None = None,
                      ) -> list[tuple[int, str]]:
    """Exit code and stderr of `python -m runtime server ARGS` for each case, run at once."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TRIO_A2A_")}
    results: list[tuple[int, str]] = [(0, "")] * len(cases)

    async def one(i: int) -> None:
        proc = await trio.run_process(
            [sys.executable, "-m", "runtime", "server", *cases[i]], cwd=ROOT,
            env={**base, **(env or {})}, capture_stdout=True, capture_stderr=True,
            check=False)
        results[i] = (proc.returncode, proc.stderr.decode())

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            for i in range(len(cases)):
                nursery.start_soon(one, i)
    return results


def _last_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    return stderr.strip().splitlines()[-1]


# --- ports --------------------------------------------------------------------------


async def test_a_port_out_of_range_is_a_usage_error_naming_the_flag_and_range() -> None:
    flag, from_env = await _server_all(["--store", "memory", "--port", "-1"],
                                       ["--store", "memory", "--port", "70000"])
    (env_code, env_err), = await _server_all(["--store", "memory"],
                                             env={"TRIO_A2A_PORT": "65536"})
    for (code, err), value in ((flag, -1), (from_env, 70000), ((env_code, env_err), 65536)):
        assert code == 2, err
        assert _last_line(err) == (
            f"{USAGE}argument --port: must be a port number in 0-65535, not {value} "
            "(from the flag or TRIO_A2A_PORT)")


async def test_a_bad_base_path_is_a_usage_error_naming_the_segment() -> None:
    (flag_code, flag_err), = await _server_all(["--store", "memory", "--base-path", "/a/../b"])
    (env_code, env_err), = await _server_all(["--store", "memory"],
                                             env={"TRIO_A2A_BASE_PATH": "/api/a b"})
    assert flag_code == env_code == 2, (flag_err, env_err)
    assert _last_line(flag_err).startswith(f"{USAGE}argument --base-path: base path '/a/../b'")
    assert _last_line(flag_err).endswith("'..' is not")
    assert _last_line(env_err).endswith("'a b' is not")


# --- the task store -----------------------------------------------------------------


def _unwritable_dir(tmp_path: Path) -> tuple[Path, str]:
    """A directory this process cannot create files in, and the reason the OS gives.

    Permissions do not stop root, so as root the test uses /sys, which no one can
    create files in."""
    if os.geteuid() != 0:
        path = tmp_path / "read-only"
        path.mkdir()
        path.chmod(0o555)
    else:
        path = Path("/sys")
    try:
        fd, probe = tempfile.mkstemp(dir=path)
    except OSError as exc:
        return path, exc.strerror or errno.errorcode[exc.errno]
    os.close(fd)
    os.unlink(probe)
    pytest.skip(f"cannot find a directory this process may not write: {path} is writable")


async def test_a_store_that_cannot_be_opened_is_one_line_naming_the_path(
    tmp_path: Path,
) -> None:
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "tasks.sqlite3").write_bytes(b"this is not an SQLite database\n" * 100)
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    store_is_dir = tmp_path / "store-is-dir"
    (store_is_dir / "tasks.sqlite3").mkdir(parents=True)
    read_only, reason = _unwritable_dir(tmp_path)
    cases = {
        corrupt: f"error: cannot open the task store {corrupt / 'tasks.sqlite3'}: not an "
        "SQLite database, or a damaged one (file is not a database); restore it from a "
        "backup, or move it away to start with an empty store",
        a_file: f"error: cannot open the task store {a_file / 'tasks.sqlite3'}: {a_file} is "
        "a file, not a directory; move it away or choose another data directory",
        store_is_dir: f"error: cannot open the task store {store_is_dir / 'tasks.sqlite3'}: "
        "it is a directory, not an SQLite file; move it away or choose another data "
        "directory",
        read_only: f"error: cannot open the task store {read_only / 'tasks.sqlite3'}: cannot "
        f"create files in {read_only} ({reason}); make it writable by this user, or choose "
        "another data directory",
    }
    results = await _server_all(*(["--port", "0", "--local-workers", "0", "--data-dir",
                                   str(d)] for d in cases))
    for (code, err), expected in zip(results, cases.values(), strict=True):
        assert code == 1, err
        assert _last_line(err) == expected
    assert (a_file.read_text(), list(read_only.glob("tasks.sqlite3*"))) == (
        "not a directory\n", [])
    with pytest.raises(sqlite3.DatabaseError):  # left as it was, for the operator to look at
        sqlite3.connect(corrupt / "tasks.sqlite3").execute("PRAGMA user_version").fetchone()


# --- token files --------------------------------------------------------------------


async def test_a_token_file_with_no_tokens_or_a_bare_token_refuses_to_start(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")
    comments = tmp_path / "comments-only"
    comments.write_text("# the team's tokens\n\n   \n# none yet\n")
    bare = tmp_path / "bare"
    bare.write_text("# the team's tokens\nalice:aaa\nsecret-without-principal\n")
    worker_bare = tmp_path / "worker-bare"
    worker_bare.write_text("\n\nw1 wtok\n")
    no_tokens = "holds no tokens: expected one 'principal:token' per line (blank lines and " \
        "'#' comments are skipped)"
    cases = {
        ("--tokens-file", empty): f"--tokens-file: {empty} {no_tokens}",
        ("--tokens-file", comments): f"--tokens-file: {comments} {no_tokens}",
        ("--tokens-file", bare): f"--tokens-file: {bare} line 3: expected 'principal:token' "
        "(no ':' found)",
        ("--worker-tokens-file", empty): f"--worker-tokens-file: {empty} {no_tokens}",
        ("--worker-tokens-file", worker_bare): f"--worker-tokens-file: {worker_bare} line 3: "
        "expected 'principal:token' (no ':' found)",
    }
    results = await _server_all(*(["--store", "memory", "--port", "0", flag, str(path)]
                                  for flag, path in cases))
    for (code, err), expected in zip(results, cases.values(), strict=True):
        assert code == 2, err
        assert _last_line(err) == CHECK + expected
        assert "secret-without-principal" not in err and "wtok" not in err  # never echoed
