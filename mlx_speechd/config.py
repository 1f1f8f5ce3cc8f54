"""Settings from a TOML file and MLX_SPEECHD_* environment variables, under the command line.

Precedence, highest first: command line, environment, config file, built-in defaults.
The config file is `--config PATH` or `$MLX_SPEECHD_CONFIG`; its keys are the long option
names with dashes as underscores (`sentence_pause = 0.2`, `uri = ["tcp://0.0.0.0:10200"]`).
"""

from __future__ import annotations

import argparse
import difflib
import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import blas

ENV_PREFIX = "MLX_SPEECHD_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"
_NOT_SETTINGS = {"help", "version", "text", "config", "print_config"}
OTHER_VARIABLES = frozenset(
    {CONFIG_ENV, ENV_PREFIX + "VOICES_DIR", ENV_PREFIX + "OFFICIAL_PYTHON", blas.BLAS_ENV}
)
"""MLX_SPEECHD_* variables that are not options: the config file, the voice library, the conformance
tests, the BLAS under MLX."""
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(Exception):
    """A config file or environment variable that can't be used."""


def settable_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The parser's options that a config file or the environment may set, by key."""
    return {
        action.dest: action
        for action in parser_actions(parser)
        if action.option_strings and action.dest not in _NOT_SETTINGS
    }


def apply_defaults(
    parser: argparse.ArgumentParser, config_path: str | None, environ: Mapping[str, str]
) -> dict[str, str]:
    """Set the parser's defaults from the config file, then the environment.

    Returns where each non-default setting came from, for --print-config.
    """
    actions = settable_actions(parser)
    sources: dict[str, str] = {}
    path = config_path or environ.get(CONFIG_ENV)
    if path:
        for key, value in _read_file(Path(path).expanduser(), actions).items():
            parser.set_defaults(**{key: value})
            sources[key] = f"config file {path}"
    for key, action in actions.items():
        name = ENV_PREFIX + key.upper()
        if name in environ:
            parser.set_defaults(**{key: _from_string(action, environ[name], name)})
            sources[key] = f"environment {name}"
    return sources


def unknown_variables(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> list[str]:
    """Warnings for MLX_SPEECHD_* variables that set nothing (a typo must not be ignored silently)."""
    known = {ENV_PREFIX + key.upper() for key in settable_actions(parser)} | OTHER_VARIABLES
    warnings = []
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            warnings.append(f"environment variable {name} is not a setting and is ignored{hint}")
    return warnings


def _read_file(path: Path, actions: dict[str, argparse.Action]) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from err
    values = {}
    for key, value in data.items():
        action = actions.get(key.replace("-", "_"))
        if action is None:
            known = ", ".join(sorted(actions))
            raise ConfigError(f"unknown setting '{key}' in {path}; known settings: {known}")
        values[action.dest] = _from_toml(action, value, f"'{key}' in {path}")
    return values


def _from_toml(action: argparse.Action, value: Any, where: str) -> Any:
    if is_flag(action):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false")
        return value
    if is_list(action):
        items = value if isinstance(value, list) else [value]
        return [_convert(action, str(item), where) for item in items]
    if action.nargs == "?" and isinstance(value, bool):
        return action.const if value else None
    if isinstance(value, (dict, list)):
        raise ConfigError(f"{where} must be a single value")
    return _convert(action, str(value), where)


def _from_string(action: argparse.Action, text: str, where: str) -> Any:
    if is_flag(action):
        if text.strip().lower() not in _TRUE | _FALSE:
            raise ConfigError(f"{where} must be 1/0, true/false, yes/no or on/off")
        return text.strip().lower() in _TRUE
    if is_list(action):
        return [_convert(action, item, where) for item in text.replace(",", " ").split()]
    if action.nargs == "?" and text.strip().lower() in _TRUE:
        return action.const
    return _convert(action, text, where)


def _convert(action: argparse.Action, text: str, where: str) -> Any:
    try:
        value = action.type(text) if callable(action.type) else text
    except argparse.ArgumentTypeError as err:
        raise ConfigError(f"{where}: {err}") from err
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: invalid value {text!r}") from err
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise ConfigError(f"{where}: {text!r} is not one of {choices}")
    return value


def format_config(parser: argparse.ArgumentParser, args: argparse.Namespace, sources: dict[str, str]) -> str:
    """The effective settings as a TOML document, each non-default one with its source."""
    lines = ["# mlx-speechd effective configuration (TOML; usable as a config file)"]
    for key in settable_actions(parser):
        value = getattr(args, key)
        source = "command line" if value != parser.get_default(key) else sources.get(key)
        if value is None:
            lines.append(f"# {key} is not set")
            continue
        comment = f"  # {source}" if source else ""
        lines.append(f"{key} = {_toml_value(value)}{comment}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


# ---- argparse internals ----
# argparse has no public way to list a parser's options or to tell what kind of option an action is;
# these are the only places mlx-speechd relies on its private names (stable since Python 3.2).


def parser_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """Every option and positional argument of `parser`, in the order they were added."""
    return list(parser._actions)  # noqa: SLF001


def is_flag(action: argparse.Action) -> bool:
    """An option that takes no value and sets True (`action="store_true"`)."""
    return isinstance(action, argparse._StoreTrueAction)  # noqa: SLF001


def is_list(action: argparse.Action) -> bool:
    """A repeatable option whose values make a list (`action="append"` or `AppendOverride`)."""
    return isinstance(action, argparse._AppendAction)  # noqa: SLF001


def is_help(action: argparse.Action) -> bool:
    """The `--help` option."""
    return isinstance(action, argparse._HelpAction)  # noqa: SLF001


class AppendOverride(argparse._AppendAction):  # noqa: SLF001
    """Append, but the first use on the command line replaces a list from the config or environment."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        marker = f"_{self.dest}_from_command_line"
        if not getattr(namespace, marker, False):
            setattr(namespace, self.dest, [])
            setattr(namespace, marker, True)
        super().__call__(parser, namespace, values, option_string)
