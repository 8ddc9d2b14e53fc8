"""Hostile strings and values are data: never markup, never terminal control, never a crash.

Names, errors and values with rich markup or control characters are shown
literally (escaped visibly for people, exact in JSON); integers beyond 64 bits,
absurd nesting, lone surrogates, non-UTF-8 arguments and positions beyond the log
give one clear line and a documented exit code (CLI) or InvalidEventError (API).
Exit code 70 (internal error) is unreachable from any input: hypothesis drives
the parsers and the API with such values.
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
import msgspec
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.main import cli
from cli.output import json_text, visible
from eventstore import (
    ComponentRegistered,
    EventCodec,
    InvalidEventError,
    LedgerError,
    MetadataLogged,
    RunDeleted,
    RunStarted,
    open_store,
)

ROOT = Path(__file__).resolve().parent.parent
EXIT_INTERNAL = 70
HOSTILE = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))

#: Pieces a hostile name is built from: markup, escapes, bidi overrides, surrogates.
FRAGMENTS = [
    "[bold]",
    "[/bold]",
    "[/x]",
    "[",
    "]",
    "[link=http://evil]",
    ":smile:",
    "\x1b[2J",
    "\x1b]0;title\x07",
    "\x9b31m",
    "\r",
    "\n",
    "\t",
    "\x00",
    "\x7f",
    "\u202e",
    "\u2066",
    "\ufeff",
    "\udcff",
    "\ud800",
    "é",
    "名",
    "\\x1b",
    "%s",
    "{}",
    "'",
    '"',
    "-",
    "--",
]
hostile_text = st.lists(
    st.sampled_from(FRAGMENTS) | st.text(max_size=4), min_size=1, max_size=5
).map("".join)
huge_ints = st.sampled_from([2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, -(10**40), 10**1000])
hostile_numbers = st.sampled_from(
    ["0", "-1", "9223372036854775807", "9223372036854775808", "1" * 30, "9" * 5000, "²", "1e3"]
) | st.integers().map(str)


def nested(depth: int) -> Any:
    """A list nested ``depth`` levels deep."""
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def nested_text(depth: int) -> str:
    """JSON text of a list nested ``depth`` levels deep."""
    return "[" * depth + "]" * depth


hostile_values = st.recursive(
    st.none() | st.booleans() | st.integers() | huge_ints | hostile_text | st.floats(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(hostile_text, children),
    max_leaves=8,
) | st.sampled_from([nested(70), nested(3000)])


def run_cli(store: Path, *args: str, input: bytes | str | None = None) -> Any:
    """Run the CLI in-process; never an internal error, never an unexpected exception."""
    result = CliRunner().invoke(cli, ["--store", str(store), *args], input=input)
    assert result.exit_code != EXIT_INTERNAL, (args, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args,
        repr(result.exception),
    )
    assert "Traceback" not in result.output
    return result


def no_raw_control(text: str) -> None:
    """Nothing a terminal would act on: no C0/C1 control but newline, no bidi override."""
    assert visible(text, keep_newlines=True) == text, text


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store initialised once for the module (the hypothesis tests share it)."""
    path = tmp_path_factory.mktemp("hostile") / "store"
    assert CliRunner().invoke(cli, ["--store", str(path), "init"]).exit_code == 0
    return path


#: A built-in flavor: components of a made-up one are refused before their values.
LOCAL = "local"
#: Registering an orchestrator, before its values.
_REGISTER = ("orchestrator", "register", "n", "-f", LOCAL)


