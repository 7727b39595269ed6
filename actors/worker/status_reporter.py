"""StatusReporter: an attempt's lifecycle as the server hears it, and its release.

It reports ``claimed`` at once, ``working`` when the session says the agent
runs, and the outcome (completed / failed / canceled / input-required) when the
session ends: provider and model throughout, tool-call count and tokens on
completion, error and partial output on failure. Reports are a state, so the
latest wins: while the link is busy or down, intermediate states are skipped,
never queued. They travel on the OutputStreamer's frames (an ``output`` frame
carries the latest report; a standalone ``status`` frame goes only when there is
no output to carry it), and the final one in the ``release`` frame itself, so a
short task costs no frames for its reports. Once the OutputStreamer has every
output frame but the last acknowledged, the reporter sends ``release`` with the
outcome and that last frame (retried until acked: release is idempotent, and
the server drops an output frame it already holds). The release never repeats
the artifacts: the output frames carried them.

The session's reports arrive on a bounded channel: `Working`, then one
`SessionResult`. A channel closed without a result means the session was
stopped (lease lost): nothing is released.
"""

from __future__ import annotations

import logging
import random
from typing import Literal, Protocol

import attrs
import trio

from actors.worker.link_port import Backoff, LinkSlot, deliver
from protocol.models import Message
from protocol.worker_link import OutputBody, ReleaseBody, ReleaseReply, StatusBody, TokenUsage

__all__ = [
    "Outcome",
    "SessionReport",
    "SessionResult",
    "StatusConfig",
    "StatusReporter",
    "Working",
]

log = logging.getLogger(__name__)

Outcome = Literal["completed", "failed", "canceled", "input-required", "auth-required",
                  "requeue"]
"""How a session ends; "requeue": given back unfinished (the worker is stopping)."""

_MAX_ERROR_CHARS = 8192
"""An error longer than this is cut in the release and status frames."""


@attrs.frozen
class Working:
    """The session started the agent."""


@attrs.frozen
class SessionResult:
    """How a session ended, and what the status and release frames say about it."""

    outcome: Outcome
    message: Message | None = None
    """The agent's final message (completion note, or its question for input-required)."""
    error: str | None = None
    """Why it failed (set when outcome is failed)."""
    provider: str | None = None
    model: str | None = None
    tool_calls_count: int = 0
    tokens_used: TokenUsage | None = None
    partial_output: str = ""
    """The text output so far (capped), reported on failure."""


SessionReport = Working | SessionResult


class OutputDrain(Protocol):
    """What the reporter needs of the OutputStreamer."""

    def report(self, status: StatusBody) -> None:
        """Carry `status` to the server (replacing a report not yet sent)."""
        ...

    async def wait_final(self) -> OutputBody | None:
        """Until every output frame but the last is acknowledged; the last, unsent."""
        ...


@attrs.frozen
class StatusConfig:
    ack_timeout: float = 30.0
    """Seconds without an ack before a release frame is sent again."""
    retry: Backoff = Backoff()
    """Backoff after a server failure (INTERNAL)."""


class StatusReporter:
    """Reports one attempt's states and releases it; see the module docstring."""

    def __init__(
        self,
        link: LinkSlot,
        *,
        task_id: str,
        attempt_id: str,
        reports: trio.MemoryReceiveChannel[SessionReport],
        output: OutputDrain,
        provider: str | None = None,
        model: str | None = None,
        config: StatusConfig = StatusConfig(),
        rng: random.Random | None = None,
    ) -> None:
        self._link = link
        self.task_id = task_id
        self.attempt_id = attempt_id
        self._reports = reports
        self._output = output
        self._provider = provider
        self._model = model
        self._config = config
        self._rng = rng if rng is not None else random.Random()
        self.result: SessionResult | None = None
        self.release_reply: ReleaseReply | None = None

    @property
    def _what(self) -> dict[str, object]:
        return {"task_id": self.task_id, "attempt_id": self.attempt_id}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Reports ``claimed`` and is ready at once; returns after the release."""
        self._output.report(self._status("claimed"))
        task_status.started()
        result = await self._wait_result()
        if result is None:  # stopped before it ended: nothing to report or release
            return
        self.result = result
        final = await self._output.wait_final()
        body = self._release_body(result).model_copy(update={"output": final})
        reply = await deliver(self._link, "release", body, what=self._what,
                              ack_timeout=self._config.ack_timeout, retry=self._config.retry,
                              rng=self._rng)
        assert isinstance(reply, ReleaseReply)
        self.release_reply = reply
        log.info("task released", extra={**self._what, "outcome": result.outcome,
                                         "already_released": reply.already_released})

    async def _wait_result(self) -> SessionResult | None:
        reports = self._reports
        with reports:
            while True:
                try:  # no schedule point for a report already there (a short session's)
                    report = reports.receive_nowait()
                except trio.WouldBlock:
                    try:
                        report = await reports.receive()
                    except trio.EndOfChannel:
                        return None
                except trio.EndOfChannel:
                    return None
                while not isinstance(report, SessionResult):
                    try:  # the result may be there already: no report of working then
                        report = reports.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                else:
                    return report
                self._output.report(self._status("working"))

    def _status(self, state: Literal["claimed", "working"]) -> StatusBody:
        return StatusBody(task_id=self.task_id, attempt_id=self.attempt_id, state=state,
                          provider=self._provider, model=self._model)

    def _final_status(self, result: SessionResult) -> StatusBody:
        assert result.outcome != "requeue"
        completed = result.outcome == "completed"
        failed = result.outcome == "failed"
        return StatusBody(
            task_id=self.task_id, attempt_id=self.attempt_id, state=result.outcome,
            provider=result.provider or self._provider, model=result.model or self._model,
            tool_calls_count=result.tool_calls_count if completed else None,
            tokens_used=result.tokens_used if completed else None,
            error=_clip(result.error) if failed and result.error else None,
            partial_output=(result.partial_output or None) if failed else None,
        )

    def _release_body(self, result: SessionResult) -> ReleaseBody:
        """The release: outcome, final message, error and report. Never the artifacts:
        the output frames carried every one of them already, and sending them again
        could double a frame's size past the link's message limit."""
        outcome = result.outcome
        if outcome == "requeue":  # nothing to report: the server queues the task again
            return ReleaseBody(task_id=self.task_id, attempt_id=self.attempt_id,
                               outcome=outcome)
        return ReleaseBody(
            task_id=self.task_id, attempt_id=self.attempt_id, outcome=outcome,
            message=result.message if outcome in ("completed", "input-required", "auth-required")
            else None,
            error=_clip(result.error or "the agent failed") if outcome == "failed" else None,
            status=self._final_status(result),
        )


def _clip(text: str, limit: int = _MAX_ERROR_CHARS) -> str:
    """An error as reported: an exception's message can be any size, a frame cannot."""
    return text if len(text) <= limit else text[:limit] + " [...]"
