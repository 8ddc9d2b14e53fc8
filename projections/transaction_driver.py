"""Driving a generator transaction: the loop every views store runs, written once.

A transaction of :mod:`projections.transactions` yields requests and receives
their results. A views store only says how to perform one request on its
connection (:func:`drive` for a synchronous driver such as ``sqlite3`` in a
worker thread, :func:`drive_async` for asyncpg) and which of its errors are
the transaction's own (a failing statement: thrown back into the generator as
:class:`~projections.transactions.OpError`, where the transaction decides)
rather than the environment's (a full disk, a lost connection: they propagate
and the store rolls back). Beginning, committing and rolling back stay with the
store, which knows its database.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from .errors import ViewsStoreError
from .transactions import Fetch, OpError, Request, Tx

__all__ = ["drive", "drive_async"]

T = TypeVar("T")


def _never(exc: BaseException) -> bool:
    return False


class _Steps(Generic[T]):
    """One transaction's generator, advanced by a driver's loop."""

    def __init__(
        self, body: Callable[[], Tx[T]], op_error: Callable[[BaseException], bool], read_only: bool
    ) -> None:
        self._generator = body()
        self._op_error = op_error
        self._read_only = read_only
        self.result: T

    def _advance(self, step: Callable[[], Request]) -> Request | None:
        try:
            request = step()
        except StopIteration as finished:
            self.result = finished.value
            return None
        if self._read_only and not isinstance(request, Fetch):
            raise ViewsStoreError("a read transaction can only fetch")
        return request

    def start(self) -> Request | None:
        """The first request, or None when the transaction needs none."""
        return self._advance(lambda: next(self._generator))

    def send(self, result: Any) -> Request | None:
        """The next request after one performed, or None once the transaction returned."""
        return self._advance(lambda: self._generator.send(result))

    def failed(self, exc: Exception) -> Request | None:
        """The next request after one failed: its own error goes back in; others propagate."""
        if not self._op_error(exc):
            raise exc
        return self._advance(lambda: self._generator.throw(OpError(str(exc))))


def drive(
    body: Callable[[], Tx[T]],
    perform: Callable[[Request], Any],
    *,
    op_error: Callable[[BaseException], bool] = _never,
    read_only: bool = False,
) -> T:
    """Run ``body``'s requests through ``perform`` to its result (a synchronous driver)."""
    steps = _Steps(body, op_error, read_only)
    request = steps.start()
    while request is not None:
        try:
            result = perform(request)
        except Exception as exc:
            request = steps.failed(exc)
        else:
            request = steps.send(result)
    return steps.result


async def drive_async(
    body: Callable[[], Tx[T]],
    perform: Callable[[Request], Awaitable[Any]],
    *,
    op_error: Callable[[BaseException], bool] = _never,
    read_only: bool = False,
) -> T:
    """Run ``body``'s requests through the awaitable ``perform`` to its result."""
    steps = _Steps(body, op_error, read_only)
    request = steps.start()
    while request is not None:
        try:
            result = await perform(request)
        except Exception as exc:
            request = steps.failed(exc)
        else:
            request = steps.send(result)
    return steps.result
