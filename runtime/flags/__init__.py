"""`python -m runtime`'s flags, by command: `server` (and the parser of them all),
`worker` with `migrate` and `models`, and what they share (`env`)."""

from runtime.flags.config_file import ConfigFileError, apply_config_file
from runtime.flags.env import ENV_PREFIX
from runtime.flags.ops import command_parser, version
from runtime.flags.server import build_parser
from runtime.flags.worker import add_database_arguments, add_llm_arguments, add_worker_parser

__all__ = ["ENV_PREFIX", "ConfigFileError", "add_database_arguments", "add_llm_arguments",
           "add_worker_parser", "apply_config_file", "build_parser", "command_parser", "version"]
