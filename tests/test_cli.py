"""The CLI as a user types it: init, components, stacks, runs, artifacts, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import COMMANDS, cli


class Shell:
    """Runs metaledger commands against one store, as a user would."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0, input: str | None = None) -> Result:
        result = self.runner.invoke(
            cli, ["--store", str(self.store), *args], input=input, catch_exceptions=False
        )
        assert code == result.exit_code, (args, result.output, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def sh(tmp_path: Path) -> Shell:
    """A shell on a fresh store path (the store itself is not created)."""
    return Shell(tmp_path / "store")


@pytest.fixture
def demo(sh: Shell) -> Shell:
    """A shell on a store that holds one demo run."""
    sh("demo")
    return sh


class TestInit:
    """``init`` creates the store and the default stack, once."""

    def test_init_is_idempotent(self, sh: Shell) -> None:
        """A second init changes nothing and says so."""
        first = sh("init")
        assert f"Initialised the metaledger store at {sh.store}." in first.stdout
        assert "Active stack: default." in first.stdout
        second = sh("init")
        assert "already initialised; nothing changed" in second.stdout
        stacks = sh.json("stack", "list")
        assert [
            {
                "name": "default",
                "active": True,
                "components": {
                    "artifact_store": "default",
                    "metadata_store": "default",
                    "orchestrator": "default",
                },
            }
        ] == [{k: s[k] for k in ("name", "active", "components")} for s in stacks]

    def test_commands_on_a_missing_store_say_how_to_create_it(self, sh: Shell) -> None:
        """Reading a store that does not exist: exit 3, a hint, nothing created."""
        result = sh("stack", "list", code=3)
        assert "metaledger init" in result.stderr
        assert "Traceback" not in result.output
        assert not sh.store.exists()

    def test_a_random_file_is_not_a_store(self, tmp_path: Path) -> None:
        """A store path holding a random file: exit 3 naming it, the file untouched."""
        store = tmp_path / "notastore"
        store.mkdir()
        (store / "ledger.db").write_bytes(b"\x00garbage" * 100)
        result = Shell(store)("run", "list", code=3)
        assert "ledger.db" in result.stderr
        assert b"\x00garbage" * 100 == (store / "ledger.db").read_bytes()


class TestSeedCommands:
    """The ZenML seed's four commands work with metaledger in place of zenml."""

    def test_seed(self, sh: Shell) -> None:
        """stack list; metadata-store describe; register; stack register --set."""
        sh("init")
        listing = sh("stack", "list").stdout
        assert "ACTIVE" in listing
        assert "STACK NAME" in listing
        assert "ARTIFACT_STORE" in listing
        assert "METADATA_STORE" in listing
        assert "ORCHESTRATOR" in listing
        described = sh("metadata-store", "describe").stdout
        assert "COMPONENT_PROPERTY" in described
        assert "Metadata Store 'default' (ACTIVE)" in described
        for field in ("TYPE", "FLAVOR", "NAME", "UUID", "URI"):
            assert field in described
        out = sh("metadata-store", "register", "custom_sqlite", "--flavor", "sqlite").stdout
        assert "Successfully registered metadata store `custom_sqlite`." in out
        out = sh(
            "stack", "register", "custom_stack", "-o", "default", "-a", "default",
            "-m", "custom_sqlite", "--set",
        ).stdout  # fmt: skip
        assert "Stack `custom_stack` successfully registered!" in out
        stacks = {s["name"]: s for s in sh.json("stack", "list")}
        assert stacks["custom_stack"]["active"]
        assert not stacks["default"]["active"]
        assert "custom_sqlite" == stacks["custom_stack"]["components"]["metadata_store"]


class TestComponents:
    """Component commands for the named groups and ``component TYPE``."""

    def test_register_describe_update_rename_delete(self, sh: Shell) -> None:
        """A component's whole life through the CLI, with JSON configuration values."""
        sh("init")
        sh("orchestrator", "register", "k8s", "--flavor", "kubernetes",
           "--context=prod", "--replicas", "3", "--gpu=true", "--label", "team=ml")  # fmt: skip
        item = sh.json("orchestrator", "describe", "k8s")
        assert {"context": "prod", "replicas": 3, "gpu": True} == item["configuration"]
        assert {"team": "ml"} == item["labels"]
        assert not item["active"]
        sh("orchestrator", "update", "k8s", "--context=staging", "--remove-key", "gpu")
        assert {"context": "staging", "replicas": 3} == sh.json("orchestrator", "describe", "k8s")[
            "configuration"
        ]
        sh("orchestrator", "rename", "k8s", "kube")
        assert ["default", "kube"] == [c["name"] for c in sh.json("orchestrator", "list")]
        sh("orchestrator", "delete", "kube")
        assert ["default"] == [c["name"] for c in sh.json("orchestrator", "list")]

    def test_delete_is_refused_while_a_stack_uses_it(self, sh: Shell) -> None:
        """Deleting a used component names the stacks and changes nothing."""
        sh("init")
        result = sh("artifact-store", "delete", "default", code=1)
        assert "used by stack default; change or delete it first" in result.stderr
        assert 1 == len(sh.json("artifact-store", "list"))

    def test_generic_component_group(self, sh: Shell) -> None:
        """``component TYPE`` manages any type; a bad type is refused."""
        sh("init")
        sh("component", "experiment-tracker", "register", "mlflow", "--flavor", "mlflow",
           "--tracking_uri=http://localhost:5000")  # fmt: skip
        [item] = sh.json("component", "experiment-tracker", "list")
        assert ("mlflow", "experiment_tracker") == (item["name"], item["type"])
        result = sh("component", "Not A Type", "list", code=1)
        assert "is not a component type" in result.stderr

    def test_secrets_are_masked_unless_asked(self, sh: Shell) -> None:
        """Keys that look secret are masked in tables and JSON, unless --show-secrets."""
        sh("init")
        sh("artifact-store", "register", "s3", "--flavor", "s3", "--path=s3://b",
           "--aws_secret_access_key=abc123", "--api-token=xyz")  # fmt: skip
        masked = sh("artifact-store", "describe", "s3").stdout
        assert "abc123" not in masked
        assert "xyz" not in masked
        assert "********" in masked
        assert "s3://b" in masked
        config = sh.json("artifact-store", "describe", "s3")["configuration"]
        assert "********" == config["aws_secret_access_key"]
        shown = sh("artifact-store", "describe", "s3", "--show-secrets", "--json").stdout
        assert "abc123" in shown

    def test_unknown_name_suggests_close_matches(self, sh: Shell) -> None:
        """A misspelt name: exit 4 and a suggestion."""
        sh("init")
        result = sh("orchestrator", "describe", "defualt", code=4)
        assert "did you mean 'default'" in result.stderr
        assert "Traceback" not in result.output

    def test_bad_configuration_arguments(self, sh: Shell) -> None:
        """Configuration must be --key=value."""
        sh("init")
        result = sh("orchestrator", "register", "x", "--flavor", "local", "stray", code=1)
        assert "--key=value" in result.stderr


class TestStacks:
    """Stack commands."""

    def test_stack_lifecycle(self, sh: Shell) -> None:
        """register, describe, set, update, rename, delete (not the active one)."""
        sh("init")
        sh("orchestrator", "register", "airflow", "--flavor", "airflow")
        sh("stack", "register", "prod", "-o", "airflow", "-a", "default", "-m", "default",
           "-c", "experiment-tracker=none", code=4)  # fmt: skip
        sh("stack", "register", "prod", "-o", "airflow", "-a", "default", "-m", "default")
        described = sh.json("stack", "describe", "prod")
        assert "airflow" == described["components"]["orchestrator"]
        assert not described["active"]
        sh("stack", "set", "prod")
        assert "prod" == sh.json("stack", "describe")["name"]
        result = sh("stack", "delete", "prod", code=1)
        assert "active stack" in result.stderr
        sh("stack", "update", "prod", "-o", "default")
        assert "default" == sh.json("stack", "describe", "prod")["components"]["orchestrator"]
        sh("stack", "rename", "prod", "production")
        sh("stack", "set", "default")
        sh("stack", "delete", "production")
        assert ["default"] == [s["name"] for s in sh.json("stack", "list")]

    def test_stack_list_as_of_a_past_position(self, sh: Shell) -> None:
        """--as-of shows the stacks as they were."""
        sh("init")
        head = sh.json("store", "describe")["head_position"]
        sh("orchestrator", "register", "o2", "--flavor", "local")
        sh("stack", "register", "later", "-o", "o2", "-a", "default", "-m", "default")
        assert 2 == len(sh.json("stack", "list"))
        assert ["default"] == [s["name"] for s in sh.json("stack", "list", "--as-of", str(head))]
        result = sh("stack", "list", "--as-of", "yesterday-ish", code=1)
        assert "--as-of" in result.stderr


class TestRuns:
    """Run commands on a store holding the demo run."""

    def test_run_list_json_shape(self, demo: Shell) -> None:
        """run list --json items carry the documented fields, times in ISO-8601 UTC."""
        [item] = demo.json("run", "list")
        for key in ("run_id", "pipeline_name", "run_name", "status", "stack", "started_at",
                    "finished_at"):  # fmt: skip
            assert key in item
        assert ("training_pipeline", "completed", "default") == (
            item["pipeline_name"],
            item["status"],
            item["stack"],
        )
        assert item["started_at"].endswith("Z")
        assert {"completed": 6, "failed": 1} == item["step_counts"]

    def test_run_list_filters(self, demo: Shell) -> None:
        """Filters narrow the list; since/until accept ages and ISO times."""
        assert 1 == len(demo.json("run", "list", "--pipeline", "training_pipeline"))
        assert 0 == len(demo.json("run", "list", "--pipeline", "other"))
        assert 0 == len(demo.json("run", "list", "--status", "failed"))
        assert 1 == len(demo.json("run", "list", "--stack", "default", "--since", "1h"))
        assert 0 == len(demo.json("run", "list", "--until", "2000-01-01T00:00:00Z"))
        demo("run", "list", "--status", "bogus", code=2)
        assert 1 == len(demo("run", "list", "--nl").stdout.splitlines())

    def test_run_describe_by_id_prefix_and_name(self, demo: Shell) -> None:
        """A run can be named by id, unique id prefix or run name; steps are described."""
        [item] = demo.json("run", "list")
        for ref in (item["run_id"], item["run_id"][:6], item["run_name"]):
            described = demo.json("run", "describe", ref)
            assert item["run_id"] == described["run_id"]
        steps = described["steps"]
        assert ["load_data", "split", "featurize_train", "featurize_test", "train", "train",
                "evaluate"] == [s["name"] for s in steps]  # fmt: skip
        train_failed, train_ok = steps[4], steps[5]
        assert ("failed", "completed") == (train_failed["status"], train_ok["status"])
        assert {"loss": 0.12} == train_ok["metadata"]
        assert {"model", "test_features"} == set(steps[6]["inputs"])
        assert train_ok["outputs"]["model"] == steps[6]["inputs"]["model"]
        text = demo("run", "describe", item["run_name"]).stdout
        assert "FlakyStepError" in text
        assert "6 completed, 1 failed" in text

    def test_run_delete_is_a_tombstone(self, demo: Shell) -> None:
        """run delete forgets the run in the views; the log keeps its events."""
        [item] = demo.json("run", "list")
        head = demo.json("store", "describe")["head_position"]
        demo("run", "delete", item["run_id"][:8], input="n\n", code=1)
        demo("run", "delete", item["run_id"][:8], "--yes", "--reason", "a test")
        assert [] == demo.json("run", "list")
        assert head + 1 == demo.json("store", "describe")["head_position"]
        demo("run", "describe", item["run_id"], code=4)


class TestArtifacts:
    """Artifact commands."""

    def test_list_describe(self, demo: Shell) -> None:
        """Artifacts list newest first; describe by NAME:VERSION shows producer and consumers."""
        items = demo.json("artifact", "list")
        assert 7 == len(items)
        assert ["ModelArtifact"] == [
            a["artifact_type"] for a in demo.json("artifact", "list", "--type", "ModelArtifact")
        ]
        model = demo.json("artifact", "describe", "training_pipeline.train.model:1")
        assert ("train", "model", 1) == (model["step_name"], model["output_name"], model["version"])
        assert [("evaluate", "model")] == [
            (c["step_name"], c["input_name"]) for c in model["consumers"]
        ]

    def test_lineage_formats(self, demo: Shell) -> None:
        """lineage as JSON (nodes and edges), a tree, and Graphviz DOT."""
        graph = demo.json("artifact", "lineage", "training_pipeline.evaluate.metrics",
                          "--upstream", "--depth", "10")  # fmt: skip
        labels = {n["label"] for n in graph["nodes"] if n["kind"] == "step"}
        assert {"load_data", "split", "featurize_train", "featurize_test", "train",
                "evaluate"} == labels  # fmt: skip
        assert not graph["truncated"]
        assert all({"source", "target", "kind", "name"} <= set(e) for e in graph["edges"])
        tree = demo("artifact", "lineage", "training_pipeline.split.train", "--downstream").stdout
        assert "featurize_train" in tree
        dot = demo("artifact", "lineage", "training_pipeline.split.train",
                   "--format", "dot").stdout  # fmt: skip
        assert dot.startswith("digraph lineage {")
        assert "->" in dot


class TestHelp:
    """Help is quick to reach and complete."""

    def test_static_summaries_match_the_commands(self) -> None:
        """The root's summaries (shown without importing) equal each command's own."""
        for name in COMMANDS:
            command = cli.get_command(None, name)  # type: ignore[arg-type]
            assert command is not None, name
            assert COMMANDS[name][1] == command.get_short_help_str(limit=200), name

    def test_misspelt_command_suggests(self, sh: Shell) -> None:
        """An unknown command suggests the close ones."""
        result = sh("stak", "list", code=2)
        assert "Did you mean 'stack'" in result.stderr


def test_ctrl_c_exits_130_with_the_store_intact(sh: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupt mid-command: one line, exit 130, and the store still verifies."""
    sh("init")
    import cli.context

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        # `stack list` runs its query through cli.context.run_on_views.
        patch.setattr(cli.context, "run_async", interrupted)
        result = sh("stack", "list", code=130)
    assert "Interrupted; the store is intact." in result.stderr
    assert sh.json("verify")["ok"]
