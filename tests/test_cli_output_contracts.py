"""Output contracts: --json, honest listings, tables that fit, lineage, as-of, grammar."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

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
    "openlineage import": ["{tmp}/empty.jsonl"],
    "replay": ["--to", "0"],
    "projections status": [],
    "projections rebuild": ["runs"],
    "verify": [],
    "export": ["{tmp}/backup.jsonl"],
    "import": ["{tmp}/backup.jsonl"],
    "copy": ["--to", "{tmp}/copied"],
    "pipeline list": [],
    "pipeline runs": ["training_pipeline"],
    "orchestrator flavor list": [],
    "orchestrator flavor register": ["my_orchestrator"],
    "artifact-store flavor list": [],
    "artifact-store flavor register": ["my_artifact_store"],
    "metadata-store flavor list": [],
    "metadata-store flavor register": ["my_metadata_store"],
    "component flavor list": ["experiment-tracker"],
    "component flavor register": ["experiment-tracker", "my_tracker"],
    "orchestrator register": ["o2", "--flavor", "local"],
    "orchestrator update": ["o2", "--path=/tmp/x"],
    "orchestrator rename": ["o2", "o3"],
    "artifact-store register": ["a2", "--flavor", "local", "--path=/tmp/a"],
    "artifact-store update": ["a2", "--path=/tmp/b"],
    "artifact-store rename": ["a2", "a3"],
    "metadata-store register": ["m2", "--flavor", "sqlite"],
    "metadata-store migrate": ["m2"],
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
    "token create": ["ci", "--scope", "ingest", "--token-file", "{tmp}/tokens.json"],
    "token list": ["--token-file", "{tmp}/tokens.json"],
    "token revoke": ["ci", "--token-file", "{tmp}/tokens.json"],
}
#: Commands that run until stopped: tests/test_server.py runs them as a user does.
_NOT_WALKED = {"serve"}


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
    missing = sorted(set(leaves) - set(_WALK) - _NOT_WALKED)
    assert not missing, f"give these commands arguments in _WALK: {missing}"
    store = tmp_path / "store"
    (tmp_path / "empty.jsonl").write_bytes(b"")
    run_id = ""
    for name, template in _WALK.items():
        args = [a.replace("{tmp}", str(tmp_path)).replace("{run}", run_id) for a in template]
        words = name.split()
        # `component TYPE verb`: the type goes between the group and the verb.
        if words[0] == "component":
            command = [words[0], args[0], *words[1:], *args[1:]]
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


# -- a store with a few demo runs, shared by the read-only tests below ----------------


@pytest.fixture(scope="module")
def runs_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with the default stack and three demo runs (one failed try each)."""
    import anyio

    from eventstore import open_store
    from eventstore.defaults import ensure_default_stack
    from eventstore.demo import run_demo

    path = tmp_path_factory.mktemp("contracts") / "store"

    async def main() -> None:
        async with open_store(path) as store:
            await ensure_default_stack(store, path / "artifacts")
            for _ in range(3):
                await run_demo(store)

    anyio.run(main)
    return path


class TestListings:
    """One meaning of --limit, --all for everything, and a cut listing says so."""

    def test_run_list_cut_has_a_footer_and_a_stderr_note(self, runs_store: Path) -> None:
        """--limit 2 of 3 runs: a table footer; with --json two items and a note on stderr."""
        table = _invoke(runs_store, "run", "list", "--limit", "2")
        assert "2 of 3 runs; --limit N or --all for more" in table.stdout
        cut = _invoke(runs_store, "run", "list", "--limit", "2", "--json")
        assert 2 == len(json.loads(cut.stdout))
        assert "2 of 3 runs" in cut.stderr
        whole = _invoke(runs_store, "run", "list", "--json")
        assert 3 == len(json.loads(whole.stdout))
        assert "" == whole.stderr  # nothing was cut: no note

    def test_limit_zero_and_all_mean_everything_for_every_listing(self, runs_store: Path) -> None:
        """--limit 0 and --all list every item, for runs, artifacts and events alike."""
        for listing, total in (("run", 3), ("artifact", 3 * 7), ("events", None)):
            words = ["events", "list"] if listing == "events" else [listing, "list"]
            zero = json.loads(_invoke(runs_store, *words, "--limit", "0", "--json").stdout)
            every = json.loads(_invoke(runs_store, *words, "--all", "--json").stdout)
            assert zero == every, listing
            assert len(zero) > 0, listing
            if total is not None:
                assert total == len(zero), listing

    def test_artifact_list_is_cut_honestly(self, runs_store: Path) -> None:
        """The default cap on artifacts is reported, with the total."""
        result = _invoke(runs_store, "artifact", "list", "--limit", "5", "--json")
        assert 5 == len(json.loads(result.stdout))
        assert "5 of 21 artifacts; --limit N or --all for more" in result.stderr


