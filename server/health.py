"""``/healthz`` (the process answers) and ``/readyz`` (the store opens, the views keep up).

Neither needs a token: orchestrators' and load balancers' probes carry none,
and neither tells anything about the store's contents.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from eventstore.errors import LedgerError

from .state import Ledger

__all__ = ["routes"]


async def healthz(request: Request) -> Response:
    """Liveness: the server answers requests."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Readiness: the log answers and every view is live and within ``ready_lag`` of the head."""
    ledger: Ledger = request.app.state.ledger
    try:
        head = await ledger.store.head()
        status = await ledger.views.status()
    except LedgerError as exc:
        return JSONResponse({"status": "unavailable", "reason": str(exc)}, status_code=503)
    behind = [
        {"name": s.name, "position": s.position, "state": s.state, "error": s.error}
        for s in status
        if s.state != "live" or head - s.position > ledger.config.ready_lag
    ]
    body = {
        "status": "ready" if not behind else "behind",
        "head": head,
        "ready_lag": ledger.config.ready_lag,
        "behind": behind,
    }
    return JSONResponse(body, status_code=200 if not behind else 503)


routes: list[BaseRoute] = [
    Route("/healthz", healthz, methods=["GET", "HEAD"]),
    Route("/readyz", readyz, methods=["GET", "HEAD"]),
]
