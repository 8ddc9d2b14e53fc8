"""Store locations parsed once, one factory per backend, and the composed EventStore."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from eventstore import (
    EventStore,
    StoreLocation,
    StoreOptionError,
    UnsupportedURIError,
    open_store,
    resolve_store,
)
from eventstore.log import Log
from eventstore.runs import RunCommands
from eventstore.store_factories import (
    PostgresViewsDatabase,
    SQLiteViewsDatabase,
    factory_for,
)
from eventstore.workspace import WorkspaceCommands

PG = "postgresql://ml:s3cret@db.example/metadata?schema_prefix=team_a"


class TestLocation:
    """A URI is parsed once into a complete value."""

    def test_a_postgres_location_holds_everything_a_backend_needs(self) -> None:
        """DSN, prefix, both schemas and a display form with the password masked."""
        location = resolve_store(PG)
        assert "postgresql" == location.kind
        assert "team_a" == location.schema_prefix
        assert ("team_a_ledger", "team_a_views") == (location.log_schema, location.views_schema)
        assert "s3cret" not in location.display
        assert "schema_prefix" not in location.connect_dsn
        assert "s3cret" in location.connect_dsn  # for connecting, never for display

    def test_a_bad_schema_prefix_is_refused_when_parsed(self) -> None:
        """The prefix is checked with the URI, before any backend exists."""
        with pytest.raises(UnsupportedURIError, match="schema_prefix"):
            resolve_store("postgresql://db/x?schema_prefix=a-b")

    def test_same_place_compares_directories_and_schemas(self, tmp_path: Path) -> None:
        """Two spellings of one directory are one place; another prefix is another store."""
        (tmp_path / "s").mkdir()
        assert resolve_store(tmp_path / "s").same_place(resolve_store(f"sqlite:///{tmp_path}/s"))
        assert not resolve_store(PG).same_place(resolve_store(PG.replace("team_a", "team_b")))

    def test_options_are_part_of_the_location(self, tmp_path: Path) -> None:
        """Durability and backend options travel with the parsed location."""
        location = resolve_store(tmp_path, durability="normal", options={"busy_retries": 5})
        assert "normal" == location.durability
        assert 5 == location.option("busy_retries")
        assert location == resolve_store(location)  # a location passes through unchanged


class TestInvalidOptions:
    """Each bad option raises StoreOptionError (a StoreError), before anything is opened."""

    @pytest.mark.parametrize("uri", ["sqlite:////tmp/never-made", PG])
    @pytest.mark.parametrize("durability", ["extra", "FULL", "off", "", 1])
    def test_durability_is_full_or_normal_on_every_backend(self, uri: str, durability: Any) -> None:
        """``extra`` (once passed through to SQLite) and anything else are refused."""
        with pytest.raises(StoreOptionError, match="durability"):
            resolve_store(uri, durability=durability)

    @pytest.mark.parametrize(
        ("uri", "options", "match"),
        [
            ("sqlite:////tmp/x", {"pool_size": 2}, "no option 'pool_size'"),
            ("sqlite:////tmp/x", {"busy_timeout": 0}, "busy_timeout"),
            ("sqlite:////tmp/x", {"busy_timeout": "10"}, "busy_timeout"),
            ("sqlite:////tmp/x", {"busy_timeout": True}, "busy_timeout"),
            ("sqlite:////tmp/x", {"busy_retries": 0}, "busy_retries"),
            ("sqlite:////tmp/x", {"busy_retries": 1.5}, "busy_retries"),
            ("sqlite:////tmp/x", {"max_page_count": 0}, "max_page_count"),
            (PG, {"busy_timeout": 1}, "no option 'busy_timeout'"),
            (PG, {"pool_size": 0}, "pool_size"),
            (PG, {"connect_timeout": -1}, "connect_timeout"),
            (PG, {"lock_timeout": "soon"}, "lock_timeout"),
        ],
    )
    def test_each_backend_checks_its_own_options(
        self, uri: str, options: dict[str, Any], match: str
    ) -> None:
        """An option of the other backend, a wrong type or a value out of range."""
        with pytest.raises(StoreOptionError, match=match):
            resolve_store(uri, options=options)

    async def test_open_store_refuses_a_bad_option_and_creates_nothing(
        self, tmp_path: Path
    ) -> None:
        """open_store raises the store's own error (no TypeError) and makes no directory."""
        with pytest.raises(StoreOptionError):
            async with open_store(tmp_path / "s", backend_options={"nope": 1}):
                pass
        with pytest.raises(StoreOptionError):
            async with open_store(tmp_path / "s", durability="extra"):  # type: ignore[arg-type]
                pass
        assert not (tmp_path / "s").exists()


class TestDurability:
    """``durability`` becomes each backend's own setting, read back from its connection."""

    @pytest.mark.parametrize(("durability", "pragma"), [("full", 2), ("normal", 1)])
    async def test_sqlite_synchronous(self, tmp_path: Path, durability: Any, pragma: int) -> None:
        """full -> PRAGMA synchronous=FULL (2), normal -> NORMAL (1), on the writing connection."""
        async with open_store(tmp_path / "s", durability=durability) as store:
            backend: Any = store.backend
            assert (pragma,) == backend._writer.execute("PRAGMA synchronous").fetchone()

    @pytest.mark.postgres
    @pytest.mark.parametrize(("durability", "setting"), [("full", "on"), ("normal", "off")])
    async def test_postgres_synchronous_commit(
        self, postgres_uri: str, durability: Any, setting: str
    ) -> None:
        """full -> synchronous_commit=on, normal -> off (once silently ignored)."""
        async with open_store(postgres_uri, durability=durability) as store:
            backend: Any = store.backend
            async with backend._pool.acquire() as conn:
                assert setting == await conn.fetchval("SHOW synchronous_commit")

    def test_each_factory_describes_its_views(self, tmp_path: Path) -> None:
        """The factory that builds a store's log also says where its views live."""
        sqlite = resolve_store(tmp_path)
        assert SQLiteViewsDatabase(tmp_path / "views.db") == factory_for(sqlite).views_database(
            sqlite
        )
        postgres = resolve_store(PG)
        views = factory_for(postgres).views_database(postgres)
        assert isinstance(views, PostgresViewsDatabase)
        assert ("team_a_views", "off") == (
            views.schema,
            dict(views.server_settings)["synchronous_commit"],
        )


class TestComposition:
    """EventStore holds its parts; it is not a Log."""

    async def test_the_store_holds_a_log_and_command_objects(self, tmp_path: Path) -> None:
        """The write API and the log API are parts, offered as the store's own methods."""
        async with open_store(tmp_path / "s") as store:
            assert not isinstance(store, Log)
            assert isinstance(store.log, Log)
            assert isinstance(store.workspace_commands, WorkspaceCommands)
            assert isinstance(store.run_commands, RunCommands)
            assert store.workspace_commands.log is store.log is store.run_commands.log
            async with store.pipeline_run("p") as run:
                pass
            assert 2 == await store.stream_version(run.stream_id)
            assert store.location == resolve_store(tmp_path / "s", durability="full")
            assert isinstance(store.location, StoreLocation)

    def test_delegated_methods_keep_their_documentation(self) -> None:
        """``help(EventStore.append)`` shows Log.append's docstring."""
        assert EventStore.append.__doc__ == Log.append.__doc__
        assert EventStore.start_run.__doc__ == RunCommands.start_run.__doc__
