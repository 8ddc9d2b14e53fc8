"""The active stack's metadata store decides where runs are recorded (the seed's promise).

The home store (``--store``) holds the stacks; a stack's ``metadata_store``
component names the store its runs go to. The README's orchestrator example,
unchanged, follows the active stack; the CLI's run commands read the active
stack's metadata store, ``--stack NAME`` another's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from eventstore import (
    EventStore,
    RunFinished,
    RunStackDescribed,
    RunStarted,
    StepFinished,
    StepStarted,
    open_store,
    run_stream,
)
from eventstore.metadata_stores import THIS_STORE

from .postgres_prefixes import PostgresPrefixes

_ROOT = Path(__file__).resolve().parent.parent


class Shell:
    """metaledger commands on one home store, as a user types them."""

    def __init__(self, store: Path | str) -> None:
        self.store = str(store)
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0) -> Result:
        result = self.runner.invoke(cli, ["--store", self.store, *args], catch_exceptions=False)
        assert code == result.exit_code, (args, result.output, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


async def readme_example(store_path: str) -> None:
    """The README's "From an orchestrator" example, with only the store path given."""
    async with open_store(store_path) as store:  # noqa: SIM117 (the README's shape)
        async with store.pipeline_run("training") as run:
            async with run.step("load") as step:
                data = await step.produce("data", uri="file:///tmp/data.parquet")
            async with run.step("train", upstream_steps=["load"]) as step:
                await step.consume("data", data)
                await step.log_metadata({"accuracy": 0.93})


async def _run_ids(uri: str | Path) -> list[uuid.UUID]:
    async with open_store(uri, create=False, default_stack=False) as store:
        return [r.event.run_id async for r in store.read_all(types=["run.started"])]  # type: ignore[union-attr]


def _seed(sh: Shell, metadata_store_args: list[str]) -> None:
    """The seed's commands: init, register a metadata store, a stack using it, --set."""
    sh("init")
    sh("metadata-store", "register", "custom_sqlite", *metadata_store_args)
    out = sh(
        "stack", "register", "custom_stack", "-o", "default", "-a", "default",
        "-m", "custom_sqlite", "--set",
    ).stdout  # fmt: skip
    assert "Stack `custom_stack` successfully registered!" in out


def _names(listing: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["pipeline_name"], r["stack"]) for r in listing]


