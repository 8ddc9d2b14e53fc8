"""Limits on what the command line accepts: UTF-8 arguments and 64-bit numbers.

Anything outside them is refused while parsing, with one line on stderr and exit
code 2 (wrong usage), before the store is opened: an argument that is not valid
UTF-8 (Python hands such bytes over as lone surrogates), and a number (position,
count, limit) beyond the signed 64 bits the store keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from .text import visible

__all__ = ["MAX_INT", "BoundedInt", "check_arguments", "parse_position"]

#: The largest position, count or limit a command accepts (what SQLite and
#: PostgreSQL keep in a BIGINT).
MAX_INT = (1 << 63) - 1


def _shown(text: str, width: int = 40) -> str:
    shown = visible(text)
    return shown if len(shown) <= width else f"{shown[: width - 1]}…"


def _undecodable(text: str) -> str:
    """Bytes Python could not decode (surrogate escapes) shown as ``\\xff``."""
    return "".join(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in text)


def check_arguments(args: Sequence[str]) -> None:
    """Raise a usage error for the first argument that is not valid UTF-8 text (or has a NUL)."""
    for index, arg in enumerate(args, start=1):
        if "\x00" in arg:  # no shell can pass one; only an embedding caller
            raise click.UsageError(f"argument {index} ({_shown(arg)}) contains a NUL character")
        if arg.isascii():
            continue
        try:
            arg.encode()
        except UnicodeEncodeError as exc:
            byte = ord(arg[exc.start]) - 0xDC00
            what = f"byte 0x{byte:02x}" if 0x80 <= byte <= 0xFF else "a lone surrogate"
            shown = _shown(_undecodable(arg))
            raise click.UsageError(
                f"argument {index} ({shown}) is not valid UTF-8: {what} at character "
                f"{exc.start + 1}; metaledger takes names and values as UTF-8 text"
            ) from None


def _too_large(text: str) -> bool:
    digits = text.strip().lstrip("+-").lstrip("0")
    return digits.isascii() and digits.isdigit() and (len(digits) > 19 or int(digits) > MAX_INT)


def parse_position(text: str) -> int:
    """A log position given as digits; a usage error when beyond any position the log can hold."""
    if _too_large(text):
        raise click.BadParameter(
            f"{_shown(text)} is beyond any log position (at most {MAX_INT})",
            param_hint="'POSITION'",
        )
    return int(text.strip())


class BoundedInt(click.IntRange):
    """An integer option from ``min`` up to 2**63 - 1, with a clear error for larger ones.

    Help shows ``x>=min`` as an open range does: the upper bound is the store's, not
    the option's.
    """

    def __init__(self, min: int = 0) -> None:
        super().__init__(min=min, max=MAX_INT)

    def _describe_range(self) -> str:
        return f"x>={self.min}"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Refuse numbers beyond 64 bits by name, then check as an IntRange."""
        if isinstance(value, str) and _too_large(value):
            self.fail(f"{_shown(value)} is out of range (at most {MAX_INT})", param, ctx)
        return super().convert(value, param, ctx)
