"""Poison events: the write side refuses them on every path, the views never stop on one,
and no read from views behind the log exits 0 silently (issue 10, point 1)."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings

from eventstore import (
    EVENT_TYPES,
    AlreadyExistsError,
    ComponentRegistered,
    EventCodec,
    InvalidStateError,
    NotFoundError,
    RunStarted,
    StepStarted,
    StoredEvent,
    open_store,
)
from eventstore.chain import chain_hash
from eventstore.rules import RuleChecker, check_row
from projections import VIEWS_FILE, open_views

from .histories import Command, commands, play_all
from .test_cli_audit import Shell, build_store, head, stored


def data_of(path: Path, event_type: str) -> list[dict[str, Any]]:
    """The payloads of the store's events of one type, in log order."""
    return [EventCodec.to_builtins(r.data) for r in stored(path) if r.type == event_type]


def raw_append(path: Path, stream_id: str, event: Any) -> int:
    """Append through the raw log API (which the domain rules do not guard); the position."""

    async def main() -> int:
        async with open_store(path, create=False) as store:
            return (await store.append(stream_id, [event])).position

    return anyio.run(main)


def second_start(path: Path) -> int:
    """Poison the log: a second run.started of the store's first run; its position."""
    run_id = uuid.UUID(data_of(path, "run.started")[0]["run_id"])
    again = RunStarted(
        run_id=run_id, pipeline_name="p", run_name="again", started_at=datetime.now(UTC)
    )
    return raw_append(path, f"run-{run_id}", again)


@pytest.fixture
def one_run(tmp_path: Path) -> Path:
    """A store with the default stack and one demo run."""
    path = tmp_path / "store"
    build_store(path, runs=1)
    return path


# -- the rules, and the write API ----------------------------------------------------


class TestRules:
    """``eventstore.rules`` judges events against the fold of what came before."""

    def test_a_batch_is_judged_in_order(self) -> None:
        """A duplicate start, a step in an unknown run, a reused component id are refused."""
        checker = RuleChecker()
        run_id, step_id, component_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        now = datetime.now(UTC)
        start = RunStarted(run_id=run_id, pipeline_name="p", run_name="r", started_at=now)
        step = StepStarted(run_id=run_id, step_run_id=step_id, step_name="s", started_at=now)
        stream = f"run-{run_id}"
        with pytest.raises(NotFoundError):
            checker.check(stream, step)
        checker.check(stream, start)
        with pytest.raises(AlreadyExistsError, match="already exists"):
            checker.check(stream, start)
        checker.check(stream, step)
        other = uuid.uuid4()
        elsewhere = RunStarted(run_id=other, pipeline_name="p", run_name="o", started_at=now)
        checker.check(f"run-{other}", elsewhere)
        with pytest.raises(AlreadyExistsError, match=f"in run {run_id}"):
            checker.check(f"run-{other}", StepStarted(**{**_fields(step), "run_id": other}))
        with pytest.raises(InvalidStateError, match="belongs in stream"):
            checker.check("workspace", start)
        component = ComponentRegistered(
            component_id=component_id, type="alerter", flavor="slack", name="a"
        )
        checker.check("workspace", component)
        renamed = ComponentRegistered(**{**_fields(component), "name": "b"})
        with pytest.raises(AlreadyExistsError, match="already used"):
            checker.check("workspace", renamed)

    def test_a_row_must_be_sound_whatever_its_hash(self) -> None:
        """check_row refuses what events append refuses in a line."""
        codec = EventCodec()
        run_id = uuid.uuid4()
        payload = EventCodec.from_builtins_bytes({"run_id": str(run_id)})
        now = time.time_ns() // 1000
        good = _row(1, str(uuid.uuid4()), f"run-{run_id}", "run.deleted", now, payload)
        assert run_id == check_row(good, codec).run_id  # type: ignore[union-attr]
        bad: list[tuple[dict[str, Any], str]] = [
            ({"event_id": "x"}, "is not a UUID"),
            ({"event_id": str(uuid.uuid4()).upper()}, "canonical"),
            ({"stream_id": ""}, "stream_id must be"),
            ({"recorded_at_us": now + 10 * 86_400_000_000}, "not a sane time"),
            ({"recorded_at_us": 5}, "not a sane time"),
            ({"data": EventCodec.from_builtins_bytes({"run_id": "nope"})}, "corrupt payload"),
            ({"metadata": EventCodec.from_builtins_bytes([1])}, "metadata"),
        ]
        for change, message in bad:
            with pytest.raises(ValueError, match=message):
                check_row(StoredEvent(**{**_fields(good), **change}), codec)


def _fields(value: Any) -> dict[str, Any]:
    """The fields of an event (a Struct) or of a StoredEvent (a NamedTuple)."""
    if isinstance(value, tuple):
        return dict(value._asdict())
    return msgspec.structs.asdict(value)


