"""The one way to start a background task: it keeps a reference and logs the task's failure.

Bare ``asyncio.create_task`` is banned by a ruff rule (the task can be garbage collected and its
exception is lost until then)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog

T = TypeVar("T")

log = structlog.get_logger("supervisor.tasks")
_running: set[asyncio.Task[Any]] = set()


def spawn_task(coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
    """Start ``coro`` as a named task that is kept alive and whose exception is logged."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _running.add(task)
    task.add_done_callback(_finished)
    return task


def _finished(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("task failed", task=task.get_name(), exc_info=exc)


def running_tasks() -> list[str]:
    return sorted(t.get_name() for t in _running)


def loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Catches whatever escaped every other handler; PID 1 logs it and carries on."""
    exc = context.get("exception")
    log.error("unhandled exception in event loop", message=context.get("message"), exc_info=exc)
