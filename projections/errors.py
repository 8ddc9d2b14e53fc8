"""The errors the projections package raises.

They root in :class:`ProjectionError`, itself a
:class:`~eventstore.errors.LedgerError`, so one ``except LedgerError`` catches
everything metaledger raises::

    ProjectionError
    ├── UnknownProjectionError     no projection of that name
    ├── ProjectionFailedError      a projection stopped on a handler error
    ├── RebuildConflictError       other processes kept replacing a rebuild
    ├── ViewsTimeoutError          the views did not reach a position in time
    ├── ViewsStoreError            the views store cannot be opened or written
    │   ├── ViewsCorruptError      the views file is unreadable (corrupt): set aside and rebuilt
    │   ├── ViewsReadOnlyError     the views file cannot be written (read-only storage)
    │   ├── ViewsFullError         the disk holding the views is full (also a StoreFullError)
    │   └── ViewsBusyError         another process holds the views' lock (also a StoreBusyError)
    └── QueryError                 a query's arguments are wrong
        ├── AmbiguousReferenceError  a reference names several runs or artifacts, or too little
        └── ViewNotFoundError      the named component, stack, run or artifact is not in the views
"""

from __future__ import annotations

from collections.abc import Sequence

from eventstore.errors import LedgerError, StoreBusyError, StoreFullError, Unknown

__all__ = [
    "AmbiguousReferenceError",
    "ProjectionError",
    "ProjectionFailedError",
    "QueryError",
    "RebuildConflictError",
    "UnknownProjectionError",
    "ViewNotFoundError",
    "ViewsBusyError",
    "ViewsCorruptError",
    "ViewsFullError",
    "ViewsReadOnlyError",
    "ViewsStoreError",
    "ViewsTimeoutError",
]


class ProjectionError(LedgerError):
    """Raised for every error of the projections package; the root of its tree."""


class UnknownProjectionError(ProjectionError, LookupError):
    """Raised when a projection name is not one of the registered projections."""


class ProjectionFailedError(ProjectionError):
    """Raised when a projection stopped on a handler error and cannot answer or advance."""

    def __init__(self, name: str, position: int | None, error: str | None) -> None:
        self.name = name
        self.position = position
        self.error = error
        super().__init__(
            f"projection {name!r} stopped at position {position}: {error} "
            "(fix the handler and bump its version, or run `metaledger projections rebuild`)"
        )


class RebuildConflictError(ProjectionError):
    """Raised when other processes kept replacing a rebuild's generation (another version)."""


class ViewsTimeoutError(ProjectionError, TimeoutError):
    """Raised when the views did not reach the wanted log position within the timeout."""


class ViewsStoreError(ProjectionError):
    """Raised when the views store cannot be opened, read or written."""


class ViewsCorruptError(ViewsStoreError):
    """Raised when the views file is corrupt or not a database: it is set aside and rebuilt."""


class ViewsReadOnlyError(ViewsStoreError):
    """Raised when the views file cannot be created or written (read-only storage, permissions)."""


class ViewsFullError(ViewsStoreError, StoreFullError):
    """Raised when the disk holding the views is full: nothing half-written is kept."""


class ViewsBusyError(ViewsStoreError, StoreBusyError):
    """Raised when another process held the views' lock through the busy timeout."""


class QueryError(ProjectionError, ValueError):
    """Raised when a query's arguments are wrong (an ambiguous prefix, a bad filter...)."""


class ViewNotFoundError(Unknown, QueryError, LookupError):
    """Raised when the named component, stack, run or artifact is not in the views."""


class AmbiguousReferenceError(QueryError):
    """Raised when a run or artifact reference could mean several, or is too short an id prefix.

    ``candidates`` lists what it could mean (one line each), so that no command
    ever acts on another run or artifact than the one the user had in mind.
    """

    def __init__(self, message: str, candidates: Sequence[str] = ()) -> None:
        self.candidates = tuple(candidates)
        super().__init__(message)