class TestShownLiterally:
    """Markup and control characters in names, values and errors are data."""

    def test_visible_escapes_what_a_terminal_would_act_on(self) -> None:
        """ESC, C1 CSI, bidi overrides, surrogates become backslash escapes; text stays."""
        assert visible("a\x1b[31mb") == "a\\x1b[31mb"
        assert visible("\x9b2J\u202e\udcff") == "\\x9b2J\\u202e\\udcff"
        assert visible("tab\tnl\n") == "tab\\tnl\\n"
        assert visible("two\nlines\x07", keep_newlines=True) == "two\nlines\\x07"
        assert visible("[bold]名 é 👨\u200d👩\u200d👧") == "[bold]名 é 👨\u200d👩\u200d👧"

    def test_json_text_stays_exact(self) -> None:
        """JSON output writes C1 and bidi characters as \\u escapes: the same value."""
        value = {"k": "\x9b\u202e\x7f\x1b"}
        text = json_text(msgspec.json.encode(value).decode())
        no_raw_control(text)
        assert json.loads(text) == value

    def test_markup_names_list_and_describe(self, tmp_path: Path) -> None:
        """Names and values with rich markup: listed and described literally (was exit 70)."""
        store = tmp_path / "s"
        run_cli(store, "init")
        flavor = run_cli(store, "orchestrator", "flavor", "register", "[red]")
        assert flavor.exit_code == 0, flavor.output
        for name in ("[bold]x[/bold]", "[/x]", "[link=http://e]y"):
            result = run_cli(store, "orchestrator", "register", name, "-f", "[red]", "--p=[/p]")
            assert result.exit_code == 0, result.output
        listed = run_cli(store, "orchestrator", "list")
        assert listed.exit_code == 0, listed.output
        for text in ("[bold]x[/bold]", "[/x]", "[link=http://e]y", "[red]"):
            assert text in listed.stdout
        described = run_cli(store, "orchestrator", "describe", "[/x]")
        assert described.exit_code == 0, described.output
        assert "Orchestrator '[/x]'" in described.stdout
        assert "[/p]" in described.stdout

    def test_control_characters_escaped_for_people_exact_in_json(self, tmp_path: Path) -> None:
        """An ESC sequence in a name: visible as \\x1b in tables and messages, exact in JSON."""
        store = tmp_path / "s"
        run_cli(store, "init")
        name = "evil\x1b[2J\x9b31m\u202eman"
        registered = run_cli(store, "orchestrator", "register", name, "-f", "local", "--p=\x1b]0;t")
        assert registered.exit_code == 0
        no_raw_control(registered.stdout)
        assert "evil\\x1b[2J\\x9b31m\\u202eman" in registered.stdout
        for args in (("list",), ("describe", name)):
            shown = run_cli(store, "orchestrator", *args)
            assert shown.exit_code == 0
            no_raw_control(shown.stdout)
            assert "evil\\x1b[2J" in shown.stdout
        exact = run_cli(store, "orchestrator", "describe", name, "--json")
        no_raw_control(exact.stdout)
        assert json.loads(exact.stdout)["name"] == name
        assert json.loads(exact.stdout)["configuration"] == {"p": "\x1b]0;t"}
        events = run_cli(store, "events", "list", "--json")
        no_raw_control(events.stdout)
        assert name in {e["data"].get("name") for e in json.loads(events.stdout)}
        for args in (("events", "list"), ("events", "tail"), ("events", "show", "2")):
            shown = run_cli(store, *args)
            assert shown.exit_code == 0
            no_raw_control(shown.stdout)

    def test_errors_quote_hostile_input_visibly(self, tmp_path: Path) -> None:
        """Error lines on stderr never carry raw control characters."""
        store = tmp_path / "s"
        run_cli(store, "init")
        missing = run_cli(store, "orchestrator", "describe", "no\x1b[2Jpe")
        assert missing.exit_code == 4
        no_raw_control(missing.stderr)
        unknown = run_cli(store, "events", "list", "--x\x1b[31m")
        assert unknown.exit_code == 2
        no_raw_control(unknown.stderr)
        assert "\\x1b[31m" in unknown.stderr


