"""The audit commands: events, verify, export/import/copy, replay and projections."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import anyio
import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from eventstore import EventCodec, StoredEvent, open_store
from eventstore.defaults import ensure_default_stack
from eventstore.demo import run_demo
from eventstore.sqlite_backend import LEDGER_FILE
from projections import RunsProjection

# -- helpers -------------------------------------------------------------------------


class Shell:
    """Runs metaledger commands against one store, as a user would."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0, input: bytes | str | None = None) -> Result:
        result = self.runner.invoke(
            cli, ["--store", str(self.store), *args], input=input, catch_exceptions=False
        )
        assert code == result.exit_code, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.output
        return result

    def json(self, *args: str, code: int = 0) -> Any:
        return json.loads(self(*args, "--json", code=code).stdout)


def build_store(path: Path, runs: int = 2, configuration: dict[str, Any] | None = None) -> None:
    """A store with the default stack and ``runs`` demo runs (about 32 events each)."""

    async def main() -> None:
        async with open_store(path) as store:
            await ensure_default_stack(store, path / "artifacts")
            if configuration is not None:
                await store.register_component(
                    "experiment_tracker", "tracker", flavor="mlflow", configuration=configuration
                )
            for _ in range(runs):
                await run_demo(store)

    anyio.run(main)


def stored(path: Path) -> list[StoredEvent]:
    """Every row of the store's log, as stored."""

    async def main() -> list[StoredEvent]:
        async with open_store(path, create=False) as store:
            return [row async for row in store.read_stored()]

    return anyio.run(main)


def head(path: Path) -> int:
    """The store's head position (0 when it does not exist)."""
    if not (path / LEDGER_FILE).exists():
        return 0
    return len(stored(path))


