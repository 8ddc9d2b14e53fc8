"""Output contracts: --json, honest listings, tables that fit, lineage, as-of, grammar."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from cli.docgen import iter_commands
from cli.main import cli

#: Arguments for every command, in the order the walk runs them (later ones change the
#: store). {store}, {other} and {tmp} are filled in. A command missing here fails the
#: walk: give it arguments so that its --json output is checked too.
_WALK: dict[str, list[str]] = {
    "init": [],
    "demo": [],
    "component register": ["experiment-tracker", "tracker", "--flavor", "mlflow"],
    "store describe": [],
    "stack list": [],
    "stack describe": [],
    "orchestrator list": [],
    "orchestrator describe": [],
    "artifact-store list": [],
    "artifact-store describe": [],
    "metadata-store list": [],
    "metadata-store describe": [],
    "component list": ["experiment-tracker"],
    "component describe": ["experiment-tracker", "tracker"],
    "run list": [],
    "run describe": ["{run}"],
    "artifact list": [],
    "artifact describe": ["training_pipeline.train.model"],
    "artifact lineage": ["training_pipeline.train.model"],
    "events list": [],
    "events show": ["1"],
    "events tail": [],
    "events append": ["{tmp}/empty.jsonl"],
    "replay": ["--to", "0"],
    "projections status": [],
    "projections rebuild": ["runs"],
    "verify": [],
    "export": ["{tmp}/backup.jsonl"],
    "import": ["{tmp}/backup.jsonl"],
    "copy": ["--to", "{tmp}/copied"],
    "orchestrator register": ["o2", "--flavor", "local"],
    "orchestrator update": ["o2", "--path=/tmp/x"],
    "orchestrator rename": ["o2", "o3"],
    "artifact-store register": ["a2", "--flavor", "local", "--path=/tmp/a"],
    "artifact-store update": ["a2", "--path=/tmp/b"],
    "artifact-store rename": ["a2", "a3"],
    "metadata-store register": ["m2", "--flavor", "sqlite"],
    "metadata-store update": ["m2", "--uri=x"],
    "metadata-store rename": ["m2", "m3"],
    "component update": ["experiment-tracker", "tracker", "--uri=http://x"],
    "component rename": ["experiment-tracker", "tracker", "tracker2"],
    "stack register": ["s2", "-o", "o3", "-a", "a3", "-m", "m3"],
    "stack set": ["s2"],
    "stack update": ["s2", "-m", "default"],
    "stack rename": ["s2", "s3"],
    "stack delete": ["default"],
    "component delete": ["experiment-tracker", "tracker2"],
    "orchestrator delete": ["default"],
    "artifact-store delete": ["default"],
    "metadata-store delete": ["m3"],
    "run delete": ["{run}", "--yes"],
}

#: Commands that are no single JSON document by design.
_NOT_JSON = {"events tail": "--follow streams lines", "export": "FILE '-' writes the export"}


def _leaves() -> list[str]:
    names = []
    for path, command, _ in iter_commands(cli, ("metaledger",), None):
        if not isinstance(command, click.Group):
            names.append(" ".join(path[1:]))
    return names


def _invoke(store: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["--store", str(store), *args], env=env, catch_exceptions=False)


def test_every_command_prints_one_json_document_with_the_global_json(tmp_path: Path) -> None:
    """Walk every command in --help with the global --json: stdout parses as one document."""
    leaves = _leaves()
    missing = sorted(set(leaves) - set(_WALK))
    assert not missing, f"give these commands arguments in _WALK: {missing}"
    store = tmp_path / "store"
    (tmp_path / "empty.jsonl").write_bytes(b"")
    run_id = ""
    for name, template in _WALK.items():
        args = [a.replace("{tmp}", str(tmp_path)).replace("{run}", run_id) for a in template]
        words = name.split()
        # `component TYPE verb`: the type goes between the group and the verb.
        if words[0] == "component":
            command = [words[0], args[0], words[1], *args[1:]]
        else:
            command = [*words, *args]
        target = tmp_path / "imported" if name == "import" else store
        result = _invoke(target, "--json", *command)
        assert 0 == result.exit_code, (name, result.stdout, result.stderr)
        try:
            document = json.loads(result.stdout)
        except json.JSONDecodeError:
            pytest.fail(f"`{name} --json` printed no single JSON document:\n{result.stdout}")
        if name == "demo":
            run_id = document["run"]["run_id"]
        if name in {"stack register", "orchestrator rename", "run delete", "stack delete"}:
            assert document["action"] in {"registered", "renamed", "deleted"}, document


def test_change_commands_take_their_own_json_too(tmp_path: Path) -> None:
    """`stack register ... --json` (the command's own flag) prints what it did."""
    store = tmp_path / "store"
    assert 0 == _invoke(store, "init").exit_code
    result = _invoke(
        store,
        "stack",
        "register",
        "s2",
        "-o",
        "default",
        "-a",
        "default",
        "-m",
        "default",
        "--set",
        "--json",
    )
    assert 0 == result.exit_code, result.output
    document = json.loads(result.stdout)
    assert {"action": "registered", "type": "stack", "name": "s2", "active": True}.items() <= (
        document.items()
    )
    deleted = json.loads(
        _invoke(store, "orchestrator", "register", "x", "-f", "local", "--json").stdout
    )
    assert ("registered", "orchestrator", "x") == (
        deleted["action"],
        deleted["type"],
        deleted["name"],
    )


def test_demo_json_is_only_json(tmp_path: Path) -> None:
    """`metaledger --json demo` prints the JSON object and no prose before it."""
    result = _invoke(tmp_path / "store", "--json", "demo")
    assert result.stdout.lstrip().startswith("{")
    document = json.loads(result.stdout)
    assert document["run"]["status"] == "completed"
    assert len(document["run"]["steps"]) == 7
