"""The ASGI application (``create_app``) and the ledger it serves (``open_ledger``).

:func:`open_ledger` opens the store (resolved as the CLI resolves ``--store``:
the option, ``$METALEDGER_STORE``, else the default; created with its default
stack if new, so a fresh install serves at once), opens the live views,
catches them up and keeps them current with the projection follower: in a
child process by default (:mod:`server.views_process`), else in a task of the
server, so reads never wait for a catch-up. Leaving it stops the follower and
closes the store, which commits every queued append first.

``create_app(config)`` opens its own ledger in its lifespan; ``metaledger
serve`` opens the ledger first and hands it over (``create_app(config,
ledger=...)``), so a store that cannot be opened is reported as one line and an
exit code, and the store closes only after uvicorn has let in-flight requests
finish.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Sequence

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from eventstore import open_store, resolve_store
from eventstore.logs import get_logger
from projections import open_views

from .access_log import AccessLog, access_lines
from .config import ServerConfig
from .errors import exception_handlers
from .routes import all_routes
from .state import Ledger
from .views_process import follow_in_child

__all__ = ["create_app", "open_ledger"]

log = get_logger("server.app")


@contextlib.asynccontextmanager
async def open_ledger(config: ServerConfig) -> AsyncIterator[Ledger]:
    """The store ``config`` names with live views kept current, for the block's duration."""
    location = resolve_store(config.store_uri)
    async with (
        open_store(location, create=True, log_writer=config.log_writer) as store,
        open_views(store, fresh=False) as views,
        anyio.create_task_group() as group,
    ):
        await views.catch_up()
        ledger = Ledger(store=store, views=views, config=config)
        if config.views_follower == "process" and views.memory_fallback is None:
            await group.start(follow_in_child, config.store_uri, views, ledger.stopping)
        else:
            await group.start(views.follow)
        log.info("ledger_opened", store=location.display, head=await store.head())
        # What start-up made lives as long as the server: out of the collector's
        # walks, so a full collection under load scans only the requests' objects.
        gc.collect()
        gc.freeze()
        try:
            yield ledger
        finally:
            gc.unfreeze()  # a process that opens ledgers again collects this one's cycles
            ledger.stopping.set()
            group.cancel_scope.cancel()
    log.info("ledger_closed", store=location.display)


def create_app(
    config: ServerConfig,
    *,
    ledger: Ledger | None = None,
    routes: Sequence[BaseRoute] | None = None,
) -> Starlette:
    """The server's application: over ``ledger``, or over one its lifespan opens.

    ``routes`` replaces :func:`server.routes.all_routes` (a benchmark adds its floor).
    """

    lines = access_lines() if config.access_log else None

    @contextlib.asynccontextmanager
    async def writing_lines() -> AsyncIterator[None]:
        # The batched access lines are written until the app stops, then the rest.
        if lines is None:
            yield
            return
        async with anyio.create_task_group() as group:
            group.start_soon(lines.run)
            try:
                yield
            finally:
                group.cancel_scope.cancel()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with writing_lines():
            if ledger is not None:
                app.state.ledger = ledger
                try:
                    yield
                finally:
                    ledger.stopping.set()
                return
            async with open_ledger(config) as opened:
                app.state.ledger = opened
                yield

    return Starlette(
        routes=list(all_routes() if routes is None else routes),
        middleware=[Middleware(AccessLog, lines=lines)] if config.access_log else [],
        exception_handlers=dict(exception_handlers),
        lifespan=lifespan,
    )
