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
pruned down to ``MAX_SNAPSHOTS``); an as-of then replays at most about a tenth
of the log.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import sqlite3
from collections.abc import Mapping
from pathlib import Path

from eventstore.logs import get_logger

__all__ = ["MAX_SNAPSHOTS", "MIN_SPACING", "TARGET_COUNT", "ViewSnapshots"]

log = get_logger("projections.snapshots")

#: Fewest events between two snapshots (small logs replay fast anyway).
MIN_SPACING = 10_000
#: About how many snapshots a log of any length keeps.
TARGET_COUNT = 10
#: Snapshots kept at most; the densest pair loses its older member first.
MAX_SNAPSHOTS = 12

_NAME = re.compile(r"^at-(\d+)\.db$")


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

    def take(self, source: sqlite3.Connection) -> int | None:
        """Copy the views behind ``source`` (no transaction open) into a new snapshot.

        The backup API copies the pages in one step, under one read snapshot.
        The file is named by the highest checkpoint it holds, read from the
        copy itself, so an as-of never starts from a state past its point.
        Returns that position (None if the copy holds no projection).
        """
        self.directory.mkdir(exist_ok=True)
        partial = self.directory / f"partial-{os.getpid()}.db"
        partial.unlink(missing_ok=True)
        target = sqlite3.connect(partial)
        try:
            source.backup(target)
            row = target.execute("SELECT max(position) FROM projection_state").fetchone()
        finally:
            target.close()
        position = None if row is None or row[0] is None else int(row[0])
        if position is None:
            partial.unlink(missing_ok=True)
            return None
        os.replace(partial, self.path_at(position))
        self._prune()
        log.info("views_snapshot", position=position, path=str(self.path_at(position)))
        return position

    def _prune(self) -> None:
        positions = self.positions()
        while len(positions) > MAX_SNAPSHOTS:
            # Drop the older member of the closest pair: the spacing stays even.
            gaps = [(b - a, i) for i, (a, b) in enumerate(itertools.pairwise(positions))]
            _, index = min(gaps)
            self.path_at(positions[index]).unlink(missing_ok=True)
            del positions[index]

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
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
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
