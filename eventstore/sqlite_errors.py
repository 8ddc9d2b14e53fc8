"""What kind of failure a SQLite error is, from its result code, never from its text.

The log backend and the views store both decide by it: a full disk is not a
corrupt file, and a lock held by another process is neither. Messages vary by
SQLite version and locale; the (primary) result code does not.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from typing import Literal

__all__ = ["SQLiteErrorKind", "disk_nearly_full", "is_disk_full_oserror", "sqlite_error_kind"]

#: ``full``: disk or page limit full; ``corrupt``: a damaged file (malformed page,
#: truncated); ``notadb``: not a SQLite file at all; ``readonly``: the file or its
#: directory cannot be written; ``cantopen``: the file (or its -wal/-shm) cannot be
#: opened; ``busy``: another connection holds a lock; ``ioerr``: the OS failed a read
#: or write; ``interrupt``: interrupted by us; ``other``: anything else (a SQL error...).
SQLiteErrorKind = Literal[
    "full", "corrupt", "notadb", "readonly", "cantopen", "busy", "ioerr", "interrupt", "other"
]

_KINDS: dict[int, SQLiteErrorKind] = {
    sqlite3.SQLITE_FULL: "full",
    sqlite3.SQLITE_CORRUPT: "corrupt",
    sqlite3.SQLITE_NOTADB: "notadb",
    sqlite3.SQLITE_READONLY: "readonly",
    sqlite3.SQLITE_CANTOPEN: "cantopen",
    sqlite3.SQLITE_BUSY: "busy",
    sqlite3.SQLITE_LOCKED: "busy",
    sqlite3.SQLITE_IOERR: "ioerr",
    sqlite3.SQLITE_INTERRUPT: "interrupt",
    sqlite3.SQLITE_PERM: "readonly",
}

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: Free space under which an I/O error is taken for a full disk (SQLite grows its
#: -shm file by 32 KiB and writes whole pages; it does not pass ENOSPC on as FULL).
_NEARLY_FULL_BYTES = 1 << 20


def sqlite_error_kind(exc: BaseException, near: Path | None = None) -> SQLiteErrorKind:
    """The kind of a ``sqlite3.Error`` by its result code (extended codes folded to primary).

    With ``near`` (the database file), an I/O error while that file system is
    (nearly) full counts as ``full``: SQLite reports a failed -shm or WAL
    allocation as SQLITE_IOERR, not SQLITE_FULL.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(code, int):
        return "other"
    kind = _KINDS.get(code & 0xFF, "other")
    if kind == "ioerr" and code == getattr(sqlite3, "SQLITE_IOERR_SHORT_READ", -1):
        # A read past the end of the file: a truncated database.
        return "corrupt"
    if kind == "ioerr" and near is not None and disk_nearly_full(near):
        return "full"
    return kind


def disk_nearly_full(path: Path) -> bool:
    """Whether the file system holding ``path`` (a file or directory) has under 1 MiB free."""
    target = path if path.is_dir() else path.parent
    try:
        stats = os.statvfs(target)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < _NEARLY_FULL_BYTES


def is_disk_full_oserror(exc: BaseException) -> bool:
    """Whether an ``OSError`` says the disk (or a quota, or a file size limit) is full."""
    return isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS
