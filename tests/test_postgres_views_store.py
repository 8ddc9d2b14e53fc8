"""The PostgreSQL views store (schema ``<prefix>_views``): the views-store contract."""

from __future__ import annotations

import pytest

from .postgres_prefixes import PostgresPrefixes
from .views_store_contract import ViewsStoreContract

pytestmark = pytest.mark.postgres


class TestPostgresViewsStore(PostgresPrefixes, ViewsStoreContract):
    """The contract, on a PostgreSQL server (one schema prefix per store)."""

    __test__ = True
    prefix_letter = "v"
