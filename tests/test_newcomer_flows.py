"""The flows a newcomer follows work as written: the README's server steps, store URLs
as SQLAlchemy-based tools spell them, a progress bar for long appends, fresh views
through the API, and the write API's ids and error messages (issue 11)."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path
from uuid import uuid4

import anyio
import pytest
from click.testing import CliRunner

from cli.main import cli
from eventstore import (
    EventStore,
    InvalidEventError,
    NotFoundError,
    UnsupportedURIError,
    open_store,
    resolve_store,
)
from projections import open_views

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
#: The README's example server URI, replaced by the test server's.
README_SERVER_URI = "postgresql://ml@db.internal:5432/metadata"
#: Seconds a CLI subprocess may take before it counts as hung.
TIMEOUT = 120


def _invoke(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert code == result.exit_code, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.output
    return result.stdout if code == 0 else result.stderr


def _user_env(home: Path) -> dict[str, str]:
    """A newcomer's environment: their own HOME, no store chosen, metaledger on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("METALEDGER_STORE", "XDG_DATA_HOME")}
    env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    return env


def readme_block(heading: str) -> str:
    """The first ```sh block under a README heading."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(f"\n{heading}\n", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"no ```sh block under {heading}"
    return match.group(1)


# -- the README's "On a server" block ----------------------------------------------


def test_readme_server_block_moves_the_local_store_up(tmp_path: Path, postgres_uri: str) -> None:
    """The README's "On a server" block, run line by line by bash as written (the pip line
    left out, the test server's URI for the example's), moves a user's local store, made by
    `metaledger demo` as in "Set up", to the server: every event, verified."""
    home = tmp_path / "home"
    home.mkdir()
    env = _user_env(home)
    demo = subprocess.run(
        ["metaledger", "demo"], env=env, cwd=home, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert 0 == demo.returncode, demo.stderr
    local = home / ".local/share/metaledger/store"
    assert (local / "ledger.db").is_file()

    block = readme_block("## On a server")
    assert README_SERVER_URI in block
    lines = [line for line in block.splitlines() if not line.startswith("pip install")]
    script = "set -euo pipefail\n" + "\n".join(lines).replace(README_SERVER_URI, postgres_uri)
    done = subprocess.run(
        ["bash", "-c", script], env=env, cwd=home, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert 0 == done.returncode, f"{done.stdout}\n{done.stderr}"
    assert "the copy verifies" in done.stdout

    local_head = json.loads(_invoke("--store", str(local), "--json", "store", "describe"))
    server = json.loads(_invoke("--store", postgres_uri, "--json", "store", "describe"))
    assert local_head["head_position"] == server["head_position"] > 0
    runs = json.loads(_invoke("--store", postgres_uri, "--json", "run", "list"))
    assert ["completed"] == [run["status"] for run in runs]
    assert "ok:" in _invoke("--store", postgres_uri, "verify")
    # The local home store's active stack is team_stack now: its runs are read on the server.
    via_home = json.loads(_invoke("--store", str(local), "--json", "run", "list"))
    assert [run["run_id"] for run in runs] == [run["run_id"] for run in via_home]


def test_copy_into_a_store_init_wrote_says_what_to_do(tmp_path: Path) -> None:
    """A target holding only `init`'s default stack is refused with a message that names it
    and the way out (copy first, then init), not "holds another log"; nothing is copied."""
    source, target = tmp_path / "source", tmp_path / "target"
    _invoke("--store", str(source), "demo")
    _invoke("--store", str(target), "init")
    message = _invoke("--store", str(source), "copy", "--to", str(target), code=1)
    assert "the default stack `metaledger init` made" in message
    assert "then run `init` there" in message
    assert (
        5
        == json.loads(_invoke("--store", str(target), "--json", "store", "describe"))[
            "head_position"
        ]
    )


# -- store URLs ----------------------------------------------------------------------


class TestStoreURLs:
    """Store URLs as SQLAlchemy (MLflow, ZenML) users type them."""

    def test_four_slashes_are_absolute(self, tmp_path: Path) -> None:
        """sqlite:////abs/path names the absolute path (it said "invalid uri authority")."""
        target = tmp_path / "abs-store"
        assert target == resolve_store(f"sqlite:///{target}").path
        _invoke("--store", f"sqlite:///{target}", "init")
        assert (target / "ledger.db").is_file()

    def test_three_slashes_are_relative(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """sqlite:///relative/path is relative to the working directory."""
        monkeypatch.chdir(tmp_path)
        assert tmp_path / "rel" / "store" == resolve_store("sqlite:///rel/store").path
        _invoke("--store", "sqlite:///rel/store", "init")
        assert (tmp_path / "rel" / "store" / "ledger.db").is_file()
        assert tmp_path / "rel" == resolve_store("sqlite://rel").path
        assert tmp_path / "x" == resolve_store("sqlite+aiosqlite:///x").path

    def test_an_old_absolute_url_is_not_opened_as_a_new_relative_store(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """sqlite:///abs/path, absolute in earlier releases, is refused with the four-slash
        spelling when only the absolute path holds a store: no empty store appears in the
        working directory."""
        store = tmp_path / "old" / "store"
        _invoke("--store", str(store), "init")
        work = tmp_path / "work"
        work.mkdir()
        monkeypatch.chdir(work)
        with pytest.raises(UnsupportedURIError, match=re.escape(f"sqlite:///{store}")):
            resolve_store(f"sqlite://{store}")
        assert "sqlite:////" in _invoke("--store", f"sqlite://{store}", "stack", "list", code=1)
        assert [] == list(work.iterdir())

    def test_postgres_driver_suffixes(self) -> None:
        """postgresql+asyncpg:// (and the other SQLAlchemy drivers) name the same server;
        an unknown driver or scheme is refused."""
        location = resolve_store("postgresql+asyncpg://ml@db:5432/metadata?schema_prefix=a")
        assert "postgresql" == location.kind
        assert "postgresql://ml@db:5432/metadata?schema_prefix=a" == location.dsn
        assert "postgresql" == resolve_store("postgres+psycopg2://ml@db/m").kind
        with pytest.raises(UnsupportedURIError, match="driver 'odbc'"):
            resolve_store("postgresql+odbc://ml@db/m")
        with pytest.raises(UnsupportedURIError, match="sqlite:////absolute/path"):
            resolve_store("mysql://ml@db/m")
        with pytest.raises(UnsupportedURIError, match="needs a path"):
            resolve_store("sqlite:///")

    def test_asyncpg_url_opens_the_server_store(self, postgres_uri: str) -> None:
        """A store opened as postgresql+asyncpg:// is the one opened as postgresql://."""
        asyncpg_uri = postgres_uri.replace("postgresql://", "postgresql+asyncpg://", 1)
        assert asyncpg_uri != postgres_uri
        _invoke("--store", asyncpg_uri, "init")
        stacks = json.loads(_invoke("--store", postgres_uri, "--json", "stack", "list"))
        assert ["default"] == [stack["name"] for stack in stacks]


# -- events append: a progress bar on a terminal -----------------------------------


def _append_file(path: Path, lines: int) -> None:
    run_id = str(uuid4())
    stream = f"run-{run_id}"
    started = {
        "stream_id": stream,
        "type": "run.started",
        "data": {
            "run_id": run_id,
            "pipeline_name": "p",
            "run_name": "bulk",
            "stack_id": None,
            "orchestrator_run_id": None,
            "config": {},
            "tags": [],
            "started_at": "2026-12-03T10:00:00Z",
        },
    }
    with path.open("w", encoding="utf-8") as out:
        out.write(json.dumps(started) + "\n")
        for i in range(lines - 1):
            data = {"run_id": run_id, "step_run_id": None, "values": {"i": i}}
            out.write(json.dumps({"stream_id": stream, "type": "metadata.logged", "data": data}))
            out.write("\n")


def _run_on_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str, bytes]:
    """Run a command with stderr on a pseudo-terminal; (exit code, stdout, terminal bytes)."""
    master, slave = pty.openpty()
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=slave, env=env) as process:
        os.close(slave)
        seen = bytearray()
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal closed: the process is gone
                break
            if not data:
                break
            seen += data
        os.close(master)
        assert process.stdout is not None
        stdout = process.stdout.read().decode()
        return process.wait(timeout=TIMEOUT), stdout, bytes(seen)


