"""`python -m runtime`'s flags, by command: `server` (and the parser of them all),
`worker` with `migrate` and `models`, and what they share (`env`)."""

from runtime.flags.env import ENV_PREFIX
from runtime.flags.server import build_parser
from runtime.flags.worker import add_database_arguments, add_llm_arguments, add_worker_parser

__all__ = ["ENV_PREFIX", "add_database_arguments", "add_llm_arguments", "add_worker_parser",
           "build_parser"]