class TestSQLiteMetadataStore:
    """``metadata-store register custom_sqlite --flavor sqlite --uri=...`` is where runs go."""

    def test_the_readme_example_follows_the_active_stack(self, tmp_path: Path) -> None:
        """custom_sqlite's store gets the run; `stack set default` sends the next one home."""
        home, custom = tmp_path / "home", tmp_path / "ml.db"
        sh = Shell(home)
        _seed(sh, ["--flavor", "sqlite", f"--uri={custom}"])
        head_before = sh.json("store", "describe")["head_position"]

        anyio.run(readme_example, str(home))
        assert (custom / "ledger.db").is_file()
        [away] = anyio.run(_run_ids, custom)
        assert [] == anyio.run(_run_ids, home)
        # The home store only holds the stacks: the run added nothing to it.
        assert head_before == sh.json("store", "describe")["head_position"]
        assert [("training", "custom_stack")] == _names(sh.json("run", "list"))

        sh("stack", "set", "default")
        assert [] == sh.json("run", "list")
        anyio.run(readme_example, str(home))
        [back] = anyio.run(_run_ids, home)
        assert [away] == anyio.run(_run_ids, custom)
        assert [("training", "default")] == _names(sh.json("run", "list"))
        # --stack reads the other stack's metadata store.
        [other] = sh.json("run", "list", "--stack", "custom_stack")
        assert str(away) == other["run_id"]
        assert "training" == sh.json("pipeline", "list", "--stack", "custom_stack")[0]["name"]
        assert 1 == len(sh.json("artifact", "list", "--stack", "custom_stack"))
        assert str(back) == sh.json("run", "list")[0]["run_id"]

    def test_a_run_away_from_home_describes_its_stack_with_secrets_masked(
        self, tmp_path: Path
    ) -> None:
        """The custom store's `run describe` shows the stack; the secret never travels."""
        home, custom = tmp_path / "home", tmp_path / "ml.db"
        sh = Shell(home)
        sh("init")
        sh("orchestrator", "register", "local2", "--flavor", "local", "--password=hunter2")
        sh("metadata-store", "register", "custom_sqlite", "--flavor", "sqlite", f"--uri={custom}")
        sh("stack", "register", "custom_stack", "-o", "local2", "-a", "default",
           "-m", "custom_sqlite", "--set")  # fmt: skip
        anyio.run(readme_example, str(home))

        run = sh.json("run", "list")[0]
        described = sh.json("run", "describe", run["run_id"])
        assert "custom_stack" == described["stack"]
        components = {c["type"]: c for c in described["stack_description"]["components"]}
        assert ("local2", "local") == (
            components["orchestrator"]["name"],
            components["orchestrator"]["flavor"],
        )
        assert "********" == components["orchestrator"]["configuration"]["password"]
        table = sh("run", "describe", run["run_id"]).stdout
        assert "STACK ORCHESTRATOR" in table
        assert "local2 (local)" in table
        assert b"hunter2" not in (custom / "ledger.db").read_bytes()
        # The custom store stands on its own: it verifies, copies and imports (the rules
        # accept a run.started naming a stack its own description made known).
        away = Shell(custom)
        assert "chain intact" in away("verify").stdout
        away("copy", "--to", str(tmp_path / "copied"))
        away("export", str(tmp_path / "away.jsonl"))
        Shell(tmp_path / "imported")("import", str(tmp_path / "away.jsonl"))
        [imported] = Shell(tmp_path / "imported").json("run", "list")
        assert ("custom_stack", run["run_id"]) == (imported["stack"], imported["run_id"])

    def test_without_a_uri_each_component_gets_its_own_store(self, tmp_path: Path) -> None:
        """Under the data directory (beside the home store), one per component."""
        home = tmp_path / "home"
        sh = Shell(home)
        _seed(sh, ["--flavor", "sqlite"])
        sh("metadata-store", "register", "second", "--flavor", "sqlite")
        first = sh.json("metadata-store", "describe", "custom_sqlite")
        second = sh.json("metadata-store", "describe", "second")
        assert first["store"]["location"] == str(home / "metadata-stores" / first["id"])
        assert second["store"]["location"] == str(home / "metadata-stores" / second["id"])
        anyio.run(readme_example, str(home))
        assert 1 == len(anyio.run(_run_ids, first["store"]["location"]))
        described = sh.json("metadata-store", "describe", "custom_sqlite")["store"]
        assert described["reachable"]
        assert "sqlite" == described["backend"]
        assert described["events"] == described["head_position"] > 0

    def test_the_default_metadata_store_is_this_store(self, tmp_path: Path) -> None:
        """Recorded as "this store"; describe shows the real path; an import points at itself."""
        home = tmp_path / "home"
        sh = Shell(home)
        sh("init")
        item = sh.json("metadata-store", "describe")
        assert {"uri": THIS_STORE} == item["configuration"]
        assert str(home) == item["store"]["location"]
        assert item["store"]["reachable"]
        assert "URI" in sh("metadata-store", "describe").stdout
        sh("demo")
        sh("export", str(tmp_path / "backup.jsonl"))
        restored = Shell(tmp_path / "restored")
        restored("import", str(tmp_path / "backup.jsonl"))
        assert (
            str(tmp_path / "restored")
            == restored.json("metadata-store", "describe")["store"]["location"]
        )
        assert 1 == len(restored.json("run", "list"))

    def test_migrate_moves_the_home_runs_to_a_metadata_store(self, tmp_path: Path) -> None:
        """`metadata-store migrate NAME --set STACK`: then `run list` shows them there."""
        sh = Shell(tmp_path / "home")
        sh("demo")
        sh("metadata-store", "register", "mine", "--flavor", "sqlite")
        sh("stack", "register", "mine_stack", "-o", "default", "-a", "default", "-m", "mine")
        [run] = sh.json("run", "list")
        moved = sh.json("metadata-store", "migrate", "mine", "--set", "mine_stack")
        assert moved["verified"]
        assert "mine_stack" == moved["active_stack"]
        assert [run["run_id"]] == [r["run_id"] for r in sh.json("run", "list")]
        location = sh.json("metadata-store", "describe", "mine")["store"]["location"]
        assert location == moved["to"]
        assert "is this store" in sh("metadata-store", "migrate", "default", code=1).stderr

    def test_a_store_made_before_routing_keeps_recording_in_itself(self, tmp_path: Path) -> None:
        """An old default metadata store recorded the home's absolute URI, even after a move."""

        async def old_store() -> None:
            async with open_store(tmp_path / "old", default_stack=False) as store:
                await store.register_component("orchestrator", "default", flavor="local")
                await store.register_component(
                    "artifact_store", "default", flavor="local", configuration={"path": "/a"}
                )
                # As ensure_default_stack wrote it before: the store's URI when it was made.
                await store.register_component(
                    "metadata_store",
                    "default",
                    flavor="sqlite",
                    configuration={"uri": f"sqlite:///{tmp_path / 'elsewhere'}"},
                )
                await store.register_stack(
                    "default",
                    {"orchestrator": "default", "artifact_store": "default",
                     "metadata_store": "default"},
                    set_active=True,
                )  # fmt: skip

        anyio.run(old_store)
        anyio.run(readme_example, str(tmp_path / "old"))
        assert 1 == len(anyio.run(_run_ids, tmp_path / "old"))
        assert not (tmp_path / "elsewhere").exists()
        facts = Shell(tmp_path / "old").json("metadata-store", "describe")["store"]
        assert str(tmp_path / "old") == facts["location"]

    def test_an_updated_default_metadata_store_is_the_users(self, tmp_path: Path) -> None:
        """`metadata-store update default --uri=...` moves the default stack's runs there."""
        sh = Shell(tmp_path / "home")
        sh("init")
        sh("metadata-store", "update", "default", f"--uri={tmp_path / 'moved'}")
        anyio.run(readme_example, str(tmp_path / "home"))
        assert 1 == len(anyio.run(_run_ids, tmp_path / "moved"))
        assert [] == anyio.run(_run_ids, tmp_path / "home")

    def test_an_unreachable_metadata_store_is_one_error_naming_stack_and_store(
        self, tmp_path: Path
    ) -> None:
        """Exit 6, one line, the stack and the metadata store named, the password masked."""
        sh = Shell(tmp_path / "home")
        sh("init")
        sh("metadata-store", "register", "team", "--flavor", "postgresql",
           "--uri=postgresql://ml:pw123@127.0.0.1:1/nowhere")  # fmt: skip
        sh("stack", "register", "team_stack", "-o", "default", "-a", "default", "-m", "team")
        result = sh("run", "list", "--stack", "team_stack", code=6)
        assert "stack 'team_stack'" in result.stderr
        assert "metadata store 'team'" in result.stderr
        assert "pw123" not in result.stderr
        assert 1 == len(result.stderr.strip().splitlines())
        facts = sh.json("metadata-store", "describe", "team")["store"]
        assert not facts["reachable"]
        assert "pw123" not in json.dumps(facts)

        async def record() -> None:
            async with (
                open_store(tmp_path / "home") as store,
                store.pipeline_run("training", stack="team_stack"),
            ):
                pass

        from eventstore import MetadataStoreUnreachableError

        with pytest.raises(MetadataStoreUnreachableError, match="team_stack"):
            anyio.run(record)


