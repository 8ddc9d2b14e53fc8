"""One factory per backend: everything a store location needs, built in one place.

A :class:`~eventstore.uri.StoreLocation` is parsed once; its backend's factory
then checks the options, maps them onto that backend's settings and builds
both halves of a store from it (as the ``eventsourcing`` library's
``InfrastructureFactory`` builds its recorders):

- :meth:`StoreFactory.log_backend`: the log's :class:`~eventstore.backend.Backend`;
- :meth:`StoreFactory.views_database`: where and how the views store connects
  (a plain value: ``projections.views_store_for`` turns it into the views store,
  because ``eventstore`` never imports ``projections``).

Durability maps as:

============  ==========================  ===============================
durability    SQLite log                  PostgreSQL log
============  ==========================  ===============================
``full``      ``PRAGMA synchronous=FULL``  ``synchronous_commit = on``
``normal``    ``synchronous=NORMAL``      ``synchronous_commit = off``
============  ==========================  ===============================

The views are rebuilt from the log at will, so they always take the cheaper
setting (``NORMAL``, ``off``): a crash may lose their last transactions, whose
rows and checkpoint go together, and the runner re-applies them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from .errors import StoreOptionError, UnsupportedURIError
from .uri import DURABILITIES, Durability, StoreLocation, parse_location

if TYPE_CHECKING:
    from .backend import Backend

__all__ = [
    "PostgresFactory",
    "PostgresViewsDatabase",
    "SQLiteFactory",
    "SQLiteViewsDatabase",
    "StoreFactory",
    "ViewsDatabase",
    "factory_for",
    "resolve_store",
    "with_options",
]

#: The views file's name in a SQLite store's directory.
VIEWS_FILE = "views.db"


@dataclass(frozen=True, slots=True)
class SQLiteViewsDatabase:
    """The views of a SQLite store: a file beside the log."""

    path: Path
    synchronous: str = "NORMAL"


@dataclass(frozen=True, slots=True)
class PostgresViewsDatabase:
    """The views of a PostgreSQL store: a schema of the log's database."""

    dsn: str
    schema: str
    server_settings: tuple[tuple[str, str], ...] = ()


ViewsDatabase = SQLiteViewsDatabase | PostgresViewsDatabase


def _positive_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise StoreOptionError(f"{name} must be a number of seconds > 0, not {value!r}")
    return float(value)


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise StoreOptionError(f"{name} must be a whole number >= 1, not {value!r}")
    return value


def _optional_count(name: str, value: Any) -> int | None:
    return None if value is None else _count(name, value)


class StoreFactory(Protocol):
    """What a backend's factory does with a location."""

    #: The location kind this factory serves.
    kind: ClassVar[str]

    def check_durability(self, durability: Any) -> Durability:
        """``durability`` if this backend can give it; else StoreOptionError."""
        ...

    def check_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The backend tuning options, checked; StoreOptionError for a bad one."""
        ...

    def log_backend(self, location: StoreLocation, *, read_only: bool) -> Backend:
        """The log backend for ``location``, its options mapped onto its settings."""
        ...

    def views_database(self, location: StoreLocation) -> ViewsDatabase:
        """Where the views of the store at ``location`` live and how to connect."""
        ...


class _Options:
    """Checking options against a table of validators (shared by the factories)."""

    kind: ClassVar[str]
    validators: ClassVar[dict[str, Callable[[str, Any], Any]]]

    def check_durability(self, durability: Any) -> Durability:
        """``durability`` if this backend can give it; else StoreOptionError."""
        for known in DURABILITIES:
            if durability == known:
                return known
        raise StoreOptionError(
            f"durability must be one of {', '.join(DURABILITIES)}, not {durability!r}"
        )

    def check_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The backend tuning options, checked; StoreOptionError for a bad one."""
        checked = {}
        for name, value in options.items():
            validator = self.validators.get(name)
            if validator is None:
                known = ", ".join(sorted(self.validators))
                raise StoreOptionError(
                    f"the {self.kind} backend has no option {name!r} (it takes {known})"
                )
            checked[name] = validator(name, value)
        return checked


