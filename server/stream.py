"""The live event stream: ``GET /api/metaledger/v1/events/stream`` as Server-Sent Events.

One SSE event per log entry, in log order: ``id`` is the position, ``data``
the entry as ``events list --json`` shows it (one JSON line). It starts at
``from`` (default 1), or after the ``Last-Event-ID`` a reconnecting client
sends (which wins over ``from``), so a reconnect neither loses nor repeats an
entry: positions have no gaps and are committed in order.

The log is read in chunks of :data:`CHUNK` rows (``Log.follow``: catch up,
then wait for appends) and each event is written before the next is built;
a slow client holds back the reading through the transport's flow control,
so a stream's memory is at most one chunk, whatever the client's pace. A
comment line every :data:`HEARTBEAT_SECONDS` keeps proxies from closing an
idle stream. The stream ends when the client goes away or the server stops.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Any, cast

import anyio
import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from cli.events import list_item
from eventstore.envelope import StoredEvent

from .auth import require_scope
from .params import MAX_INT, boolean, integer
from .state import Ledger

__all__ = ["CHUNK", "HEARTBEAT_SECONDS", "event_stream"]

#: Rows read from the log at a time: the most a stream holds in memory.
CHUNK = 64
#: An idle stream sends a comment this often.
HEARTBEAT_SECONDS = 15.0
#: What a client waits before reconnecting (the SSE ``retry`` field), in milliseconds.
RETRY_MS = 1000

_encoder = msgspec.json.Encoder()


def _frame(row: tuple[object, ...], show_secrets: bool) -> bytes:
    stored = StoredEvent._make(row)
    data = _encoder.encode(list_item(stored, show_secrets=show_secrets))
    return b"id: %d\ndata: %s\n\n" % (stored.position, data)


class EventStreamResponse(Response):
    """An endless ``text/event-stream`` answer over the log, from ``start`` on."""

    media_type = "text/event-stream"

    def __init__(self, ledger: Ledger, start: int, *, show_secrets: bool) -> None:
        super().__init__(status_code=200)
        self.ledger = ledger
        self.start = start
        self.show_secrets = show_secrets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream until the client disconnects or the server stops."""
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        sending = anyio.Lock()

        async def write(data: bytes) -> None:
            async with sending:
                await send({"type": "http.response.body", "body": data, "more_body": True})

        async with anyio.create_task_group() as group:

            async def produce() -> None:
                await write(b"retry: %d\n\n" % RETRY_MS)
                follow = cast(
                    AsyncGenerator[list[tuple[Any, ...]], None],
                    self.ledger.store.log.follow(self.start, chunk_size=CHUNK),
                )
                async with contextlib.aclosing(follow) as chunks:
                    async for rows in chunks:
                        for row in rows:
                            await write(_frame(row, self.show_secrets))
                group.cancel_scope.cancel()  # the store closed

            async def heartbeat() -> None:
                while True:
                    await anyio.sleep(HEARTBEAT_SECONDS)
                    await write(b": keep-alive\n\n")

            async def until_disconnected() -> None:
                while True:
                    message: Message = await receive()
                    if message["type"] == "http.disconnect":
                        group.cancel_scope.cancel()
                        return

            async def until_stopping() -> None:
                await self.ledger.stopping.wait()
                group.cancel_scope.cancel()

            for task in (produce, heartbeat, until_disconnected, until_stopping):
                group.start_soon(task)
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def _resume_from(request: Request) -> int:
    """The first position to send: after ``Last-Event-ID`` if given, else ``from``."""
    last = request.headers.get("last-event-id")
    if last is not None and last.strip():
        text = last.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) >= MAX_INT:
            raise HTTPException(400, f"Last-Event-ID {text[:40]!r} is not a log position")
        return int(text) + 1
    return integer(request, "from", 1, minimum=1)


async def event_stream(request: Request) -> EventStreamResponse:
    """``GET /events/stream?from=POSITION``: every log entry from there on, then live."""
    require_scope(request, "read")
    ledger: Ledger = request.app.state.ledger
    return EventStreamResponse(
        ledger,
        _resume_from(request),
        show_secrets=boolean(request, "show_secrets", default=False),
    )
