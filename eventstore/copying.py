"""Copy a log from one open store to another, exactly as stored, then verify the copy.

The target must be empty or hold a prefix of the same log (an earlier copy):
what it holds is skipped, so an interrupted copy resumes when run again. Every
row the target lacks is first checked as an import checks a line
(:class:`~eventstore.transfer.RowRules`); one refused row copies nothing. Rows
go over in transactions of :data:`COPY_CHUNK`, with the source's chain checked
on the way. Nothing here prints; long work reports through
``progress(stage, done, total)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .chain import ChainChecker
from .envelope import StoredEvent
from .errors import LogMismatchError, RowRefusedError, SameStoreError, SourceDamagedError
from .events import ComponentRegistered, StackRegistered
from .transfer import RowRules, StageProgress
from .workspace import WORKSPACE_STREAM

if TYPE_CHECKING:
    from .log import Log
    from .store import EventStore
    from .uri import StoreLocation

__all__ = ["COPY_CHUNK", "CopyResult", "copy", "same_place"]

#: Rows per transaction when copying to another store.
COPY_CHUNK = 5000
#: The event types ``metaledger init`` writes (its default components and stack).
_INIT_TYPES = frozenset({"component.registered", "stack.registered", "workspace.active_stack_set"})
#: ``init`` writes 5 events; a longer log holds more than init's defaults.
_INIT_MAX_EVENTS = 5


@dataclass(frozen=True)
class CopyResult:
    """What :func:`copy` stored, and whether the copy verifies as the source's twin."""

    copied: int
    #: Events the target held already (a prefix of the source's log).
    already_there: int
    #: The copy's head position and hash (hex), as its own verify found them.
    head_position: int
    head_hash: str | None
    #: Why the copy does not match the source (None when it verifies).
    problem: str | None

    @property
    def verified(self) -> bool:
        """True when the copy verifies and ends at the source's head and hash."""
        return self.problem is None


def same_place(a: StoreLocation, b: StoreLocation) -> bool:
    """Whether two store locations name the same store."""
    if a.kind != b.kind:
        return False
    if a.path is not None and b.path is not None:
        return bool(os.path.realpath(a.path) == os.path.realpath(b.path))
    return bool(a.dsn == b.dsn)


def _quiet(stage: str, done: int, total: int) -> None:
    """The progress callback that reports nothing."""


async def copy(
    source: EventStore,
    target: EventStore,
    *,
    source_head: int | None = None,
    progress: StageProgress | None = None,
) -> CopyResult:
    """Copy ``source``'s log (up to ``source_head``, default its head) into ``target``.

    Raises SameStoreError when both are one store, LogMismatchError when the
    target holds another log (``init_defaults`` set when it is only
    ``metaledger init``'s default stack), RowRefusedError when a row the target
    lacks breaks the rules (nothing copied), and SourceDamagedError when the
    source's chain breaks (the rows before it stay copied). Progress stages:
    ``"checking"``, ``"copying"``, ``"verifying"`` (positions).
    """
    report = progress or _quiet
    if same_place(source.location, target.location):
        raise SameStoreError("the target is the source store: copy it to another place")
    head = await source.head() if source_head is None else source_head
    there = await target.head()
    await _check_prefix(source, target, head, there)
    await _check_source(source, head, there, report)
    checker = ChainChecker()
    copied = await _copy_rows(source, target, head, there, checker, report)
    verdict = await target.verify(progress=lambda done, total: report("verifying", done, total))
    source_hash = checker.previous_hash.hex() if head else None
    problem = None
    if not verdict.ok:
        problem = f"position {verdict.first_bad_position}: {verdict.reason}"
    elif verdict.head_position != head or verdict.head_hash != source_hash:
        problem = (
            f"its head is {verdict.head_position} with hash {verdict.head_hash or '-'}, this "
            f"store's {head} with hash {source_hash or '-'}"
        )
    return CopyResult(copied, there, verdict.head_position, verdict.head_hash, problem)


async def _holds_only_init_defaults(target: Log | EventStore, there: int) -> bool:
    """Whether the target's whole log is what ``init`` writes: the default stack, nothing else."""
    if not 0 < there <= _INIT_MAX_EVENTS:
        return False
    async for recorded in target.read_all():
        event = recorded.event
        if recorded.type not in _INIT_TYPES or recorded.stream_id != WORKSPACE_STREAM:
            return False
        if isinstance(event, ComponentRegistered | StackRegistered) and event.name != "default":
            return False
    return True


async def _check_prefix(
    source: Log | EventStore, target: Log | EventStore, head: int, there: int
) -> None:
    """Refuse a target that holds anything but a prefix of the source's log."""
    if await _holds_only_init_defaults(target, there):
        mine = await source.stored_at(there) if there <= head else None
        theirs = await target.stored_at(there)
        if mine is None or theirs is None or mine.hash != theirs.hash:
            raise LogMismatchError(
                f"the target holds only the default stack `init` made there ({there} events)",
                position=there,
                init_defaults=True,
                target_head=there,
            )
    if there > head:
        raise LogMismatchError(
            f"the target holds {there} events, more than the source's {head}",
            position=head + 1,
            target_head=there,
        )
    if there:
        mine, theirs = await source.stored_at(there), await target.stored_at(there)
        if mine is None or theirs is None or mine.hash != theirs.hash:
            raise LogMismatchError(
                f"the target's event {there} differs from the source's",
                position=there,
                ours=mine.hash if mine is not None else None,
                theirs=theirs.hash if theirs is not None else None,
                target_head=there,
            )


async def _check_source(
    source: Log | EventStore, head: int, there: int, progress: StageProgress
) -> None:
    """Pass 1: every row the target lacks is checked as an import checks it.

    Nothing is copied when a row is refused. A broken chain ends the check: the
    copy pass reports it at its position.
    """
    if head <= there:
        return
    chain = ChainChecker()
    rules = RowRules(there)
    async for rows in source.read_chunks(1, to_position=head, chunk_size=COPY_CHUNK):
        for raw in rows:
            row = StoredEvent._make(raw)
            if not chain.check(row):
                return
            fault = rules.fault(row)
            if fault is not None:
                raise RowRefusedError(fault)
        progress("checking", rows[-1][0], head)


async def _copy_rows(
    source: Log | EventStore,
    target: Log | EventStore,
    head: int,
    there: int,
    checker: ChainChecker,
    progress: StageProgress,
) -> int:
    """Copy the events after ``there`` in transactions of COPY_CHUNK, checking the chain."""
    copied = 0
    async for rows in source.read_chunks(1, to_position=head, chunk_size=COPY_CHUNK):
        batch = []
        for raw in rows:
            row = StoredEvent._make(raw)
            if not checker.check(row):
                raise SourceDamagedError(checker.first_bad_position, checker.reason, copied)
            if row.position > there:
                batch.append(row)
        if batch:
            copied += await target.import_stored(batch)
        progress("copying", rows[-1][0], head)
    return copied
