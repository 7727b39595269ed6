"""Roles and permissions: the one table of what each role may do, sans-IO.

Every operation of every binding names one permission (`OPERATIONS` for JSON-RPC and
gRPC, whose rpcs are the 1.0 methods; `REST_OPERATIONS`; `MCP_OPERATIONS`); a role is a set
of permissions (`ROLES`); an identity may do what any of its roles allows. Roles say
what a credential may do with what its principal owns; which tasks it can see at all is
decided by ownership (`protocol.identity.owner_key`), never by a role. docs/security.md
shows this table; `tests/security/test_permission_matrix.py` walks all of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = [
    "DEFAULT_ROLES",
    "OPERATIONS",
    "PERMISSIONS",
    "MCP_OPERATIONS",
    "REST_OPERATIONS",
    "ROLES",
    "RoleTable",
    "permission_for_method",
]

PERMISSIONS: tuple[str, ...] = (
    "card.public",      # the public agent card
    "card.extended",    # GetExtendedAgentCard
    "message.send",     # SendMessage, SendStreamingMessage (new tasks and replies)
    "task.get",         # GetTask
    "task.list",        # ListTasks
    "task.cancel",      # CancelTask
    "task.subscribe",   # SubscribeToTask (and SSE resume)
    "push.create",      # CreateTaskPushNotificationConfig
    "push.get",         # GetTaskPushNotificationConfig
    "push.list",        # ListTaskPushNotificationConfigs
    "push.delete",      # DeleteTaskPushNotificationConfig
    "worker.link",      # take and run tasks on the worker link
    "token.manage",     # the token service: refresh, log out
    "token.verify",     # the token service: a token's status
    "admin",            # admin operations
)

_READ = ("card.public", "card.extended", "task.get", "task.list", "task.subscribe",
         "push.get", "push.list", "token.verify")
_CLIENT = (*_READ, "message.send", "push.create", "push.delete", "token.manage")

ROLES: Mapping[str, frozenset[str]] = {
    "admin": frozenset(PERMISSIONS),
    "operator": frozenset((*_CLIENT, "task.cancel", "admin")),
    "client": frozenset((*_CLIENT, "task.cancel")),
    "agent": frozenset((*_CLIENT, "worker.link")),
    "observer": frozenset(_READ),
    "guest": frozenset(("card.public",)),
}
"""The built-in roles. operator: every client operation, cancel included, and the admin
API; client: every client operation, cancel included, on its own tasks only: the default
of a token or JWT that names no roles (`DEFAULT_ROLES`), so a deployment's existing
tokens do not gain the admin API; agent: a program that sends and follows tasks (no
cancel) and may run as a worker; observer: reads; guest: the public card only."""

DEFAULT_ROLES: tuple[str, ...] = ("client",)
"""The roles of an identity whose token names none (`--default-roles` changes it)."""

OPERATIONS: Mapping[str, str] = {
    # A2A 1.0 JSON-RPC
    "SendMessage": "message.send",
    "SendStreamingMessage": "message.send",
    "GetTask": "task.get",
    "ListTasks": "task.list",
    "CancelTask": "task.cancel",
    "SubscribeToTask": "task.subscribe",
    "CreateTaskPushNotificationConfig": "push.create",
    "GetTaskPushNotificationConfig": "push.get",
    "ListTaskPushNotificationConfigs": "push.list",
    "DeleteTaskPushNotificationConfig": "push.delete",
    "GetExtendedAgentCard": "card.extended",
    # A2A 0.3 JSON-RPC (and the 0.1/0.2 names)
    "message/send": "message.send",
    "message/stream": "message.send",
    "tasks/send": "message.send",
    "tasks/sendSubscribe": "message.send",
    "tasks/sendStream": "message.send",
    "tasks/get": "task.get",
    "tasks/list": "task.list",
    "tasks/cancel": "task.cancel",
    "tasks/resubscribe": "task.subscribe",
    "tasks/pushNotificationConfig/set": "push.create",
    "tasks/pushNotificationConfig/get": "push.get",
    "tasks/pushNotificationConfig/list": "push.list",
    "tasks/pushNotificationConfig/delete": "push.delete",
    "tasks/pushNotification/set": "push.create",  # 0.1
    "tasks/pushNotification/get": "push.get",  # 0.1
    "agent/getAuthenticatedExtendedCard": "card.extended",
}
"""JSON-RPC method -> the permission it needs. HTTP+JSON routes name theirs directly."""


REST_OPERATIONS: Mapping[str, str] = {
    "send": "message.send",
    "stream": "message.send",
    "list_tasks": "task.list",
    "get_task": "task.get",
    "cancel": "task.cancel",
    "subscribe": "task.subscribe",
    "create_push": "push.create",
    "list_push": "push.list",
    "get_push": "push.get",
    "delete_push": "push.delete",
    "extended_card": "card.extended",
    "card_v03": "card.extended",
}
"""HTTP+JSON route name (`runtime.http.rest.ROUTES`) -> the permission it needs."""


MCP_OPERATIONS: Mapping[str, str] = {
    "send_task": "message.send",
    "get_task": "task.get",
    "list_tasks": "task.list",
    "cancel_task": "task.cancel",
    "list_agents": "card.extended",
    "list_workers": "card.extended",
}
"""MCP tool (`runtime.mcp.tools`) -> the permission it needs. The agents and workers on
offer are what the extended card tells, so the two listings need what it needs."""


def permission_for_method(method: str) -> str | None:
    """The permission a JSON-RPC method needs; None for a method outside the table
    (an extension's methods name their own)."""
    return OPERATIONS.get(method)


class RoleTable:
    """The built-in roles, plus or overridden by configured ones."""

    def __init__(self, extra: Mapping[str, Iterable[str]] | None = None) -> None:
        roles = dict(ROLES)
        for name, perms in (extra or {}).items():
            perms = list(perms)
            unknown = sorted(set(perms) - set(PERMISSIONS))
            if unknown:
                raise ValueError(f"role {name!r}: unknown permission(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(PERMISSIONS)}")
            roles[name] = frozenset(perms)
        self.roles: Mapping[str, frozenset[str]] = roles

    def permissions(self, roles: Iterable[str]) -> frozenset[str]:
        """What holding `roles` allows; an unknown role allows nothing."""
        out: set[str] = set()
        for role in roles:
            out |= self.roles.get(role, frozenset())
        return frozenset(out)

    def allows(self, roles: Iterable[str], permission: str) -> bool:
        return permission in self.permissions(roles)

    def check_known(self, roles: Iterable[str], where: str) -> None:
        """ValueError naming `where` for a role this table does not define."""
        unknown = sorted(set(roles) - set(self.roles))
        if unknown:
            raise ValueError(f"{where}: unknown role(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(self.roles))}")
