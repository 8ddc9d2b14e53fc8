"""The library's export, import, copy and append_lines, and Log's raw stored-event reads.

The CLI commands (``export``, ``import``, ``copy``, ``events append``) only wire
these; their messages and exit codes are covered in ``test_cli_audit.py``.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from uuid import uuid4

import pytest

from eventstore import (
    AppendError,
    BadLineError,
    BadLinesError,
    ConcurrencyError,
    EventStore,
    FileChangedError,
    LogMismatchError,
    RuleBreachError,
    SameStoreError,
    StoredEvent,
    append_lines,
    copy,
    export,
    import_,
    open_store,
    parse_lines,
    run_stream,
    scan_export,
)
from eventstore.defaults import ensure_default_stack
from eventstore.demo import run_demo

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parent.parent


async def _filled(path: Path, runs: int = 1) -> list[StoredEvent]:
    async with open_store(path) as store:
        await ensure_default_stack(store, path / "artifacts")
        for _ in range(runs):
            await run_demo(store, artifact_root=path / "artifacts")
        return [row async for row in store.read_stored()]


async def _rows(path: Path) -> list[StoredEvent]:
    async with open_store(path, create=False) as store:
        return [row async for row in store.read_stored()]


async def _exported(source: Path, file: Path) -> None:
    async with open_store(source, create=False) as store:
        with file.open("wb") as handle:
            await export(store, handle)


async def test_export_then_import_rebuilds_the_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An export imports into an empty store as the identical log; twice is a no-op."""
    rows = await _filled(tmp_path / "source")
    buffer = io.BytesIO()
    stages: set[str] = set()
    async with open_store(tmp_path / "source", create=False) as store:
        exported = await export(store, buffer, progress=lambda stage, *_: stages.add(stage))
    assert (len(rows), rows[-1].position, rows[-1].hash.hex()) == (
        exported.count,
        exported.head_position,
        exported.head_hash,
    )
    assert exported.problem is None
    file = tmp_path / "log.jsonl"
    file.write_bytes(buffer.getvalue())
    async with open_store(tmp_path / "target", default_stack=False) as target:
        first = await import_(target, file, progress=lambda stage, *_: stages.add(stage))
        again = await import_(target, file)
    assert (first.imported, first.already_stored, first.head_hash) == (
        len(rows),
        0,
        exported.head_hash,
    )
    assert (again.imported, again.already_stored) == (0, len(rows))
    assert rows == await _rows(tmp_path / "target")
    assert {"exporting", "checking", "importing"} == stages
    assert ("", "") == capsys.readouterr()  # the library never prints


async def test_import_refuses_a_bad_line_and_another_log(tmp_path: Path) -> None:
    """A bad line raises BadLineError with its number; a store with another log, LogMismatch."""
    await _filled(tmp_path / "source")
    file = tmp_path / "log.jsonl"
    await _exported(tmp_path / "source", file)
    lines = file.read_bytes().splitlines(keepends=True)
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b"".join([*lines[:3], b'{"position": 4}\n', *lines[4:]]))
    with pytest.raises(BadLineError) as bad:
        scan_export(broken)
    assert 4 == bad.value.line
    async with open_store(tmp_path / "target", default_stack=False) as target:
        with pytest.raises(BadLineError):
            await import_(target, broken)
        assert 0 == await target.head()
    await _filled(tmp_path / "other")
    async with open_store(tmp_path / "other", create=False) as other:
        before = await other.head()
        with pytest.raises(LogMismatchError) as mismatch:
            await import_(other, file)
        assert before == await other.head()
    assert mismatch.value.ours != mismatch.value.theirs


async def test_import_of_a_file_edited_after_its_check_stores_nothing(tmp_path: Path) -> None:
    """Pass 2 re-reads only the bytes pass 1 checked: an edit in between raises FileChanged."""
    await _filled(tmp_path / "source")
    file = tmp_path / "log.jsonl"
    await _exported(tmp_path / "source", file)
    scan = scan_export(file)
    file.write_text(file.read_text().replace('"load_data"', '"load_dat4"', 1))
    async with open_store(tmp_path / "target", default_stack=False) as target:
        with pytest.raises(FileChangedError):
            await import_(target, file, scan=scan)
        assert 0 == await target.head()


async def test_copy_resumes_verifies_and_refuses_other_logs(tmp_path: Path) -> None:
    """copy() moves the log exactly, skips what the target holds, refuses itself and init's."""
    rows = await _filled(tmp_path / "source")
    stages: list[str] = []
    async with (
        open_store(tmp_path / "source", create=False) as source,
        open_store(tmp_path / "target", default_stack=False) as target,
    ):
        part = await copy(source, target, source_head=10)
        assert (part.copied, part.already_there, part.head_position) == (10, 0, 10)
        assert part.verified
        rest = await copy(source, target, progress=lambda stage, *_: stages.append(stage))
        assert (rest.copied, rest.already_there, rest.head_hash) == (
            len(rows) - 10,
            10,
            rows[-1].hash.hex(),
        )
        with pytest.raises(SameStoreError):
            await copy(source, source)
    assert rows == await _rows(tmp_path / "target")
    assert ["checking", "copying", "verifying"] == list(dict.fromkeys(stages))
    async with (
        open_store(tmp_path / "source", create=False) as source,
        open_store(tmp_path / "initialised") as initialised,  # init's default stack
    ):
        await ensure_default_stack(initialised)
        with pytest.raises(LogMismatchError) as mismatch:
            await copy(source, initialised)
        assert mismatch.value.init_defaults


