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
    """A SQLite store copied up: identical events, ids, positions and hashes; it verifies."""
    local = str(tmp_path / "local")
    run(local, "demo")
    run(local, "demo")
    run(local, "copy", "--to", postgres_uri)
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
