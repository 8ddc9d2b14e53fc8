"""SQLite checkpoints run beside the commits, not inside them.

The group-commit writer turns SQLite's automatic checkpoint off on its
connection and runs PASSIVE checkpoints on a thread of its own once some 4 MB
were committed. These tests use real store files: the database file grows
only when a checkpoint copies the WAL into it.
"""

from __future__ import annotations

from pathlib import Path

import anyio

from eventstore import EventStore, OpenLineageReceived, open_store
from eventstore.sqlite_backend import CHECKPOINT_BYTES, LEDGER_FILE

WAIT = 30.0
#: A payload of about 64 KB: a few dozen appends pass the checkpoint threshold.
_BIG = '{"padding": "' + "x" * 64_000 + '"}'


def _received(index: int) -> OpenLineageReceived:
    return OpenLineageReceived(kind="JobEvent", event=_BIG, key=f"{index % 2**64:064x}")


async def _append_past_threshold(store: EventStore, times: float = 1.5) -> int:
    count = int(CHECKPOINT_BYTES * times / len(_BIG)) + 1
    async with anyio.create_task_group() as group:
        for index in range(count):
            group.start_soon(store.append, f"ol-{index}", [_received(index)])
    return count


async def test_the_wal_is_copied_into_the_database_while_the_store_is_open(
    tmp_path: Path,
) -> None:
    """Past the threshold, a checkpoint fills ledger.db without waiting for close."""
    database = tmp_path / LEDGER_FILE
    async with open_store(tmp_path) as store:
        writer = store.log.backend._writer  # type: ignore[attr-defined]
        assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        before = database.stat().st_size
        await _append_past_threshold(store)
        with anyio.fail_after(WAIT):
            # Polled: nothing announces a checkpoint; the file's size is the evidence.
            while database.stat().st_size < before + CHECKPOINT_BYTES // 2:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        # Commits go on after a checkpoint.
        head = await store.head()
        result = await store.append("after", [_received(-1)])
        assert result.positions == (head + 1,)


async def test_closing_during_a_checkpoint_loses_nothing(tmp_path: Path) -> None:
    """A store closed right after it asked for a checkpoint closes cleanly, whole."""
    async with open_store(tmp_path) as store:
        appended = await _append_past_threshold(store)
        head = await store.head()
    async with open_store(tmp_path) as store:
        assert await store.head() == head
        assert (await store.verify()).ok
        found = 0
        async for recorded in store.read_all():
            if isinstance(recorded.event, OpenLineageReceived):
                found += 1
        assert found == appended


async def test_the_wal_starts_again_under_steady_appends(tmp_path: Path) -> None:
    """Commits that never pause still let the WAL restart: its file stays small.

    A checkpoint beside the commits never sees every frame copied, which SQLite
    needs before it writes the WAL from its beginning again; the writer
    finishes each background checkpoint between two commits.
    """
    wal = tmp_path / f"{LEDGER_FILE}-wal"
    tasks, each = 8, 80  # 8 appends a commit at most: many commits, back to back
    largest = 0

    async def emitter(task: int) -> None:
        nonlocal largest
        for index in range(each):
            await store.append(f"ol-{task}-{index}", [_received(task * each + index)])
            largest = max(largest, wal.stat().st_size)

    async with open_store(tmp_path) as store, anyio.create_task_group() as group:
        for task in range(tasks):
            group.start_soon(emitter, task)
    assert tasks * each * len(_BIG) > 32 * CHECKPOINT_BYTES
    assert largest < 8 * CHECKPOINT_BYTES
