"""PushDelivery (placeholder wiring; being replaced by the full actor)."""

from __future__ import annotations

import trio

from actors.store_port import PushConfigRecord
from actors.task_store import ServerTaskStore


class PushDelivery:
    def __init__(self, store: ServerTaskStore, sender: object, *, max_attempts: int = 8) -> None:
        self._store = store
        self._sender = sender

    def watch(self, record: PushConfigRecord) -> None:
        pass

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()
