"""A2A 0.1/0.2 `tasks/send` requests: which shape a request is, and its 1.0 form.

The method names ``tasks/send`` and ``tasks/sendSubscribe`` mean two different
things on the wire: the first A2A drafts (0.1, and 0.2 gateways that kept them)
put a client-chosen task ``id`` and a ``sessionId`` at the top of the params and
tag parts with ``type``; later clients send a 0.3 ``MessageSendParams`` under the
old name. `send_shape` tells them apart per request, from the members present:

* 0.1/0.2 markers: params ``id``, ``sessionId``, ``pushNotification``,
  ``acceptedOutputModes`` or ``historyLength``; a part with ``type``.
* 0.3 markers: params ``configuration``; ``message.kind``, ``message.taskId``,
  ``message.contextId``, ``message.referenceTaskIds`` or ``message.extensions``; a part with
  ``kind``.

Only 0.1/0.2 markers: the old shape. Both: the request is ambiguous and refused
(-32602), naming the members of each kind, rather than silently dropping the
client's ``id`` and ``sessionId``. Neither: 0.3, as before. ``messageId`` and
``metadata`` are neutral (an old client may add a ``messageId``; it is kept).

`send_params_from_legacy` returns a `LegacySend`: the 1.0 request plus the
client's task id and session id, which the service (`actors.client_ids`) turns
into "create this task" or "continue this task". The rendering half lives in
`protocol.legacy_render` and is re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs
import pydantic

from protocol import models
from protocol.errors import InvalidParamsError
from protocol.jsonrpc import invalid_params
from protocol.legacy_models import (
    EXTENSION_FIELDS_KEY,
    TASK_ID_PATTERN,
    WIRE_KEY,
    LegacyArtifact,
    TaskPushNotificationParams,
    TaskSendParams,
)
from protocol.legacy_render import (
    FLAT,
    SCHEMA,
    LegacyStreamRenderer,
    artifact_to_legacy,
    dialect_of,
    message_to_legacy,
    part_to_legacy,
    push_config_to_legacy,
    task_to_legacy,
)

__all__ = [
    "EXTENSION_FIELDS_KEY",
    "FLAT",
    "LEGACY_SEND_METHODS",
    "SCHEMA",
    "TASK_ID_PATTERN",
    "WIRE_KEY",
    "LegacySend",
    "LegacyStreamRenderer",
    "artifact_from_legacy",
    "artifact_to_legacy",
    "dialect_of",
    "message_to_legacy",
    "part_to_legacy",
    "push_config_from_legacy",
    "push_config_to_legacy",
    "send_params_from_legacy",
    "send_shape",
    "task_to_legacy",
]

LEGACY_SEND_METHODS = frozenset({"tasks/send", "tasks/sendSubscribe", "tasks/sendStream"})
"""The method names that may carry the 0.1/0.2 shape."""

_OLD_PARAMS = ("id", "sessionId", "pushNotification", "acceptedOutputModes", "historyLength")
_NEW_MESSAGE = ("kind", "taskId", "contextId", "referenceTaskIds", "extensions")

ACCEPTED_SHAPES = (
    "A2A 0.1/0.2: params {id, sessionId?, message: {role, parts: [{type: text|file|data, "
    "...}]}, pushNotification?, metadata?}; or A2A 0.3: params {message: {messageId, role, "
    "parts: [{kind: text|file|data, ...}], contextId?, taskId?}, configuration?, metadata?}"
)


def send_shape(params: Any) -> Literal["a2a-0.1", "0.3"]:
    """Which shape a tasks/send-like request is in; InvalidParamsError if it mixes them."""
    if not isinstance(params, Mapping):
        return "0.3"
    old = [f"params.{k}" for k in _OLD_PARAMS if k in params]
    new = ["params.configuration"] if "configuration" in params else []
    message = params.get("message")
    if isinstance(message, Mapping):
        new += [f"params.message.{k}" for k in _NEW_MESSAGE if k in message]
        parts = message.get("parts")
        for i, part in enumerate(parts if isinstance(parts, list) else ()):
            if isinstance(part, Mapping):
                old += [f"params.message.parts[{i}].type"] if "type" in part else []
                new += [f"params.message.parts[{i}].kind"] if "kind" in part else []
    if old and new:
        raise InvalidParamsError(
            f"params mix two A2A shapes: {', '.join(old[:4])} belong to A2A 0.1/0.2 and "
            f"{', '.join(new[:4])} to A2A 0.3; send one. Accepted: {ACCEPTED_SHAPES}",
            metadata={"reason": "ambiguous-shape"},
        )
    return "a2a-0.1" if old else "0.3"


@attrs.frozen
class LegacySend:
    """A 0.1/0.2 send: the 1.0 request, and the ids the client chose."""

    request: models.SendMessageRequest
    task_id: str
    session_id: str | None
    dialect: str
    """`SCHEMA` or `FLAT`: the part dialect answers are written in."""


def send_params_from_legacy(params: Mapping[str, Any], *, message_id: str,
                            flat: bool = False) -> LegacySend:
    """Parse 0.1/0.2 send params (-32602 naming the field if they are bad).

    `message_id` names the message when the client gave it none; `flat` asks for
    the flat dialect even if no part uses it (the request came by a gateway path).
    The dialect is recorded in the message's metadata under `WIRE_KEY`.
    """
    try:
        p = TaskSendParams.model_validate(params)
    except pydantic.ValidationError as exc:
        raise invalid_params(exc) from None
    dialect = FLAT if flat or any(part.flat for part in p.message.parts) else SCHEMA
    message = p.message.to_v10(message_id)
    message["metadata"] = {**message.get("metadata", {}), WIRE_KEY: dialect}
    if p.session_id is not None:
        message["contextId"] = p.session_id
    config: dict[str, Any] = {}
    if p.push_notification is not None:
        config["taskPushNotificationConfig"] = p.push_notification.to_v10()
    if p.accepted_output_modes is not None:
        config["acceptedOutputModes"] = p.accepted_output_modes
    if p.history_length is not None:
        config["historyLength"] = p.history_length
    body: dict[str, Any] = {"message": message}
    if config:
        body["configuration"] = config
    extra = p.extensions()
    meta = dict(p.metadata or {})
    if extra:
        meta[EXTENSION_FIELDS_KEY] = extra
    if meta:
        body["metadata"] = meta
    try:
        request = models.SendMessageRequest.model_validate(body)
    except pydantic.ValidationError as exc:  # e.g. a push URL 1.0 refuses
        raise invalid_params(exc) from None
    return LegacySend(request=request, task_id=p.id, session_id=p.session_id, dialect=dialect)


def artifact_from_legacy(artifact: Mapping[str, Any], *, artifact_id: str) -> models.Artifact:
    """A 0.1/0.2 artifact as the 1.0 model; members 1.0 has no field for (a
    ``worktree``, say) go to metadata under `EXTENSION_FIELDS_KEY`."""
    return models.Artifact.model_validate(
        LegacyArtifact.model_validate(artifact).to_v10(artifact_id)
    )


def push_config_from_legacy(params: Mapping[str, Any]) -> models.TaskPushNotificationConfig:
    """tasks/pushNotification/set params ``{id, pushNotificationConfig: {url, token?,
    authentication?}}`` as the 1.0 config (its id defaults to the task id)."""
    try:
        return models.TaskPushNotificationConfig.model_validate(
            TaskPushNotificationParams.model_validate(params).to_v10())
    except pydantic.ValidationError as exc:
        raise invalid_params(exc) from None
