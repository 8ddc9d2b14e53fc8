"""Hardening: bad input, fuzzing, foreign and corrupt files, full disks, modes, secrets, SQL."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.context import AsOf, parse_time
from cli.main import cli
from eventstore import (
    EVENT_TYPES,
    BadLineError,
    BadLinesError,
    ComponentRegistered,
    DecodeError,
    EventCodec,
    InvalidEventError,
    RawEvent,
    ReadOnlyStoreError,
    RunDeleted,
    StoreFullError,
    open_store,
    parse_lines,
)
from eventstore.codec import decode_metadata
from eventstore.defaults import ensure_default_stack
from eventstore.demo import run_demo
from eventstore.json_lines import MAX_REPORTED
from eventstore.records import parse_record
from eventstore.sqlite_backend import LEDGER_FILE
from projections import VIEWS_FILE, QueryError, open_views

ROOT = Path(__file__).resolve().parent.parent
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


def invoke(store: Path, *args: str, code: int = 0, input: bytes | str | None = None) -> Any:
    """Run the CLI on a store; check the exit code."""
    result = CliRunner().invoke(cli, ["--store", str(store), *args], input=input)
    assert code == result.exit_code, (args, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


class TestMalformedEvents:
    """Bad events are refused with a typed error (library) or one line (CLI); nothing stored."""

    @pytest.mark.parametrize(
        ("line", "reason"),
        [
            (b"{not json", "not valid JSON"),
            (b'{"stream_id": "workspace", "type": "component.registered"}', "missing field"),
            (b'{"stream_id": "s", "type": "no.such", "data": {}}', "unknown event type"),
            (
                b'{"stream_id": "workspace", "type": "component.renamed", '
                b'"data": {"component_id": 42, "name": "x"}}',
                "component_id",
            ),
            (b'{"stream_id": "s", "type": "run.deleted", "data": {"run_id": NaN}}', "JSON"),
            (b'{"stream_id": "s", "type": "run.deleted", "data": {"run_id": "\xff\xfe"}}', "JSON"),
            (b"[1, 2, 3]", "not a JSON object"),
        ],
        ids=["bad-json", "missing", "unknown-type", "wrong-type", "nan", "bad-utf8", "array"],
    )
    def test_events_append_refuses_a_bad_file_whole(
        self, tmp_path: Path, line: bytes, reason: str
    ) -> None:
        """One bad line: its number and reason, exit 1, and none of the file's events stored."""
        store = tmp_path / "s"
        invoke(store, "init")
        head = json.loads(invoke(store, "store", "describe", "--json").stdout)["head_position"]
        good = json.dumps(
            {"stream_id": "run-x", "type": "run.deleted", "data": {"run_id": str(uuid.uuid4())}}
        ).encode()
        source = tmp_path / "events.jsonl"
        source.write_bytes(good + b"\n" + line + b"\n" + good.replace(b"run-x", b"run-y") + b"\n")
        result = invoke(store, "events", "append", str(source), code=1)
        assert "line 2" in result.output
        assert reason in result.output
        after = json.loads(invoke(store, "store", "describe", "--json").stdout)["head_position"]
        assert head == after

    def test_huge_and_deeply_nested_configuration(self, tmp_path: Path) -> None:
        """Over the size limit, or nested absurdly deep: InvalidEventError, nothing stored."""
        deep: Any = "leaf"
        for _ in range(200):
            deep = {"d": deep}

        async def main() -> None:
            async with open_store(
                tmp_path / "s", max_event_bytes=4096, default_stack=False
            ) as store:
                for configuration, reason in (
                    ({"blob": "x" * 10_000}, "over the limit of 4,096 bytes"),
                    ({"deep": deep}, "nested deeper than"),
                ):
                    event = ComponentRegistered(
                        component_id=uuid.uuid4(), type="orchestrator", flavor="f", name="n",
                        configuration=configuration,
                    )  # fmt: skip
                    with pytest.raises(InvalidEventError, match=reason):
                        await store.append("workspace", [event])
                assert 0 == await store.head()

        import anyio

        anyio.run(main)


