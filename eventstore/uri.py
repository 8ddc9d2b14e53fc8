"""Where a store lives: resolving ``--store``, ``METALEDGER_STORE`` and the default.

Accepted forms:

- nothing: ``$METALEDGER_STORE`` if set, else the default local store in the
  user data directory (``platformdirs``), e.g. ``~/.local/share/metaledger/store``;
- a plain path to the store directory (``./mystore``, ``/srv/ml/store``); a path to
  its ``ledger.db`` file also works;
- a SQLite URL as SQLAlchemy-based tools (MLflow, ZenML) spell it: ``sqlite:///relative/path``
  (three slashes: relative to the working directory) or ``sqlite:////abs/path`` (four:
  absolute); ``sqlite://relative/path`` (no host part can be meant) is relative too, and a
  driver suffix (``sqlite+aiosqlite://``, ``sqlite+pysqlite://``) is accepted;
- ``postgresql://user:password@host:port/dbname[?schema_prefix=team_a]``, also spelt
  ``postgres://`` or with a driver suffix (``postgresql+asyncpg://``, ``+psycopg``,
  ``+psycopg2``, ``+pg8000``): metaledger always talks to the server through asyncpg.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import platformdirs

from .errors import UnsupportedURIError
from .secret_masking import mask_uri_credentials

__all__ = [
    "DURABILITIES",
    "ENV_VAR",
    "Durability",
    "StoreLocation",
    "default_store_dir",
    "parse_location",
    "split_schema_prefix",
]

#: The environment variable naming the store when no URI is given.
ENV_VAR = "METALEDGER_STORE"
#: Driver suffixes accepted after ``postgresql+`` (SQLAlchemy spellings); asyncpg is used.
POSTGRES_DRIVERS = ("asyncpg", "psycopg", "psycopg2", "pg8000")
#: Driver suffixes accepted after ``sqlite+``.
SQLITE_DRIVERS = ("aiosqlite", "pysqlite")


def default_store_dir() -> Path:
    """The default local store: a directory under the user's data directory."""
    return platformdirs.user_data_path("metaledger", appauthor=False) / "store"


#: How hard an acknowledged append is kept: ``full`` survives power loss, ``normal``
#: may lose the last commits to an OS crash (never corrupting the log).
Durability = Literal["full", "normal"]
DURABILITIES: tuple[Durability, ...] = ("full", "normal")


@dataclass(frozen=True, slots=True)
class StoreLocation:
    """A store location parsed once: where the store is and how to open it.

    ``kind`` and ``path`` (SQLite: the store directory) or ``dsn`` (PostgreSQL:
    the URI as given, password included, for connecting); ``schema_prefix``
    (PostgreSQL's ``?schema_prefix=``); ``durability`` and the backend's tuning
    ``options``, checked by the backend's factory when attached
    (:func:`eventstore.store_factories.with_options`).
    :attr:`display` is the form for messages, with credentials masked.
    """

    kind: Literal["sqlite", "postgresql"]
    path: Path | None = None
    dsn: str | None = None
    schema_prefix: str = ""
    durability: Durability = "full"
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def display(self) -> str:
        """The location for messages: a path, or the DSN with its credentials masked."""
        if self.kind == "sqlite":
            return str(self.path)
        assert self.dsn is not None
        return mask_uri_credentials(self.dsn)

    @property
    def connect_dsn(self) -> str:
        """PostgreSQL: the DSN to connect with (metaledger's own parameters removed)."""
        assert self.dsn is not None, "a PostgreSQL location"
        return split_schema_prefix(self.dsn)[0]

    @property
    def log_schema(self) -> str:
        """PostgreSQL: the schema holding the log."""
        return f"{self.schema_prefix}_ledger" if self.schema_prefix else "ledger"

    @property
    def views_schema(self) -> str:
        """PostgreSQL: the schema holding the views."""
        return f"{self.schema_prefix}_views" if self.schema_prefix else "views"

    def option(self, name: str, default: Any = None) -> Any:
        """One backend option's value (``default`` when not given)."""
        return dict(self.options).get(name, default)

    def same_place(self, other: StoreLocation) -> bool:
        """Whether both name the same store (the same directory, or server and schema)."""
        if self.kind != other.kind:
            return False
        if self.path is not None and other.path is not None:
            return os.path.realpath(self.path) == os.path.realpath(other.path)
        return (self.dsn, self.schema_prefix) == (other.dsn, other.schema_prefix)