class TestTablesFit:
    """At 80 columns no line is wider than the terminal and no cell is cut into fragments."""

    @pytest.mark.parametrize("columns", [80, 120])
    def test_run_list_and_describe_fit(self, runs_store: Path, columns: int) -> None:
        """Each run is one line with its 8-character id and whole status; no line too wide."""
        env = {"COLUMNS": str(columns)}
        listing = _invoke(runs_store, "run", "list", env=env).stdout
        runs = json.loads(_invoke(runs_store, "run", "list", "--json").stdout)
        for line in listing.splitlines():
            assert len(line) <= columns, line
        for run in runs:
            [row] = [line for line in listing.splitlines() if run["run_id"][:8] in line]
            assert "completed" in row.split()
        describe = _invoke(runs_store, "run", "describe", runs[0]["run_id"], env=env).stdout
        for line in describe.splitlines():
            assert len(line) <= columns, line
        step_rows = [line for line in describe.splitlines() if line.startswith("  train ")]
        assert 2 == len(step_rows)  # the failed try and the retry, one line each

    def test_wide_shows_every_column(self, runs_store: Path) -> None:
        """--wide keeps STACK, PIPELINE and STEPS even at 80 columns."""
        narrow = _invoke(runs_store, "run", "list", env={"COLUMNS": "80"}).stdout
        wide = _invoke(runs_store, "run", "list", "--wide", env={"COLUMNS": "80"}).stdout
        assert "STACK" not in narrow
        for header in ("PIPELINE", "STACK", "STEPS", "RUN NAME"):
            assert header in wide

    def test_piped_output_is_not_padded(self, runs_store: Path) -> None:
        """Without a terminal, lines end at their last character (no padding to 200 columns)."""
        text = _invoke(runs_store, "run", "list").stdout
        assert text.strip()
        for line in text.splitlines():
            assert line == line.rstrip(), repr(line)

    def test_a_real_terminal_of_80_columns(self, runs_store: Path) -> None:
        """In a pseudo-terminal 80 wide (no $COLUMNS), run list fits it."""
        import fcntl
        import struct
        import termios

        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 80, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        env["TERM"] = "dumb"
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "--store", str(runs_store), "run", "list"],
            stdin=follower,
            stdout=follower,
            stderr=follower,
            env=env,
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(leader)
        lines = b"".join(chunks).decode().replace("\r", "").splitlines()
        assert 0 == process.wait(timeout=60), lines
        assert any("RUN ID" in line for line in lines), lines
        for line in lines:
            assert len(line) <= 80, line
        runs = json.loads(_invoke(runs_store, "run", "list", "--json").stdout)
        for run in runs:  # one line per run, not cells wrapped into fragments
            [row] = [line for line in lines if run["run_id"][:8] in line]
            assert "completed" in row.split(), row


