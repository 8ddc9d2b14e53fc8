"""Names and identity as ZenML users expect them (issue 11).

Run names unique among live runs (across processes too), one artifact per
step output, references that never act on another run or artifact than the
one shown, the default stack on every store, component types and flavors,
the ``pipeline`` group.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from eventstore import (
    AlreadyExistsError,
    EventStore,
    RunNameTakenError,
    RunStarted,
    open_store,
)
from eventstore.defaults import ensure_default_stack
from eventstore.demo import run_demo
from eventstore.runs import RunCommands
from projections import AmbiguousReferenceError, QueryError, ViewNotFoundError, open_views

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EventStore]:
    """A store with the default stack registered and active."""
    async with open_store(tmp_path / "store") as opened:
        await ensure_default_stack(opened, tmp_path / "artifacts")
        yield opened


def cli_run(store: Path, *args: str, code: int = 0) -> Result:
    """Run one metaledger command against ``store`` and check its exit code."""
    result = CliRunner().invoke(cli, ["--store", str(store), *args], catch_exceptions=False)
    assert result.exit_code == code, (args, result.output, result.stderr)
    return result


# -- run names -----------------------------------------------------------------------


async def test_a_second_live_run_of_the_same_name_is_refused(store: EventStore) -> None:
    """The second start of ``nightly`` raises RunNameTakenError and appends nothing."""
    first = await store.start_run("etl", run_name="nightly")
    head = await store.head()
    with pytest.raises(RunNameTakenError) as caught:
        await store.start_run("other", run_name="nightly")
    assert isinstance(caught.value, AlreadyExistsError)
    assert caught.value.run_id == first.run_id
    assert "nightly" in str(caught.value)
    assert str(first.run_id) in str(caught.value)
    assert await store.head() == head
    # A finished run still holds its name.
    await first.finish()
    with pytest.raises(RunNameTakenError):
        await store.start_run("etl", run_name="nightly")


async def test_deleting_a_run_frees_its_name_for_one_new_run(store: EventStore) -> None:
    """After a delete the name can be used again, once; generations keep going."""
    names: list[uuid.UUID] = []
    for _ in range(3):
        run = await store.start_run("etl", run_name="reused")
        names.append(run.run_id)
        with pytest.raises(RunNameTakenError):
            await store.start_run("etl", run_name="reused")
        await run.finish()
        await store.delete_run(run.run_id)
    assert len(set(names)) == 3
    started = [e.event async for e in store.read_all(types=["run.started"])]
    assert [e.run_name for e in started if isinstance(e, RunStarted)] == ["reused"] * 3


async def test_two_handles_racing_for_one_name_one_wins(tmp_path: Path) -> None:
    """Both look the name up before either appends: the log's unique claim decides.

    Two handles on one store are two writers as far as the database knows (as
    two processes would be); each waits after its look-up until both looked.
    """
    path = tmp_path / "store"
    async with open_store(path) as setup:
        await ensure_default_stack(setup, tmp_path / "artifacts")
    looked = anyio.Event()
    count = 0
    original = RunCommands._run_name_slot

    async def slow_slot(self: RunCommands, name: str) -> tuple[int, uuid.UUID | None]:
        nonlocal count
        found = await original(self, name)
        count += 1
        if count == 2:
            looked.set()
        with anyio.fail_after(10):
            await looked.wait()
        return found

    outcomes: list[str] = []

    async def start(label: str) -> None:
        async with open_store(path) as handle:
            try:
                await handle.start_run(label, run_name="contested")
            except RunNameTakenError:
                outcomes.append("refused")
            else:
                outcomes.append("started")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RunCommands, "_run_name_slot", slow_slot)
        async with anyio.create_task_group() as group:
            group.start_soon(start, "a")
            group.start_soon(start, "b")
    assert sorted(outcomes) == ["refused", "started"]
    async with open_store(path) as check:
        started = [e async for e in check.read_all(types=["run.started"])]
    assert len(started) == 1


_OPENER = """
import sys, anyio
from eventstore import open_store
from eventstore.logs import configure_logging