class TestStackValidation:
    """The seed's warnings: a local SQLite metadata store needs an orchestrator on this machine."""

    def test_kubernetes_with_a_local_sqlite_metadata_store_is_warned(self, tmp_path: Path) -> None:
        """At register, update and set, with the seed's reason; the stack is still registered."""
        sh = Shell(tmp_path / "home")
        sh("init")
        sh("orchestrator", "register", "k8s", "--flavor", "kubernetes")
        registered = sh("stack", "register", "prod", "-o", "k8s", "-a", "default", "-m", "default")
        reason = "only an orchestrator that runs on this machine"
        assert reason in registered.stderr
        assert "kubernetes orchestrator 'k8s'" in registered.stderr
        assert reason in sh("stack", "set", "prod").stderr
        sh("stack", "set", "default")
        sh("metadata-store", "register", "custom_sqlite", "--flavor", "sqlite", "--uri=/tmp/x")
        updated = sh.json("stack", "update", "prod", "-m", "custom_sqlite")
        assert any(reason in w for w in updated["warnings"])
        # The seed's advice: prefer the default location to a custom uri.
        assert any("default location" in w for w in updated["warnings"])

    def test_local_orchestrators_and_server_stores_are_not_warned(self, tmp_path: Path) -> None:
        """local + this store, kubernetes + postgresql: no warning."""
        sh = Shell(tmp_path / "home")
        sh("init")
        sh("orchestrator", "register", "k8s", "--flavor", "kubernetes")
        sh("metadata-store", "register", "team", "--flavor", "postgresql",
           "--uri=postgresql://ml@db/x")  # fmt: skip
        out = sh.json("stack", "register", "prod", "-o", "k8s", "-a", "default", "-m", "team")
        assert [] == out["warnings"]
        assert [] == sh.json("stack", "set", "default")["warnings"]


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.routing_workers", *args],
        cwd=_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def _streams(store: EventStore, run_id: uuid.UUID) -> list[Any]:
    return [r.event async for r in store.read_stream(run_stream(run_id))]


