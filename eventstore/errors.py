"""The errors the event store raises.

Every error derives from one base, so a caller can catch the whole family::

    LedgerError
    ├── StoreError                      the store itself cannot do the work
    │   ├── StoreNotFoundError          no store at that location (and creation not asked)
    │   ├── NotAStoreError              the path holds something that is not a metaledger store
    │   │   └── StoreCorruptError       the log file is ours but damaged (corrupt or truncated)
    │   ├── ReadOnlyStoreError          a write on a store opened read-only (or a newer one's)
    │   ├── StoreBusyError              the write lock stayed taken through every retry
    │   ├── StoreFullError              the disk (or the configured page limit) is full
    │   ├── StoreClosedError            the handle was used after close
    │   ├── BackendUnavailableError     a server backend cannot be reached or its driver is missing
    │   │   └── MetadataStoreUnreachableError  a stack's metadata store cannot be opened
    │   ├── UnsupportedURIError         a store URI with a scheme metaledger does not know
    │   └── StoreOptionError            an option the store's backend does not take (or a bad value)
    ├── AppendError                     one append was refused; nothing of it was stored
    │   ├── ConcurrencyError            the stream is not at the expected version
    │   ├── EventIdConflictError        an event id is already stored with a different body
    │   └── InvalidEventError           an event cannot be encoded (bad value, too large...)
    ├── DecodeError                     an event or envelope cannot be decoded
    ├── TransferError                   a transfer (export, import, copy, lines) refused
    │   ├── BadLinesError               lines of an ``append_lines`` input are malformed
    │   │   └── RuleBreachError         lines of an ``append_lines`` input break the domain rules
    │   ├── BadLineError                a line of an export cannot be imported (its number, why)
    │   ├── FileChangedError            the export changed between the import's two passes
    │   ├── LogMismatchError            the target holds another log than the one imported or copied
    │   ├── StoreChangedError           the store moved on while the import checked the file
    │   ├── RowRefusedError             a copied row may not be stored (the rules refuse it)
    │   ├── SameStoreError              a copy whose target is its source
    │   └── SourceDamagedError          the copy's source breaks its hash chain
    └── LifecycleError                  the write API refused a command; nothing was appended
        ├── NotFoundError               a named component, stack, run, step or artifact is unknown
        ├── AlreadyExistsError          a name or id is already taken
        │   └── RunNameTakenError       a live run already has that run name
        ├── InvalidStateError           the command does not fit the entity's state
        └── InUseError                  an entity is still referenced (a component in a stack...)
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AlreadyExistsError",
    "AppendError",
    "BackendUnavailableError",
    "BadLineError",
    "BadLinesError",
    "ConcurrencyError",
    "DecodeError",
    "EventIdConflictError",
    "FileChangedError",
    "InUseError",
    "InvalidEventError",
    "InvalidStateError",
    "LedgerError",
    "LifecycleError",
    "LogMismatchError",
    "MetadataStoreUnreachableError",
    "NotAStoreError",
    "NotFoundError",
    "ReadOnlyStoreError",
    "RowRefusedError",
    "RuleBreachError",
    "RunNameTakenError",
    "SameStoreError",
    "SourceDamagedError",
    "StoreBusyError",
    "StoreChangedError",
    "StoreClosedError",
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "StoreNotFoundError",
    "StoreOptionError",
    "TransferError",
    "Unknown",
    "UnsupportedURIError",
]


class LedgerError(Exception):
    """Raised for every error metaledger's event store reports; the root of the tree."""


class StoreError(LedgerError):
    """Raised when the store cannot do the work asked of it."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """Raised when no store exists at the location and creating one was not asked for."""


class NotAStoreError(StoreError):
    """Raised when the location holds a file or database that is not a metaledger store."""


class StoreCorruptError(NotAStoreError):
    """Raised when the log's file is damaged: a corrupt page, or a file cut short.

    ``verify`` reports it as damage (exit 5); ``export`` salvages the events
    before the damage.
    """

    #: The first position that could not be read, when a read found the damage.
    position: int | None = None


class ReadOnlyStoreError(StoreError):
    """Raised when a write is attempted on a store opened read-only.

    A log written by a newer metaledger is always opened read-only: this is raised
    on a write, naming the versions, rather than risking a downgrade.
    """


class StoreBusyError(StoreError, TimeoutError):
    """Raised when another writer held the write lock through every retry."""


class StoreFullError(StoreError, OSError):
    """Raised when the disk, or the store's configured size limit, is full."""


class StoreClosedError(StoreError, RuntimeError):
    """Raised when a store handle is used after it was closed."""


class BackendUnavailableError(StoreError, ConnectionError):
    """Raised when a server backend cannot be reached or its driver is not installed."""


class MetadataStoreUnreachableError(BackendUnavailableError):
    """Raised when a stack's metadata store cannot be opened (its message names both)."""


class UnsupportedURIError(StoreError, ValueError):
    """Raised when a store URI names a scheme metaledger does not support."""


class StoreOptionError(StoreError, ValueError):
    """Raised when a store is opened with an option its backend does not know or a bad value."""


class AppendError(LedgerError):
    """Raised when one append is refused; nothing of that append was stored."""

    #: The number of the input line the refused append starts at (``append_lines``), if known.
    line: int | None = None


class ConcurrencyError(AppendError, ValueError):
    """Raised when a stream is not at the version the append expected."""

    def __init__(self, stream_id: str, expected: object, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, the append expected {expected}"
        )