def split_schema_prefix(dsn: str) -> tuple[str, str]:
    """Split metaledger's own ``schema_prefix`` parameter off a PostgreSQL URI.

    Raises UnsupportedURIError for a prefix that is not letters, digits and underscores.
    """
    parts = urlsplit(dsn)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = ""
    kept = []
    for key, value in query:
        if key == "schema_prefix":
            prefix = value
        else:
            kept.append((key, value))
    if prefix and not (prefix.replace("_", "").isalnum() and prefix.isascii()):
        raise UnsupportedURIError(
            f"schema_prefix must be letters, digits and underscores, not {prefix!r}"
        )
    return urlunsplit(parts._replace(scheme="postgresql", query=urlencode(kept))), prefix


def parse_location(uri: str | os.PathLike[str] | StoreLocation | None = None) -> StoreLocation:
    """Parse a store URI (or None: ``$METALEDGER_STORE``, else the default) into a location.

    UnsupportedURIError for a URI metaledger cannot use; a location given is
    returned as it is. Durability and backend options are attached by
    :func:`eventstore.store_factories.resolve_store`, which checks them against
    the backend (this module imports no backend, so no backend imports back).
    """
    return uri if isinstance(uri, StoreLocation) else _parse(uri)


def _parse(uri: str | os.PathLike[str] | None) -> StoreLocation:
    if uri is None:
        uri = os.environ.get(ENV_VAR) or None
    if uri is None:
        return StoreLocation("sqlite", path=default_store_dir())
    text = os.fspath(uri).strip()
    if not text:
        raise UnsupportedURIError("the store URI is empty")
    if "://" not in text:
        return _sqlite_location(Path(text).expanduser())
    scheme, rest = text.split("://", 1)
    base, _, driver = scheme.lower().partition("+")
    if base in ("postgresql", "postgres") and (not driver or driver in POSTGRES_DRIVERS):
        # asyncpg reads only the plain scheme; the driver suffix names a client we do not use.
        dsn = f"postgresql://{rest}"
        return StoreLocation("postgresql", dsn=dsn, schema_prefix=split_schema_prefix(dsn)[1])
    if base == "sqlite" and (not driver or driver in SQLITE_DRIVERS):
        return _sqlite_location(_sqlite_path(text, rest))
    if base in ("postgresql", "postgres", "sqlite"):
        known = POSTGRES_DRIVERS if base != "sqlite" else SQLITE_DRIVERS
        raise UnsupportedURIError(
            f"unsupported driver {driver!r} in {scheme}://: use {base}:// or one of "
            + ", ".join(f"{base}+{d}://" for d in known)
        )
    raise UnsupportedURIError(
        f"unsupported store URI scheme {scheme!r}: use a path, sqlite:///relative/path, "
        "sqlite:////absolute/path or postgresql://user@host/db"
    )


def _sqlite_path(text: str, rest: str) -> Path:
    """The path of a sqlite URL, read as SQLAlchemy reads it (see the module docstring)."""
    if not rest.startswith("/"):
        # sqlite://relative/path: no host can be meant; relative, as it always was here.
        path_text = rest
    elif rest.startswith("//"):
        path_text = rest[1:]  # sqlite:////abs/path
    else:
        path_text = rest[1:]  # sqlite:///relative/path
        absolute = Path("/" + path_text)
        if path_text and not Path(path_text).expanduser().exists() and _holds_store(absolute):
            # Earlier releases read sqlite:///abs/path as absolute: never open a new, empty
            # store in the working directory while the user's store sits at the absolute path.
            raise UnsupportedURIError(
                f"{text} is the relative path {path_text} (as in SQLAlchemy), which does not "
                f"exist, while a store exists at {absolute}: for that one write "
                f"sqlite:///{absolute}"
            )
    if not path_text:
        raise UnsupportedURIError(
            "a sqlite URL needs a path: sqlite:///relative/path or sqlite:////absolute/path"
        )
    return Path(path_text).expanduser()


def _holds_store(path: Path) -> bool:
    return (path / "ledger.db").is_file() or (path.name == "ledger.db" and path.is_file())


def _sqlite_location(path: Path) -> StoreLocation:
    if path.name == "ledger.db" and path.is_file():
        path = path.parent
    return StoreLocation("sqlite", path=path.absolute())