async def main():
    sys.stdout.write("ready\\n"); sys.stdout.flush()
    sys.stdin.readline()
    async with open_store(sys.argv[1], backend_options=OPTIONS) as store:
        print("opened", await store.head())

configure_logging()
anyio.run(main)
"""

_RACER = """
import sys, anyio
from eventstore import RunNameTakenError, open_store
from eventstore.logs import configure_logging

async def main():
    async with open_store(sys.argv[1], backend_options=OPTIONS) as store:
        sys.stdout.write("ready\\n"); sys.stdout.flush()
        sys.stdin.readline()
        try:
            run = await store.start_run("race", run_name="same-name")
        except RunNameTakenError:
            print("refused")
        else:
            print("started", run.run_id)

configure_logging()
anyio.run(main)
"""


def _race_processes(uri: str, processes: int, options: str, script: str = _RACER) -> list[str]:
    """Start ``processes`` children, release them together, collect what each did."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script.replace("OPTIONS", options), uri],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(processes)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = []
        for child in children:
            out, err = child.communicate(timeout=120)
            assert child.returncode == 0, err
            outputs.append(out.strip())
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    return outputs


@pytest.mark.slow
def test_processes_starting_one_name_at_once_start_one_run(tmp_path: Path) -> None:
    """Four processes released together start the same run name: exactly one run."""
    uri = str(tmp_path / "store")
    outputs = _race_processes(uri, 4, "{'busy_timeout': 30.0}")
    assert sorted(o.split()[0] for o in outputs) == ["refused"] * 3 + ["started"]

    async def runs() -> list[Any]:
        async with open_store(uri) as store:
            return [e async for e in store.read_all(types=["run.started"])]

    assert len(anyio.run(runs)) == 1


@pytest.mark.postgres
@pytest.mark.slow
def test_processes_starting_one_name_at_once_on_postgres(postgres_uri: str) -> None:
    """The same race on PostgreSQL: exactly one run of the name."""
    outputs = _race_processes(postgres_uri, 4, "{}")
    assert sorted(o.split()[0] for o in outputs) == ["refused"] * 3 + ["started"]


async def test_default_names_never_collide(store: EventStore, tmp_path: Path) -> None:
    """Runs without a name get unique ones, also when started at once; the demo runs twice."""
    runs = []

    async def start() -> None:
        runs.append(await store.start_run("burst"))

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(start)
    assert len({r.state.run_name for r in runs}) == 20
    first = await run_demo(store, artifact_root=tmp_path / "a")
    second = await run_demo(store, artifact_root=tmp_path / "a")
    assert first != second


def test_cli_demo_with_a_taken_run_name_exits_8(tmp_path: Path) -> None:
    """``demo --run-name`` twice: the second is refused with exit code 8, one line."""
    store = tmp_path / "store"
    cli_run(store, "demo", "--run-name", "nightly")
    result = cli_run(store, "demo", "--run-name", "nightly", code=8)
    assert result.stderr.count("\n") == 1
    assert "a run named 'nightly' already exists" in result.stderr
    assert "Traceback" not in result.output
    runs = json.loads(cli_run(store, "--json", "run", "list").stdout)
    assert [r["run_name"] for r in runs] == ["nightly"]


# -- one artifact per step output ---------------------------------------------------


async def test_a_step_cannot_produce_one_output_twice(store: EventStore) -> None:
    """The second ``produce("model")`` of a step is refused; the first artifact stays its output."""
    async with store.pipeline_run("train") as run:
        async with run.step("fit") as step:
            first = await step.produce("model", uri="file:///m1")
            head = await store.head()
            with pytest.raises(AlreadyExistsError, match="already produced output 'model'"):
                await step.produce("model", uri="file:///m2")
            assert await store.head() == head
            # Retrying the very same artifact is still a no-op, not an error.
            again = await step.produce("model", uri="file:///m1", artifact_id=first)
            assert again == first
            assert await store.head() == head
            await step.produce("metrics", uri="file:///metrics")
        # Another step may use the same output name.
        async with run.step("fit_again") as step:
            await step.produce("model", uri="file:///m3")


