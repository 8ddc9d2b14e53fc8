"""Query parameters read one way: bad values are a 400 naming the parameter."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.requests import Request

__all__ = ["MAX_INT", "PREFIX", "boolean", "choice", "integer", "optional_text"]

#: Where metaledger's own API lives.
PREFIX = "/api/metaledger/v1"
#: The largest position a log can hold (and the largest integer a parameter takes).
MAX_INT = (1 << 63) - 1


def optional_text(request: Request, name: str) -> str | None:
    """The parameter's value, or None when absent (an empty value counts as absent)."""
    value = request.query_params.get(name)
    return value if value else None


def integer(
    request: Request, name: str, default: int, *, minimum: int = 0, maximum: int = MAX_INT
) -> int:
    """An integer parameter from ``minimum`` to ``maximum`` (``default`` when absent)."""
    value = optional_text(request, name)
    if value is None:
        return default
    text = value.strip()
    if (
        not (text.isascii() and text.isdigit())
        or len(text) > 19
        or not (minimum <= int(text) <= maximum)
    ):
        raise HTTPException(
            400, f"{name}={value[:40]!r}: give a whole number from {minimum} to {maximum}"
        )
    return int(text)


def boolean(request: Request, name: str, *, default: bool) -> bool:
    """A ``true``/``false`` (``1``/``0``) parameter."""
    value = optional_text(request, name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise HTTPException(400, f"{name}={value[:40]!r}: give true or false")


def choice(request: Request, name: str, allowed: Sequence[str]) -> str | None:
    """One of ``allowed``, or None when absent."""
    value = optional_text(request, name)
    if value is not None and value not in allowed:
        raise HTTPException(400, f"{name}={value[:40]!r}: give one of {', '.join(allowed)}")
    return value
