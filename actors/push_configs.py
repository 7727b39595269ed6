"""Push notification configs: the CRUD the A2A methods expose, and URL policy.

A config is stored with the task's owner and a delivery cursor
(`delivered_seq`); `PushDelivery` is told about each new config through the
`PushWatcher` port and delivers from that cursor on.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import urlsplit

from actors.store_port import PushConfigRecord, TaskRecord
from actors.task_store import ServerTaskStore
from protocol.errors import (
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotFoundError,
)
from protocol.models import (
    DeleteTaskPushNotificationConfigRequest,
    GetTaskPushNotificationConfigRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    TaskPushNotificationConfig,
)

__all__ = ["PushConfigs", "PushWatcher", "check_push_url", "embedded_ipv4", "is_public_address"]


class PushWatcher(Protocol):
    """Told about each new push config so delivery can start."""

    def watch(self, record: PushConfigRecord) -> None: ...


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated ::a.b.c.d (RFC 4291)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known NAT64 prefix (RFC 6052)
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # local-use NAT64 (RFC 8215)
_LOW32 = 0xFFFFFFFF


def embedded_ipv4(addr: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries to an IPv4 network, by its form.

    IPv4-mapped `::ffff:a.b.c.d` and IPv4-compatible `::a.b.c.d`, NAT64 (`64:ff9b::/96`,
    and `64:ff9b:1::/48` read as a /96), 6to4 `2002:AABB:CCDD::/48`, Teredo `2001::/32`
    (its server, then its client, whose address is stored XORed with 0xffffffff). Empty
    for any other address.
    """
    if addr.ipv4_mapped is not None:
        return (addr.ipv4_mapped,)
    if addr in _IPV4_COMPATIBLE or addr in _NAT64 or addr in _NAT64_LOCAL:
        return (ipaddress.IPv4Address(int(addr) & _LOW32),)
    if addr.sixtofour is not None:
        return (addr.sixtofour,)
    if addr.teredo is not None:
        return addr.teredo
    return ()


def is_public_address(addr: IPAddress) -> bool:
    """True for a globally routable unicast address that a push may be sent to.

    An IPv6 address that carries an IPv4 address (`embedded_ipv4`) is public only if every
    IPv4 address it carries is: `::ffff:127.0.0.1`, `64:ff9b::7f00:1` or `2002:7f00:1::`
    reach the loopback as surely as `127.0.0.1`. The local-use NAT64 prefix
    `64:ff9b:1::/48` is never public: it translates into a network of the operator's own.
    """
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:  # judged as the IPv4 address it is
            return is_public_address(addr.ipv4_mapped)
        if addr in _NAT64_LOCAL:
            return False
        if not all(is_public_address(v4) for v4 in embedded_ipv4(addr)):
            return False
    return addr.is_global and not addr.is_multicast


def check_push_url(url: str, *, allow_private: bool) -> None:
    """Refuse webhook URLs that are not http(s) or that point inside the network.

    Names are checked again after DNS resolution, at delivery time, with the same
    `is_public_address`.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParamsError(f"push notification url must be an absolute http(s) URL: {url!r}")
    if allow_private:
        return
    host = parts.hostname
    if host == "localhost" or host.endswith(".localhost"):
        raise InvalidParamsError(
            f"push notification url {url!r} points to localhost; refused (server option "
            "--allow-private-push-urls allows it)"
        )
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return
    if not is_public_address(addr):
        raise InvalidParamsError(
            f"push notification url {url!r} points to a private, loopback or other non-public "
            "address (an IPv4 address inside an IPv6 one counts); refused (server option "
            "--allow-private-push-urls allows it)"
        )


def _not_found(task_id: str, config_id: str) -> TaskNotFoundError:
    return TaskNotFoundError(
        f"push notification config {config_id!r} of task {task_id!r} not found",
        metadata={"taskId": task_id, "configId": config_id},
    )


class PushConfigs:
    """Create, get, list and delete push configs of the tasks a principal can see."""

    def __init__(
        self,
        store: ServerTaskStore,
        watcher: PushWatcher | None,
        *,
        enabled: bool,
        allow_private: bool,
        default_page_size: int,
        visible: Callable[[str, str], Awaitable[TaskRecord]],
    ) -> None:
        self._store = store
        self._watcher = watcher
        self.enabled = enabled
        self._allow_private = allow_private
        self._page_size = default_page_size
        self._visible = visible

    def require_enabled(self) -> None:
        if not self.enabled:
            raise PushNotificationNotSupportedError()

    def record(self, task_id: str, cfg: TaskPushNotificationConfig, principal: str, *,
               delivered_seq: int) -> PushConfigRecord:
        """A storable config; its id defaults to the task id (as 0.3 clients expect)."""
        check_push_url(cfg.url, allow_private=self._allow_private)
        config = cfg.model_copy(update={"task_id": task_id, "id": cfg.id or task_id,
                                        "tenant": None})
        return PushConfigRecord(config=config, owner=principal, delivered_seq=delivered_seq)

    def watch(self, record: PushConfigRecord) -> None:
        if self._watcher is not None:
            self._watcher.watch(record)

    async def put(self, task: TaskRecord, cfg: TaskPushNotificationConfig, principal: str, *,
                  from_seq: int) -> PushConfigRecord:
        """Store a config that receives the task's events after `from_seq`."""
        rec = self.record(task.task_id, cfg, principal, delivered_seq=from_seq)
        await self._store.put_push_config(rec)
        self.watch(rec)
        return rec

    async def create(self, cfg: TaskPushNotificationConfig, principal: str = ""
                     ) -> TaskPushNotificationConfig:
        """Create or replace a config; it receives the task's events from now on."""
        self.require_enabled()
        if not cfg.task_id:
            raise InvalidParamsError("taskId: required")
        task = await self._visible(cfg.task_id, principal)
        return (await self.put(task, cfg, principal, from_seq=task.seq)).config

    async def get(self, req: GetTaskPushNotificationConfigRequest, principal: str = ""
                  ) -> TaskPushNotificationConfig:
        self.require_enabled()
        await self._visible(req.task_id, principal)
        rec = await self._store.get_push_config(req.task_id, req.id)
        if rec is None:
            raise _not_found(req.task_id, req.id)
        return rec.config

    async def list(self, req: ListTaskPushNotificationConfigsRequest, principal: str = ""
                   ) -> ListTaskPushNotificationConfigsResponse:
        self.require_enabled()
        await self._visible(req.task_id, principal)
        configs = [r.config for r in await self._store.list_push_configs(req.task_id)]
        start = 0
        if req.page_token:
            try:
                start = int(req.page_token)
            except ValueError:
                raise InvalidParamsError(
                    f"pageToken {req.page_token!r} is not a token this server issued"
                ) from None
        size = req.page_size or self._page_size
        more = start + size < len(configs)
        return ListTaskPushNotificationConfigsResponse(
            configs=configs[start:start + size], next_page_token=str(start + size) if more else ""
        )

    async def delete(self, req: DeleteTaskPushNotificationConfigRequest, principal: str = ""
                     ) -> None:
        self.require_enabled()
        await self._visible(req.task_id, principal)
        # Idempotent (A2A 1.0.1 §3.1.10): a config that is already gone is deleted.
        await self._store.delete_push_config(req.task_id, req.id)
