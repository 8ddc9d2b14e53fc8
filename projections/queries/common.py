"""What every query module shares: decoding, reference checks, id prefixes, the reader base."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from eventstore import EventStore, datetime_from_us
from projections.errors import AmbiguousReferenceError, QueryError, ViewNotFoundError
from projections.transactions import Fetch, Tx
from projections.views_store import ViewsStore

#: The shortest id prefix that names a run or an artifact.
MIN_ID_PREFIX = 4
#: How many candidates an ambiguous reference's error lists.
_CANDIDATES_SHOWN = 10
_json = msgspec.json.Decoder()
_MAX_INT = 2**63 - 1


def _loads(text: str | None) -> Any:
    return None if text is None else _json.decode(text)


def _aware(value: datetime) -> datetime:
    """Times without an offset are taken as UTC, as everywhere in metaledger."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _time(us: int | None) -> datetime | None:
    return None if us is None else datetime_from_us(us)


def _seconds(us: int | None) -> float | None:
    return None if us is None else us / 1_000_000


def _check_ref(kind: str, ref: str) -> str:
    """A reference must name something: an empty one would match everything by prefix."""
    if not ref or not ref.strip():
        raise ViewNotFoundError(kind, ref)
    return ref


def _check_limit(limit: int | None) -> int | None:
    if limit is not None and not 0 <= limit <= _MAX_INT:
        raise QueryError(f"limit must be between 0 and {_MAX_INT}")
    return limit


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


def _distinct(rows: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
    """Rows without repeats of the same id (column 0), in order."""
    seen: dict[Any, Sequence[Any]] = {}
    for row in rows:
        seen.setdefault(row[0], row)
    return list(seen.values())


def _ambiguous(kind: str, ref: str, candidates: Sequence[str]) -> AmbiguousReferenceError:
    shown = list(candidates[:_CANDIDATES_SHOWN])
    more = "" if len(candidates) <= _CANDIDATES_SHOWN else ", and more"
    return AmbiguousReferenceError(
        f"{ref!r} could mean several {kind}s: {'; '.join(shown)}{more}; give the full {kind} id",
        candidates,
    )


def _suggest(name: str, candidates: Sequence[str]) -> list[str]:
    return difflib.get_close_matches(name, list(dict.fromkeys(candidates)), n=3, cutoff=0.6)


def _uuid(text: str) -> Any:
    import uuid

    return uuid.UUID(text)


def _id_prefix_rows(base: str, column: str, ref: str, limit: int) -> Tx[Sequence[Sequence[Any]]]:
    if len(ref) < MIN_ID_PREFIX:
        return []
    rows: Sequence[Sequence[Any]] = yield Fetch(
        f"{base} WHERE {column} LIKE ? ESCAPE '\\' ORDER BY {column} LIMIT ?",
        (_like_prefix(ref), limit),
    )
    return rows


def _check_short_prefix(kind: str, table: str, column: str, ref: str) -> Tx[None]:
    """A reference too short to be an id prefix, that would match some id, is refused."""
    if len(ref) >= MIN_ID_PREFIX:
        return
    rows = yield Fetch(
        f"SELECT COUNT(*) FROM {table} WHERE {column} LIKE ? ESCAPE '\\'",
        (_like_prefix(ref),),
    )
    if rows and rows[0][0]:
        raise AmbiguousReferenceError(
            f"{ref!r} is too short to name a {kind} by id prefix "
            f"(it starts {rows[0][0]} {kind} ids): give at least {MIN_ID_PREFIX} "
            f"characters of the id, or the {kind}'s name"
        )


def _active_stack_id() -> Tx[str | None]:
    rows = yield Fetch("SELECT stack_id FROM active_stack WHERE slot = 1")
    return str(rows[0][0]) if rows else None


class ViewsReader:
    """The views store (and the log, for history) that every query reads."""

    def __init__(self, views: ViewsStore, store: EventStore | None = None) -> None:
        self.views = views
        self.store = store


def _one_candidate(
    kind: str,
    ref: str,
    base: str,
    id_column: str,
    named: Sequence[Sequence[Any]],
    describe: Callable[[Sequence[Any]], str],
) -> Tx[Sequence[Any] | None]:
    """The one row that ``ref`` names (``named``) or is an id prefix of, else None.

    A name and an id prefix are weighed together: when they point at different
    rows the reference is ambiguous (AmbiguousReferenceError, each candidate
    described); a reference too short to be a prefix that starts some id, too.
    """
    prefixed = yield from _id_prefix_rows(base, id_column, ref, _CANDIDATES_SHOWN + 1)
    candidates = _distinct([*named, *prefixed])
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise _ambiguous(kind, ref, [describe(row) for row in candidates])
    yield from _check_short_prefix(kind, f"{kind}s", id_column.rpartition(".")[2], ref)
    return None