class TestLineage:
    """The tree keeps to --depth and tells a failed try from its retry."""

    def test_tree_respects_depth(self, runs_store: Path) -> None:
        """--run --depth 1: no branch goes further than two edges from its root."""
        run_id = json.loads(_invoke(runs_store, "run", "list", "--json").stdout)[0]["run_id"]
        tree = _invoke(runs_store, "artifact", "lineage", run_id, "--run", "--depth", "1").stdout
        levels = [line.index("── ") // 4 for line in tree.splitlines() if "── " in line]
        # root (0) -> direction (1) -> first edge (2) -> second edge (3) -> "more" marker (4)
        assert max(levels) <= 4, tree
        deeper = _invoke(runs_store, "artifact", "lineage", run_id, "--run", "--depth", "3")
        assert (
            max(line.index("── ") // 4 for line in deeper.stdout.splitlines() if "── " in line) > 4
        )

    def test_steps_show_their_status(self, runs_store: Path) -> None:
        """The failed train try and its retry both consume the features, with their status."""
        tree = _invoke(
            runs_store,
            "artifact",
            "lineage",
            "training_pipeline.featurize_train.features",
            "--downstream",
            "--depth",
            "1",
        ).stdout
        assert "step train · failed ·" in tree
        assert "step train · completed ·" in tree
        graph = json.loads(
            _invoke(
                runs_store, "artifact", "lineage", "training_pipeline.train.model", "--json"
            ).stdout
        )
        assert {"completed"} <= {n["status"] for n in graph["nodes"] if n["kind"] == "step"}


class TestAsOf:
    """--as-of says what it answers."""

    def test_before_the_first_event_says_where_the_log_begins(self, runs_store: Path) -> None:
        """A time before the log: 'the log begins at ...', not 'create one with init'."""
        result = _invoke(runs_store, "stack", "list", "--as-of", "2000-01-01T00:00:00Z")
        assert "the log begins at" in result.stderr
        assert "metaledger init" not in result.output

    def test_position_and_time_are_stated(self, runs_store: Path) -> None:
        """As of a position: the position, the head and the time of that event."""
        result = _invoke(runs_store, "run", "list", "--as-of", "5", "--json")
        assert [] == json.loads(result.stdout)
        assert "the views stand at position 5 of" in result.stderr
        assert "recorded at 20" in result.stderr


class TestGrammar:
    """Generated messages: articles and plurals."""

    def test_an_artifact_store_and_an_orchestrator(self, tmp_path: Path) -> None:
        """A name already taken: 'an artifact store named ...', 'an orchestrator named ...'."""
        store = tmp_path / "store"
        assert 0 == _invoke(store, "init").exit_code
        taken = _invoke(store, "artifact-store", "register", "default", "-f", "local")
        assert "an artifact store named 'default' already exists" in taken.stderr
        taken = _invoke(store, "orchestrator", "register", "default", "-f", "local")
        assert "an orchestrator named 'default' already exists" in taken.stderr
        used = _invoke(store, "orchestrator", "delete", "default")
        assert "is used by stack default; change or delete it first" in used.stderr

    def test_replay_to_zero_and_one(self, runs_store: Path) -> None:
        """`replay --to 0` names no 'positions 1-0'; one event is '1 event'."""
        zero = _invoke(runs_store, "replay", "--to", "0").stdout
        assert "1-0" not in zero
        assert "Replayed 0 events (nothing: position 0 is before the first event" in zero
        one = _invoke(runs_store, "replay", "--to", "1").stdout
        assert "Replayed 1 event (position 1 of" in one

    def test_one_append_is_singular(self, runs_store: Path, tmp_path: Path) -> None:
        """A dry run of one line says '1 event in 1 append is valid'."""
        import uuid

        line = {
            "stream_id": "workspace",
            "type": "component.registered",
            "data": {
                "component_id": str(uuid.uuid4()),
                "type": "experiment_tracker",
                "flavor": "mlflow",
                "name": "grammar",
            },
        }
        path = tmp_path / "one.jsonl"
        path.write_text(json.dumps(line) + "\n")
        result = _invoke(runs_store, "events", "append", str(path), "--dry-run")
        assert 0 == result.exit_code, result.output
        assert "1 event in 1 append is valid" in result.stdout


def test_a_closed_pipe_is_no_internal_error(runs_store: Path) -> None:
    """`metaledger run describe ... | head -1`: the reader leaves; no 'internal error'."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "--store", str(runs_store), "run", "list", "--wide"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdout.close()  # before the command writes: its first write meets a closed pipe
    error = process.stderr.read().decode()
    process.stderr.close()
    assert 0 == process.wait(timeout=60), error
    assert "internal error" not in error


_CELL = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "Zs")), max_size=60
)


@given(
    rows=st.lists(st.lists(_CELL, min_size=4, max_size=4), min_size=1, max_size=5),
    width=st.integers(min_value=60, max_value=160),
)
@settings(max_examples=60, deadline=None)
def test_a_fitted_table_never_exceeds_the_terminal(rows: list[list[str]], width: int) -> None:
    """Whatever the values (wide characters included), a fitted table is at most `width`."""
    from rich.cells import cell_len

    from cli.output import Column, _ellipsize, _fit

    columns = [
        Column("NAME", fit="middle", min_width=12),
        Column("KIND", drop=2),
        Column("NOTE", drop=1),
        Column("ID", fit="end", min_width=8),
    ]
    kept, fitted, widths = _fit(columns, [list(r) for r in rows], width)
    assert sum(widths.values()) + 3 * len(kept) + 1 <= width
    for row in fitted:
        for index, cell in enumerate(row):
            assert cell_len(cell) <= widths[index]
    for text in (row[0] for row in rows):
        for size in (1, 5, 12):
            assert cell_len(_ellipsize(text, size, "middle")) <= size


def test_a_listing_is_cut_only_when_the_total_is_larger() -> None:
    """``ListingCut.of``: the one rule every listing's footer follows."""
    from cli.output import ListingCut

    assert ListingCut.of(100, None, "run") is None  # not filled: no count asked
    assert ListingCut.of(100, 100, "run") is None  # exactly all of them
    cut = ListingCut.of(100, 6250, "run")
    assert cut is not None
    assert cut.message() == "100 of 6,250 runs; --limit N or --all for more"
