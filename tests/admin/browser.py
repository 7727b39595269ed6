"""A real headless browser for the dashboard tests: Debian's chromium, driven by
Playwright through its executable path (Playwright's own browser downloads are not
used). The machines run as root and CI starts without chromium, so it is installed
here, once per session, with apt-get when /usr/bin/chromium is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM = Path(os.environ.get("TRIO_A2A_TEST_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
"""--no-sandbox: chromium refuses to run as root with its sandbox."""


class ChromiumUnavailable(RuntimeError):
    pass


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], capture_output=True, text=True, env=env,
                          timeout=900, check=False)


def _package_lists_empty() -> bool:
    lists = Path("/var/lib/apt/lists")
    return not lists.is_dir() or not any(p.name.endswith("Packages") or "Packages." in p.name
                                         for p in lists.iterdir())


def ensure_chromium() -> str:
    """The chromium executable, installed with apt-get if missing; ChromiumUnavailable
    (with apt-get's last lines) if that cannot be done."""
    if CHROMIUM.exists():
        return str(CHROMIUM)
    if shutil.which("apt-get") is None:
        raise ChromiumUnavailable(f"{CHROMIUM} is missing and there is no apt-get to install "
                                  "it: install Debian's 'chromium' package")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise ChromiumUnavailable(f"{CHROMIUM} is missing: run 'apt-get install -y chromium' "
                                  "as root (the tests install it themselves only as root)")
    if _package_lists_empty():
        _apt("update")
    done = _apt("install", "-y", "chromium")
    if done.returncode != 0:  # stale package lists: refresh once and try again
        _apt("update")
        done = _apt("install", "-y", "chromium")
    if done.returncode != 0 or not CHROMIUM.exists():
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise ChromiumUnavailable(f"'apt-get install -y chromium' failed "
                                  f"(exit {done.returncode}):\n{tail}")
    return str(CHROMIUM)
