"""Several processes running ``init`` or a first ``demo`` on a fresh store (issue 10, 7)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

_PROCESSES = 4
_CLI = (sys.executable, "-m", "cli")
_DEFINITIONS = ("--type", "component.registered", "--type", "stack.registered")


def _cli(store: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "--store", store, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _all_succeed(store: str, *args: str, processes: int = _PROCESSES) -> None:
    started = [_cli(store, *args) for _ in range(processes)]
    outcomes = [(p.communicate(timeout=180), p.returncode) for p in started]
    failures = [(code, err) for (_, err), code in outcomes if code != 0]
    assert not failures, failures


def _one_default_stack(store: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cli", "--store", store, "stack", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    stacks = json.loads(done.stdout)
    assert [("default", True)] == [(s["name"], s["active"]) for s in stacks]
    components = subprocess.run(
        [*_CLI, "--store", store, "events", "list", "--json", *_DEFINITIONS],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert 4 == len(json.loads(components.stdout))  # three components, one stack: once each


@pytest.mark.parametrize("command", ["init", "demo"])
def test_concurrent_first_use_on_sqlite(tmp_path: Path, command: str) -> None:
    """All succeed; exactly one default stack and one of each default component."""
    store = str(tmp_path / "store")
    _all_succeed(store, command)
    _one_default_stack(store)


@pytest.mark.parametrize("command", ["init", "demo"])
def test_concurrent_first_use_on_postgres(postgres_uri: str, command: str) -> None:
    """The same on a fresh PostgreSQL schema."""
    _all_succeed(postgres_uri, command)
    _one_default_stack(postgres_uri)