def test_events_append_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    """A large `events append` draws "checking" and "appending" bars on a terminal; with
    --json, or with stderr on a pipe, it draws nothing."""
    store = tmp_path / "store"
    _invoke("--store", str(store), "init")
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "80"}
    command = [str(BIN / "metaledger"), "--store", str(store), "events", "append"]

    first = tmp_path / "first.jsonl"
    _append_file(first, 6_000)
    code, stdout, terminal = _run_on_terminal([*command, str(first)], env)
    assert 0 == code, terminal.decode(errors="replace")
    assert "Appended 6,000 events" in stdout
    assert b"checking" in terminal
    assert b"appending" in terminal

    second = tmp_path / "second.jsonl"
    _append_file(second, 6_000)
    code, stdout, terminal = _run_on_terminal([*command, str(second), "--json"], env)
    assert 0 == code
    assert 6000 == json.loads(stdout)["appended"]
    assert b"checking" not in terminal
    assert b"appending" not in terminal

    third = tmp_path / "third.jsonl"
    _append_file(third, 6_000)
    piped = subprocess.run(
        [*command, str(third)], env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert 0 == piped.returncode
    assert "" == piped.stderr


# -- the Python API: fresh views -----------------------------------------------------


async def _record_run(store: EventStore, name: str) -> None:
    async with store.pipeline_run("training", run_name=name) as run, run.step("load") as step:
        await step.produce("data", uri="file:///tmp/data.parquet")


@pytest.mark.anyio
async def test_views_read_through_the_api_are_fresh(tmp_path: Path) -> None:
    """open_views(store).query answers as of the log's head without a catch_up() call,
    also for events appended after the views were opened."""
    async with open_store(tmp_path / "s") as store:
        await _record_run(store, "first")
        async with open_views(store) as views:
            assert ["first"] == [run.run_name for run in await views.query.runs()]
            await _record_run(store, "second")
            assert {"first", "second"} == {run.run_name for run in await views.query.runs()}
            assert 2 == len(await views.query.artifacts())
            assert 2 == (await views.query.summary()).runs["completed"]


@pytest.mark.anyio
async def test_views_read_through_the_api_are_fresh_on_postgres(postgres_uri: str) -> None:
    """The same on PostgreSQL, where the views live in the server's views schema."""
    async with open_store(postgres_uri) as store:
        await _record_run(store, "first")
        async with open_views(store) as views:
            assert ["first"] == [run.run_name for run in await views.query.runs()]
            await _record_run(store, "second")
            assert 2 == len(await views.query.artifacts())


@pytest.mark.anyio
async def test_fresh_false_reads_the_views_as_they_are(tmp_path: Path) -> None:
    """fresh=False opts out: queries read what catch_up() brought in, nothing more."""
    async with open_store(tmp_path / "s") as store:
        await _record_run(store, "first")
        async with open_views(store, fresh=False) as views:
            assert [] == await views.query.runs()
            await views.catch_up()
            await _record_run(store, "second")
            assert ["first"] == [run.run_name for run in await views.query.runs()]


@pytest.mark.anyio
async def test_fresh_reads_while_following(tmp_path: Path) -> None:
    """With follow() running, a fresh query waits for it to reach the head."""
    async with (
        open_store(tmp_path / "s") as store,
        open_views(store) as views,
        anyio.create_task_group() as group,
    ):
        await group.start(views.follow)
        for n in range(3):
            await _record_run(store, f"run-{n}")
            assert n + 1 == len(await views.query.runs())
        group.cancel_scope.cancel()


# -- the Python API: ids and error messages ------------------------------------------


@pytest.mark.anyio
async def test_context_managers_take_ids(tmp_path: Path) -> None:
    """pipeline_run(run_id=) and step(step_run_id=) record the ids given, as
    start_run and start_step do."""
    run_id, step_run_id = uuid4(), uuid4()
    async with open_store(tmp_path / "s") as store:
        async with store.pipeline_run("p", run_id=run_id) as run:
            assert run_id == run.run_id
            async with run.step("s", step_run_id=step_run_id) as step:
                assert step_run_id == step.step_run_id
        state = (await store.get_run(run_id)).state
        assert "completed" == state.status
        assert {step_run_id} == set(state.steps)


@pytest.mark.anyio
async def test_metadata_type_errors_name_the_key(tmp_path: Path) -> None:
    """A metadata value that is no scalar is refused naming its key and type."""
    async with (
        open_store(tmp_path / "s") as store,
        store.pipeline_run("p") as run,
        run.step("s") as step,
    ):
        with pytest.raises(InvalidEventError, match=r"metadata 'confusion' .* not list"):
            await step.log_metadata({"accuracy": 0.9, "confusion": [[1, 0], [0, 1]]})
        with pytest.raises(InvalidEventError, match=r"metadata 'params' .* not dict"):
            await run.log_metadata({"params": {"lr": 0.1}})
        with pytest.raises(InvalidEventError, match=r"artifact metadata 'shape'"):
            await step.produce("x", uri="file:///x", metadata={"shape": (3, 4)})
        with pytest.raises(InvalidEventError, match="keys must be strings; got 1"):
            await step.log_metadata({1: 2})  # type: ignore[dict-item]
        await step.log_metadata({"accuracy": 0.9, "note": None})


@pytest.mark.anyio
async def test_cancellation_is_recorded_as_cancelled(tmp_path: Path) -> None:
    """A cancelled run and step are stopped with error "cancelled", not the text of an
    internal cancel scope."""
    async with open_store(tmp_path / "s") as store:
        with anyio.CancelScope() as scope:
            async with store.pipeline_run("p") as run:
                run_id = run.run_id
                async with run.step("s"):
                    scope.cancel()
                    await anyio.sleep_forever()
        finished = [
            recorded.event
            async for recorded in store.read_stream(f"run-{run_id}")
            if recorded.type in ("step.finished", "run.finished")
        ]
    assert [("stopped", "cancelled"), ("stopped", "cancelled")] == [
        (event.status, event.error)  # type: ignore[attr-defined]
        for event in finished
    ]


@pytest.mark.anyio
async def test_consuming_an_unknown_artifact_names_the_id(tmp_path: Path) -> None:
    """consume() of an id no step produced says "no artifact with id ..."."""
    missing = uuid4()
    async with (
        open_store(tmp_path / "s") as store,
        store.pipeline_run("p") as run,
        run.step("s") as step,
    ):
        with pytest.raises(NotFoundError) as caught:
            await step.consume("data", missing)
        step_missing = uuid4()
        with pytest.raises(NotFoundError, match=f"no step run with id {step_missing}"):
            await run.log_metadata({"a": 1}, step_run_id=step_missing)
    assert f"no artifact with id {missing}" == str(caught.value)