class SQLiteFactory(_Options):
    """Builds a SQLite store's log backend and views file."""

    kind: ClassVar[str] = "sqlite"
    validators: ClassVar[dict[str, Callable[[str, Any], Any]]] = {
        "busy_timeout": _positive_number,
        "busy_retries": _count,
        "max_page_count": _optional_count,
    }

    def log_backend(self, location: StoreLocation, *, read_only: bool) -> Backend:
        """The SQLite backend: ``durability`` becomes ``PRAGMA synchronous``."""
        from .sqlite_backend import SQLiteBackend

        assert location.path is not None
        return SQLiteBackend(
            location.path,
            read_only=read_only,
            synchronous=location.durability.upper(),
            **dict(location.options),
        )

    def views_database(self, location: StoreLocation) -> SQLiteViewsDatabase:
        """``views.db`` in the store's directory."""
        assert location.path is not None
        return SQLiteViewsDatabase(location.path / VIEWS_FILE)


class PostgresFactory(_Options):
    """Builds a PostgreSQL store's log backend and views schema."""

    kind: ClassVar[str] = "postgresql"
    validators: ClassVar[dict[str, Callable[[str, Any], Any]]] = {
        "pool_size": _count,
        "connect_timeout": _positive_number,
        "lock_timeout": _positive_number,
    }
    #: ``durability`` as PostgreSQL's ``synchronous_commit``.
    synchronous_commit: ClassVar[dict[str, str]] = {"full": "on", "normal": "off"}

    def log_backend(self, location: StoreLocation, *, read_only: bool) -> Backend:
        """The PostgreSQL backend: ``durability`` becomes ``synchronous_commit``."""
        from .postgres_backend import PostgresBackend

        assert location.dsn is not None
        return PostgresBackend(
            location.dsn,
            read_only=read_only,
            synchronous_commit=self.synchronous_commit[location.durability],
            **dict(location.options),
        )

    def views_database(self, location: StoreLocation) -> PostgresViewsDatabase:
        """The ``views`` schema (``<prefix>_views``) of the log's database."""
        from .postgres_backend import application_name

        settings = {**application_name(location.connect_dsn), "synchronous_commit": "off"}
        return PostgresViewsDatabase(
            location.connect_dsn, location.views_schema, tuple(sorted(settings.items()))
        )


_FACTORIES: dict[str, StoreFactory] = {"sqlite": SQLiteFactory(), "postgresql": PostgresFactory()}


def factory_for(location: StoreLocation) -> StoreFactory:
    """The factory of a location's backend; UnsupportedURIError for an unknown kind."""
    try:
        return _FACTORIES[location.kind]
    except KeyError:
        raise UnsupportedURIError(f"unsupported store kind {location.kind!r}") from None


def with_options(
    location: StoreLocation,
    *,
    durability: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> StoreLocation:
    """``location`` with ``durability`` and backend ``options`` (None keeps the current).

    Checked by the backend's factory: an unknown option, a value of the wrong
    type or out of range, or a durability other than ``full``/``normal``
    raises :class:`~eventstore.errors.StoreOptionError`.
    """
    factory = factory_for(location)
    chosen = location.durability if durability is None else factory.check_durability(durability)
    given = dict(location.options) if options is None else factory.check_options(options)
    return replace(location, durability=chosen, options=tuple(sorted(given.items())))


def resolve_store(
    uri: str | os.PathLike[str] | StoreLocation | None = None,
    *,
    durability: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> StoreLocation:
    """Parse a store URI (or None) into a location, with ``durability`` and backend ``options``.

    UnsupportedURIError for a URI metaledger cannot use; StoreOptionError for an
    option the backend does not take. A location given is returned with the options.
    The URI forms are those of :mod:`eventstore.uri`.
    """
    location = parse_location(uri)
    if durability is None and options is None:
        return location
    return with_options(location, durability=durability, options=options)
