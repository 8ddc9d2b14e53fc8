"""The PostgreSQL backend: the same contract suite, plus ordering and connection loss."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from .backend_contract import BackendContract
from .conftest import drop_schemas

pytestmark = pytest.mark.postgres


class TestPostgresBackend(BackendContract):
    """The contract, on a PostgreSQL server (one schema prefix per store)."""

    __test__ = True

    @pytest.fixture(autouse=True)
    def _server(self, postgres_server: str) -> object:
        self.server = postgres_server
        self.prefixes: list[str] = []
        yield
        for prefix in self.prefixes:
            drop_schemas(postgres_server, prefix)

    def store_uri(self, tmp_path: Path, name: str = "store") -> str:
        """A fresh schema prefix per store name (and per test)."""
        prefix = f"t{uuid.uuid5(uuid.NAMESPACE_URL, f'{tmp_path}/{name}').hex[:12]}"
        if prefix not in self.prefixes:
            self.prefixes.append(prefix)
        return f"{self.server}?schema_prefix={prefix}"
