"""The CLI unchanged against a PostgreSQL server, and moving a store up with ``copy``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import cli

pytestmark = pytest.mark.postgres


def run(store: str, *args: str, code: int = 0) -> Any:
    """Invoke the CLI on a store URI and check the exit code."""
    result = CliRunner().invoke(cli, ["--store", store, *args], catch_exceptions=False)
    assert code == result.exit_code, (args, result.output)
    return result


def test_cli_smoke_on_the_server(postgres_uri: str) -> None:
    """init, the seed's commands, demo, store describe, verify and a rebuild, on PostgreSQL."""
    run(postgres_uri, "stack", "list", code=3)
    assert "Initialised" in run(postgres_uri, "init").stdout
    assert "already initialised" in run(postgres_uri, "init").stdout
    run(postgres_uri, "metadata-store", "register", "custom_sqlite", "--flavor", "sqlite")
    run(postgres_uri, "stack", "register", "custom", "-o", "default", "-a", "default",
        "-m", "custom_sqlite", "--set")  # fmt: skip
    described = run(postgres_uri, "demo").stdout
    assert "evaluate" in described
    info = json.loads(run(postgres_uri, "store", "describe", "--json").stdout)
    assert "postgresql" == info["backend"]
    assert {"stacks", "runs", "artifacts"} == {p["name"] for p in info["projections"]}
    assert all(0 == p["lag"] for p in info["projections"])
    assert json.loads(run(postgres_uri, "verify", "--json").stdout)["ok"]
    run(postgres_uri, "projections", "rebuild")
    [item] = json.loads(run(postgres_uri, "run", "list", "--json").stdout)
    assert ("completed", "custom") == (item["status"], item["stack"])


def test_copy_sqlite_to_postgres_then_verify(tmp_path: Path, postgres_uri: str) -> None:
    """A SQLite store copied up: identical events, ids, positions and hashes; it verifies,
    and its views are current before the first read."""
    local = str(tmp_path / "local")
    run(local, "demo")
    run(local, "demo")
    run(local, "copy", "--to", postgres_uri)
    # The copy built its views: they are at the head before any read catches them up.
    status = json.loads(run(postgres_uri, "projections", "status", "--json").stdout)
    assert ["stacks", "runs", "artifacts"] == [p["name"] for p in status]
    assert all((0, "live") == (p["lag"], p["state"]) for p in status), status
    assert json.loads(run(postgres_uri, "verify", "--json").stdout)["ok"]
    listing = ("events", "list", "--json", "--limit", "0")
    assert run(local, *listing).stdout == run(postgres_uri, *listing).stdout
    hashes = [json.loads(run(store, "events", "show", "69", "--json").stdout)["hash"]
              for store in (local, postgres_uri)]  # fmt: skip
    assert hashes[0] == hashes[1]
    assert run(local, "run", "list", "--json").stdout == run(postgres_uri, "run", "list",
                                                              "--json").stdout  # fmt: skip
    again = json.loads(run(local, "copy", "--to", postgres_uri, "--json").stdout)
    assert 0 == again["copied"]


def test_poison_events_and_stale_views_on_the_server(postgres_uri: str, tmp_path: Path) -> None:
    """On PostgreSQL as on SQLite: `events append` refuses a second run.started; one
    raw-appended anyway is recorded and passed by the views (verify: exit 7); a stopped
    projection makes every read warn and exit 7 until a rebuild."""
    import uuid
    from datetime import UTC, datetime

    import anyio

    from eventstore import RunStarted, open_store
    from projections.transactions import Execute, Tx
    from projections.views import live_views_store

    run(postgres_uri, "demo")
    [item] = json.loads(run(postgres_uri, "run", "list", "--json").stdout)
    again = {"stream_id": f"run-{item['run_id']}", "type": "run.started",
             "data": {"run_id": item["run_id"], "pipeline_name": "p", "run_name": "dup",
                      "started_at": "2026-01-01T00:00:00Z"}}  # fmt: skip
    path = tmp_path / "dup.jsonl"
    path.write_text(json.dumps(again) + "\n")
    refused = run(postgres_uri, "events", "append", str(path), code=1)
    assert "line 1: run.started: run" in refused.stderr

    def fail_runs() -> Tx[None]:
        yield Execute("UPDATE projection_state SET status = 'failed' WHERE name = 'runs'")

    async def poison() -> int:
        async with open_store(postgres_uri) as store:
            event = RunStarted(
                run_id=uuid.UUID(item["run_id"]),
                pipeline_name="p",
                run_name="dup",
                started_at=datetime.now(UTC),
            )
            return (await store.append(f"run-{item['run_id']}", [event])).position

    position = anyio.run(poison)
    listed = run(postgres_uri, "run", "list", "--json")
    assert 1 == len(json.loads(listed.stdout))
    assert f"position {position})" in listed.stderr
    report = json.loads(run(postgres_uri, "verify", "--json", code=7).stdout)
    assert {position} == {f["position"] for f in report["view_faults"]}

    async def stop_runs() -> None:
        async with open_store(postgres_uri) as store:
            views = live_views_store(store)
            await views.open()
            try:
                await views.transact(fail_runs)
            finally:
                await views.close()

    anyio.run(stop_runs)
    # demo records a run, then cannot describe it from the stopped view (exit 4).
    run(postgres_uri, "demo", code=4)
    stale = run(postgres_uri, "run", "list", "--json", code=7)
    assert "Warning: the views are behind the log: runs at position" in stale.stderr
    run(postgres_uri, "projections", "rebuild", "runs")
    assert 2 == len(json.loads(run(postgres_uri, "run", "list", "--json").stdout))
