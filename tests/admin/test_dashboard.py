"""The dashboard in a real headless chromium against a real server and workers: the
page loads, takes the token, shows a task sent through the client and updates live
when it completes, follows the task's events as they happen, and shows a worker
connecting and disconnecting.

Playwright's sync API runs in a thread of its own; it asks the trio side to act
(connect a worker, send a task, let the agent finish) through `trio.from_thread`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio
from playwright.sync_api import Page, sync_playwright

from runtime.client import open_a2a_client
from runtime.server import RunningServer
from runtime.worker import open_worker
from tests.admin.browser import ARGS
from tests.admin.helpers import TOKEN
from tests.agents import Controls, scripted_agent


class Fleet:
    """Remote workers the browser thread can start and stop."""

    def __init__(self, nursery: trio.Nursery, server: RunningServer, controls: Controls) -> None:
        self._nursery = nursery
        self._server = server
        self._controls = controls
        self._stops: dict[str, trio.Event] = {}
        self._gone: dict[str, trio.Event] = {}

    async def _run(self, name: str, *, task_status: trio.TaskStatus[None]) -> None:
        try:
            async with open_worker(self._server.url, token=None, worker_id=name, name=name,
                                   agent=scripted_agent(self._controls),
                                   capabilities=("gpu",)) as w:
                await w.wait_registered()
                task_status.started()
                await self._stops[name].wait()
        finally:
            self._gone[name].set()

    async def start(self, name: str) -> None:
        self._stops[name], self._gone[name] = trio.Event(), trio.Event()
        await self._nursery.start(self._run, name)

    async def stop(self, name: str) -> None:
        self._stops[name].set()
        await self._gone[name].wait()


def _row(table: str, task_id: str) -> str:
    return f'#{table} tr[data-task-id="{task_id}"]'


async def test_dashboard_shows_tasks_and_workers_live(
        chromium: str, admin_server: RunningServer, controls: Controls) -> None:
    url = admin_server.url
    async with open_a2a_client(url) as client, trio.open_nursery() as nursery:
        fleet = Fleet(nursery, admin_server, controls)

        async def send_waiting_task() -> str:
            task = await client.send("wait", blocking=False)
            await controls.wait_started(task.id)
            return task.id

        def on_trio(fn: Callable[..., Any], *args: Any) -> Any:
            return trio.from_thread.run(fn, *args)

        def browse() -> dict[str, Any]:
            seen: dict[str, Any] = {}
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, args=ARGS)
                try:
                    page: Page = browser.new_page()
                    page.set_default_timeout(15_000)
                    page.goto(f"{url}/ui")
                    page.fill("#token", TOKEN)
                    page.click("#login-form button[type=submit]")
                    page.wait_for_selector("#live.on")
                    assert page.is_visible("#workers-empty")

                    on_trio(fleet.start, "w-browser")
                    page.wait_for_selector('#workers tr[data-worker-id="w-browser"]')

                    task_id = on_trio(send_waiting_task)
                    page.wait_for_selector(_row("tasks", task_id) + '[data-state="working"]')
                    page.wait_for_selector(_row("leases", task_id))
                    page.click(_row("tasks", task_id))
                    page.wait_for_selector("#events li")
                    trio.from_thread.run_sync(controls.gate.set)
                    page.wait_for_selector(_row("tasks", task_id) + '[data-state="completed"]')
                    page.wait_for_selector("#follow-state:text('ended')")
                    seen["events"] = page.inner_text("#events")
                    page.wait_for_selector(_row("leases", task_id), state="detached")

                    on_trio(fleet.stop, "w-browser")
                    page.wait_for_selector('#workers tr[data-worker-id="w-browser"]',
                                           state="detached")
                    seen["url"] = page.url
                    seen["stored"] = page.evaluate(
                        "sessionStorage.getItem('trio-a2a-admin-token')")
                finally:
                    browser.close()
            return seen

        with trio.fail_after(90):
            seen = await trio.to_thread.run_sync(browse)
        nursery.cancel_scope.cancel()
    assert "working" in seen["events"] and "completed" in seen["events"]
    assert TOKEN not in seen["url"] and seen["stored"] == TOKEN


async def test_token_from_the_url_is_taken_out_of_it(
        chromium: str, admin_server: RunningServer) -> None:
    def browse() -> tuple[str, str]:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=ARGS)
            try:
                page = browser.new_page()
                page.set_default_timeout(15_000)
                page.goto(f"{admin_server.url}/ui?token={TOKEN}")
                page.wait_for_selector("#live.on")
                url = page.url
                page = browser.new_page()  # a tab of its own: sessionStorage is per tab
                page.set_default_timeout(15_000)
                page.goto(f"{admin_server.url}/ui#token=not-the-token")
                page.wait_for_selector("#login-error:text('neither the admin token')")
                return url, page.url
            finally:
                browser.close()

    with trio.fail_after(60):
        first, second = await trio.to_thread.run_sync(browse)
    assert first == f"{admin_server.url}/ui/" and "token" not in second


async def test_an_operator_fails_a_running_task_from_the_page(
        chromium: str, admin_server: RunningServer, controls: Controls) -> None:
    async with open_a2a_client(admin_server.url) as client, trio.open_nursery() as nursery:
        fleet = Fleet(nursery, admin_server, controls)
        await fleet.start("w-ops")
        task = await client.send("wait", blocking=False)
        await controls.wait_started(task.id)

        def browse() -> str:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, args=ARGS)
                try:
                    page = browser.new_page()
                    page.set_default_timeout(15_000)
                    page.on("dialog", lambda dialog: dialog.accept("stuck on a bad input"))
                    page.goto(f"{admin_server.url}/ui#token={TOKEN}")
                    row = _row("leases", task.id)
                    page.click(f"{row} button.danger")  # "fail", after the reason prompt
                    page.wait_for_selector(_row("tasks", task.id) + '[data-state="failed"]')
                    page.wait_for_selector(row, state="detached")
                    return page.inner_text("#error")
                finally:
                    browser.close()

        with trio.fail_after(60):
            shown_error = await trio.to_thread.run_sync(browse)
        record = await admin_server.store.head(task.id)
        await fleet.stop("w-ops")
        nursery.cancel_scope.cancel()
    assert shown_error == ""
    assert record is not None and record.task.status.message is not None
    assert record.task.status.message.parts[0].text == "failed by an operator: stuck on a bad input"
