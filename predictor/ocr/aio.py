"""Asyncio fan-out, in one place for the server and the batch client (torch-free: the client imports it).

Everything that runs several awaitables at once does it in an ``asyncio.TaskGroup``: when one fails (a page
refused with 429, one image's 400) the others are cancelled at once instead of running to the end for a request
that has already failed, and none is left running behind the caller. The caller sees the first error itself, not
an ``ExceptionGroup``, so it maps to its own status code as a single error would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def _first(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


@contextlib.asynccontextmanager
async def task_group() -> AsyncIterator[asyncio.TaskGroup]:
    """``asyncio.TaskGroup`` that raises the first failure as itself."""
    failure: BaseException | None = None
    try:
        async with asyncio.TaskGroup() as group:
            yield group
    except BaseExceptionGroup as failed:
        failure = _first(failed)
    if failure is not None:
        raise failure


async def gather_or_cancel(*coroutines: Coroutine[Any, Any, T]) -> list[T]:
    """The results in order; the first failure cancels the others and is raised."""
    async with task_group() as group:
        tasks = [group.create_task(c) for c in coroutines]
    return [task.result() for task in tasks]


async def cancel_all(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until every one has ended (their errors are theirs: already reported)."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)
