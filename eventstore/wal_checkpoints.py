"""WAL checkpoints beside a SQLite writer's commits, finished by the writer.

SQLite checkpoints a WAL from inside the COMMIT that grows it past its limit:
that commit also copies the WAL into the database file and fsyncs twice, and
whoever waits for that commit waits for all of it. The log's group-commit
writer and the views' writer instead turn the automatic checkpoint off and
run PASSIVE checkpoints on a thread and connection of their own.

A checkpoint running beside the commits never sees every frame copied
(commits go on while it copies), and SQLite writes the WAL from its beginning
again only when a writer opens a transaction with every frame copied: without
more, the WAL grows by every commit under steady writes (248 MB after 5 s of
a busy server). So the writer *finishes* each background checkpoint before
its next transaction, on its own connection, copying only the frames
committed meanwhile (:meth:`WalCheckpointer.finish`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable

__all__ = ["WalCheckpointer"]


class WalCheckpointer:
    """PASSIVE checkpoints of one SQLite file on a connection of its own.

    ``connect`` opens that connection (on first use, on the checkpointing
    thread: it must allow use from other threads for :meth:`close`);
    ``on_error`` hears of a checkpoint that failed, which is never raised (the
    next one copies what this one could not, as SQLite's own would).
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        on_error: Callable[[sqlite3.Error], None],
    ) -> None:
        self._connect = connect
        self._on_error = on_error
        self._conn: sqlite3.Connection | None = None
        self._busy = threading.Lock()
        self._closed = False
        # Set once a checkpoint ran: the writer finishes it before its next transaction.
        self._ran = False

    def run(self) -> None:
        """One PASSIVE checkpoint, on the calling thread (not the writer's)."""
        with self._busy:
            if self._closed:
                return
            try:
                if self._conn is None:
                    self._conn = self._connect()
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:
                self._on_error(exc)
            else:
                self._ran = True

    def finish(self, writer: sqlite3.Connection) -> None:
        """On the writer's thread, before its transaction: copy what came after the last run.

        Does nothing unless a checkpoint ran since the last call.
        """
        if not self._ran:
            return
        self._ran = False
        try:
            writer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            self._on_error(exc)

    def interrupt(self) -> None:
        """Interrupt a checkpoint under way (closing: it rolls back, nothing is lost)."""
        conn = self._conn
        if conn is not None:
            conn.interrupt()

    def close(self) -> None:
        """Close the connection once no checkpoint runs; later :meth:`run` calls do nothing."""
        with self._busy:
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