class EventIdConflictError(AppendError, ValueError):
    """Raised when an event id is already stored with a different body, or only in part."""

    def __init__(self, event_ids: Sequence[str], reason: str) -> None:
        self.event_ids = tuple(event_ids)
        self.reason = reason
        super().__init__(f"event id {self.event_ids[0]} {reason}")


class InvalidEventError(AppendError, ValueError):
    """Raised when an event cannot be encoded: a bad value, NaN, or over the size limit."""


class DecodeError(LedgerError, ValueError):
    """Raised when an event envelope or payload cannot be decoded."""


class TransferError(LedgerError):
    """Raised when an export, import, copy or lines append is refused; nothing was stored."""


class BadLinesError(TransferError, ValueError):
    """Raised when lines given to ``append_lines`` cannot be appended.

    ``faults`` holds one ``"line N: reason"`` per bad line, at most a bounded
    number; ``more`` is True when reading stopped at that bound.
    """

    def __init__(self, faults: Sequence[str], *, more: bool = False) -> None:
        self.faults = tuple(faults)
        self.more = more
        super().__init__(
            f"{len(self.faults)}{' or more' if more else ''} bad line(s): {self.faults[0]}"
            if self.faults
            else "bad lines"
        )


class RuleBreachError(BadLinesError):
    """Raised when well-formed lines break the domain rules (``eventstore.rules``).

    ``count`` is how many lines break them (``faults`` may hold fewer).
    """

    def __init__(self, faults: Sequence[str], count: int) -> None:
        super().__init__(faults, more=count > len(faults))
        self.count = count


class BadLineError(TransferError, ValueError):
    """Raised when one line of an export cannot be imported: ``line`` and ``reason``."""

    def __init__(self, line: int, reason: str) -> None:
        self.line = line
        self.reason = reason
        super().__init__(f"line {line}: {reason}")


class FileChangedError(TransferError):
    """Raised when an export's bytes changed between the import's check and its store pass."""


class LogMismatchError(TransferError, ValueError):
    """Raised when the target store holds another log than the one imported or copied.

    ``position`` is where the two disagree; ``line`` the file's line there (an
    import); ``ours`` and ``theirs`` the hashes of the file (or source) and the
    store (or target) there, when both hold a row. ``init_defaults`` is True
    when the target holds only the default stack ``metaledger init`` writes, and
    ``target_head`` is the target's head.
    """

    def __init__(
        self,
        message: str,
        *,
        position: int,
        line: int | None = None,
        ours: bytes | None = None,
        theirs: bytes | None = None,
        init_defaults: bool = False,
        target_head: int = 0,
    ) -> None:
        self.position = position
        self.line = line
        self.ours = ours
        self.theirs = theirs
        self.init_defaults = init_defaults
        self.target_head = target_head
        super().__init__(message)


class StoreChangedError(TransferError):
    """Raised when the store's head moved between an import's check and its store pass."""

    def __init__(self, checked_head: int, head: int) -> None:
        self.checked_head = checked_head
        self.head = head
        super().__init__(
            f"the store changed while the file was checked (head {checked_head}, now {head})"
        )


class RowRefusedError(TransferError, ValueError):
    """Raised when a row of the copy's source may not be stored: ``fault`` names it."""

    def __init__(self, fault: str) -> None:
        self.fault = fault
        super().__init__(f"a row may not be stored, at {fault}")


class SameStoreError(TransferError, ValueError):
    """Raised when a copy's target is its source store."""


class SourceDamagedError(TransferError):
    """Raised when the copy's source breaks its hash chain: ``position``, ``reason``, ``copied``."""

    def __init__(self, position: int | None, reason: str | None, copied: int) -> None:
        self.position = position
        self.reason = reason
        self.copied = copied
        super().__init__(f"the source is damaged at position {position}: {reason}")


class LifecycleError(LedgerError):
    """Raised when the write API refuses a command; nothing was appended."""


class Unknown(Exception):
    """Mixin for "not found" errors: the kind, the name asked for, close names to suggest."""

    def __init__(
        self,
        kind: str,
        name: str,
        suggestions: Sequence[str] = (),
        *,
        by_id: bool = False,
        hint: str = "",
    ) -> None:
        self.kind = kind
        self.name = name
        self.suggestions = tuple(suggestions)
        # An id is looked up, not a name: "no artifact named '0190...'" would mislead.
        message = f"no {kind} with id {name}" if by_id else f"no {kind} named {name!r}"
        self.hint = hint
        if self.suggestions:
            message += f"; did you mean {', '.join(repr(s) for s in self.suggestions)}?"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class NotFoundError(Unknown, LifecycleError, LookupError):
    """Raised when a named component, stack, run, step or artifact does not exist."""


class AlreadyExistsError(LifecycleError, ValueError):
    """Raised when a name or id is already taken."""


class RunNameTakenError(AlreadyExistsError):
    """Raised when a live (not deleted) run already has the run name asked for.

    Run names are unique among live runs, as in ZenML; deleting a run frees its name.
    """

    def __init__(self, run_name: str, run_id: object) -> None:
        self.run_name = run_name
        self.run_id = run_id
        super().__init__(
            f"a run named {run_name!r} already exists (run {run_id}); run names are unique: "
            "choose another name, or delete that run first"
        )


class InvalidStateError(LifecycleError, ValueError):
    """Raised when a command does not fit the entity's state (finishing twice...)."""


class InUseError(LifecycleError, ValueError):
    """Raised when an entity is still referenced, such as a component used by a stack."""
