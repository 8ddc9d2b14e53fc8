"""``metaledger serve`` keeps its views current from a child process, and never orphans it.

The child (``server/views_child.py``) is started by the server, follows the
log into the views, is restarted when it dies, stops with the server (SIGTERM,
SIGINT) and goes when the server is killed outright (its stdin closes). Every
wait is on a condition with a timeout, never a fixed sleep.
"""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.bench_server import lineage_event

from .server_process import ServerProcess, running_server

_STARTED = r"views_follower_started\s+pid=(\d+)"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store: a SQLite directory, or a PostgreSQL schema prefix."""
    if request.param == "postgres":
        uri: str = request.getfixturevalue("postgres_uri")
        return uri
    return str(tmp_path / "store")


def until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie left to an init that does not reap counts)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    state = re.search(r"^State:\s+(\S)", status, re.MULTILINE)
    return state is not None and state.group(1) in ("Z", "X")


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def ingest_one(server: ServerProcess, job_shard: int) -> str:
    """POST one OpenLineage task START; its job name."""
    event = lineage_event(str(uuid.uuid4()), str(uuid.uuid4()), job_shard)
    answer = httpx.post(
        f"{server.url}/api/v1/lineage",
        content=event,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["run_id"])


def run_shown(server: ServerProcess, run_id: str) -> bool:
    """Whether the views (read through the Marquez run read) show OpenLineage run ``run_id``."""
    return httpx.get(f"{server.url}/api/v1/jobs/runs/{run_id}").status_code == 200


def writer_pids(server: ServerProcess) -> list[int]:
    """The log writer children (``eventstore.writer_child``) of the server, by command line."""
    found = []
    for pid in children_of(server.process.pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"eventstore.writer_child" in command:
            found.append(pid)
    return found


def child_pid(server: ServerProcess, nth: int = 1) -> int:
    """The pid of the ``nth`` views child the server started (waiting for its log line)."""

    def started() -> list[int]:
        return [int(m.group(1)) for m in re.finditer(_STARTED, server.stderr())]

    pids = until(lambda: len(started()) >= nth and started(), f"views child number {nth}")
    return int(pids[nth - 1])


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc for process state")
class TestViewsChild:
    """The child keeps the views current and lives exactly as long as the server."""

    @pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
    def test_it_keeps_the_views_current_and_stops_with_the_server(
        self, store_uri: str, sig: int
    ) -> None:
        with running_server(store_uri) as server:
            pid = child_pid(server)
            # A SQLite store's appends are committed by a writer child too.
            writers = writer_pids(server) if store_uri.startswith("/") else []
            assert len(writers) == (1 if store_uri.startswith("/") else 0)
            assert sorted(children_of(server.process.pid)) == sorted([pid, *writers])
            # The requests first: the views take the CPU they leave; never the writer.
            assert os.getpriority(os.PRIO_PROCESS, pid) > os.getpriority(
                os.PRIO_PROCESS, server.process.pid
            )
            for writer in writers:
                assert os.getpriority(os.PRIO_PROCESS, writer) == os.getpriority(
                    os.PRIO_PROCESS, server.process.pid
                )
            run_id = ingest_one(server, 1)
            until(lambda: run_shown(server, run_id), "the views show the ingested run")
            ready = httpx.get(f"{server.url}/readyz")
            assert ready.status_code == 200
            assert server.stop(sig) == 0
            # The server waited for its children before exiting: nothing is left.
            assert gone(pid)
            assert all(gone(writer) for writer in writers)
        assert "views_follower_exited" not in server.stderr()

    def test_a_child_that_dies_is_restarted(self, store_uri: str) -> None:
        with running_server(store_uri) as server:
            first = child_pid(server)
            os.kill(first, signal.SIGKILL)
            second = child_pid(server, 2)
            assert second != first
            assert "views_follower_exited" in server.stderr()
            run_id = ingest_one(server, 2)
            until(lambda: run_shown(server, run_id), "the new child brings the views up")
            assert server.stop() == 0
            assert gone(second)

    def test_readyz_reports_the_lag_of_a_child_behind(self, store_uri: str) -> None:
        with running_server(store_uri, extra_args=["--ready-lag", "0"]) as server:
            pid = child_pid(server)
            os.kill(pid, signal.SIGSTOP)  # the child stands still: the views fall behind
            try:
                ingest_one(server, 4)
                behind = httpx.get(f"{server.url}/readyz")
                assert behind.status_code == 503
                assert behind.json()["status"] == "behind"
                assert {v["name"] for v in behind.json()["behind"]} >= {"runs", "artifacts"}
            finally:
                os.kill(pid, signal.SIGCONT)
            until(
                lambda: httpx.get(f"{server.url}/readyz").status_code == 200,
                "the child catches up and /readyz says ready",
            )

    def test_a_killed_server_leaves_no_child(self, tmp_path: Path) -> None:
        with running_server(str(tmp_path / "store")) as server:
            pid = child_pid(server)
            (writer,) = writer_pids(server)
            server.process.kill()
            server.process.wait(30)
            # Their stdin closed with the server: the children stop on their own.
            until(lambda: gone(pid), "the orphaned views child exits")
            until(lambda: gone(writer), "the orphaned log writer child exits")

    def test_inline_keeps_the_views_in_the_server(self, tmp_path: Path) -> None:
        with running_server(
            str(tmp_path / "store"), extra_args=["--views-follower", "inline"]
        ) as server:
            run_id = ingest_one(server, 3)
            until(lambda: run_shown(server, run_id), "the views show the ingested run")
            assert children_of(server.process.pid) == writer_pids(server)
        assert "views_follower_started" not in server.stderr()

    def test_a_thread_log_writer_starts_no_writer_child(self, tmp_path: Path) -> None:
        with running_server(
            str(tmp_path / "store"), extra_args=["--log-writer", "thread"]
        ) as server:
            run_id = ingest_one(server, 5)
            until(lambda: run_shown(server, run_id), "the views show the ingested run")
            assert children_of(server.process.pid) == [child_pid(server)]
        assert "log_writer_started" not in server.stderr()
