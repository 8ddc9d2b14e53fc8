"""Periodic snapshots of the live views, so a state as of a past position replays little.

``views_as_of`` used to replay the log from position 1 into a scratch store:
for a point half-way through a long log that is half of a rebuild. The live
views (a SQLite file beside a SQLite log) now leave a copy of themselves every
so often while they catch up, in ``views.db.snapshots/at-<position>.db``; an
as-of starts from the newest snapshot at or before its point and replays only
the events after it.

Why snapshots rather than validity ranges on view rows: ranges would change
every table, every handler (an update becomes close-and-insert) and every
query, and would make the live views grow with history; a snapshot is a page
copy of a file SQLite already keeps (the backup API, no re-encoding), written
beside the views, used only by as-of, and as disposable as any view: a
snapshot of other projection versions, of another log, or one that cannot be
read is skipped, and a rebuild discards them all.

Spacing: a snapshot is due once the views have moved ``max(MIN_SPACING,
position // TARGET_COUNT)`` past the newest one, so a log of any size keeps
about ``TARGET_COUNT`` of them spread over its length (older, denser ones are
pruned down to ``MAX_SNAPSHOTS``); an as-of then replays at most about a
twentieth of the log (a catch-up checks at its chunks' ends, every 50,000
events: a log of 1,000,000 keeps one every 50,000 positions, one of 1,100,000
every 100,000 past 1,000,000).

Beside the writes: :meth:`ViewSnapshots.take` copies on a connection of its
own (the views store runs it on a thread of its own), in one read transaction
of the WAL, so the views' writer goes on committing while the file is copied;
the copy is kept only if every projection in it stands live at one position,
which names it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import sqlite3
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

from eventstore.logs import get_logger

__all__ = [
    "COPY_STEP_PAGES",
    "MAX_SNAPSHOTS",
    "MIN_SPACING",
    "SNAPSHOT_URI_PARAMETERS",
    "TARGET_COUNT",
    "SnapshotStopped",
    "ViewSnapshots",
    "agreed_position",
]

log = get_logger("projections.snapshots")

#: Fewest events between two snapshots (small logs replay fast anyway).
MIN_SPACING = 10_000
#: About how many snapshots a log of any length keeps.
TARGET_COUNT = 20
#: Snapshots kept at most; the densest pair loses its older member first.
MAX_SNAPSHOTS = 24

#: Pages copied between two looks at the stop flag (16 MB of 4 KB pages: a few ms).
COPY_STEP_PAGES = 4096

#: How a snapshot is opened: read-only, and ``immutable`` (a kept snapshot never
#: changes): a WAL-mode file opened read-only otherwise leaves an empty ``-wal``
#: and a ``-shm`` beside it, which the pruning would then leave behind.
SNAPSHOT_URI_PARAMETERS = "mode=ro&immutable=1"

_NAME = re.compile(r"^at-(\d+)\.db$")
# A copy under way (or left by a process that died): partial-<pid>-<random>.db.
_PARTIAL = re.compile(r"^partial-(\d+)-[^.]*\.db$")


class SnapshotStopped(Exception):
    """Raised when a snapshot's copy was stopped (its views store is closing); nothing is kept."""


_STATES = "SELECT name, version, status, pending_generation, position FROM projection_state"


def agreed_position(conn: sqlite3.Connection, versions: Mapping[str, int] | None) -> int | None:
    """The position at which every projection in ``conn``'s views stands live, or None.

    Every projection of ``versions`` (name to version; None: every projection
    in the file) must be there, at that version, live, with no rebuild
    pending, and all at one position: a copy of anything else would give an
    as-of from it a state the live views never had.
    """
    states = {
        name: (version, status, pending, position)
        for name, version, status, pending, position in conn.execute(_STATES)
    }
    wanted = versions if versions is not None else {n: s[0] for n, s in states.items()}
    positions = set()
    for name, version in wanted.items():
        state = states.get(name)
        if state is None or state[:3] != (version, "live", None):
            return None
        positions.add(int(state[3]))
    return positions.pop() if len(positions) == 1 else None


def _dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # another user's process: alive
    return False


