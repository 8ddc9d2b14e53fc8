"""The server's batched access lines: the format configure_logging writes, every line flushed."""

from __future__ import annotations

import io
import json
import logging

import anyio

from eventstore.logs import LogOutput
from server.access_log import AccessLines

FIELDS = {
    "method": "POST",
    "path": "/api/v1/lineage",
    "query": None,
    "status": 201,
    "bytes": 180,
    "duration_ms": 1.23,
    "client": "127.0.0.1:5000",
    "token": None,
}


def test_json_lines_hold_every_field() -> None:
    out = io.StringIO()
    lines = AccessLines(LogOutput(logging.INFO, "json", out))
    lines.add(FIELDS)
    assert out.getvalue() == ""  # buffered until flushed
    lines.flush()
    record = json.loads(out.getvalue())
    assert {**FIELDS, "event": "request", "level": "info"}.items() <= record.items()
    assert record["timestamp"].endswith("Z")


def test_text_lines_read_as_the_console_renderer_writes() -> None:
    out = io.StringIO()
    lines = AccessLines(LogOutput(logging.INFO, "text", out))
    lines.add(FIELDS)
    lines.add({**FIELDS, "status": 404})
    lines.flush()
    first, second = out.getvalue().splitlines()
    assert "[info     ] request" in first
    assert first.endswith(
        "bytes=180 client=127.0.0.1:5000 duration_ms=1.23 method=POST "
        "path=/api/v1/lineage query=None status=201 token=None"
    )
    assert "status=404" in second


async def test_the_writer_task_flushes_soon_and_on_cancel() -> None:
    out = io.StringIO()
    lines = AccessLines(LogOutput(logging.INFO, "text", out))
    async with anyio.create_task_group() as group:
        group.start_soon(lines.run)
        lines.add(FIELDS)
        with anyio.fail_after(5):
            while not out.getvalue():  # noqa: ASYNC110 (polled: the writer task flushes)
                await anyio.sleep(0.01)
        lines.add({**FIELDS, "status": 500})
        group.cancel_scope.cancel()
    assert "status=500" in out.getvalue()