def test_runs_land_whole_in_the_store_active_when_they_started(tmp_path: Path) -> None:
    """Two processes record runs while a third flips the active stack: each run lands
    whole in exactly one store, the metadata store of the stack it started on."""
    home, custom = tmp_path / "home", tmp_path / "custom"
    _seed(Shell(home), ["--flavor", "sqlite", f"--uri={custom}"])
    stop = tmp_path / "stop"
    switcher = _spawn("switch", str(home), "100000", "default", "custom_stack", str(stop))
    assert switcher.stdout is not None
    assert "flipping\n" == switcher.stdout.readline()
    recorders = [_spawn("record", str(home), "12") for _ in range(2)]
    printed: list[uuid.UUID] = []
    for child in recorders:
        out, err = child.communicate(timeout=300)
        assert 0 == child.returncode, err
        printed += [uuid.UUID(line) for line in out.split()]
    stop.touch()
    _, err = switcher.communicate(timeout=300)
    assert 0 == switcher.returncode, err
    assert 24 == len(printed)
    landed: dict[str, int] = {"home": 0, "custom": 0}

    async def check() -> None:
        async with (
            open_store(home, create=False) as at_home,
            open_store(custom, create=False, default_stack=False) as away,
        ):
            workspace = await at_home.workspace()
            stack_ids = {s.name: s.stack_id for s in workspace.live_stacks()}
            for run_id in printed:
                here, there = await _streams(at_home, run_id), await _streams(away, run_id)
                assert bool(here) != bool(there), run_id  # exactly one store
                events = here or there
                if there:
                    assert isinstance(events[0], RunStackDescribed)
                    events = events[1:]
                started = events[0]
                assert isinstance(started, RunStarted)
                expected = "default" if here else "custom_stack"
                landed["home" if here else "custom"] += 1
                assert stack_ids[expected] == started.stack_id
                assert 2 == sum(isinstance(e, StepStarted) for e in events)
                assert 2 == sum(isinstance(e, StepFinished) for e in events)
                assert isinstance(events[-1], RunFinished)
                assert "completed" == events[-1].status

    anyio.run(check)
    # The stack flipped all along: runs went both ways.
    assert landed["home"] > 0
    assert landed["custom"] > 0


class TestPostgresMetadataStore(PostgresPrefixes):
    """The same with a postgresql metadata store on the test server; moving local runs up."""

    prefix_letter = "r"

    def test_the_readme_example_and_moving_up(self, tmp_path: Path) -> None:
        """Local runs copied up; the example records there; `run list` follows; back home."""
        home = tmp_path / "home"
        team_uri = self.store_uri(tmp_path, "team")
        sh = Shell(home)
        sh("init")
        anyio.run(readme_example, str(home))  # a local run, before the team store exists
        sh("metadata-store", "register", "team", "--flavor", "postgresql", f"--uri={team_uri}")
        sh("stack", "register", "team_stack", "-o", "default", "-a", "default", "-m", "team")
        # Moving up: the home log (its runs too) copied to the server store, then set.
        sh("copy", "--to", team_uri)
        sh("stack", "set", "team_stack")
        assert [("training", "default")] == _names(sh.json("run", "list"))

        anyio.run(readme_example, str(home))
        listing = sh.json("run", "list")
        assert [("training", "team_stack"), ("training", "default")] == _names(listing)
        assert 2 == len(anyio.run(_run_ids, team_uri))
        assert 1 == len(anyio.run(_run_ids, home))
        facts = sh.json("metadata-store", "describe", "team")["store"]
        assert facts["reachable"]
        assert "postgresql" == facts["backend"]

        sh("stack", "set", "default")
        assert [("training", "default")] == _names(sh.json("run", "list"))
        # `run list --stack NAME`: the runs of that stack, read from its metadata store.
        assert [("training", "team_stack")] == _names(
            sh.json("run", "list", "--stack", "team_stack")
        )
