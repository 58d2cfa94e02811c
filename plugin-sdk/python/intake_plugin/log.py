"""Logging into the engine's log, tagged with plugin, tenant and account.

Inside the engine a line goes to the engine's log (standard error of
``intake``) and, under ``intake plugin test``, into the report's
``steps[].logs``. The engine keeps at most 50 lines per message and 2048
bytes per line. Outside the engine (native unit tests) lines are collected
in :data:`collected`.
"""

from typing import List, Tuple

collected: List[Tuple[str, str]] = []
"""(level, line) pairs logged outside the engine, for unit tests."""


# Imported when the component is built: a plugin has no file system at run
# time, so every module it uses must be loaded by then.
try:
    from wit_world.imports import log as _wit_log
except ImportError:  # natively, without the component's bindings
    _wit_log = None


def _emit(level: str, message: str) -> None:
    if _wit_log is None:
        collected.append((level, str(message)))
        return
    _wit_log.write(getattr(_wit_log.Level, level.upper()), str(message))


def trace(message: str) -> None:
    """Very detailed tracing."""
    _emit("trace", message)


def debug(message: str) -> None:
    """Diagnostic detail."""
    _emit("debug", message)


def info(message: str) -> None:
    """Normal operation."""
    _emit("info", message)


def warn(message: str) -> None:
    """Something unexpected that the plugin handled."""
    _emit("warn", message)


def error(message: str) -> None:
    """Something failed."""
    _emit("error", message)
