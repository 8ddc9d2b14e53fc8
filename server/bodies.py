"""Reading a request body within bounds: its size as sent, and once inflated.

The body is read chunk by chunk as it arrives and refused (413) the moment it
passes ``max_bytes``, before anything is parsed, so a huge upload costs no
memory; a ``Content-Length`` already over the bound is refused unread. A
``Content-Encoding: gzip`` body is inflated with a bounded decompressor
(``zlib`` asked for at most the remaining allowance each step), so a gzip bomb
stops at ``max_decompressed`` and is refused with 413; a body that is not
valid gzip is a 400. A refused request has stored nothing: routes read the
body before they parse or append.
"""

from __future__ import annotations

import zlib

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request

__all__ = ["inflate", "read_body"]

#: Inflate in steps of at most this many bytes of output.
_STEP = 256 * 1024


async def read_body(
    request: Request, *, max_bytes: int | None = None, max_decompressed: int | None = None
) -> bytes:
    """The request's body, inflated if gzip; 413 past either bound, 400 for bad gzip.

    The bounds default to the server's limits (``--max-body``, ``--max-inflated``).
    """
    if max_bytes is None or max_decompressed is None:
        limits = request.app.state.ledger.config.limits
        max_bytes = limits.max_body_bytes if max_bytes is None else max_bytes
        if max_decompressed is None:
            max_decompressed = limits.max_decompressed_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(400, "Content-Length is not a number")
        if int(declared) > max_bytes:
            raise HTTPException(413, f"the body is over the limit of {max_bytes:,} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise HTTPException(413, f"the body is over the limit of {max_bytes:,} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise HTTPException(400, "the client went away before sending the whole body") from None
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        return inflate(body, max_decompressed)
    raise HTTPException(415, f"Content-Encoding {encoding!r} is not supported (gzip is)")


def inflate(data: bytes, limit: int) -> bytes:
    """Inflate gzip ``data`` to at most ``limit`` bytes: 413 past it, 400 if not gzip."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out: list[bytes] = []
    size = 0
    pending = data
    try:
        while True:
            piece = inflater.decompress(pending, min(_STEP, limit - size + 1))
            size += len(piece)
            if size > limit:
                raise HTTPException(
                    413, f"the body inflates to more than the limit of {limit:,} bytes"
                )
            out.append(piece)
            pending = inflater.unconsumed_tail
            if inflater.eof:
                if inflater.unused_data:
                    # Concatenated gzip members: rare from clients; inflate them too.
                    rest = inflate(inflater.unused_data, limit - size)
                    out.append(rest)
                return b"".join(out)
            if not pending and not piece:
                raise HTTPException(400, "the gzip body is cut short")
    except zlib.error as exc:
        raise HTTPException(400, f"the body is not valid gzip: {exc}") from None
