"""Every route of the server, gathered from the modules that own them.

Each module exports a ``routes`` list; this module only concatenates them, so
adding a part of the API is one import line here.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

__all__ = ["all_routes"]


def all_routes() -> list[BaseRoute]:
    """The routes of every part: health, metaledger's API (then OpenLineage, the web pages)."""
    from . import api, health, openlineage_api, web

    return [*health.routes, *api.routes, *openlineage_api.routes, *web.routes]
