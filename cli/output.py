"""Output for people and for scripts, shared by every command.

- Tables (rich) for people; times in UTC as ``YYYY-MM-DD HH:MM:SS``.
- ``--json``: one JSON document (an array for listings, an object for a
  describe); times ISO-8601 UTC; shapes documented in ``docs/cli.md``.
- ``--nl``: JSON lines, one item per line, for streams and large listings.

Configuration values whose keys look secret are masked unless ``--show-secrets``.

Every string a user or the log supplied is shown literally: tables render it as
plain text (never rich markup), and control characters, text-direction overrides
and unencodable surrogates are shown as visible escapes (``\\x1b``, ``\\u202e``,
``\\udcff``), so nothing stored can style, move or clear the terminal. JSON output
keeps every value exact (such characters are written as ``\\u`` escapes there).
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

import click

__all__ = [
    "Format",
    "emit",
    "emit_json",
    "emit_line",
    "format_duration",
    "format_time",
    "json_text",
    "literal",
    "mask_secrets",
    "output_options",
    "print_properties",
    "print_table",
    "say",
    "show_secrets_option",
    "visible",
]

Format = Literal["table", "json", "nl"]

#: Keys that look like they hold a secret: masked in output and logs.
SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api[_-]?key|credential|private[_-]?key|auth|"
    r"access[_-]?key",
    re.IGNORECASE,
)
MASK = "********"


def output_options(*, nl: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add ``--json`` (and ``--nl``) to a command; it receives ``fmt``."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        function = click.option(
            "--json", "json_flag", is_flag=True, help="Print JSON for scripts."
        )(function)
        if nl:
            function = click.option(
                "--nl", "nl_flag", is_flag=True, help="Print JSON lines, one item per line."
            )(function)

        @functools.wraps(function)
        def wrapper(*args: Any, json_flag: bool, nl_flag: bool = False, **kwargs: Any) -> Any:
            from .context import app

            fmt: Format = "nl" if nl_flag else "json" if json_flag or app().json_output else "table"
            return function(*args, fmt=fmt, **kwargs)

        return wrapper

    return decorate


def show_secrets_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--show-secrets`` (configuration values that look secret are masked otherwise)."""
    return click.option(
        "--show-secrets", is_flag=True, help="Show configuration values that look secret."
    )(function)


def mask_secrets(values: Any, *, show: bool = False) -> Any:
    """A copy of ``values`` with the values of secret-looking keys masked (recursively)."""
    if show:
        return values
    if isinstance(values, dict):
        return {
            key: MASK
            if isinstance(key, str) and SECRET_KEY.search(key) and value not in (None, "")
            else mask_secrets(value)
            for key, value in values.items()
        }
    if isinstance(values, list):
        return [mask_secrets(item) for item in values]
    return values


#: What must never reach a terminal raw: C0 and C1 controls and DEL, the
#: characters that reorder or hide text (bidi marks, overrides and isolates, the
#: zero-width space and BOM, line and paragraph separators; not the joiners emoji
#: and scripts need), and lone surrogates (undecodable bytes).
_INVISIBLE = "\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u2028-\\u202e\\u2066-\\u2069\\ufeff"
_UNSAFE = re.compile(f"[\\x00-\\x1f{_INVISIBLE}\\ud800-\\udfff]")
_UNSAFE_KEEP_LINES = re.compile(f"[\\x00-\\x08\\x0b-\\x1f{_INVISIBLE}\\ud800-\\udfff]")
#: In JSON text every unsafe character sits inside a string, where a \\u escape
#: stands for exactly the same value (C0 controls are escaped by the encoder).
_UNSAFE_JSON = re.compile(f"[{_INVISIBLE}]")


_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control or invisible character written as a visible escape.

    ``"a\\x1b[31mb"`` becomes ``a\\x1b[31mb`` (a backslash, then ``x1b``): safe to
    write to a terminal, and the reader sees exactly what is stored. With
    ``keep_newlines``, newlines and tabs stay (for messages of several lines).
    """
    pattern = _UNSAFE_KEEP_LINES if keep_newlines else _UNSAFE
    return pattern.sub(_escape, text)


def literal(value: Any) -> Any:
    """A table cell or title for rich: the value's text, shown as is (no markup)."""
    from rich.text import Text

    return Text("" if value is None else visible(str(value)))


def say(message: str, *, err: bool = False, nl: bool = True) -> None:
    """Print a message for people (stdout, or stderr with ``err``), control characters escaped."""
    click.echo(visible(message, keep_newlines=True), err=err, nl=nl)


def json_text(text: str) -> str:
    """Encoded JSON with the characters a terminal would act on written as \\u escapes."""
    return _UNSAFE_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _builtins(data: Any) -> Any:
    import msgspec

    return msgspec.to_builtins(data)


def emit_json(data: Any) -> None:
    """Print ``data`` as one indented JSON document."""
    import msgspec

    click.echo(
        json_text(msgspec.json.format(msgspec.json.encode(_builtins(data)), indent=2).decode())
    )


def emit_line(item: Any) -> None:
    """Print one JSON line (for ``--nl`` and streams)."""
    import msgspec

    click.echo(json_text(msgspec.json.encode(_builtins(item)).decode()))


def emit(data: Any, fmt: Format, table: Callable[[], None]) -> None:
    """Print ``data`` as JSON, JSON lines (if a list) or, for people, with ``table()``."""
    if fmt == "json":
        emit_json(data)
    elif fmt == "nl":
        for item in data if isinstance(data, list) else [data]:
            emit_line(item)
    else:
        table()


def format_time(value: datetime | None) -> str:
    """A UTC time for tables."""
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def format_duration(seconds: float | None) -> str:
    """A duration for tables: 850ms, 12.3s, 4m05s, 2h03m."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _console() -> Any:
    from rich.console import Console

    # Not a terminal (a pipe, a test): wide, so tables never wrap mid-value.
    width = None if sys.stdout.isatty() else 240
    return Console(highlight=False, width=width, soft_wrap=False)


def print_table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None
) -> None:
    """Print a table with upper-case headers, as ZenML does."""
    from rich import box
    from rich.table import Table

    table = Table(
        title=None if title is None else literal(title),
        box=box.SIMPLE_HEAVY,
        title_justify="left",
        show_lines=False,
    )
    for column in columns:
        table.add_column(literal(column), overflow="fold")
    for row in rows:
        table.add_row(*(literal(value) for value in row))
    _console().print(table)


def print_properties(
    rows: Iterable[tuple[str, Any]],
    *,
    title: str | None = None,
    headers: tuple[str, str] = ("PROPERTY", "VALUE"),
) -> None:
    """Print a two-column property table (``COMPONENT_PROPERTY | VALUE`` and the like)."""
    print_table(headers, rows, title=title)
