"""A mixin for contract test classes on PostgreSQL: one schema prefix per store, dropped after."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import drop_schemas


class PostgresPrefixes:
    """``store_uri`` gives each store name (per test) its own schema prefix on the server."""

    #: The first letter of the prefixes, so each suite's schemas are told apart.
    prefix_letter = "t"

    @pytest.fixture(autouse=True)
    def _server(self, postgres_server: str) -> Iterator[None]:
        self.server = postgres_server
        self.prefixes: list[str] = []
        yield
        for prefix in self.prefixes:
            drop_schemas(postgres_server, prefix)

    def store_uri(self, tmp_path: Path, name: str = "store") -> str:
        """A fresh schema prefix per store name (and per test)."""
        digest = uuid.uuid5(uuid.NAMESPACE_URL, f"{tmp_path}/{name}").hex[:12]
        prefix = f"{self.prefix_letter}{digest}"
        if prefix not in self.prefixes:
            self.prefixes.append(prefix)
        return f"{self.server}?schema_prefix={prefix}"
