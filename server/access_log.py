"""One structured log line per request: method, path, status, bytes, duration.

A pure ASGI middleware (no body buffering, so streams stay streams); the line
is written when the answer is complete, or when the client goes away.

Speed. Through ``logging`` and structlog one line costs 230 to 430 us on the
shared test machine, a large share of a small request, and a write to stderr
per request releases the GIL, which the store's commit thread then holds. When
the entry point configured logging with :func:`eventstore.logs.configure_logging`
(``metaledger serve`` does), an :class:`AccessLines` renders the line itself in
the same format (the same fields, the same text or JSON layout) and the lines
are written in batches: at most :data:`FLUSH_SECONDS` late, at once past
:data:`FLUSH_BYTES`, and on shutdown. Otherwise (the app embedded in a program
that set up logging its own way) each line goes through the library logger.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, TextIO

import anyio
import msgspec
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventstore.logs import LogOutput, configured_output, get_logger

__all__ = ["FLUSH_BYTES", "FLUSH_SECONDS", "AccessLines", "AccessLog", "access_lines"]

log = get_logger("server.access")

#: How late a buffered line may be written.
FLUSH_SECONDS = 0.1
#: Buffered text past which the lines are written at once.
FLUSH_BYTES = 64 * 1024
_json = msgspec.json.Encoder()


def _text_value(value: object) -> str:
    # structlog's ConsoleRenderer: strings bare, everything else repr().
    return value if isinstance(value, str) else repr(value)


class AccessLines:
    """Access log lines rendered as ``configure_logging`` renders them, written in batches."""

    def __init__(self, output: LogOutput) -> None:
        self._json = output.fmt == "json"
        self._stream: TextIO = output.stream
        self._lines: list[str] = []
        self._size = 0
        self._pending = anyio.Event()

    def add(self, fields: dict[str, Any]) -> None:
        """Queue the line of one request (``fields`` in the logger's order)."""
        stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        if self._json:
            line = _json.encode({"event": "request", **fields, "level": "info", "timestamp": stamp})
            text = line.decode() + "\n"
        else:
            pairs = " ".join(f"{k}={_text_value(fields[k])}" for k in sorted(fields))
            text = f"{stamp} [info     ] request                        {pairs}\n"
        self._lines.append(text)
        self._size += len(text)
        if self._size >= FLUSH_BYTES:
            self.flush()
        else:
            self._pending.set()

    def flush(self) -> None:
        """Write every queued line now (one write)."""
        if not self._lines:
            return
        text = "".join(self._lines)
        self._lines.clear()
        self._size = 0
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: a log line is not worth a 500
            pass

    async def run(self) -> None:
        """Write queued lines at most FLUSH_SECONDS late, until cancelled (then write the rest)."""
        try:
            while True:
                await self._pending.wait()
                self._pending = anyio.Event()
                await anyio.sleep(FLUSH_SECONDS)
                self.flush()
        finally:
            self.flush()


def access_lines() -> AccessLines | None:
    """Batched access lines when the entry point configured logging at info, else None."""
    output = configured_output()
    if output is None or output.level > 20:  # logging.INFO
        return None
    return AccessLines(output)


class AccessLog:
    """Log ``request`` with its outcome once the answer is sent."""

    def __init__(self, app: ASGIApp, lines: AccessLines | None = None) -> None:
        self.app = app
        self.lines = lines

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
            fields = {
                "method": scope["method"],
                "path": scope["path"],
                "query": scope.get("query_string", b"").decode("latin-1") or None,
                "status": seen["status"],
                "bytes": seen["bytes"],
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "client": f"{client[0]}:{client[1]}" if client else None,
                "token": scope.get("metaledger.token"),
            }
            if self.lines is not None:
                self.lines.add(fields)
            else:
                log.info("request", **fields)
