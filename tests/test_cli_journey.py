"""The installed ``metaledger`` command, run in subprocesses as a user runs it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(sys.executable).with_name("metaledger")


def metaledger(store: Path | str, *args: str, code: int = 0, **kwargs: Any) -> str:
    """Run the installed command on a store; check its exit code; return stdout
    (stderr too when the command failed)."""
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "cli"]
    env = {k: v for k, v in os.environ.items() if k != "METALEDGER_STORE"}
    result = subprocess.run(
        [*command, "--store", str(store), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        **kwargs,
    )
    assert code == result.returncode, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    output: str = result.stdout if code == 0 else result.stdout + result.stderr
    return output


def test_a_users_journey(tmp_path: Path) -> None:
    """init -> the seed's four commands -> demo -> run list -> lineage -> verify ->
    export/import into a new store (identical) -> replay --to the middle -> a damaged
    log fails verify."""
    store = tmp_path / "store"
    assert "Initialised the metaledger store" in metaledger(store, "init")

    assert "STACK NAME" in metaledger(store, "stack", "list")
    assert "COMPONENT_PROPERTY" in metaledger(store, "metadata-store", "describe")
    metaledger(store, "metadata-store", "register", "custom_sqlite", "--flavor", "sqlite")
    out = metaledger(
        store, "stack", "register", "custom_stack",
        "-o", "default", "-a", "default", "-m", "custom_sqlite", "--set",
    )  # fmt: skip
    assert "custom_stack" in out

    # The active stack's metadata store decides where the run goes: custom_sqlite's own store.
    described = metaledger(store, "demo")
    assert "evaluate" in described
    assert "FlakyStepError" in described
    [run] = json.loads(metaledger(store, "run", "list", "--json"))
    assert ("completed", "custom_stack") == (run["status"], run["stack"])
    # Back on the default stack, runs go to the home store again (the rest of the journey).
    metaledger(store, "stack", "set", "default")
    assert [] == json.loads(metaledger(store, "run", "list", "--json"))
    metaledger(store, "demo")
    [run] = json.loads(metaledger(store, "run", "list", "--json"))
    assert ("completed", "default") == (run["status"], run["stack"])
    [away] = json.loads(metaledger(store, "run", "list", "--stack", "custom_stack", "--json"))
    assert "custom_stack" == away["stack"]

    lineage = ("artifact", "lineage", "training_pipeline.evaluate.metrics", "--upstream")
    graph = json.loads(metaledger(store, *lineage, "--depth", "10", "--json"))
    assert "load_data" in {n["label"] for n in graph["nodes"]}
    verified = json.loads(metaledger(store, "verify", "--json"))
    assert verified["ok"]

    backup = tmp_path / "backup.jsonl"
    metaledger(store, "export", str(backup))
    copy = tmp_path / "copy"
    metaledger(copy, "import", str(backup))
    for listing in (("events", "list"), ("run", "list")):
        assert metaledger(store, *listing, "--json") == metaledger(copy, *listing, "--json")
    assert json.loads(metaledger(copy, "verify", "--json"))["ok"]

    head = verified["head_position"]
    middle = json.loads(metaledger(store, "replay", "--to", str(head // 2), "--json"))
    assert head // 2 == middle["position"]
    assert {"running": 1} == middle["summary"]["runs"]

    conn = sqlite3.connect(store / "ledger.db")
    conn.execute("DROP TRIGGER events_no_update")
    data = bytearray(conn.execute("SELECT data FROM events WHERE position = 20").fetchone()[0])
    data[-1] ^= 1
    conn.execute("UPDATE events SET data = ? WHERE position = 20", (bytes(data),))
    conn.commit()
    conn.close()
    damaged = metaledger(store, "verify", code=5)
    assert "damaged at position 20" in damaged


def test_the_main_job_on_the_default_store(tmp_path: Path) -> None:
    """With no --store and no METALEDGER_STORE, `demo` uses the user data directory."""
    env = {
        **{k: v for k, v in os.environ.items() if k != "METALEDGER_STORE"},
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "cli"]
    result = subprocess.run([*command, "demo"], capture_output=True, text=True, env=env)
    assert 0 == result.returncode, result.stderr
    assert (tmp_path / "data" / "metaledger" / "store" / "ledger.db").exists()
    assert "Recorded demo run" in result.stdout


def test_errors_are_one_line_and_exit_codes_differ(tmp_path: Path) -> None:
    """A missing store, a foreign file, an unknown name: one line on stderr, distinct codes."""
    missing = subprocess.run(
        [sys.executable, "-m", "cli", "--store", str(tmp_path / "none"), "run", "list"],
        capture_output=True,
        text=True,
    )
    assert 3 == missing.returncode
    assert 1 == len(missing.stderr.strip().splitlines())
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "ledger.db").write_bytes(os.urandom(4096))
    before = (foreign / "ledger.db").read_bytes()
    metaledger(foreign, "stack", "list", code=3)
    assert before == (foreign / "ledger.db").read_bytes()
    store = tmp_path / "store"
    metaledger(store, "init")
    metaledger(store, "run", "describe", "no-such-run", code=4)
