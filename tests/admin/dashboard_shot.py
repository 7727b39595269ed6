"""Take docs/dashboard.png: the dashboard over a realistic workload (not a test).

    python -m tests.admin.dashboard_shot [docs/dashboard.png]

A server with one embedded worker and three remote ones (different capabilities),
a seeded stream of tasks (quick ones, slow ones, failures, streamed artifacts, work
for a capability no worker has), then chromium opens the page, follows a running
task and takes the picture.
"""

from __future__ import annotations

import contextlib
import random
import sys
from pathlib import Path

import trio
from playwright.sync_api import sync_playwright

from runtime.admin import AdminSettings
from runtime.client import open_a2a_client
from runtime.server import ServerConfig, open_server
from runtime.worker import open_worker
from tests.admin.browser import ARGS, ensure_chromium
from tests.admin.helpers import TOKEN
from tests.agents import Controls, scripted_agent


async def main(out: Path) -> None:
    chromium = ensure_chromium()
    controls = Controls()
    rng = random.Random(7)
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(controls),
                          admin=AdminSettings(token=TOKEN), max_concurrent_tasks=4)
    async with open_server(config) as srv, contextlib.AsyncExitStack() as stack:
        for name, caps in (("gpu-1", ("gpu", "cuda")), ("cpu-1", ("cpu",)),
                           ("cpu-2", ("cpu",))):
            w = await stack.enter_async_context(open_worker(
                srv.url, token=None, agent=scripted_agent(controls), name=name,
                worker_id=f"{name}-{rng.randrange(16**6):06x}", concurrency=4,
                capabilities=caps))
            await w.wait_registered()
        await run_load(srv.url, controls, rng, chromium, out)
    print(f"wrote {out}")


async def run_load(url: str, controls: Controls, rng: random.Random, chromium: str,
                   out: Path) -> None:
    async with open_a2a_client(url) as client, trio.open_nursery() as nursery:

        async def one(text: str, metadata: dict[str, object] | None = None) -> None:
            with contextlib.suppress(Exception):
                await client.send(text, metadata=metadata)

        async def load() -> None:
            for i in range(400):
                roll = rng.random()
                if roll < 0.6:
                    text = f"sleep {rng.uniform(0.05, 0.8):.2f}"
                elif roll < 0.75:
                    text = f"chunks {rng.randrange(2, 6)}"
                elif roll < 0.82:
                    text = "fail"
                else:
                    text = f"echo request {i}"
                meta = {"trio-a2a/capabilities": ["gpu"]} if rng.random() < 0.2 else None
                nursery.start_soon(one, text, meta)
                await trio.sleep(rng.uniform(0.02, 0.12))

        nursery.start_soon(load)
        for _ in range(3):  # long runs, to show leases and a live event stream
            nursery.start_soon(one, "gated 4")
        for p in (0, 0, 5):
            nursery.start_soon(one, "echo batch job", {"trio-a2a/capabilities": ["tpu"],
                                                       "trio-a2a/priority": p})
        await trio.sleep(22)

        def shoot() -> None:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, args=ARGS)
                page = browser.new_page(viewport={"width": 1440, "height": 1180})
                page.goto(f"{url}/ui#token={TOKEN}")
                page.wait_for_selector("#live.on")
                page.wait_for_selector("#leases tbody tr")
                page.click("#leases tbody tr")
                page.wait_for_selector("#events li")
                page.wait_for_timeout(2500)
                page.screenshot(path=str(out), full_page=True)
                browser.close()

        await trio.to_thread.run_sync(shoot)
        controls.gate.set()
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1] if len(sys.argv) > 1 else "docs/dashboard.png"))