class TestFuzzing:
    """Random input never crashes a parser with anything but its documented errors."""

    @FUZZ
    @given(st.sampled_from(sorted(EVENT_TYPES)), st.integers(0, 3), st.binary(max_size=300))
    def test_payload_decoder(self, event_type: str, version: int, data: bytes) -> None:
        """Random payload bytes decode, come back raw, or raise DecodeError."""
        try:
            decoded = EventCodec().decode(event_type, version, data)
        except DecodeError:
            return
        assert isinstance(decoded, RawEvent) or type(decoded).event_type() == event_type

    @FUZZ
    @given(st.binary(max_size=200))
    def test_metadata_decoder(self, data: bytes) -> None:
        """Metadata that cannot be read decodes as empty, never raises."""
        decode_metadata(data)

    @FUZZ
    @given(st.lists(st.one_of(st.binary(max_size=120), json_values.map(msgspec.json.encode))))
    def test_events_append_parser(self, lines: list[bytes]) -> None:
        """The JSON-lines parser reports faults per line and raises only BadLinesError."""
        refused: BadLinesError | None = None
        try:
            parsed = parse_lines(b"\n".join(lines), EventCodec())
        except BadLinesError as exc:
            refused = exc
        if refused is not None:
            assert 0 < len(refused.faults) <= MAX_REPORTED
            assert all(f.startswith("line ") for f in refused.faults)
            assert refused.more == (len(refused.faults) == MAX_REPORTED)
        else:
            assert len(parsed.lines) <= len(lines)
            assert sum(len(a.lines) for a in parsed.appends) == len(parsed.lines)

    @FUZZ
    @given(st.one_of(st.binary(max_size=200), json_values.map(msgspec.json.encode)))
    def test_import_line_parser(self, raw: bytes) -> None:
        """The import's line parser raises only its own error, naming the line."""
        problems: list[BadLineError] = []
        try:
            parse_record(7, raw)
        except BadLineError as exc:
            problems.append(exc)
        assert all(p.line == 7 and str(p).startswith("line 7: ") for p in problems)

    @FUZZ
    @given(st.text(max_size=40))
    def test_as_of_and_time_parsers(self, text: str) -> None:
        """--as-of and --since/--until take a position, a time, or an age; else QueryError.

        What they accept is a position in range or a time with its zone, never both.
        """
        with contextlib.suppress(QueryError):
            as_of = AsOf.parse(text)
            assert (as_of.position is None) != (as_of.when is None)
            assert as_of.position is None or 0 <= as_of.position < 2**63
            assert as_of.when is None or as_of.when.tzinfo is not None
        with contextlib.suppress(QueryError):
            assert parse_time(text).tzinfo is not None


