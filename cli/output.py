"""Output for people and for scripts, shared by every command.

- Tables (rich) for people; times in UTC as ``YYYY-MM-DD HH:MM:SS``.
- ``--json``: one JSON document (an array for listings, an object for a
  describe); times ISO-8601 UTC; shapes documented in ``docs/cli.md``.
- ``--nl``: JSON lines, one item per line, for streams and large listings.

Secrets are masked unless ``--show-secrets``: values whose keys look secret and
the credentials of URIs, by :func:`eventstore.secret_masking.mask_secrets`.
"""

from __future__ import annotations

import functools
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
    "mask_secrets",
    "output_options",
    "print_properties",
    "print_table",
    "show_secrets_option",
]

Format = Literal["table", "json", "nl"]


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
    """Add ``--show-secrets`` (values that look secret are masked otherwise)."""
    return click.option(
        "--show-secrets",
        is_flag=True,
        help="Show values that look secret (keys like password or token, URI credentials).",
    )(function)


def mask_secrets(values: Any, *, show: bool = False) -> Any:
    """``values`` with secrets masked: :func:`eventstore.secret_masking.mask_secrets`.

    Imported on use, so ``--help`` stays free of the store's modules.
    """
    from eventstore.secret_masking import mask_secrets as mask

    return mask(values, show=show)


def _builtins(data: Any) -> Any:
    import msgspec

    return msgspec.to_builtins(data)


def emit_json(data: Any) -> None:
    """Print ``data`` as one indented JSON document."""
    import msgspec

    click.echo(msgspec.json.format(msgspec.json.encode(_builtins(data)), indent=2).decode())


def emit_line(item: Any) -> None:
    """Print one JSON line (for ``--nl`` and streams)."""
    import msgspec

    click.echo(msgspec.json.encode(_builtins(item)).decode())


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

    table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left", show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if value is None else str(value) for value in row))
    _console().print(table)


def print_properties(
    rows: Iterable[tuple[str, Any]],
    *,
    title: str | None = None,
    headers: tuple[str, str] = ("PROPERTY", "VALUE"),
) -> None:
    """Print a two-column property table (``COMPONENT_PROPERTY | VALUE`` and the like)."""
    print_table(headers, rows, title=title)