class TestOutOfRange:
    """Numbers beyond 64 bits, deep nesting, surrogates: one line, a documented exit code."""

    @pytest.mark.parametrize(
        ("args", "code", "says"),
        [
            (("events", "list", "--from", "1" * 30), 2, "out of range"),
            (("events", "show", "1" * 30), 2, "beyond any log position"),
            (("events", "show", "9" * 5000), 2, "beyond any log position"),
            (("events", "show", "²"), 2, "give a log position"),
            (("events", "show", "9223372036854775807"), 4, "no event at position"),
            (("run", "list", "--limit", "1" * 30), 2, "out of range"),
            (("run", "list", "--as-of", "1" * 30), 1, "beyond any log position"),
            (("run", "list", "--as-of", "9999"), 1, "beyond the log's head"),
            (("events", "tail", "-n", "1" * 30), 2, "out of range"),
            (("replay", "--to", "1" * 30), 2, "out of range"),
            (("export", ""), 1, "export needs a file name"),
            (("copy", "--to", "/tmp/" + "x" * 300), 1, "File name too long"),
            (("--store", "/tmp/" + "x" * 300, "store", "describe"), 1, "File name too long"),
            (("orchestrator", "register", "a\x00b", "-f", "local"), 2, "NUL character"),
            ((*_REGISTER, f"--n={10**30}"), 1, "64 bits"),
            ((*_REGISTER, "--n=" + "[" * 99 + "]" * 99), 1, "deep"),
            ((*_REGISTER, f"--n={nested_text(9999)}"), 1, "deep"),
        ],
    )
    def test_cli_values(self, store: Path, args: tuple[str, ...], code: int, says: str) -> None:
        """Each refused with its message and exit code, never exit 70."""
        result = run_cli(store, *args)
        assert "internal error" not in result.stderr
        assert result.exit_code == code, result.output
        assert says in result.stderr
        assert len(result.stderr.strip().splitlines()[-1]) < 400

    def test_events_append_and_import_refuse_hostile_values(self, tmp_path: Path) -> None:
        """Huge ints and deep nesting in a file: the line named, exit 1, nothing stored."""
        store = tmp_path / "s"
        run_cli(store, "init")
        exported = tmp_path / "export.jsonl"
        assert run_cli(store, "export", str(exported)).exit_code == 0
        component = {
            "component_id": str(uuid.uuid4()),
            "type": "orchestrator",
            "name": "z",
            "flavor": "local",
        }
        for deep in ("1" + "0" * 30, "[" * 20_000 + "]" * 20_000):
            line = {"stream_id": "workspace", "type": "component.registered"}
            text = json.dumps({**line, "data": {**component, "configuration": {"n": "N"}}})
            text = text.replace('"N"', deep)
            source = tmp_path / "append.jsonl"
            source.write_text(text + "\n")
            result = run_cli(store, "events", "append", str(source))
            assert result.exit_code == 1, result.output
            assert "line 1" in result.stderr
        rows = [json.loads(line) for line in exported.read_text().splitlines()]
        for field in ("position", "stream_version", "schema_version", "recorded_at_us"):
            changed = [*rows[:-1], {**rows[-1], field: 10**30}]
            changed[-1].pop("recorded_at", None)
            source = tmp_path / f"import-{field}.jsonl"
            source.write_text("".join(json.dumps(row) + "\n" for row in changed))
            result = run_cli(tmp_path / f"new-{field}", "import", str(source))
            assert result.exit_code == 1, result.output
            assert field in result.stderr

    @pytest.mark.parametrize(
        "argv",
        [
            [b"orchestrator", b"register", b"sur\xff", b"-f", b"local"],
            [b"orchestrator", b"register", b"n", b"-f", b"local", b"--k\xfe=1"],
            [b"--store", b"/tmp/\xff\xfe", b"store", b"describe"],
            [b"events", b"show", b"\xff"],
        ],
    )
    def test_non_utf8_arguments(self, tmp_path: Path, argv: list[bytes]) -> None:
        """A user's shell passes bytes that are not UTF-8: one line, exit 2, nothing stored."""
        env = {**os.environ, "METALEDGER_STORE": str(tmp_path / "s"), "LC_ALL": "C.UTF-8"}
        done = subprocess.run(
            [sys.executable, "-m", "cli", *argv], capture_output=True, env=env, cwd=ROOT, timeout=60
        )
        assert done.returncode == 2, done.stderr
        stderr = done.stderr.decode()
        assert "is not valid UTF-8" in stderr
        assert "\\x" in stderr
        assert "Traceback" not in stderr
        assert len(stderr.strip().splitlines()) == 1
        assert not (tmp_path / "s").exists()


