"""The server's config file: a TOML file of flags, read generically over the parser.

Every key is a flag's long name without its dashes (`lease-ttl = 30`, `lease_ttl`
too), so a flag added to the parser later is covered with no change here. A value
comes from, in order: the command line, the flag's environment variable, the file,
the built-in default. An unknown key or a value of the wrong type is a usage error
naming the file, the key and its line.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from runtime.flags.env import ENV_PREFIX

__all__ = ["ConfigFileError", "apply_config_file"]

_NOT_IN_FILE = frozenset({"help", "version", "config"})
_NUMBER_TYPES = {"int": "an integer", "port": "an integer", "float": "a number"}


class ConfigFileError(ValueError):
    """A config file that cannot be used; the message names the file, key and line."""


@contextlib.contextmanager
def _without_env() -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
    for name in saved:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(saved)


def _given_on_command_line(sub: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The dests the command line sets: parsed again with every default suppressed."""
    saved = [(a, a.default) for a in sub._actions]
    try:
        for action in sub._actions:
            action.default = argparse.SUPPRESS
        given, _ = sub.parse_known_args(list(argv), argparse.Namespace())
    finally:
        for action, default in saved:
            action.default = default
    return set(vars(given))


def _line_of(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^[ \t]*[\"']?{re.escape(key)}[\"']?[ \t]*=", re.MULTILINE)
    match = pattern.search(text)
    return None if match is None else text.count("\n", 0, match.start()) + 1


def _convert(action: argparse.Action, value: Any) -> Any:
    """The value as the flag would hold it; ValueError saying what it must be."""
    if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, not {value!r}")
        return value
    if isinstance(action, argparse._AppendAction):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError(f"must be a string or a list of strings, not {value!r}")
        return [_convert_one(action, i) for i in items]
    return _convert_one(action, value)


def _convert_one(action: argparse.Action, value: Any) -> Any:
    kind = getattr(action.type, "__name__", "")
    if kind in _NUMBER_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                kind != "float" and isinstance(value, float)):
            raise ValueError(f"must be {_NUMBER_TYPES[kind]}, not {value!r}")
    elif not isinstance(value, str):
        raise ValueError(f"must be a string, not {value!r}")
    try:
        converted = action.type(str(value)) if callable(action.type) else value
    except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
        raise ValueError(str(exc).split(" (from the flag")[0]) from None
    if action.choices is not None and converted not in action.choices:
        raise ValueError(f"must be one of {', '.join(map(str, action.choices))}, "
                         f"not {value!r}")
    return converted


def apply_config_file(args: argparse.Namespace, sub: argparse.ArgumentParser,
                      argv: Sequence[str], path: str,
                      build: Callable[[], argparse.ArgumentParser]) -> argparse.Namespace:
    """`args` with the file's values for the flags that neither the command line
    (`argv`, after the subcommand) nor the environment set. `build` makes the parser
    again (with no TRIO_A2A_* variables set) to tell the environment's defaults apart."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        data = tomllib.loads(raw.decode("utf-8"))
    except OSError as exc:
        raise ConfigFileError(f"config file {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigFileError(f"config file {path}: not valid TOML: {exc}") from None
    text = raw.decode("utf-8")
    flags = {opt[2:]: a for a in sub._actions for opt in a.option_strings
             if opt.startswith("--") and a.dest not in _NOT_IN_FILE}
    with _without_env():
        plain = {a.dest: a.default for a in _command(build(), sub.prog)._actions}
    from_env = {a.dest for a in sub._actions if a.default != plain.get(a.dest, a.default)}
    keep = _given_on_command_line(sub, argv) | from_env
    for key, value in data.items():
        action = flags.get(key) or flags.get(key.replace("_", "-"))
        where = f"config file {path}" + (f", line {n}" if (n := _line_of(text, key)) else "")
        if action is None:
            raise ConfigFileError(f"{where}: unknown key {key!r} (keys are the flags of "
                                  f"'{sub.prog}' without '--', e.g. lease-ttl)")
        try:
            converted = _convert(action, value)
        except ValueError as exc:
            raise ConfigFileError(f"{where}: {key}: {exc}") from None
        if action.dest not in keep:
            setattr(args, action.dest, converted)
    return args


def _command(parser: argparse.ArgumentParser, prog: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action.choices.values():
                if choice.prog == prog:
                    return choice
    raise LookupError(prog)
