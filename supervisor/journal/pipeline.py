"""Wiring structlog and stdlib ``logging`` into the Journal.

The processor list, wrapper class and logger factory are the same objects on every :func:`setup`, so a
logger bound before a re-setup (``log = structlog.get_logger("supervisor.x").bind(unit="x")`` at module
level) keeps working: the last processor looks up the current Journal at each call. A logger bound
*before the first* ``setup`` keeps structlog's defaults, so ``setup`` must run before such imports."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
import traceback
from enum import Enum
from typing import Any, TextIO

import structlog
from structlog.contextvars import merge_contextvars
from structlog.typing import EventDict, Processor, WrappedLogger

from supervisor.journal.console import ConsoleFormat, render_plain
from supervisor.journal.core import DEFAULT_RING_SIZE, Journal
from supervisor.journal.records import (
    LEVELS,
    Record,
    format_ts,
    jsonable,
    level_rank,
    normalize_level,
    ordered,
)
from supervisor.journal.redact import redact_value

STDLIB_LEVEL = logging.WARNING


class _Stderr(Enum):
    """``sys.stderr`` as it is when :func:`setup` is called (not when this module was imported)."""

    STDERR = "stderr"


STDERR = _Stderr.STDERR

_current: Journal | None = None
_setup_lock = threading.Lock()


def get_journal() -> Journal | None:
    """The Journal configured by the last :func:`setup`, or None."""
    return _current


# -- structlog -----------------------------------------------------------------------------------------


class NamedLogger:
    """What ``structlog.get_logger(name)`` wraps: it only carries the name (the pipeline never calls it,
    the last processor hands the record to the Journal and drops the event)."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name

    def msg(self, *args: Any, **kwargs: Any) -> None:
        return None

    info = debug = warning = error = critical = exception = log = msg


def _logger_factory(*args: Any) -> NamedLogger:
    return NamedLogger(str(args[0]) if args and args[0] is not None else None)


def _add_level(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    try:
        event_dict["level"] = normalize_level(method_name)
    except ValueError:
        event_dict["level"] = "info"
    return event_dict


def _drop_below_level(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    journal = _current
    threshold = journal.level if journal is not None else "warning"
    if level_rank(event_dict.get("level")) < LEVELS[threshold]:
        raise structlog.DropEvent
    return event_dict


def _add_timestamp(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    event_dict["ts"] = format_ts(time.time())
    return event_dict


def _add_logger_name(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    if "logger" not in event_dict:
        event_dict["logger"] = getattr(logger, "name", None) or "corral"
    return event_dict


def format_exc_info(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """``exc_info`` (True, an exception, or a ``sys.exc_info()`` tuple) -> a ``traceback`` string."""
    exc_info = event_dict.pop("exc_info", None)
    if not exc_info:
        return event_dict
    if isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    elif not isinstance(exc_info, tuple):
        exc_info = sys.exc_info()
    if exc_info[0] is not None:
        event_dict["traceback"] = "".join(traceback.format_exception(*exc_info)).rstrip("\n")
    return event_dict


def redact(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Make every value JSON-safe (``str`` for the rest) and replace secrets with ``"<redacted>"``."""
    safe = jsonable(dict(event_dict))
    event = safe.get("event")
    if not isinstance(event, str):
        safe["event"] = "" if event is None else str(event)
    cleaned: EventDict = redact_value(safe)
    return cleaned


def _to_journal(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    _deliver(ordered(event_dict))
    raise structlog.DropEvent


def _deliver(record: Record) -> None:
    journal = _current
    if journal is not None:
        journal.emit(record)
        return
    # No journal (before setup or after reset): warnings and worse still reach stderr.
    if level_rank(record.get("level")) >= LEVELS["warning"]:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(render_plain(record) + "\n")


PROCESSORS: list[Processor] = [
    _add_level,
    _drop_below_level,
    merge_contextvars,
    _add_timestamp,
    _add_logger_name,
    format_exc_info,
    redact,
    _to_journal,
]
_WRAPPER = structlog.make_filtering_bound_logger(logging.NOTSET)  # level filtering is ours (above)


# -- stdlib logging ------------------------------------------------------------------------------------

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class StdlibBridge(logging.Handler):
    """Routes stdlib ``logging`` records (pyroute2, aiodocker, asyncio) into the journal pipeline."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event_dict: EventDict = {
                "ts": format_ts(record.created),
                "level": _stdlib_level(record.levelno),
                "logger": record.name,
                "event": record.getMessage(),
            }
            event_dict.update((k, v) for k, v in vars(record).items() if k not in _STANDARD_ATTRS)
            if record.exc_info:
                event_dict["exc_info"] = record.exc_info
            elif record.exc_text:
                event_dict["traceback"] = record.exc_text
            if record.stack_info:
                event_dict["stack"] = record.stack_info
            for processor in (format_exc_info, redact):
                event_dict = processor(None, event_dict["level"], event_dict)
            _deliver(ordered(event_dict))
        except Exception:
            self.handleError(record)


def _stdlib_level(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


def _remove_bridges() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, StdlibBridge):
            root.removeHandler(handler)


def _install_bridge() -> None:
    _remove_bridges()
    root = logging.getLogger()
    root.addHandler(StdlibBridge(level=STDLIB_LEVEL))
    if root.level > STDLIB_LEVEL:
        root.setLevel(STDLIB_LEVEL)


# -- setup / reset -------------------------------------------------------------------------------------


def setup(
    level: str = "info",
    console: TextIO | _Stderr | None = STDERR,
    console_format: ConsoleFormat = "auto",
    ring_size: int = DEFAULT_RING_SIZE,
    console_thread: bool = False,
) -> Journal:
    """Configure structlog and stdlib logging to feed a new Journal, and return it.

    Re-callable: the previous Journal (if any) is closed (its storage detached) and replaced.
    ``console`` defaults to ``sys.stderr`` at call time; None disables console output."""
    global _current
    stream = sys.stderr if console is STDERR else console
    assert not isinstance(stream, _Stderr)
    journal = Journal(level=level, console=stream, console_format=console_format, ring_size=ring_size,
                      console_thread=console_thread)
    with _setup_lock:
        previous, _current = _current, journal
        structlog.configure(
            processors=PROCESSORS,
            wrapper_class=_WRAPPER,
            context_class=dict,
            logger_factory=_logger_factory,
            cache_logger_on_first_use=False,
        )
        _install_bridge()
    if previous is not None:
        previous.close()
    return journal


def reset() -> None:
    """Undo :func:`setup`: close the Journal, unhook stdlib logging, restore structlog's defaults."""
    global _current
    with _setup_lock:
        previous, _current = _current, None
        _remove_bridges()
        structlog.reset_defaults()
    if previous is not None:
        previous.close()