def _line(stream_id: str, event_type: str, data: dict[str, object], **extra: object) -> bytes:
    return json.dumps({"stream_id": stream_id, "type": event_type, "data": data, **extra}).encode()


async def test_append_lines_checks_then_appends_all_or_nothing(tmp_path: Path) -> None:
    """append_lines: malformed lines, rule breaches and conflicts name their line numbers."""
    run = uuid4()
    run_id = str(run)
    started = _line(
        run_stream(run),
        "run.started",
        {
            "run_id": run_id,
            "pipeline_name": "p",
            "run_name": "r",
            "started_at": "2026-01-01T00:00:00Z",
        },
    )
    async with open_store(tmp_path / "store", default_stack=False) as store:
        with pytest.raises(BadLinesError) as bad:
            await append_lines(store, [started, b"{not json", b'{"type": 1}'])
        assert [f.split(":")[0] for f in bad.value.faults] == ["line 2", "line 3"]
        with pytest.raises(RuleBreachError) as breach:
            await append_lines(store, [started, started.replace(b'"r"', b'"s"')])
        assert 1 == breach.value.count
        assert breach.value.faults[0].startswith("line 2: run.started: ")
        assert 0 == await store.head()
        done = await append_lines(store, started + b"\n")
        assert (done.appended, done.already_stored, done.first_position) == (1, 0, 1)
        retried = await append_lines(store, parse_lines(started + b"\n"))
        assert (retried.appended, retried.already_stored) == (0, 1)
        stale = _line(
            run_stream(run),
            "metadata.logged",
            {"run_id": run_id, "values": {"a": 1}},
            expected_version=0,
        )
        with pytest.raises(ConcurrencyError) as conflict:
            await append_lines(store, [b"", stale])
        assert 2 == conflict.value.line
        assert isinstance(conflict.value, AppendError)
        assert 1 == await store.head()


async def test_raw_reads_return_rows_as_stored(store_with_runs: EventStore) -> None:
    """Log's raw reads: by position, range, stream and event id, with the stored bytes and hash."""
    store = store_with_runs
    rows = [row async for row in store.read_stored()]
    assert rows[4] == await store.stored_at(5)
    assert await store.stored_at(0) is None
    assert await store.stored_at(len(rows) + 1) is None
    assert rows[2] == await store.stored_by_event_id(rows[2].event_id)
    assert await store.stored_by_event_id(uuid4()) is None
    assert rows[3:6] == [row async for row in store.read_stored(4, to_position=6)]
    stream = rows[-1].stream_id
    assert [r for r in rows if r.stream_id == stream] == [
        row async for row in store.read_stored_stream(stream)
    ]
    assert [row async for row in store.read_stored_stream(stream, chunk_size=2)] == [
        row async for row in store.read_stored_stream(stream)
    ]


@pytest.fixture
async def store_with_runs(tmp_path: Path) -> EventStore:  # type: ignore[misc]
    """A store with the default stack and one demo run."""
    await _filled(tmp_path / "store")
    async with open_store(tmp_path / "store", create=False) as store:
        yield store


def test_the_cli_never_reaches_into_the_backend() -> None:
    """cli/ reads stored events through Log methods only, never ``store.backend``."""
    offenders = [
        f"{path.name}:{number}"
        for path in sorted((ROOT / "cli").glob("*.py"))
        for number, text in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"\.backend\.|def row_at\b", text)
    ]
    assert [] == offenders


async def test_the_row_shape_is_declared_once(tmp_path: Path) -> None:
    """StoredEvent is the row: the planner's rows, the backends' columns, the export record."""
    import sqlite3

    from eventstore import EnvelopeRecord
    from eventstore.backend import ROW_COLUMNS, SQL_COLUMNS
    from eventstore.planner import Row
    from eventstore.sqlite_backend import LEDGER_FILE

    assert Row is StoredEvent
    assert StoredEvent._fields == ROW_COLUMNS
    record = list(EnvelopeRecord.__struct_fields__)
    record.remove("recorded_at")  # the ISO time beside the exact one: display only
    assert tuple(record) == ROW_COLUMNS
    async with open_store(tmp_path / "s", default_stack=False):
        pass
    with sqlite3.connect(tmp_path / "s" / LEDGER_FILE) as conn:
        table = [row[1] for row in conn.execute("PRAGMA table_info(events)")]
    assert SQL_COLUMNS.split(", ") == table
