"""Where a store lives: resolving ``--store``, ``METALEDGER_STORE`` and the default.

Accepted forms:

- nothing: ``$METALEDGER_STORE`` if set, else the default local store in the
  user data directory (``platformdirs``), e.g. ``~/.local/share/metaledger/store``;
- a plain path to the store directory (``./mystore``, ``/srv/ml/store``); a path to
  its ``ledger.db`` file also works;
- ``sqlite:///abs/path`` or ``sqlite://relative/path``;
- ``postgresql://user:password@host:port/dbname[?schema_prefix=team_a]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import platformdirs

from .errors import UnsupportedURIError
from .secret_masking import mask_uri_credentials

__all__ = ["ENV_VAR", "StoreLocation", "default_store_dir", "resolve_store"]

#: The environment variable naming the store when no URI is given.
ENV_VAR = "METALEDGER_STORE"


def default_store_dir() -> Path:
    """The default local store: a directory under the user's data directory."""
    return platformdirs.user_data_path("metaledger", appauthor=False) / "store"


@dataclass(frozen=True, slots=True)
class StoreLocation:
    """A resolved store location: a SQLite directory or a PostgreSQL DSN."""

    kind: Literal["sqlite", "postgresql"]
    path: Path | None = None
    dsn: str | None = None

    @property
    def display(self) -> str:
        """The location for messages: a path, or the DSN without its password."""
        if self.kind == "sqlite":
            return str(self.path)
        assert self.dsn is not None
        return mask_uri_credentials(self.dsn)


def resolve_store(uri: str | os.PathLike[str] | None = None) -> StoreLocation:
    """Resolve a store URI (or None) to a location; UnsupportedURIError for unknown schemes."""
    if uri is None:
        uri = os.environ.get(ENV_VAR) or None
    if uri is None:
        return StoreLocation("sqlite", path=default_store_dir())
    text = os.fspath(uri).strip()
    if not text:
        raise UnsupportedURIError("the store URI is empty")
    if text.startswith(("postgresql://", "postgres://")):
        return StoreLocation("postgresql", dsn=text)
    if text.startswith("sqlite://"):
        text = text[len("sqlite://") :]
        if not text:
            raise UnsupportedURIError("sqlite:// needs a path, e.g. sqlite:///srv/ml/store")
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise UnsupportedURIError(
            f"unsupported store URI scheme {scheme!r}: use a path, sqlite:///path "
            "or postgresql://user@host/db"
        )
    path = Path(text).expanduser()
    if path.name == "ledger.db" and path.is_file():
        path = path.parent
    return StoreLocation("sqlite", path=path.absolute())
