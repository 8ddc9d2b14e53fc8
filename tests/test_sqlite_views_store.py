"""The SQLite views store (``views.db`` beside the log): the views-store contract."""

from __future__ import annotations

from pathlib import Path

from .views_store_contract import ViewsStoreContract


class TestSQLiteViewsStore(ViewsStoreContract):
    """The contract, on a views file beside a SQLite log."""

    __test__ = True

    def store_uri(self, tmp_path: Path, name: str = "store") -> str:
        """A fresh store directory per name."""
        return str(tmp_path / name)
