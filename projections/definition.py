"""What a projection is: a name, a version, its tables, and a handler per event type.

Handlers are pure: given an event and its context they return the
operations that fold it into the tables: SQL ``Op`` tuples, or row operations
(:mod:`projections.row_ops`) that the runner coalesces per row across a chunk.
They never run SQL themselves, so the runner can apply a whole batch of events
in one transaction, for every backend, and can replay the same handlers into
fresh tables (a rebuild) or a scratch store (state as of a past position).

SQL is written once, portable between SQLite and PostgreSQL: ``?`` placeholders
and ``{table}`` names that the views store resolves to the physical tables of
the generation being written (``runs`` -> ``runs_g3``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from eventstore import Event, RecordedEvent

if TYPE_CHECKING:
    from .row_ops import RowOp

__all__ = ["EventContext", "Handler", "Op", "Projection", "Table", "to_json"]

Op = tuple[str, tuple[Any, ...]]
"""One SQL operation: a template with ``{table}`` names and ``?`` marks, and its parameters."""

_json = msgspec.json.Encoder()


def to_json(value: Any) -> str:
    """A JSON text column value (configuration, parameters, tags...)."""
    return _json.encode(value).decode()


@dataclass(frozen=True, slots=True)
class EventContext:
    """Where an event sits in the log, for handlers that record it."""

    position: int
    stream_id: str
    recorded_at_us: int
    event_id: str

    @classmethod
    def of(cls, recorded: RecordedEvent) -> EventContext:
        """The context of a recorded event."""
        return cls(
            recorded.position, recorded.stream_id, recorded.recorded_at_us, recorded.event_id_text
        )


Handler = Callable[[Any, EventContext], Iterable["Op | RowOp"]]
"""A function folding one event (of the class it is registered for) into ops.

An op is a SQL :data:`Op`, or a row operation of :mod:`projections.row_ops`
(which the runner can coalesce per row across a chunk, and which renders to
the SQL statement it stands for).
"""


@dataclass(frozen=True, slots=True)
class Table:
    """A view table: column definitions (portable SQL) and indexes on it."""

    columns: str
    primary_key: str
    indexes: tuple[str, ...] = ()

    def create_statements(self, physical: str, *, indexes: bool = True) -> list[str]:
        """DDL creating this table (and, unless ``indexes`` is False, its indexes)."""
        statements = [f"CREATE TABLE {physical} ({self.columns}, PRIMARY KEY ({self.primary_key}))"]
        if indexes:
            statements += self.index_statements(physical)
        return statements

    def index_statements(self, physical: str) -> list[str]:
        """DDL creating this table's secondary indexes, each only if it is missing."""
        return [
            f"CREATE INDEX IF NOT EXISTS {physical}_i{number} ON {physical} ({columns})"
            for number, columns in enumerate(self.indexes)
        ]


class Projection:
    """Base class of projections: subclasses set ``name``, ``version``, ``tables``, handlers.

    Bump ``version`` whenever the tables or the meaning of a handler change: the
    views store then rebuilds the projection blue/green from the log, while the
    old tables keep answering queries.
    """

    name: ClassVar[str]
    version: ClassVar[int]
    tables: ClassVar[Mapping[str, Table]]
    #: Views read like tables but derived from this projection's own tables: a
    #: name and a SELECT over ``{table}`` names. Nothing writes them, so a
    #: catch-up pays nothing for them; queries read them by name, as tables.
    derived: ClassVar[Mapping[str, str]] = {}
    #: Tables an earlier version had and this one has not: dropped with the old
    #: generations they belong to, and their logical views with them (a
    #: rebuild's swap, a reset).
    retired: ClassVar[tuple[str, ...]] = ()

    def handlers(self) -> Mapping[type[Event], Handler]:
        """The handler for each event class this projection folds."""
        raise NotImplementedError

    def __init__(self) -> None:
        self._handlers = dict(self.handlers())

    def ops(
        self, recorded: RecordedEvent, context: EventContext | None = None
    ) -> list[Op | RowOp] | None:
        """The ops for one recorded event; None when this projection does not handle its type."""
        handler = self._handlers.get(type(recorded.event))  # type: ignore[arg-type]
        if handler is None:
            return None
        if context is None:
            context = EventContext.of(recorded)
        return list(handler(recorded.event, context))