def _row(
    position: int,
    event_id: str,
    stream_id: str,
    event_type: str,
    recorded_at_us: int,
    data: bytes,
    *,
    stream_version: int = 1,
    schema_version: int = 1,
    metadata: bytes = b"\x80",
    hash: bytes = bytes(32),
) -> Any:
    from eventstore import StoredEvent

    return StoredEvent(
        position,
        event_id,
        stream_id,
        stream_version,
        event_type,
        schema_version,
        recorded_at_us,
        metadata,
        data,
        hash,
    )


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(commands)
async def test_every_history_of_the_write_api_passes_the_rules(
    tmp_path_factory: pytest.TempPathFactory, history: list[Command]
) -> None:
    """The write API and the rules agree: each row of a random history, checked in log
    order as import checks it, is accepted; and the views record no fault."""
    codec = EventCodec()
    async with open_store(tmp_path_factory.mktemp("h") / "s") as store:
        await play_all(store, history)
        checker = RuleChecker()
        async for row in store.read_stored():
            checker.check(row.stream_id, check_row(row, codec), row.event_id)
        async with open_views(store) as views:
            await views.catch_up()
            assert [] == await views.faults()


async def test_the_write_api_refuses_a_step_run_id_of_another_run(tmp_path: Path) -> None:
    """A caller's own step run id, already started in another run, is refused: nothing
    appended (it would stop the runs view)."""
    async with open_store(tmp_path / "s") as store:
        first = await store.start_run("first")
        step = await first.start_step("load")
        second = await store.start_run("second")
        before = await store.head()
        with pytest.raises(AlreadyExistsError, match=f"in run {first.run_id}"):
            await second.start_step("load", step_run_id=step.step_run_id)
        assert before == await store.head()
        fresh = await second.start_step("load", step_run_id=uuid.uuid4())
        assert not fresh.finished


# -- events append -------------------------------------------------------------------


def _lines(path: Path) -> dict[str, Callable[[], list[dict[str, Any]]]]:
    """Append files the domain rules forbid, against the store at ``path``."""
    started = data_of(path, "run.started")[0]
    run_id = started["run_id"]
    stream = f"run-{run_id}"
    step = data_of(path, "step.started")[0]
    component = data_of(path, "component.registered")[0]
    when = "2026-01-01T00:00:00Z"
    new_run, new_step = str(uuid.uuid4()), str(uuid.uuid4())
    new_start = {
        "stream_id": f"run-{new_run}",
        "type": "run.started",
        "data": {"run_id": new_run, "pipeline_name": "p", "run_name": "n", "started_at": when},
    }
    return {
        "a second run.started": lambda: [
            {"stream_id": stream, "type": "run.started", "data": {**started, "run_name": "dup"}}
        ],
        "a step in an unknown run": lambda: [
            {
                "stream_id": f"run-{new_run}",
                "type": "step.started",
                "data": {
                    "run_id": new_run,
                    "step_run_id": new_step,
                    "step_name": "s",
                    "started_at": when,
                },
            }
        ],
        "a step run id of another run": lambda: [
            new_start,
            {
                "stream_id": f"run-{new_run}",
                "type": "step.started",
                "data": {**step, "run_id": new_run},
            },
        ],
        "a reused component id": lambda: [
            {
                "stream_id": "workspace",
                "type": "component.registered",
                "data": {**component, "name": "another-name"},
            }
        ],
        "an artifact in a finished run": lambda: [
            {
                "stream_id": stream,
                "type": "artifact.produced",
                "data": {
                    "run_id": run_id,
                    "step_run_id": step["step_run_id"],
                    "output_name": "o",
                    "artifact_id": str(uuid.uuid4()),
                    "artifact_name": "a",
                    "uri": "file:///a",
                },
            }
        ],
        "an artifact under another event id": lambda: [
            new_start,
            {**_new_step(new_run, new_step, when)},
            {
                "stream_id": f"run-{new_run}",
                "type": "artifact.produced",
                "event_id": str(uuid.uuid4()),
                "data": {
                    "run_id": new_run,
                    "step_run_id": new_step,
                    "output_name": "o",
                    "artifact_id": str(uuid.uuid4()),
                    "artifact_name": "a",
                    "uri": "file:///a",
                },
            },
        ],
        "an unknown artifact consumed": lambda: [
            new_start,
            {**_new_step(new_run, new_step, when)},
            {
                "stream_id": f"run-{new_run}",
                "type": "artifact.consumed",
                "data": {
                    "run_id": new_run,
                    "step_run_id": new_step,
                    "input_name": "i",
                    "artifact_id": str(uuid.uuid4()),
                },
            },
        ],
    }


def _new_step(run_id: str, step_id: str, when: str) -> dict[str, Any]:
    return {
        "stream_id": f"run-{run_id}",
        "type": "step.started",
        "data": {"run_id": run_id, "step_run_id": step_id, "step_name": "s", "started_at": when},
    }