class TestApiRefusesTyped:
    """The write API answers hostile values with InvalidEventError; nothing is stored."""

    def test_write_api(self, tmp_path: Path) -> None:
        """Huge ints, surrogates, deep and cyclic values in every kind of write."""
        cyclic: list[Any] = []
        cyclic.append(cyclic)

        async def main() -> None:
            async with open_store(tmp_path / "s") as store:
                before = await store.head()
                component = store.register_component

                def event() -> ComponentRegistered:
                    return ComponentRegistered(
                        component_id=uuid.uuid4(), type="orchestrator", flavor="local", name="n"
                    )

                attempts = [
                    component("orchestrator", "a", flavor=LOCAL, configuration={"n": 2**63}),
                    component("orchestrator", "a", flavor=LOCAL, configuration={"n": -(2**64)}),
                    component("orchestrator", "a", flavor=LOCAL, configuration={"n": nested(5000)}),
                    component("orchestrator", "a", flavor=LOCAL, configuration={"n": cyclic}),
                    component("orchestrator", "s\udcff", flavor=LOCAL),
                    component("orchestrator", "a", flavor=LOCAL, configuration={"\ud800": 1}),
                    store.start_run("p\udcff"),
                    store.start_run("p", config={"x": 10**30}),
                    store.start_run("p", config={"x": -(10**5000)}),
                    store.append("run-\udcff", [RunDeleted(run_id=uuid.uuid4(), reason="")]),
                    store.append("workspace", [event()], metadata={"extra": {"k": 2**64}}),
                    store.append("workspace", [event()], metadata={"actor": "\udcff"}),
                    store.append("workspace", [event()], expected_version=2**70),
                ]
                for attempt in attempts:
                    with pytest.raises(InvalidEventError):
                        await attempt
                run = await store.start_run("p")
                for values in ({"x": 2**64}, {"k": "\udcff"}, {"\udcff": 1}):
                    with pytest.raises(InvalidEventError):
                        await run.log_metadata(values)
                step = await run.start_step("s")
                with pytest.raises(InvalidEventError):
                    await step.produce("out", uri="file:///x", size_bytes=2**63)
                with pytest.raises(InvalidEventError):
                    await step.produce("out", uri="file:///\udcff")
                assert before + 2 == await store.head()  # the run and its step only
                # Reads past any storable position or of an unstorable stream: nothing there.
                assert [e async for e in store.read_all(2**70)] == []
                assert [e async for e in store.read_stream("run-\udcff")] == []
                assert [e async for e in store.read_stream(run.stream_id, 2**70)] == []
                assert await store.stream_version("\udcff") == 0

        anyio.run(main)

    @HOSTILE
    @given(name=hostile_text, value=hostile_values, size=huge_ints | st.integers())
    def test_event_construction_and_encoding(self, name: str, value: Any, size: int) -> None:
        """Any values in an event: encoded exactly (and JSON round-trips) or InvalidEventError."""
        codec = EventCodec()
        events = [
            ComponentRegistered(
                component_id=uuid.uuid4(), type="orchestrator", flavor=name, name=name,
                configuration={name: value}, labels={name: name},
            ),
            RunStarted(
                run_id=uuid.uuid4(), pipeline_name=name, run_name=name, stack_id=None,
                config={"v": value}, tags=[name], started_at=__import__("datetime").datetime.now(
                    __import__("datetime").UTC
                ),
            ),
            MetadataLogged(run_id=uuid.uuid4(), values={name: size}),
        ]  # fmt: skip
        for event in events:
            try:
                tag, version, data = codec.encode(event)
            except InvalidEventError:
                continue
            decoded = codec.decode(tag, version, data)
            assert decoded == event
            builtins = json.loads(json_text(msgspec.json.encode(codec.to_builtins(data)).decode()))
            assert EventCodec.from_builtins_bytes(builtins) == data


class TestNoInternalError:
    """Hypothesis drives the CLI's parsers with hostile values: exit 70 is unreachable."""

    @HOSTILE
    @given(name=hostile_text, flavor=hostile_text, key=hostile_text, value=hostile_text)
    def test_register_describe_list(
        self, store: Path, name: str, flavor: str, key: str, value: str
    ) -> None:
        """Register, describe and list with hostile names and --key=value options."""
        result = run_cli(store, "orchestrator", "register", name, "-f", flavor, f"--{key}={value}")
        run_cli(store, "orchestrator", "describe", name)
        listed = run_cli(store, "orchestrator", "list")
        no_raw_control(listed.stdout)
        if result.exit_code == 0:
            no_raw_control(result.stdout)
            assert visible(name) in listed.stdout

    @HOSTILE
    @given(number=hostile_numbers | hostile_text)
    def test_positions_and_counts(self, store: Path, number: str) -> None:
        """Positions, counts and --as-of values of any size or shape."""
        run_cli(store, "events", "list", "--from", number)
        run_cli(store, "events", "show", number)
        run_cli(store, "run", "list", "--as-of", number, "--limit", number)

    @HOSTILE
    @given(stream=hostile_text, kind=hostile_text, value=hostile_values, version=huge_ints)
    def test_events_append(
        self, store: Path, stream: str, kind: str, value: Any, version: int
    ) -> None:
        """Hostile lines for ``events append``: refused with a line number, or appended."""
        component = {"component_id": str(uuid.uuid4()), "type": "orchestrator", "flavor": "local"}
        lines = [
            {"stream_id": stream, "type": "run.deleted", "data": {"run_id": str(uuid.uuid4())}},
            {"stream_id": "workspace", "type": kind, "data": {}},
            {
                "stream_id": "workspace",
                "type": "component.registered",
                "data": {**component, "name": stream, "configuration": {"v": value}},
                "expected_version": version,
            },
        ]
        for line in lines:
            try:
                text = json.dumps(line)
            except (ValueError, RecursionError):  # what JSON itself cannot write
                continue
            run_cli(store, "events", "append", "-", input=text.encode("utf-8", "surrogatepass"))


def test_library_errors_are_ledger_errors() -> None:
    """InvalidEventError is part of the one error tree the CLI maps to exit codes."""
    assert issubclass(InvalidEventError, LedgerError)