def tamper(path: Path, *statements: str, params: tuple[Any, ...] = ()) -> None:
    """Edit the log behind the store's back, as an attacker or a bad disk would."""
    conn = sqlite3.connect(path / LEDGER_FILE, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER IF EXISTS events_no_update")
        conn.execute("DROP TRIGGER IF EXISTS events_no_delete")
        for statement in statements:
            conn.execute(statement, params)
    finally:
        conn.close()


def flip_in_data(path: Path, position: int, old: bytes, new: bytes) -> None:
    """Replace bytes inside one row's payload, keeping it valid MessagePack."""
    conn = sqlite3.connect(path / LEDGER_FILE)
    try:
        data = conn.execute("SELECT data FROM events WHERE position = ?", (position,)).fetchone()[0]
    finally:
        conn.close()
    assert old in data
    tamper(
        path,
        "UPDATE events SET data = ? WHERE position = ?",
        params=(data.replace(old, new, 1), position),
    )


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """A store holding the default stack and two demo runs."""
    path = tmp_path / "store"
    build_store(path)
    return path


@pytest.fixture
def sh(store_path: Path) -> Shell:
    """A shell on the two-run store."""
    return Shell(store_path)


LIST_FIELDS = [
    "position",
    "event_id",
    "stream_id",
    "stream_version",
    "type",
    "schema_version",
    "recorded_at",
    "metadata",
    "data",
]
ENVELOPE_FIELDS = [
    "position",
    "event_id",
    "stream_id",
    "stream_version",
    "type",
    "schema_version",
    "recorded_at",
    "recorded_at_us",
    "metadata",
    "data",
    "hash",
]


def iso(row: StoredEvent) -> str:
    return row.recorded_at.isoformat().replace("+00:00", "Z")


# -- events list ---------------------------------------------------------------------


class TestEventsList:
    """``events list``: a table for people, exact JSON items for scripts."""

    def test_json_items_hold_exactly_the_documented_fields(self, sh: Shell) -> None:
        """Each item has the nine fields, with the stored values and the decoded payload."""
        rows = stored(sh.store)
        items = sh.json("events", "list")
        assert len(rows) == len(items)
        for item, row in zip(items, rows, strict=True):
            assert LIST_FIELDS == list(item)
            assert {
                "position": row.position,
                "event_id": row.event_id,
                "stream_id": row.stream_id,
                "stream_version": row.stream_version,
                "type": row.type,
                "schema_version": row.schema_version,
                "recorded_at": iso(row),
                "metadata": EventCodec.to_builtins(row.metadata),
                "data": EventCodec.to_builtins(row.data),
            } == item
        first = items[0]
        assert ("workspace", 1, "component.registered") == (
            first["stream_id"],
            first["stream_version"],
            first["type"],
        )
        assert "orchestrator" == first["data"]["type"]
        assert "default" == first["data"]["name"]
        assert {"actor", "host", "pid"} <= set(first["metadata"])

    def test_filters_by_stream_type_position_and_limit(self, sh: Shell) -> None:
        """--stream, --type, --from and --limit select what they say, in log order."""
        started = sh.json("events", "list", "--type", "run.started")
        assert 2 == len(started)
        assert {"run.started"} == {i["type"] for i in started}
        stream = started[1]["stream_id"]
        run_events = sh.json("events", "list", "--stream", stream)
        assert {stream} == {i["stream_id"] for i in run_events}
        assert list(range(1, len(run_events) + 1)) == [i["stream_version"] for i in run_events]
        assert "run.finished" == run_events[-1]["type"]
        both = sh.json("events", "list", "--stream", stream, "--type", "step.finished")
        assert 7 == len(both)  # six steps, train twice
        page = sh.json("events", "list", "--from", "20", "--limit", "3")
        assert [20, 21, 22] == [i["position"] for i in page]
        later = sh.json("events", "list", "--stream", stream, "--from", "60", "--limit", "2")
        assert [60, 61] == [i["position"] for i in later]

    def test_nl_prints_the_json_items_one_per_line(self, sh: Shell) -> None:
        """--nl gives the same items as --json, one per line."""
        lines = sh("events", "list", "--nl", "--limit", "5").stdout.splitlines()
        assert sh.json("events", "list", "--limit", "5") == [json.loads(x) for x in lines]

    def test_table_shows_the_first_100_by_default(self, tmp_path: Path) -> None:
        """The listing stops at 100 (table and JSON) and says how to see more; --all shows all."""
        path = tmp_path / "big"
        build_store(path, runs=4)
        total = head(path)
        assert total > 100
        sh = Shell(path)
        result = sh("events", "list")
        lines = result.stdout.splitlines()
        for column in ("POSITION", "RECORDED AT", "STREAM", "VERSION", "TYPE", "EVENT ID"):
            assert column in lines[1]
        rows = [line for line in lines if line.startswith("  ") and line.strip()[:1].isdigit()]
        assert list(range(1, 101)) == [int(line.split()[0]) for line in rows]
        assert f"100 of {total} events; --limit N or --all for more, --from 101" in result.stdout
        everything = sh("events", "list", "--limit", "0").stdout.splitlines()
        assert total == len([x for x in everything if x.strip()[:1].isdigit()])
        assert total == len(sh.json("events", "list", "--all"))
        capped = sh("events", "list", "--json")
        assert 100 == len(json.loads(capped.stdout))  # one meaning of --limit in every format
        assert f"100 of {total} events" in capped.stderr

    def test_unknown_type_is_noted(self, sh: Shell) -> None:
        """A type this release does not know lists nothing, with a hint."""
        result = sh("events", "list", "--type", "run.strated")
        assert "No events match." in result.stdout
        assert "did you mean 'run.started'" in result.stderr

    def test_secrets_are_masked_unless_asked(self, tmp_path: Path) -> None:
        """Secret-looking configuration keys are masked; --show-secrets shows them."""
        path = tmp_path / "secret"
        build_store(path, runs=0, configuration={"tracking_uri": "http://x", "api_token": "s3cr"})
        sh = Shell(path)
        [event] = [e for e in sh.json("events", "list") if e["data"].get("name") == "tracker"]
        assert {"tracking_uri": "http://x", "api_token": "********"} == event["data"][
            "configuration"
        ]
        shown = sh.json("events", "list", "--show-secrets")
        assert "s3cr" in json.dumps(shown)


# -- events show ---------------------------------------------------------------------


class TestEventsShow:
    """``events show``: one event with every envelope field."""

    def test_by_position_and_by_id(self, sh: Shell) -> None:
        """Position and event id find the same event; JSON has every envelope field."""
        row = stored(sh.store)[9]
        by_position = sh.json("events", "show", "10")
        assert ENVELOPE_FIELDS == list(by_position)
        assert {
            "position": 10,
            "event_id": row.event_id,
            "stream_id": row.stream_id,
            "stream_version": row.stream_version,
            "type": row.type,
            "schema_version": row.schema_version,
            "recorded_at": iso(row),
            "recorded_at_us": row.recorded_at_us,
            "metadata": EventCodec.to_builtins(row.metadata),
            "data": EventCodec.to_builtins(row.data),
            "hash": row.hash.hex(),
        } == by_position
        assert by_position == sh.json("events", "show", row.event_id)
        table = sh("events", "show", "10").stdout
        assert row.hash.hex() in table
        assert "EVENT_PROPERTY" in table

    def test_unknown_event_and_bad_reference(self, sh: Shell) -> None:
        """A missing event exits 4; something that is neither a position nor an id exits 2."""
        result = sh("events", "show", "99999", code=4)
        assert "no event at position 99999" in result.stderr
        result = sh("events", "show", str(uuid4()), code=4)
        assert "no event with id" in result.stderr
        result = sh("events", "show", "latest", code=2)
        assert "a log position" in result.stderr


# -- events tail ---------------------------------------------------------------------


class TestEventsTail:
    """``events tail``: the last events, and a follow that Ctrl-C ends cleanly."""

    def test_last_events(self, sh: Shell) -> None:
        """-n N shows the last N events, oldest first."""
        total = head(sh.store)
        items = sh.json("events", "tail", "-n", "3")
        assert [total - 2, total - 1, total] == [i["position"] for i in items]
        assert LIST_FIELDS == list(items[0])
        lines = sh("events", "tail", "-n", "2").stdout.splitlines()
        assert lines[0].split()[:3] == ["POSITION", "RECORDED", "AT"]
        assert [str(total - 1), str(total)] == [line.split()[0] for line in lines[1:]]
        assert "run.finished" in lines[-1]

    @pytest.mark.slow
    def test_follow_prints_new_events_and_ends_cleanly_on_ctrl_c(self, store_path: Path) -> None:
        """A follower sees another process's append; SIGINT ends it with exit 0, no traceback."""
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "--store", str(store_path), "events", "tail",
             "-n", "1", "--follow", "--nl"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        seen: list[str] = []
        assert process.stdout is not None
        reader = threading.Thread(target=lambda: seen.extend(process.stdout or []), daemon=True)
        reader.start()
        try:
            wait_until(lambda: len(seen) >= 1)
            run_id = uuid4()
            line = run_lines(run_id, uuid4())[0]
            Shell(store_path)("events", "append", "-", input=json.dumps(line))
            wait_until(lambda: len(seen) >= 2)
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert 0 == process.returncode, err
        assert "Traceback" not in err
        last = json.loads(seen[1])
        assert ("run.started", str(run_id)) == (last["type"], last["data"]["run_id"])


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# -- events append -------------------------------------------------------------------


def run_lines(run_id: UUID, step_id: UUID) -> list[dict[str, Any]]:
    """A small run, as ``events append`` lines."""
    stream = f"run-{run_id}"
    return [
        {"stream_id": stream, "type": "run.started", "expected_version": "no_stream",
         "data": {"run_id": str(run_id), "pipeline_name": "etl", "run_name": "etl-1",
                  "started_at": "2026-01-01T00:00:00Z"}},
        {"stream_id": stream, "type": "step.started",
         "data": {"run_id": str(run_id), "step_run_id": str(step_id), "step_name": "load",
                  "started_at": "2026-01-01T00:00:01Z"}},
        {"stream_id": stream, "type": "step.finished",
         "data": {"run_id": str(run_id), "step_run_id": str(step_id), "status": "completed",
                  "finished_at": "2026-01-01T00:00:02Z"}},
        {"stream_id": stream, "type": "run.finished",
         "data": {"run_id": str(run_id), "status": "completed",
                  "finished_at": "2026-01-01T00:00:03Z"}},
    ]  # fmt: skip


def write_lines(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


class TestEventsAppend:
    """``events append``: every line checked first, one atomic append, retries are no-ops."""

    def test_append_then_retry_is_a_no_op(self, sh: Shell, tmp_path: Path) -> None:
        """The lines are stored in file order; running the same file again changes nothing."""
        before = head(sh.store)
        run_id, step_id = uuid4(), uuid4()
        lines = run_lines(run_id, step_id)
        for line in lines:
            line["metadata"] = {"correlation_id": "ticket-42"}
        explicit = str(uuid4())
        lines[2]["event_id"] = explicit
        path = write_lines(tmp_path / "run.jsonl", lines)
        result = sh("events", "append", str(path))
        assert (
            f"Appended 4 events to 1 stream (positions {before + 1}-{before + 4}).\n"
            == result.stdout
        )
        rows = stored(sh.store)[before:]
        assert ["run.started", "step.started", "step.finished", "run.finished"] == [
            r.type for r in rows
        ]
        assert [1, 2, 3, 4] == [r.stream_version for r in rows]
        assert explicit == rows[2].event_id
        assert "ticket-42" == EventCodec.to_builtins(rows[0].metadata)["correlation_id"]
        assert "etl" == EventCodec.to_builtins(rows[0].data)["pipeline_name"]
        retry = sh("events", "append", str(path))
        assert "No-op" in retry.stdout
        assert before + 4 == head(sh.store)
        assert {
            "appended": 0,
            "already_stored": 4,
            "first_position": None,
            "last_position": None,
        } == sh.json("events", "append", str(path))

    def test_interleaved_streams_keep_their_order(self, sh: Shell, tmp_path: Path) -> None:
        """Lines of one stream separated by another's stay in file order, in one transaction."""
        before = head(sh.store)
        a, b = run_lines(uuid4(), uuid4()), run_lines(uuid4(), uuid4())
        order = [a[0], b[0], a[1], a[2], b[1], a[3], b[2], b[3]]
        path = write_lines(tmp_path / "mixed.jsonl", order)
        sh("events", "append", str(path))
        rows = stored(sh.store)[before:]
        assert [(line["stream_id"], line["type"]) for line in order] == [
            (r.stream_id, r.type) for r in rows
        ]
        assert [1, 1, 2, 3, 2, 4, 3, 4] == [r.stream_version for r in rows]
        assert 1 == len({r.recorded_at_us for r in rows})  # one transaction

    def test_stdin(self, sh: Shell) -> None:
        """``-`` reads the lines from stdin."""
        before = head(sh.store)
        text = "".join(json.dumps(x) + "\n" for x in run_lines(uuid4(), uuid4()))
        assert "Appended 4 events" in sh("events", "append", "-", input=text).stdout
        assert before + 4 == head(sh.store)

    def test_bad_lines_are_reported_and_nothing_is_appended(
        self, sh: Shell, tmp_path: Path
    ) -> None:
        """Every bad line is named with its number and reason; valid lines are not stored."""
        before = head(sh.store)
        run_id = uuid4()
        good = run_lines(run_id, uuid4())
        stream = f"run-{run_id}"
        deleted = {"run_id": str(run_id)}
        lines: list[Any] = [
            good[0],
            "{not json",
            {"stream_id": stream, "type": "run.strated", "data": deleted},
            {"stream_id": stream, "type": "run.deleted", "data": {"run_id": "nope"}},
            "",
            {"stream_id": stream, "type": "run.deleted", "data": deleted, "expected_version": -1},
            {"stream_id": stream, "type": "run.deleted", "data": deleted, "event_id": "x"},
            {"stream_id": "elsewhere", "type": "run.deleted", "data": deleted},
            {"stream_id": stream, "type": "run.deleted", "data": deleted, "metadata": [1]},
            {"stream_id": stream, "type": "run.deleted"},
            {"stream_id": stream, "type": "run.deleted", "data": {**deleted, "reson": "x"}},
            [1, 2],
        ]
        path = write_lines(tmp_path / "bad.jsonl", lines)
        result = sh("events", "append", str(path), code=1)
        errors = result.stderr.splitlines()
        assert [f"line {n}" for n in (2, 3, 4, 6, 7, 8, 9, 10, 11, 12)] == [
            e.removeprefix(f"{path}: ").split(":", 1)[0] for e in errors[:-1]
        ]
        assert "did you mean 'run.started'" in errors[1]
        assert "Invalid UUID" in errors[2]
        assert "expected_version must be" in errors[3]
        assert "is not a UUID" in errors[4]
        assert f"belongs in stream '{stream}'" in errors[5]
        assert "metadata must be a JSON object" in errors[6]
        assert "missing field(s): data" in errors[7]
        assert "did you mean 'reason'" in errors[8]
        assert "not a JSON object" in errors[9]
        assert f"Error: {path}: 10 bad lines; nothing was appended" == errors[-1]
        assert before == head(sh.store)

    def test_unknown_references_are_refused(self, sh: Shell, tmp_path: Path) -> None:
        """Events naming an unknown component or step run would break the write API: refused."""
        before = head(sh.store)
        known, unknown = str(uuid4()), str(uuid4())
        run_id, step_id = uuid4(), uuid4()
        lines = [
            {"stream_id": "workspace", "type": "component.registered",
             "data": {"component_id": known, "type": "alerter", "flavor": "slack",
                      "name": "ping"}},
            {"stream_id": "workspace", "type": "component.renamed",
             "data": {"component_id": known, "name": "pong"}},
            {"stream_id": "workspace", "type": "component.updated",
             "data": {"component_id": unknown, "configuration": {}}},
            run_lines(run_id, step_id)[0],
            {**run_lines(run_id, uuid4())[2]},
        ]  # fmt: skip
        path = write_lines(tmp_path / "dangling.jsonl", lines)
        result = sh("events", "append", str(path), code=1)
        assert [
            f"{path}: line 3: component.updated: no component named '{unknown}'",
            f"{path}: line 5: step.finished: no step run named '{lines[4]['data']['step_run_id']}'",
            f"Error: {path}: 2 lines break the domain rules; nothing was appended",
        ] == result.stderr.splitlines()
        assert before == head(sh.store)
        sh("events", "append", str(write_lines(tmp_path / "fine.jsonl", lines[:2])))
        assert before + 2 == head(sh.store)

    def test_a_refused_append_stores_nothing(self, sh: Shell, tmp_path: Path) -> None:
        """A version conflict on one line refuses the whole file, naming that line."""
        before = head(sh.store)
        good = run_lines(uuid4(), uuid4())
        conflicting = run_lines(uuid4(), uuid4())
        sh("events", "append", str(write_lines(tmp_path / "first.jsonl", conflicting[:1])))
        conflicting[1]["expected_version"] = 0  # the stream is at version 1
        path = write_lines(tmp_path / "conflict.jsonl", [*good, conflicting[1]])
        result = sh("events", "append", str(path), code=1)
        assert f"{path}: line 5: stream 'run-" in result.stderr
        assert "nothing was appended" in result.stderr
        assert before + 1 == head(sh.store)


# -- verify --------------------------------------------------------------------------


class TestVerify:
    """``verify``: exit 0 and a summary, or exit 5 naming the first bad position."""

    def test_a_sound_log(self, sh: Shell) -> None:
        """The summary line and the JSON report."""
        total = head(sh.store)
        assert f"ok: {total} events, head {total}, chain intact\n" == sh("verify").stdout
        assert {
            "ok": True,
            "events": total,
            "first_bad_position": None,
            "reason": None,
            "head_position": total,
            "view_faults": [],
        } == sh.json("verify")

    def test_an_edited_row(self, sh: Shell) -> None:
        """Editing one payload byte on disk: exit 5 naming that position, JSON printed too."""
        total = head(sh.store)
        flip_in_data(sh.store, 12, b"split.train", b"split.trein")
        result = sh("verify", code=5)
        assert (
            "Error: the log is damaged at position 12: hash does not match the row's contents"
            in result.stderr
        )
        assert "" == result.stdout
        assert {
            "ok": False,
            "events": 11,
            "first_bad_position": 12,
            "reason": "hash does not match the row's contents",
            "head_position": total,
            "view_faults": [],
        } == sh.json("verify", code=5)

    def test_a_deleted_row(self, sh: Shell) -> None:
        """Deleting a row leaves a gap that verify names."""
        tamper(sh.store, "DELETE FROM events WHERE position = 7")
        report = sh.json("verify", code=5)
        assert 7 == report["first_bad_position"]
        assert "position 7 is missing" in report["reason"]

    def test_an_empty_store_and_a_missing_one(self, tmp_path: Path) -> None:
        """An empty log verifies; a missing store exits 3 and is not created."""
        anyio.run(_create_empty, tmp_path / "empty")
        assert "ok: 0 events, head 0, chain intact\n" == Shell(tmp_path / "empty")("verify").stdout
        missing = tmp_path / "missing"
        result = Shell(missing)("verify", code=3)
        assert "metaledger init" in result.stderr
        assert not missing.exists()


async def _create_empty(path: Path) -> None:
    async with open_store(path, default_stack=False):
        pass


# -- export / import / copy ----------------------------------------------------------


class TestExportImport:
    """``export`` then ``import`` rebuilds the identical log; bad files store nothing."""

    def test_round_trip_gives_an_identical_log(self, sh: Shell, tmp_path: Path) -> None:
        """Same events list, same hashes, a byte-identical re-export, a sound chain."""
        exported = tmp_path / "log.jsonl"
        result = sh("export", str(exported))
        rows = stored(sh.store)
        assert (
            f"Exported {len(rows)} events (head {len(rows)}, head hash {rows[-1].hash.hex()}) "
            f"to {exported}.\n" == result.stdout
        )
        lines = [json.loads(x) for x in exported.read_text().splitlines()]
        assert ENVELOPE_FIELDS == list(lines[0])
        assert [r.hash.hex() for r in rows] == [line["hash"] for line in lines]
        assert [r.recorded_at_us for r in rows] == [line["recorded_at_us"] for line in lines]
        assert sh.json("events", "show", "5") == lines[4]

        copy = Shell(tmp_path / "restored")
        out = copy("import", str(exported)).stdout
        assert f"Imported {len(rows)} events (positions 1-{len(rows)})" in out
        assert rows == stored(copy.store)
        everything = ("events", "list", "--json", "--all")
        assert sh(*everything).stdout == copy(*everything).stdout
        assert sh.json("replay")["summary"] == copy.json("replay")["summary"]
        copy("verify")
        again = tmp_path / "again.jsonl"
        copy("export", str(again))
        assert exported.read_bytes() == again.read_bytes()

    def test_reimport_is_a_no_op_and_a_prefix_continues(self, sh: Shell, tmp_path: Path) -> None:
        """Importing the same file twice changes nothing; a longer export continues a prefix."""
        exported = tmp_path / "log.jsonl"
        sh("export", str(exported))
        lines = exported.read_text().splitlines(keepends=True)
        prefix = tmp_path / "prefix.jsonl"
        prefix.write_text("".join(lines[:30]))
        target = Shell(tmp_path / "target")
        target("import", str(prefix))
        assert 30 == head(target.store)
        report = target.json("import", str(exported))
        assert {
            "file": str(exported),
            "imported": len(lines) - 30,
            "already_stored": 30,
            "head_position": len(lines),
            "head_hash": json.loads(lines[-1])["hash"],
        } == report
        assert "Nothing to import" in target("import", str(exported)).stdout
        assert "Nothing to import" in target("import", str(prefix)).stdout
        assert stored(sh.store) == stored(target.store)

    def test_an_edited_byte_is_refused_with_its_line(self, sh: Shell, tmp_path: Path) -> None:
        """One changed character in a data field: refused, line named, no store created."""
        exported = tmp_path / "log.jsonl"
        sh("export", str(exported))
        lines = exported.read_text().splitlines(keepends=True)
        assert '"flavor":"local"' in lines[1]
        lines[1] = lines[1].replace('"flavor":"local"', '"flavor":"locaL"')
        edited = tmp_path / "edited.jsonl"
        edited.write_text("".join(lines))
        target = tmp_path / "target"
        result = Shell(target)("import", str(edited), code=1)
        assert (
            f"Error: {edited}: line 2: the chain breaks at position 2: hash does not match the "
            "row's contents; nothing was imported\n" == result.stderr
        )
        assert not target.exists()

    def test_bad_lines_and_conflicts_store_nothing(self, sh: Shell, tmp_path: Path) -> None:
        """Malformed JSON, a missing field, a gap, another log: refused, nothing stored."""
        exported = tmp_path / "log.jsonl"
        sh("export", str(exported))
        lines = exported.read_text().splitlines(keepends=True)
        target = Shell(tmp_path / "target")
        target("import", str(exported))

        def refused(name: str, content: list[str], message: str) -> None:
            path = tmp_path / name
            path.write_text("".join(content))
            fresh = Shell(tmp_path / f"fresh-{name}")
            assert message in fresh("import", str(path), code=1).stderr
            assert 0 == head(fresh.store)

        refused("broken.jsonl", [*lines[:3], "{oops\n", *lines[4:]], "line 4: JSON is malformed")
        no_hash = json.loads(lines[2])
        del no_hash["hash"]
        refused("nohash.jsonl", [*lines[:2], json.dumps(no_hash) + "\n"], "line 3: Object missing")
        refused("gap.jsonl", [*lines[:5], *lines[6:]], "line 6: the chain breaks at position 6")

        other = tmp_path / "other"
        build_store(other, runs=1)
        other_export = tmp_path / "other.jsonl"
        Shell(other)("export", str(other_export))
        before = stored(target.store)
        result = target("import", str(other_export), code=1)
        assert "conflicts with the store" in result.stderr
        assert before == stored(target.store)

    def test_a_file_edited_between_the_passes_stores_nothing(
        self, sh: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Pass 2 stores only the bytes pass 1 checked: an edit in between rolls back."""
        import eventstore

        exported = tmp_path / "log.jsonl"
        sh("export", str(exported))
        original_scan = eventstore.scan_export

        def scan_then_edit(path: Path, store_head: int, **options: Any) -> Any:
            result = original_scan(path, store_head, **options)
            text = path.read_text()
            path.write_text(text.replace('"load_data"', '"load_dat4"', 1))
            return result

        monkeypatch.setattr(eventstore, "scan_export", scan_then_edit)
        target = Shell(tmp_path / "target")
        result = target("import", str(exported), code=1)
        assert "changed while it was imported" in result.stderr
        assert 0 == head(target.store)

    def test_stdout_and_stdin(self, sh: Shell, tmp_path: Path) -> None:
        """``export -`` writes the lines to stdout; ``import -`` reads them from stdin."""
        result = sh("export", "-")
        assert "Exported" in result.stderr
        data = result.stdout_bytes
        assert len(stored(sh.store)) == len(data.splitlines())
        target = Shell(tmp_path / "piped")
        assert "Imported" in target("import", "-", input=data).stdout
        assert stored(sh.store) == stored(target.store)

    def test_export_keeps_secrets(self, tmp_path: Path) -> None:
        """An export is a backup: secret-looking values are kept, in a file only you read."""
        path = tmp_path / "secret"
        build_store(path, runs=0, configuration={"password": "hunter2"})
        exported = tmp_path / "log.jsonl"
        Shell(path)("export", str(exported))
        assert '"password":"hunter2"' in exported.read_text()
        assert 0o600 == exported.stat().st_mode & 0o777

    def test_export_of_a_damaged_log(self, sh: Shell, tmp_path: Path) -> None:
        """A damaged log is exported as stored, with exit 5; import refuses that file."""
        flip_in_data(sh.store, 8, b"load_data", b"load_date")
        exported = tmp_path / "log.jsonl"
        result = sh("export", str(exported), code=5)
        assert "does not verify at position 8" in result.stderr
        result = Shell(tmp_path / "target")("import", str(exported), code=1)
        assert "line 8: the chain breaks at position 8" in result.stderr


class TestCopy:
    """``copy --to``: the same log elsewhere, verified."""

    def test_copy_verify_and_rerun(self, sh: Shell, tmp_path: Path) -> None:
        """A copy holds the identical rows; a second copy is a no-op; the JSON report."""
        target = tmp_path / "copy"
        rows = stored(sh.store)
        out = sh("copy", "--to", str(target)).stdout
        assert (
            f"Copied {len(rows)} events to {target} (0 were there already); the copy verifies: "
            f"head {len(rows)}, hash {rows[-1].hash.hex()}.\n" == out
        )
        assert rows == stored(target)
        assert {
            "to": str(target),
            "copied": 0,
            "already_there": len(rows),
            "head_position": len(rows),
            "head_hash": rows[-1].hash.hex(),
            "verified": True,
            "problem": None,
        } == sh.json("copy", "--to", str(target))

    def test_refuses_another_log_and_itself(self, sh: Shell, tmp_path: Path) -> None:
        """A target holding another log, or the store itself, is refused untouched."""
        other = tmp_path / "other"
        build_store(other, runs=1)
        before = stored(other)
        assert "holds another log" in sh("copy", "--to", str(other), code=1).stderr
        assert before == stored(other)
        assert "is the current store" in sh("copy", "--to", str(sh.store), code=1).stderr

    def test_a_damaged_source_is_not_copied(self, sh: Shell, tmp_path: Path) -> None:
        """The source's chain is checked before its rows are written: exit 5."""
        flip_in_data(sh.store, 3, b"sqlite", b"sqlitE")
        target = tmp_path / "copy"
        result = sh("copy", "--to", str(target), code=5)
        assert "damaged at position 3" in result.stderr
        assert 0 == head(target)


# -- replay and projections ----------------------------------------------------------


class TestReplay:
    """``replay``: the state at a past point, with the rate."""

    def test_full_and_partial_replay(self, sh: Shell, tmp_path: Path) -> None:
        """--to a middle position summarises fewer runs; the JSON report's fields."""
        total = head(sh.store)
        full = sh.json("replay")
        assert {
            "components": 3,
            "stacks": 1,
            "active_stack": "default",
            "runs": {"completed": 2},
            "steps": 14,
            "artifacts": 14,
        } == full["summary"]
        assert (total, total, total) == (full["position"], full["head_position"], full["events"])
        assert full["events_per_s"] > 0
        second_start = sh.json("events", "list", "--type", "run.started")[1]["position"]
        middle = sh.json("replay", "--to", str(second_start))
        assert {"completed": 1, "running": 1} == middle["summary"]["runs"]
        assert second_start == middle["position"] == middle["events"]
        assert sorted(
            [
                "position",
                "head_position",
                "recorded_at",
                "events",
                "elapsed_s",
                "events_per_s",
                "into",
                "summary",
            ]
        ) == sorted(middle)
        row = stored(sh.store)[second_start - 1]
        assert iso(row) == middle["recorded_at"]
        early = sh("replay", "--to", "5").stdout
        assert f"Replayed 5 events (positions 1-5 of {total})" in early
        assert "RUNS           0" in early

    def test_as_of_a_time_and_into(self, sh: Shell, tmp_path: Path) -> None:
        """--as-of a time before the log replays nothing; --into keeps views.db there."""
        before = sh.json("replay", "--as-of", "2000-01-01T00:00:00Z")
        assert 0 == before["position"]
        assert {} == before["summary"]["runs"]
        into = tmp_path / "audit"
        kept = sh.json("replay", "--to", "10", "--into", str(into))
        assert str(into / "views.db") == kept["into"]
        assert (into / "views.db").is_file()
        result = sh("replay", "--to", "1", "--as-of", "2h", code=2)
        assert "not both" in result.stderr
        result = sh("replay", "--into", str(sh.store), code=1)
        assert "store's own directory" in result.stderr


class TestProjections:
    """``projections status`` and ``projections rebuild``."""

    def test_status_and_rebuild(self, sh: Shell) -> None:
        """Fresh views lag by the whole log; a rebuild brings each to the head."""
        total = head(sh.store)
        status = sh.json("projections", "status")
        assert ["stacks", "runs", "artifacts"] == [s["name"] for s in status]
        assert {
            "name": "runs",
            "version": RunsProjection.version,
            "code_version": RunsProjection.version,
            "position": 0,
            "lag": total,
            "state": "live",
            "error": None,
            "error_position": None,
            "skipped": 0,
            "rebuild_version": None,
            "rebuild_position": None,
            "faults": [],
        } == status[1]
        out = sh("projections", "rebuild", "runs").stdout
        assert out.startswith(
            f"Rebuilt runs (v{RunsProjection.version}) up to position {total} in "
        )
        after = {s["name"]: s for s in sh.json("projections", "status")}
        assert (total, 0) == (after["runs"]["position"], after["runs"]["lag"])
        assert 0 == after["stacks"]["position"]
        rebuilt = sh.json("projections", "rebuild")
        assert [("stacks", total), ("runs", total), ("artifacts", total)] == [
            (r["name"], r["position"]) for r in rebuilt
        ]
        table = sh("projections", "status").stdout
        for column in ("PROJECTION", "CODE VERSION", "POSITION", "LAG", "STATE", "LAST ERROR"):
            assert column in table

    def test_unknown_projection(self, sh: Shell) -> None:
        """An unknown name exits 4, suggests and lists the projections."""
        result = sh("projections", "rebuild", "rnus", code=4)
        assert (
            "Error: no projection named 'rnus'; did you mean 'runs'? "
            "(the projections: stacks, runs, artifacts)\n" == result.stderr
        )


# -- as a user runs it ---------------------------------------------------------------


@pytest.mark.slow
def test_installed_command_exports_imports_and_verifies(store_path: Path, tmp_path: Path) -> None:
    """``python -m cli``: export, import into a new store, verify both, then catch tampering."""

    def run(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "cli", *args], capture_output=True, text=True, timeout=120
        )
        assert code == done.returncode, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        return done

    exported = tmp_path / "log.jsonl"
    restored = tmp_path / "restored"
    run("--store", str(store_path), "export", str(exported))
    run("--store", str(restored), "import", str(exported))
    first = json.loads(run("--store", str(store_path), "verify", "--json").stdout)
    second = json.loads(run("--store", str(restored), "verify", "--json").stdout)
    assert first == second
    assert first["ok"]
    listing = run("--store", str(store_path), "events", "list", "--json", "--all").stdout
    assert listing == run("--store", str(restored), "events", "list", "--json", "--all").stdout
    flip_in_data(restored, 10, b"split", b"spl1t")
    damaged = run("--store", str(restored), "verify", code=5)
    assert "damaged at position 10" in damaged.stderr