CASES = [
    ("a second run.started", "already exists"),
    ("a step in an unknown run", "no run named"),
    ("a step run id of another run", "already exists (in run"),
    ("a reused component id", "is already used"),
    ("an artifact in a finished run", "already finished"),
    ("an artifact under another event id", "must be produced under event id"),
    ("an unknown artifact consumed", "no artifact named"),
]


@pytest.mark.parametrize(("case", "message"), CASES)
def test_events_append_refuses_what_the_domain_forbids(
    one_run: Path, tmp_path: Path, case: str, message: str
) -> None:
    """One line the rules forbid: "line N: reason", exit 1, nothing appended, and the
    views go on answering (before, the append succeeded and stopped a projection)."""
    lines = _lines(one_run)[case]()
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    sh = Shell(one_run)
    before = head(one_run)
    result = sh("events", "append", str(path), code=1)
    fault, last = result.stderr.splitlines()
    assert fault.startswith(f"{path}: line {len(lines)}: "), fault
    assert message in fault
    assert f"Error: {path}: 1 line breaks the domain rules; nothing was appended" == last
    assert before == head(one_run)
    assert 1 == len(sh.json("run", "list"))


def test_events_append_pins_the_versions_it_checked(one_run: Path, tmp_path: Path) -> None:
    """The append carries the stream versions its lines were checked against: a valid
    file still appends, and a retry of it is a no-op."""
    new_run = str(uuid.uuid4())
    lines = [
        {
            "stream_id": f"run-{new_run}",
            "type": "run.started",
            "data": {"run_id": new_run, "pipeline_name": "p", "run_name": "n",
                     "started_at": "2026-01-01T00:00:00Z"},
        },
        _new_step(new_run, str(uuid.uuid4()), "2026-01-01T00:00:01Z"),
    ]  # fmt: skip
    path = tmp_path / "fine.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    sh = Shell(one_run)
    assert 2 == sh.json("events", "append", str(path))["appended"]
    assert 2 == sh.json("events", "append", str(path))["already_stored"]
    assert 2 == len(sh.json("run", "list"))


# -- import and copy ------------------------------------------------------------------


def _export(sh: Shell, tmp_path: Path) -> list[dict[str, Any]]:
    target = tmp_path / "export.jsonl"
    sh("export", str(target))
    return [json.loads(line) for line in target.read_text().splitlines()]


def _add_row(lines: list[dict[str, Any]], **given: Any) -> list[dict[str, Any]]:
    """``lines`` plus one more row, its hash recomputed so the chain stays valid."""
    last = lines[-1]
    stream_id = given.get("stream_id", "")
    row = {
        "position": last["position"] + 1,
        "event_id": str(uuid.uuid4()),
        "stream_id": stream_id,
        "stream_version": 1 + sum(1 for line in lines if line["stream_id"] == stream_id),
        "schema_version": EVENT_TYPES[given["type"]].schema_version,
        "recorded_at_us": last["recorded_at_us"],
        "metadata": {},
        **given,
    }
    row["hash"] = chain_hash(
        bytes.fromhex(last["hash"]),
        row["position"],
        row["event_id"],
        row["stream_id"],
        row["stream_version"],
        row["type"],
        row["schema_version"],
        row["recorded_at_us"],
        EventCodec.from_builtins_bytes(row["metadata"]),
        EventCodec.from_builtins_bytes(row["data"]),
    ).hex()
    return [*lines, row]


def _bad_rows(lines: list[dict[str, Any]]) -> dict[str, tuple[dict[str, Any], str]]:
    started = next(line for line in lines if line["type"] == "run.started")
    component = next(line for line in lines if line["type"] == "component.registered")
    run_id = started["data"]["run_id"]
    gone = {"type": "run.deleted", "stream_id": f"run-{run_id}", "data": {"run_id": run_id}}
    future = lines[-1]["recorded_at_us"] + 10 * 86_400_000_000
    return {
        "a payload that does not decode": (
            {**gone, "data": {"run_id": "not-a-uuid"}},
            "corrupt payload",
        ),
        "an event id that is not a UUID": ({**gone, "event_id": "x"}, "is not a UUID"),
        "an empty stream id": ({**gone, "stream_id": ""}, "stream_id must be"),
        "a time ten days ahead": ({**gone, "recorded_at_us": future}, "not a sane time"),
        "a second run.started": (
            {"type": "run.started", "stream_id": started["stream_id"], "data": started["data"]},
            "already exists",
        ),
        "a reused component id": (
            {
                "type": "component.registered",
                "stream_id": "workspace",
                "data": {**component["data"], "name": "other"},
            },
            "is already used",
        ),
    }


