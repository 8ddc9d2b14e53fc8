"""The storage backend protocol: what a log needs from SQLite, PostgreSQL or memory.

The :class:`~eventstore.store.EventStore` owns everything that is the same on
every backend (group commit, decoding, subscriptions, the write API). A backend
only stores and fetches rows, and each backend passes the same contract tests
(``tests/backend_contract.py``).

Rows cross this boundary as plain tuples in the column order of
:class:`~eventstore.envelope.StoredEvent` (:data:`ROW_COLUMNS`), because building
objects for a million rows costs more than the query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from .envelope import ROW_COLUMNS, AppendResult, RowTuple
from .errors import AppendError
from .planner import PendingAppend

__all__ = ["ROW_COLUMNS", "SQL_COLUMNS", "Backend", "RowTuple"]

#: The ``events`` table's column list in SQL, in ROW_COLUMNS order (the time's
#: column is ``recorded_at``: it holds microseconds, as ``recorded_at_us`` says).
SQL_COLUMNS = ", ".join("recorded_at" if c == "recorded_at_us" else c for c in ROW_COLUMNS)


class Backend(Protocol):
    """A place that stores the log's rows; the store does the rest."""

    #: The store URI, for messages (never with a password).
    uri: str
    #: True when this handle must not write (a store of a newer schema, or asked so).
    read_only: bool

    async def open(self, *, create: bool) -> None:
        """Connect, then create or upgrade the log's tables (safe against a concurrent opener)."""
        ...

    async def close(self) -> None:
        """Release every connection; idempotent."""
        ...

    def set_append_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` when another process appends, if the backend can tell (else poll)."""
        ...

    async def commit(
        self, appends: Sequence[PendingAppend], *, atomic: bool = False
    ) -> list[AppendResult | AppendError]:
        """Store a batch in one transaction; each append gets its result or its own error.

        With ``atomic``, one refused append rolls the whole batch back (the results
        of the others then describe what would have been stored). Raises a
        StoreError (busy, full, closed...) when the whole batch failed and nothing
        of it was stored.
        """
        ...

    async def import_rows(self, rows: Iterable[RowTuple]) -> int:
        """Store rows verbatim (positions, times, hashes as given) in one transaction.

        The rows may be a lazy iterable (a file being parsed): they are consumed
        inside the transaction. The first row must continue the log exactly; the
        caller has checked the chain. Returns how many rows were stored.
        """
        ...

    async def head(self) -> int:
        """The highest position stored, 0 for an empty log."""
        ...

    async def read_rows(
        self, from_position: int, limit: int, types: Sequence[str] | None = None
    ) -> list[RowTuple]:
        """Up to ``limit`` rows with position >= ``from_position`` (of ``types``), in order."""
        ...

    @property
    def lean_reads(self) -> bool:
        """Whether :meth:`rows_between_sync` works, so ``read_all`` may read lean rows."""
        ...

    async def read_lean_rows(
        self, from_position: int, limit: int, types: Sequence[str] | None = None
    ) -> list[RowTuple]:
        """``(position, type, schema_version, data)`` of the rows ``read_rows`` would return.

        What a typed replay needs to decode an event: ``read_all`` reads these
        while its reader does not look at the rest of the envelope.
        """
        ...

    async def read_lean_span(self, first: int, last: int) -> list[RowTuple]:
        """``(type, schema_version, data)`` of the events from ``first`` to ``last``, in order.

        Without their positions: when it returns ``last - first + 1`` rows, they
        are the events at ``first``, ``first + 1``... ``last`` (positions are
        unique integers), so ``read_all`` need not fetch them. Fewer rows (the
        end of the log, or a gap) and the caller reads positions again with
        :meth:`read_lean_rows`.
        """
        ...

    def rows_between_sync(
        self, first: int, last: int, types: Sequence[str] | None = None
    ) -> list[RowTuple]:
        """Whole rows with ``first <= position <= last`` (of ``types``), in order; synchronous.

        Serves the envelope of events read lean, when first looked at, possibly
        after the handle closed (so it uses no connection of the handle's).
        Only where ``lean_reads`` is True.
        """
        ...

    async def read_stream_rows(
        self, stream_id: str, from_version: int, limit: int
    ) -> list[RowTuple]:
        """Up to ``limit`` rows of one stream with version >= ``from_version``, in order."""
        ...

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version, 0 when it has no event."""
        ...

    async def row_by_event_id(self, event_id: str) -> RowTuple | None:
        """The row of one event id, or None."""
        ...

    async def rows_by_event_ids(self, event_ids: Sequence[str]) -> list[RowTuple]:
        """The rows of those event ids that are stored, in any order (bulk lookups)."""
        ...

    async def stream_versions(self, stream_ids: Sequence[str]) -> dict[str, int]:
        """The current version of each of those streams that has events (bulk lookups)."""
        ...

    async def position_at(self, recorded_at_us: int) -> int:
        """The last position recorded at or before the given time (0 if none)."""
        ...

    async def info(self) -> dict[str, Any]:
        """Backend facts for ``store describe``: backend, uri, schema_version, size_bytes..."""
        ...
