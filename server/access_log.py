"""One structured log line per request: method, path, status, bytes, duration.

A pure ASGI middleware (no body buffering, so streams stay streams); the line
is written when the answer is complete, or when the client goes away.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventstore.logs import get_logger

__all__ = ["AccessLog"]

log = get_logger("server.access")


class AccessLog:
    """Log ``request`` with its outcome once the answer is sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, counting what is sent back."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": 500, "bytes": 0}

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            elif message["type"] == "http.response.body":
                seen["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            client = scope.get("client")
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                query=scope.get("query_string", b"").decode("latin-1") or None,
                status=seen["status"],
                bytes=seen["bytes"],
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                client=f"{client[0]}:{client[1]}" if client else None,
                token=scope.get("metaledger.token"),
            )