class ViewSnapshots:
    """The snapshots of one views file: where they are, when one is due, which fits a point."""

    def __init__(self, views_path: Path, *, min_spacing: int = MIN_SPACING) -> None:
        self.directory = views_path.with_name(f"{views_path.name}.snapshots")
        self.min_spacing = min_spacing

    def spacing(self, position: int) -> int:
        """Events between two snapshots for a log at ``position``."""
        return max(self.min_spacing, position // TARGET_COUNT)

    def positions(self) -> list[int]:
        """The positions of the snapshots on disk, ascending."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        found = (_NAME.match(name) for name in names)
        return sorted(int(match.group(1)) for match in found if match)

    def path_at(self, position: int) -> Path:
        """The file of the snapshot at ``position``."""
        return self.directory / f"at-{position}.db"

    def due(self, position: int) -> bool:
        """Whether views caught up to ``position`` should leave a snapshot."""
        older = [p for p in self.positions() if p <= position]
        return position - (older[-1] if older else 0) >= self.spacing(position)

    def take(
        self,
        source: sqlite3.Connection,
        versions: Mapping[str, int] | None = None,
        *,
        stop: threading.Event | None = None,
    ) -> int | None:
        """Copy the views behind ``source`` (no transaction open) into a new snapshot.

        ``source`` is a connection of the caller's own, not the writer's: the
        copy runs in one read transaction on it (every step of the backup API
        reads that one WAL snapshot, and a writer committing meanwhile neither
        waits nor restarts the copy). The file is named by the position at
        which every projection of ``versions`` stands live in that snapshot
        (:func:`agreed_position`), checked again on the copy itself; without
        one, nothing is copied or kept. ``stop``, once set, ends the copy
        between two steps (:class:`SnapshotStopped`) and removes its file.
        Returns the snapshot's position, or None.
        """
        self.directory.mkdir(exist_ok=True)
        source.execute("BEGIN")
        try:
            position = agreed_position(source, versions)  # opens the read transaction
            if position is None:
                log.info("views_snapshot_skipped", reason="projections not live at one position")
                return None
            copied = self._copy(source, versions, stop)
        finally:
            if source.in_transaction:
                source.execute("COMMIT")
        if copied is None:
            return None
        partial, checked = copied
        if checked != position:
            # Cannot happen with one read transaction; never keep what it would mean.
            partial.unlink(missing_ok=True)
            log.warning("views_snapshot_discarded", position=position, copy=checked)
            return None
        os.replace(partial, self.path_at(position))
        self._prune()
        log.info("views_snapshot", position=position, path=str(self.path_at(position)))
        return position

    def _copy(
        self,
        source: sqlite3.Connection,
        versions: Mapping[str, int] | None,
        stop: threading.Event | None,
    ) -> tuple[Path, int | None] | None:
        """Copy ``source``'s read snapshot into a partial file: it and its agreed position."""
        handle, name = tempfile.mkstemp(
            prefix=f"partial-{os.getpid()}-", suffix=".db", dir=self.directory
        )
        os.close(handle)
        partial = Path(name)

        def progress(status: int, remaining: int, total: int) -> None:
            if stop is not None and stop.is_set():
                raise SnapshotStopped

        try:
            target = sqlite3.connect(partial)
            try:
                source.backup(target, pages=COPY_STEP_PAGES, progress=progress)
                checked = agreed_position(target, versions)
            finally:
                target.close()
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return partial, checked

    def _prune(self) -> None:
        self._remove_orphans()
        positions = self.positions()
        while len(positions) > MAX_SNAPSHOTS:
            # Drop the older member of the closest pair: the spacing stays even.
            gaps = [(b - a, i) for i, (a, b) in enumerate(itertools.pairwise(positions))]
            _, index = min(gaps)
            self.path_at(positions[index]).unlink(missing_ok=True)
            del positions[index]

    def _remove_orphans(self) -> None:
        """Remove the partial copies of processes that died while copying."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        for name in names:
            match = _PARTIAL.match(name)
            if match and _dead(int(match.group(1))):
                with contextlib.suppress(OSError):
                    (self.directory / name).unlink()

    def best(self, position: int, versions: Mapping[str, int], log_id: str) -> Path | None:
        """The newest usable snapshot at or before ``position``, or None.

        Usable: it belongs to the log ``log_id`` and holds every projection of
        ``versions`` live, at that version, with no rebuild pending.
        """
        for at in reversed(self.positions()):
            if at > position:
                continue
            path = self.path_at(at)
            if self._fits(path, versions, log_id):
                return path
        return None

    @staticmethod
    def _fits(path: Path, versions: Mapping[str, int], log_id: str) -> bool:
        try:
            conn = sqlite3.connect(f"file:{path}?{SNAPSHOT_URI_PARAMETERS}", uri=True)
        except sqlite3.Error:
            return False
        try:
            meta = dict(conn.execute("SELECT key, value FROM views_meta").fetchall())
            states = {
                name: (version, status, pending)
                for name, version, status, pending in conn.execute(
                    "SELECT name, version, status, pending_generation FROM projection_state"
                )
            }
        except sqlite3.Error:
            return False
        finally:
            conn.close()
        if meta.get("log_store_id", log_id) != log_id:
            return False
        wanted = versions.items()
        return all(states.get(name) == (version, "live", None) for name, version in wanted)

    def discard(self) -> None:
        """Remove every snapshot (the projections they hold were rebuilt)."""
        for at in self.positions():
            with contextlib.suppress(OSError):
                self.path_at(at).unlink()