# -- references --------------------------------------------------------------------


async def _run_named(store: EventStore, name: str, run_id: uuid.UUID | None = None) -> uuid.UUID:
    run = await store.start_run("p", run_name=name, run_id=run_id)
    await run.finish()
    return run.run_id


async def test_a_name_like_another_runs_id_prefix_is_ambiguous(store: EventStore) -> None:
    """``run describe abcd1234`` never picks the run *named* so over the one whose id starts so."""
    target = await _run_named(store, "target", uuid.UUID("abcd1234-0000-4000-8000-000000000001"))
    decoy = await _run_named(store, "abcd1234")
    async with open_views(store) as views:
        await views.catch_up()
        with pytest.raises(AmbiguousReferenceError) as caught:
            await views.query.run("abcd1234")
        message = str(caught.value)
        assert str(target) in message
        assert str(decoy) in message
        assert len(caught.value.candidates) == 2
        # The full id, or the unambiguous name, still name one run each.
        assert (await views.query.run(str(target))).run_name == "target"
        assert (await views.query.run("target")).run_id == str(target)
        assert (await views.query.run(str(decoy)[:8])).run_name == "abcd1234"


async def test_short_and_shared_prefixes_are_refused(store: EventStore) -> None:
    """An id prefix under 4 characters, or one shared by two runs, names no run."""
    one = await _run_named(store, "one", uuid.UUID("12345678-0000-4000-8000-000000000001"))
    two = await _run_named(store, "two", uuid.UUID("12349999-0000-4000-8000-000000000002"))
    async with open_views(store) as views:
        await views.catch_up()
        for ref in ("1", "12", "123"):
            with pytest.raises(AmbiguousReferenceError, match="at least 4 characters"):
                await views.query.run(ref)
        with pytest.raises(AmbiguousReferenceError) as caught:
            await views.query.run("1234")
        assert len(caught.value.candidates) == 2
        assert str(one) in str(caught.value)
        assert str(two) in str(caught.value)
        assert (await views.query.run("12345")).run_id == str(one)
        with pytest.raises(ViewNotFoundError):
            await views.query.run("zzzz")


async def test_artifact_references_follow_the_same_rules(store: EventStore) -> None:
    """Artifacts: exact id, name:version, name, unique 4+ prefix; ambiguity lists candidates."""
    async with store.pipeline_run("p") as run, run.step("s") as step:
        model = await step.produce(
            "model",
            uri="file:///m",
            artifact_id=uuid.UUID("feed0000-0000-4000-8000-000000000001"),
        )
        decoy = await step.produce("decoy", uri="file:///d", name="feed0000")
    async with open_views(store) as views:
        await views.catch_up()
        with pytest.raises(AmbiguousReferenceError) as caught:
            await views.query.artifact("feed0000")
        assert str(model) in str(caught.value)
        assert str(decoy) in str(caught.value)
        with pytest.raises(AmbiguousReferenceError, match="at least 4"):
            await views.query.artifact("f")
        assert (await views.query.artifact(str(model))).artifact_id == str(model)
        assert (await views.query.artifact("feed0000:1")).artifact_id == str(decoy)
        assert (await views.query.artifact("p.s.model")).artifact_id == str(model)


def test_cli_delete_refuses_a_one_character_prefix(tmp_path: Path) -> None:
    """``run delete 0 --yes`` deletes nothing (every run id starts with 0 today)."""
    store = tmp_path / "store"
    cli_run(store, "demo")
    run_id = json.loads(cli_run(store, "--json", "run", "list").stdout)[0]["run_id"]
    result = cli_run(store, "run", "delete", run_id[0], "--yes", code=1)
    assert "at least 4 characters" in result.stderr
    assert len(json.loads(cli_run(store, "--json", "run", "list").stdout)) == 1
    deleted = cli_run(store, "run", "delete", run_id[:8], "--yes")
    assert run_id in deleted.stdout


# -- the default stack ---------------------------------------------------------------