BAD_ROWS = [
    "a payload that does not decode",
    "an event id that is not a UUID",
    "an empty stream id",
    "a time ten days ahead",
    "a second run.started",
    "a reused component id",
]


@pytest.mark.parametrize("case", BAD_ROWS)
def test_import_refuses_a_bad_row_under_a_valid_chain(
    one_run: Path, tmp_path: Path, case: str
) -> None:
    """An export with one bad row and its chain recomputed to match: refused, naming the
    line; nothing imported."""
    lines = _export(Shell(one_run), tmp_path)
    change, message = _bad_rows(lines)[case]
    bad = _add_row(lines, **change)
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in bad))
    target = tmp_path / "restored"
    result = Shell(target)("import", str(path), code=1)
    assert f"{path}: line {len(bad)}: position {len(bad)}" in result.stderr
    assert message in result.stderr
    assert "nothing was imported" in result.stderr
    assert 0 == head(target)
    # The same file without the bad row imports, and the store verifies.
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps(line) + "\n" for line in lines))
    Shell(target)("import", str(good))
    Shell(target)("verify")


def test_copy_refuses_a_poisoned_log_and_copies_nothing(one_run: Path, tmp_path: Path) -> None:
    """A source holding an event the rules forbid (raw-appended): exit 1, naming its
    position; the target gets nothing."""
    position = second_start(one_run)
    target = tmp_path / "copy"
    result = Shell(one_run)("copy", "--to", str(target), code=1)
    assert f"at position {position} (run.started)" in result.stderr
    assert "nothing was copied" in result.stderr
    assert 0 == head(target)


# -- the views ------------------------------------------------------------------------


def test_a_poison_event_is_recorded_and_the_views_go_on(one_run: Path) -> None:
    """A second run.started (raw-appended): reads stay current, status lists it, verify
    reports it (exit 7), a rebuild succeeds (before: every view stopped for good)."""
    sh = Shell(one_run)
    sh("run", "list")  # views at the head before the poison
    position = second_start(one_run)
    build_store(one_run, runs=1)  # one more run after it
    listed = sh("run", "list", "--json")
    assert 2 == len(json.loads(listed.stdout))
    assert f"could not apply 1 event of the log (position {position})" in listed.stderr
    status = {s["name"]: s for s in sh.json("projections", "status")}
    total = head(one_run)
    assert {total} == {s["position"] for s in status.values()}
    assert {"live"} == {s["state"] for s in status.values()}
    assert [position] == [f["position"] for f in status["runs"]["faults"]]
    assert "UNIQUE" in status["runs"]["faults"][0]["reason"]
    # Only the runs view folds run.started (the artifacts view names runs from it).
    assert [] == status["artifacts"]["faults"] == status["stacks"]["faults"]
    assert "Events not applied" in sh("projections", "status").stdout
    report = sh.json("verify", code=7)
    assert report["ok"]
    assert [("runs", position)] == [(f["projection"], f["position"]) for f in report["view_faults"]]
    text = sh("verify", code=7)
    assert f"finding: the runs view could not apply the event at position {position}" in (
        text.stdout
    )
    assert "Error: the views could not apply 1 event of the log" in text.stderr
    sh("projections", "rebuild")
    assert 2 == len(sh.json("run", "list"))


def _fail_runs(store: Path) -> None:
    """Leave the runs view stopped, as a views file of an older release could be."""
    conn = sqlite3.connect(store / VIEWS_FILE)
    try:
        conn.execute(
            "UPDATE projection_state SET status = 'failed', error = 'SQL error: x', "
            "error_position = 3 WHERE name = 'runs'"
        )
        conn.commit()
    finally:
        conn.close()


def test_a_read_from_views_behind_the_log_says_so(one_run: Path) -> None:
    """A stopped projection: every read warns on stderr and exits 7, --json too (before:
    exit 0 with stale data); a rebuild brings exit 0 back."""
    sh = Shell(one_run)
    sh("run", "list")
    _fail_runs(one_run)
    build_store(one_run, runs=1)
    result = sh("run", "list", "--json", code=7)
    assert 1 == len(json.loads(result.stdout))  # the answer, stale, is still printed
    assert "Warning: the views are behind the log: runs at position" in result.stderr
    assert "failed at 3: SQL error: x" in result.stderr
    assert "metaledger projections rebuild" in result.stderr
    run_id = json.loads(result.stdout)[0]["run_id"]
    for command in (
        ("run", "list"),
        ("run", "describe", run_id),
        ("artifact", "list"),
        ("stack", "list"),
        ("store", "describe"),
        ("store", "describe", "--json"),
    ):
        assert "Warning: the views are behind" in sh(*command, code=7).stderr, command
    sh("projections", "rebuild", "runs")
    fresh = sh("run", "list", "--json")
    assert 2 == len(json.loads(fresh.stdout))
    assert "" == fresh.stderr
