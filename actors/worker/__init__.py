"""The worker side: the actors that run claimed tasks and talk to the server.

One actor per module, each `run(*, task_status)`: Registrar, Heartbeat and
TaskClaimer live in a connection subtree (restarted with the connection);
Sessions runs each claimed task as a SessionActor with its OutputStreamer and
StatusReporter, outside that subtree, so tasks survive reconnects. They reach
the server only through the `Link` port (`actors.worker.link_port`); the
transports are in `runtime.worker`.
"""

from actors.worker.heartbeat import *  # noqa: F403
from actors.worker.heartbeat import __all__ as _heartbeat
from actors.worker.link_port import *  # noqa: F403
from actors.worker.link_port import __all__ as _link_port
from actors.worker.output_guard import *  # noqa: F403
from actors.worker.output_guard import __all__ as _guard
from actors.worker.output_streamer import *  # noqa: F403
from actors.worker.output_streamer import __all__ as _output
from actors.worker.registrar import *  # noqa: F403
from actors.worker.registrar import __all__ as _registrar
from actors.worker.session import *  # noqa: F403
from actors.worker.session import __all__ as _session
from actors.worker.session_stats import *  # noqa: F403
from actors.worker.session_stats import __all__ as _session_stats
from actors.worker.status_reporter import *  # noqa: F403
from actors.worker.status_reporter import __all__ as _status
from actors.worker.task_claimer import *  # noqa: F403
from actors.worker.task_claimer import __all__ as _claimer

__all__ = [*_heartbeat, *_link_port, *_guard, *_output, *_registrar, *_session,
           *_session_stats, *_status, *_claimer]