async def test_the_readme_flow_records_runs_on_the_default_stack(tmp_path: Path) -> None:
    """``open_store`` then ``pipeline_run``, nothing else: the run shows the default stack."""
    async with open_store(tmp_path / "example-store") as store:
        async with store.pipeline_run("training") as run, run.step("load") as step:
            await step.produce("data", uri="file:///tmp/data.parquet")
        async with open_views(store) as views:
            await views.catch_up()
            found = await views.query.run(str(run.run_id))
            stacks = await views.query.stacks()
    assert found.stack == "default"
    assert [(s.name, s.active) for s in stacks] == [("default", True)]
    assert {t: c.name for t, c in stacks[0].components.items()} == {
        "orchestrator": "default",
        "artifact_store": "default",
        "metadata_store": "default",
    }
    # Opening again changes nothing.
    async with open_store(tmp_path / "example-store") as store:
        head = await store.head()
        await ensure_default_stack(store)
        assert await store.head() == head


def test_an_empty_log_can_stay_empty(tmp_path: Path) -> None:
    """``default_stack=False`` (import, copy, the CLI) creates an empty log; it stays empty."""

    async def head(**options: Any) -> int:
        async with open_store(tmp_path / "s", **options) as store:
            return await store.head()

    assert anyio.run(lambda: head(default_stack=False)) == 0
    cli_run(tmp_path / "s", "stack", "list")
    assert anyio.run(lambda: head(read_only=True)) == 0
    # Only the open that creates a store makes the stack: an existing empty log
    # (an import or copy target) is never written to behind its user's back.
    assert anyio.run(head) == 0


@pytest.mark.slow
def test_processes_opening_a_new_store_at_once_make_one_default_stack(tmp_path: Path) -> None:
    """Four processes open one new store together: one default stack, one append of it."""
    uri = str(tmp_path / "store")
    outputs = _race_processes(uri, 4, "{'busy_timeout': 30.0}", _OPENER)
    assert all(o.startswith("opened") for o in outputs), outputs

    async def events() -> list[Any]:
        async with open_store(uri) as store:
            return [e async for e in store.read_all()]

    stored = anyio.run(events)
    assert [e.type for e in stored] == [
        "component.registered",
        "component.registered",
        "component.registered",
        "stack.registered",
        "workspace.active_stack_set",
    ]


@pytest.mark.postgres
@pytest.mark.slow
def test_processes_opening_a_new_postgres_store_at_once(postgres_uri: str) -> None:
    """The same on PostgreSQL: five events, one default stack."""
    outputs = _race_processes(postgres_uri, 4, "{}", _OPENER)
    assert all(o.startswith("opened") for o in outputs), outputs

    async def events() -> list[str]:
        async with open_store(postgres_uri) as store:
            return [e.type async for e in store.read_all()]

    assert anyio.run(events) == [
        "component.registered",
        "component.registered",
        "component.registered",
        "stack.registered",
        "workspace.active_stack_set",
    ]


async def test_ensure_default_stack_from_many_tasks_and_handles(tmp_path: Path) -> None:
    """Concurrent ``ensure_default_stack`` calls on two handles all return one stack id."""
    path = tmp_path / "store"
    async with (
        open_store(path, default_stack=False) as one,
        open_store(path, default_stack=False) as two,
    ):
        ids: list[uuid.UUID] = []

        async def ensure(handle: EventStore) -> None:
            ids.append(await ensure_default_stack(handle))

        async with anyio.create_task_group() as group:
            for i in range(6):
                group.start_soon(ensure, one if i % 2 else two)
        assert len(set(ids)) == 1
        assert await one.head() == 5


# -- component types and flavors ---------------------------------------------------


