"""metaledger's own API under ``/api/metaledger/v1``: reads, the live stream, the write API.

Reads answer the same data in the same JSON shapes as the CLI's ``--json``
(the CLI's item functions build both); every read takes ``as_of`` (a position
or a time, as ``--as-of``). Writes take the JSON-lines format of ``events
append``, with its validation and idempotency.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from eventstore import AppendError, BadLinesError, RuleBreachError, append_lines, parse_lines

from .auth import require_scope
from .bodies import read_body
from .errors import error_response
from .state import Ledger

__all__ = ["PREFIX", "json_response", "routes"]

#: Where metaledger's own API lives.
PREFIX = "/api/metaledger/v1"

_encoder = msgspec.json.Encoder()


def json_response(data: Any, status: int = 200) -> Response:
    """``data`` (Structs, datetimes, builtins) as a JSON answer, encoded as the CLI encodes."""
    return Response(_encoder.encode(data), status_code=status, media_type="application/json")


def _ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


async def append_events(request: Request) -> Response:
    """``POST /events``: JSON lines as ``events append``; all appended or none.

    201 with ``appended``, ``already_stored``, ``first_position``,
    ``last_position``; a retry of the same body appends nothing (200).
    """
    require_scope(request, "ingest")
    ledger = _ledger(request)
    limits = ledger.config.limits
    body = await read_body(
        request, max_bytes=limits.max_body_bytes, max_decompressed=limits.max_decompressed_bytes
    )
    events = sum(1 for line in body.split(b"\n") if line.strip())
    if events > limits.max_batch:
        return error_response(
            413, f"more than {limits.max_batch:,} events in one request; send them in batches"
        )
    try:
        parsed = parse_lines(body, ledger.store.codec)
        result = await append_lines(ledger.store, parsed)
    except RuleBreachError as exc:
        return error_response(422, str(exc), code="rule_breach", extra={"faults": list(exc.faults)})
    except BadLinesError as exc:
        return error_response(400, str(exc), code="bad_lines", extra={"faults": list(exc.faults)})
    except AppendError as exc:
        from .errors import status_of

        return error_response(status_of(exc), str(exc), extra={"line": exc.line})
    report = {
        "appended": result.appended,
        "already_stored": result.already_stored,
        "first_position": result.first_position,
        "last_position": result.last_position,
    }
    return json_response(report, 201 if result.appended else 200)


routes: list[BaseRoute] = [
    Route(f"{PREFIX}/events", append_events, methods=["POST"]),
]
