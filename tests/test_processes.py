"""Several OS processes on one store file, and processes killed mid-append."""

from __future__ import annotations

import random
import signal
from collections import Counter
from pathlib import Path

import pytest

from eventstore import RunDeleted, open_store

from .workers import assert_appends_land_once, spawn

pytestmark = pytest.mark.slow


async def test_four_processes_append_to_one_file(tmp_path: Path) -> None:
    """4 processes x 2,000 appends: every event once, gapless, the chain intact."""
    await assert_appends_land_once(str(tmp_path / "shared"))


async def test_two_processes_create_a_fresh_store_at_once(tmp_path: Path) -> None:
    """Three processes opening the same new store at once all succeed; one schema results.

    Repeated a few times: the race (a journal-mode switch refused while another
    opener holds a lock) only shows on some interleavings.
    """
    for attempt in range(4):
        store = str(tmp_path / f"fresh{attempt}")
        children = [spawn("append", store, f"c{n}", "2", "20") for n in range(3)]
        for child in children:
            _, err = child.communicate(timeout=120)
            assert 0 == child.returncode, err
        async with open_store(store) as opened:
            assert 60 == await opened.head()
            assert (await opened.verify()).ok


async def test_sigkill_mid_append_loses_no_acknowledged_event(tmp_path: Path) -> None:
    """A writer killed with SIGKILL at 20+ random points: acknowledged events survive whole.

    The child reports each acknowledged append on a pipe; after every kill the
    store reopens, holds every acknowledged event, shows no partial append
    (each append is 3 events: all or none) and verifies.
    """
    store = str(tmp_path / "crashy")
    rng = random.Random(20261128)
    acknowledged: dict[str, int] = {}
    for kill_point in range(22):
        child = spawn("crashloop", store)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        for _ in range(rng.randint(1, 40)):
            line = child.stdout.readline().split()
            assert line, "the child died early"
            assert "ack" == line[0], line
            for event_id in line[2:]:
                acknowledged[event_id] = int(line[1])
        child.send_signal(signal.SIGKILL)
        # Drain whatever else it acknowledged before dying: those count too.
        rest, _ = child.communicate(timeout=60)
        for raw in rest.splitlines():
            parts = raw.split()
            if parts and parts[0] == "ack" and len(parts) == 5:
                for event_id in parts[2:]:
                    acknowledged[event_id] = int(parts[1])
        assert child.returncode == -signal.SIGKILL, f"kill point {kill_point}"
        async with open_store(store) as opened:
            stored = {e.event_id_text: e.stream_id async for e in opened.read_all()}
            reasons = Counter(
                [e.event.reason async for e in opened.read_all() if isinstance(e.event, RunDeleted)]
            )
            report = await opened.verify()
        assert set(acknowledged) <= set(stored), f"kill point {kill_point}: lost an ack"
        assert report.ok, (kill_point, report)
        # Appends restart numbering per child, so group by (reason) within a run:
        # every append's 3 events share one reason and one stream.
        assert all(count % 3 == 0 for count in reasons.values()), reasons
