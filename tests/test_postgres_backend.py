"""The PostgreSQL backend: the same contract suite, plus ordering and connection loss."""

from __future__ import annotations

import pytest

from .backend_contract import BackendContract
from .postgres_prefixes import PostgresPrefixes

pytestmark = pytest.mark.postgres


class TestPostgresBackend(PostgresPrefixes, BackendContract):
    """The contract, on a PostgreSQL server (one schema prefix per store)."""

    __test__ = True