async def test_unknown_flavors_are_refused_unless_registered(store: EventStore) -> None:
    """``k8s`` is refused suggesting ``kubernetes``; a registered custom flavor is accepted."""
    from eventstore import NotFoundError

    head = await store.head()
    with pytest.raises(NotFoundError, match="did you mean 'kubernetes'"):
        await store.register_component("orchestrator", "k", flavor="k8s")
    assert await store.head() == head
    await store.register_component("orchestrator", "k", flavor="kubernetes")
    await store.register_flavor("orchestrator", "in_house", description="ours")
    await store.register_component("orchestrator", "mine", flavor="in_house")
    with pytest.raises(AlreadyExistsError):
        await store.register_flavor("orchestrator", "in_house")
    with pytest.raises(AlreadyExistsError):
        await store.register_flavor("orchestrator", "local")
    # A type outside ZenML's catalogue (a newer orchestrator's) takes any flavor.
    await store.register_component("quantum_annealer", "q", flavor="dwave")


async def test_artifact_types_outside_zenmls_list_are_refused(store: EventStore) -> None:
    """``produce(artifact_type="Model")`` is refused, suggesting ``ModelArtifact``."""
    from eventstore import NotFoundError

    async with store.pipeline_run("p") as run, run.step("s") as step:
        with pytest.raises(NotFoundError, match="did you mean 'ModelArtifact'"):
            await step.produce("m", uri="file:///m", artifact_type="Model")
        await step.produce("m", uri="file:///m", artifact_type="ModelArtifact")
    async with open_views(store) as views:
        await views.catch_up()
        with pytest.raises(QueryError, match="did you mean 'ModelArtifact'"):
            await views.query.artifacts(artifact_type="model")
        assert len(await views.query.artifacts(artifact_type="ModelArtifact")) == 1


def test_cli_flavor_list_register_and_refusals(tmp_path: Path) -> None:
    """``orchestrator flavor list`` lists built-ins; unknown flavors and types are errors."""
    store = tmp_path / "store"
    cli_run(store, "init")
    flavors = json.loads(cli_run(store, "orchestrator", "flavor", "list", "--json").stdout)
    names = [f["name"] for f in flavors]
    assert names[:3] == ["local", "local_docker", "kubernetes"]
    assert all(f["builtin"] for f in flavors)
    refused = cli_run(store, "orchestrator", "register", "k", "--flavor", "k8s", code=4)
    assert "did you mean 'kubernetes'" in refused.stderr
    assert "flavor register" in refused.stderr
    cli_run(store, "component", "experiment-tracker", "flavor", "register", "ours")
    cli_run(store, "component", "experiment-tracker", "register", "t", "--flavor", "ours")
    custom = json.loads(
        cli_run(store, "component", "experiment-tracker", "flavor", "list", "--json").stdout
    )
    assert {"name": "ours", "builtin": False} in [
        {"name": f["name"], "builtin": f["builtin"]} for f in custom
    ]
    unknown = cli_run(store, "component", "foo", "list", code=1)
    assert "'foo' is not a component type" in unknown.stderr
    assert "No foo" not in unknown.stdout
    typo = cli_run(store, "component", "experiment-trackr", "list", code=1)
    assert "did you mean 'experiment-tracker'" in typo.stderr


# -- the pipeline group --------------------------------------------------------------


def test_cli_pipeline_list_and_runs(tmp_path: Path) -> None:
    """``pipeline list`` counts runs and shows the last; ``pipeline runs`` lists them."""
    store = tmp_path / "store"
    cli_run(store, "demo", "--run-name", "first")
    cli_run(store, "demo", "--run-name", "second")
    pipelines = json.loads(cli_run(store, "--json", "pipeline", "list").stdout)
    assert [(p["name"], p["runs"], p["last_run_name"], p["last_status"]) for p in pipelines] == [
        ("training_pipeline", 2, "second", "completed")
    ]
    table = cli_run(store, "pipeline", "list").stdout
    assert "training_pipeline" in table
    assert "second" in table
    runs = json.loads(cli_run(store, "pipeline", "runs", "training_pipeline", "--json").stdout)
    assert [r["run_name"] for r in runs] == ["second", "first"]
    missing = cli_run(store, "pipeline", "runs", "training", code=4)
    assert "did you mean 'training_pipeline'" in missing.stderr
    hint = cli_run(store, "run", "describe", "training_pipeline", code=4)
    assert "metaledger pipeline runs training_pipeline" in hint.stderr
