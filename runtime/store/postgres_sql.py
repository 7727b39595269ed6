"""The PostgreSQL backend's statements and the conversions of its rows.

Values travel in PostgreSQL's text format (see postgres_driver): parameters are
cast in the SQL, and the readers below turn text back into the port's types.
Doubles come back in their shortest exact form (extra_float_digits >= 1, the
default since PostgreSQL 12), so status_at survives the round trip bit for bit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from actors.store_port import (
    DispatchState,
    PushConfigRecord,
    StoredEvent,
    TaskQuery,
    TaskRecord,
)
from protocol.models import StreamResponse, Task, TaskPushNotificationConfig

__all__ = [
    "DELETE_PUSH", "GET_PUSH", "GET_TASK", "INSERT_EVENTS", "INSERT_TASK", "LIST_PENDING_PUSH",
    "LIST_PUSH", "LIST_UNFINISHED", "READ_EVENTS", "SET_DELIVERED", "TASK_VERSIONS", "UPDATE_TASK",
    "UPSERT_PUSH",
    "dispatch_json", "dump", "event_row", "list_tasks_sql", "push_params", "push_row",
    "task_params", "task_row", "text_array",
]

_TASK_COLUMNS = "task_json, owner, seq, created_at, status_at, dispatch_json, version"
_PUSH_COLUMNS = "config_json, owner, delivered_seq"

# Both take task_params() first; the update adds the expected version and seq. The
# update is the compare-and-set: it changes the row only if no other writer moved its
# version on (under READ COMMITTED a racing writer waits for the row lock, then finds
# the version changed and updates nothing).
INSERT_TASK = (
    "INSERT INTO tasks (context_id, owner, state, seq, created_at, status_at, task_json,"
    " dispatch_json, version, task_id) VALUES ($1, $2, $3, $4::bigint, $5::float8,"
    " $6::float8, $7, $8, $9::bigint, $10) ON CONFLICT (task_id) DO NOTHING RETURNING task_key"
)
UPDATE_TASK = (
    "UPDATE tasks SET context_id = $1, owner = $2, state = $3, seq = $4::bigint,"
    " created_at = $5::float8, status_at = $6::float8, task_json = $7, dispatch_json = $8,"
    " version = $9::bigint"
    " WHERE task_id = $10 AND version = $11::bigint AND seq = $12::bigint RETURNING task_key"
)
INSERT_EVENTS = (
    "INSERT INTO events (task_key, seq, event_json)"
    " SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[])"
)
GET_TASK = f"SELECT {_TASK_COLUMNS} FROM tasks WHERE task_id = $1"
TASK_VERSIONS = "SELECT task_id, version, seq FROM tasks WHERE task_id = ANY($1::text[])"
READ_EVENTS = (
    "SELECT seq, event_json FROM events"
    " WHERE task_key = (SELECT task_key FROM tasks WHERE task_id = $1) AND seq > $2::bigint"
    " ORDER BY seq LIMIT $3::bigint"
)
LIST_UNFINISHED = (
    f"SELECT {_TASK_COLUMNS} FROM tasks WHERE state = ANY($1::text[])"
    " ORDER BY status_at, task_id"
)
UPSERT_PUSH = (
    "INSERT INTO push_configs (task_id, config_id, owner, delivered_seq, config_json)"
    " VALUES ($1, $2, $3, $4::bigint, $5) ON CONFLICT (task_id, config_id) DO UPDATE SET"
    " owner = excluded.owner, delivered_seq = excluded.delivered_seq,"
    " config_json = excluded.config_json"
)
GET_PUSH = f"SELECT {_PUSH_COLUMNS} FROM push_configs WHERE task_id = $1 AND config_id = $2"
LIST_PUSH = f"SELECT {_PUSH_COLUMNS} FROM push_configs WHERE task_id = $1 ORDER BY created"
DELETE_PUSH = "DELETE FROM push_configs WHERE task_id = $1 AND config_id = $2"
SET_DELIVERED = (
    "UPDATE push_configs SET delivered_seq = greatest(delivered_seq, $1::bigint)"
    " WHERE task_id = $2 AND config_id = $3"
)
LIST_PENDING_PUSH = (
    "SELECT p.config_json, p.owner, p.delivered_seq FROM push_configs AS p"
    " JOIN tasks AS t ON t.task_id = p.task_id"
    " WHERE p.delivered_seq < t.seq ORDER BY p.created"
)


def list_tasks_sql(query: TaskQuery) -> tuple[str, list[Any]]:
    """One statement for a page and the total count, so both read one snapshot.

    Rows are (total, task columns..., task_id). The count is computed on its own
    and the page joined to it, so an empty page still yields one row carrying the
    total (with NULL task columns).
    """
    where: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("owner", query.owner),
        ("context_id", query.context_id),
        ("state", None if query.state is None else query.state.value),
        ("status_at", query.status_after),
    ):
        if value is not None:
            params.append(value)
            op, cast = (">=", "::float8") if column == "status_at" else ("=", "")
            where.append(f"{column} {op} ${len(params)}{cast}")
    filters = " AND ".join(where) or "true"
    page = filters
    if query.cursor is not None:
        params.extend(query.cursor)
        page += f" AND (status_at, task_id) < (${len(params) - 1}::float8, ${len(params)})"
    params.append(query.page_size + 1)
    sql = (
        f"SELECT c.total, p.* FROM (SELECT count(*) AS total FROM tasks WHERE {filters}) AS c"
        f" LEFT JOIN LATERAL (SELECT {_TASK_COLUMNS}, task_id FROM tasks WHERE {page}"
        f" ORDER BY status_at DESC, task_id DESC LIMIT ${len(params)}::bigint) AS p ON true"
        " ORDER BY p.status_at DESC, p.task_id DESC"
    )
    return sql, params


def dump(model: Any) -> str:
    return model.model_dump_json(by_alias=True, exclude_none=True)  # type: ignore[no-any-return]


_DEFAULT_DISPATCH = DispatchState()


def dispatch_json(record: TaskRecord) -> str | None:
    if record.dispatch == _DEFAULT_DISPATCH:
        return None
    return json.dumps(record.dispatch.to_json(), separators=(",", ":"))


def task_params(record: TaskRecord) -> tuple[Any, ...]:
    """(context_id, owner, state, seq, created_at, status_at, task_json, dispatch_json,
    version, task_id)."""
    task = record.task
    return (task.context_id, record.owner, task.status.state.value, record.seq,
            record.created_at, record.status_at, dump(task), dispatch_json(record),
            record.version, task.id)


def task_row(row: Sequence[str | None]) -> TaskRecord:
    task_json, owner, seq, created_at, status_at, dispatch, version = row
    assert task_json is not None and owner is not None and seq is not None
    assert created_at is not None and status_at is not None and version is not None
    return TaskRecord(
        task=Task.model_validate_json(task_json),
        owner=owner,
        seq=int(seq),
        created_at=float(created_at),
        status_at=float(status_at),
        dispatch=(_DEFAULT_DISPATCH if dispatch is None
                  else DispatchState.from_json(json.loads(dispatch))),
        version=int(version),
    )


def event_row(task_id: str, row: Sequence[str | None]) -> StoredEvent:
    seq, data = row
    assert seq is not None and data is not None
    event = StreamResponse.model_validate_json(data)
    return StoredEvent(task_id=task_id, seq=int(seq), event=event)


def push_params(push: PushConfigRecord) -> tuple[str, str, str, int, str]:
    return (push.task_id, push.config_id, push.owner, push.delivered_seq, dump(push.config))


def push_row(row: Sequence[str | None]) -> PushConfigRecord:
    config, owner, delivered = row
    assert config is not None and owner is not None and delivered is not None
    return PushConfigRecord(
        config=TaskPushNotificationConfig.model_validate_json(config),
        owner=owner,
        delivered_seq=int(delivered),
    )


def text_array(values: Iterable[object]) -> str:
    """A PostgreSQL array literal of `values`, each quoted (text or numbers alike)."""
    quoted = (str(v).replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return "{" + ",".join(f'"{v}"' for v in quoted) + "}"
