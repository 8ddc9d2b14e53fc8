"""The PostgreSQL views store (schema ``<prefix>_views``): the views-store contract."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import drop_schemas
from .views_store_contract import ViewsStoreContract

pytestmark = pytest.mark.postgres


class TestPostgresViewsStore(ViewsStoreContract):
    """The contract, on a PostgreSQL server (one schema prefix per store)."""

    __test__ = True

    @pytest.fixture(autouse=True)
    def _server(self, postgres_server: str) -> Iterator[None]:
        self.server = postgres_server
        self.prefixes: list[str] = []
        yield
        for prefix in self.prefixes:
            drop_schemas(postgres_server, prefix)

    def store_uri(self, tmp_path: Path, name: str = "store") -> str:
        """A fresh schema prefix per store name (and per test)."""
        prefix = f"v{uuid.uuid5(uuid.NAMESPACE_URL, f'{tmp_path}/{name}').hex[:12]}"
        if prefix not in self.prefixes:
            self.prefixes.append(prefix)
        return f"{self.server}?schema_prefix={prefix}"