class TestForeignAndCorruptFiles:
    """Files that are not what they should be are named, left alone, or rebuilt."""

    def test_empty_ledger_file_is_refused(self, tmp_path: Path) -> None:
        """An empty ledger.db is not a store (metaledger creates its log whole): exit 3."""
        tmp_path.joinpath(LEDGER_FILE).write_bytes(b"")
        invoke(tmp_path, "init", code=3)
        assert b"" == tmp_path.joinpath(LEDGER_FILE).read_bytes()

    def test_unreadable_views_file_is_set_aside_and_rebuilt(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A corrupt views.db is moved aside with a log line, and the views come back."""
        import anyio

        async def main() -> None:
            async with open_store(tmp_path / "s") as store:
                await ensure_default_stack(store, tmp_path / "a")
                await run_demo(store, artifact_root=tmp_path / "a")
            (tmp_path / "s" / VIEWS_FILE).write_bytes(os.urandom(8192))
            async with open_store(tmp_path / "s") as store:
                with caplog.at_level(logging.WARNING, logger="projections"):
                    async with open_views(store) as views:
                        await views.catch_up()
                        assert 1 == len(await views.query.runs())
                events = [getattr(r, "metaledger", {}).get("event") for r in caplog.records]
                assert "views_unreadable" in events
            assert list((tmp_path / "s").glob(f"{VIEWS_FILE}.unreadable-*"))

        anyio.run(main)

    def test_a_newer_log_opens_read_only(self, tmp_path: Path) -> None:
        """A log of a newer schema is read, never written or downgraded; the CLI says why."""
        import anyio

        store = tmp_path / "s"
        invoke(store, "demo")
        conn = sqlite3.connect(store / LEDGER_FILE)
        conn.execute("UPDATE ledger_meta SET value = '99' WHERE key = 'schema_version'")
        conn.commit()
        conn.close()

        async def main() -> None:
            async with open_store(store) as opened:
                assert opened.read_only
                with pytest.raises(ReadOnlyStoreError, match="newer metaledger"):
                    await opened.append("s", [RunDeleted(run_id=uuid.uuid4())])

        anyio.run(main)
        assert 1 == len(json.loads(invoke(store, "run", "list", "--json").stdout))
        result = invoke(store, "orchestrator", "register", "x", "--flavor", "local", code=1)
        assert "newer metaledger" in result.output
        conn = sqlite3.connect(store / LEDGER_FILE)
        assert (
            "99"
            == conn.execute(
                "SELECT value FROM ledger_meta WHERE key = 'schema_version'"
            ).fetchone()[0]
        )
        conn.close()

    def test_a_directory_without_permission(self, tmp_path: Path) -> None:
        """A store the user may not read: a clear error naming the path, exit 3, no traceback.

        Run in a child process that drops root privileges when it has them (root
        ignores directory modes).
        """
        locked = tmp_path / "locked"
        invoke(locked / "store", "init")
        tmp_path.chmod(0o755)
        locked.chmod(0o700)
        # Everything is imported before the privileges go: the interpreter's own
        # files may live where the unprivileged user cannot read them.
        script = (
            "import os, sys, asyncio, sqlite3, anyio, anyio._backends._asyncio, aiosqlite\n"
            "import cli.stacks, cli.context, cli.output, cli.errors\n"
            "from cli.main import main as entry\n"
            "import eventstore, projections, eventstore.logs, structlog, rich.console\n"
            "if os.geteuid() == 0:\n"
            "    os.setgid(65534); os.setuid(65534)\n"
            "sys.argv = ['metaledger', '--store', sys.argv[1], 'stack', 'list']\n"
            "entry()\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script, str(locked / "store")],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "HOME": "/tmp", "XDG_DATA_HOME": "/tmp"},
        )
        assert 3 == result.returncode, result.stderr
        assert "Traceback" not in result.stderr
        assert str(locked / "store") in result.stderr


class TestFullDisk:
    """A full disk fails the append clearly, stores nothing partial, and recovers."""

    def test_page_limit_full_then_space_returns(self, tmp_path: Path) -> None:
        """SQLite's max_page_count as a full disk: StoreFullError; later the store works."""
        import anyio

        async def main() -> None:
            path = tmp_path / "s"
            async with open_store(path) as store:
                await store.append("warm", [RunDeleted(run_id=uuid.uuid4())])
            async with open_store(path, backend_options={"max_page_count": 12}) as store:
                big = [RunDeleted(run_id=uuid.uuid4(), reason="x" * 2000) for _ in range(40)]
                before = await store.head()

                async def fill() -> None:
                    for _ in range(50):
                        await store.append("fill", big)

                with pytest.raises(StoreFullError, match="full"):
                    await fill()
                failed_at = await store.head()
                assert 0 == (failed_at - before) % len(big)  # whole appends only
            async with open_store(path) as store:
                await store.append("after", [RunDeleted(run_id=uuid.uuid4())])
                report = await store.verify()
                assert report.ok
                assert failed_at + 1 == report.events

        anyio.run(main)


class TestPermissions:
    """Component configuration can hold credentials: the files are private."""

    def test_store_directory_and_files_are_private(self, tmp_path: Path) -> None:
        """The store directory is 0700; the log, the views and their WAL files 0600."""
        store = tmp_path / "s"
        invoke(store, "demo")
        assert 0o700 == store.stat().st_mode & 0o777
        for path in store.iterdir():
            if path.is_file():
                assert 0o600 == path.stat().st_mode & 0o777, path.name


class TestSecretsAndInjection:
    """Secrets stay masked; filters and names never reach SQL unbound."""

    def test_secret_values_masked_in_event_listings(self, tmp_path: Path) -> None:
        """events list/show mask secret-looking keys unless --show-secrets; export keeps them."""
        store = tmp_path / "s"
        invoke(store, "init")
        invoke(
            store, "orchestrator", "register", "k", "--flavor", "kubernetes", "--password=hunter2"
        )
        assert "hunter2" not in invoke(store, "events", "list", "--json").stdout
        assert "hunter2" in invoke(store, "events", "list", "--json", "--show-secrets").stdout
        assert "keeps configuration values that look secret" in " ".join(
            invoke(store, "export", "--help").stdout.split()
        )
        backup = tmp_path / "b.jsonl"
        invoke(store, "export", str(backup))
        assert "hunter2" in backup.read_text()

    @pytest.mark.parametrize(
        "hostile",
        [
            "x'; DROP TABLE runs; --",
            "%",
            "_",
            "1 OR 1=1",
            '" OR ""="',
            "default; DELETE FROM events",
        ],
    )
    def test_hostile_filters_match_nothing(self, tmp_path: Path, hostile: str) -> None:
        """Quotes, semicolons, wildcards and SQL through every CLI filter: no match, no harm."""
        store = tmp_path / "s"
        invoke(store, "demo")
        head = json.loads(invoke(store, "store", "describe", "--json").stdout)["head_position"]
        listings: tuple[tuple[str, ...], ...] = (
            ("run", "list", "--pipeline", hostile),
            ("run", "list", "--stack", hostile),
            ("artifact", "list", "--name", hostile),
            ("events", "list", "--stream", hostile),
            ("events", "list", "--type", hostile),
        )
        for args in listings:
            assert [] == json.loads(invoke(store, *args, "--json").stdout), args
        # Artifact types are a closed set: an unknown one is refused by name (exit 1).
        refused = invoke(store, "artifact", "list", "--type", hostile, code=1)
        assert "is not an artifact type" in refused.output
        for args in (
            ("run", "describe", hostile),
            ("artifact", "describe", hostile),
            ("stack", "describe", hostile),
            ("orchestrator", "describe", hostile),
            ("artifact", "list", "--run", hostile),
        ):
            invoke(store, *args, code=4)
        assert 1 == len(json.loads(invoke(store, "run", "list", "--json").stdout))
        assert json.loads(invoke(store, "verify", "--json").stdout)["ok"]
        after = json.loads(invoke(store, "store", "describe", "--json").stdout)["head_position"]
        assert head == after
