"""Output for people and for scripts, shared by every command.

- Tables (rich) for people; times in UTC as ``YYYY-MM-DD HH:MM:SS``.
- ``--json``: one JSON document (an array for listings, an object for a
  describe); times ISO-8601 UTC; shapes documented in ``docs/cli.md``.
- ``--nl``: JSON lines, one item per line, for streams and large listings.

Secrets are masked unless ``--show-secrets``: values whose keys look secret and
the credentials of URIs, by :func:`eventstore.secret_masking.mask_secrets`.

Every string a user or the log supplied is shown literally: tables render it as
plain text (never rich markup), and control characters, text-direction overrides
and unencodable surrogates are shown as visible escapes (``\\x1b``, ``\\u202e``,
``\\udcff``), so nothing stored can style, move or clear the terminal. JSON output
keeps every value exact (such characters are written as ``\\u`` escapes there).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import click

from .text import json_text, plural, say, visible

__all__ = [
    "Column",
    "Format",
    "ListingCut",
    "emit",
    "emit_json",
    "emit_line",
    "format_duration",
    "format_time",
    "json_text",
    "limit_options",
    "literal",
    "mask_secrets",
    "output_options",
    "plural",
    "print_properties",
    "print_renderable",
    "print_table",
    "report_cut",
    "say",
    "show_secrets_option",
    "visible",
    "wide_option",
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


def literal(value: Any) -> Any:
    """A table cell or title for rich: the value's text, shown as is (no markup)."""
    from rich.text import Text

    return Text("" if value is None else visible(str(value)))


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


# -- listings: one meaning of --limit ----------------------------------------------


def limit_options(default: int, noun: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add ``--limit N`` and ``--all`` to a listing; it receives ``limit`` (None: everything).

    Every listing reads them the same way: at most N items (``default`` unless
    given), ``--limit 0`` or ``--all`` for all of them. A cut listing says so
    (:func:`report_cut`).
    """

    from .input_limits import BoundedInt

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        function = click.option(
            "--all", "all_items", is_flag=True, help=f"List every matching {noun} (no limit)."
        )(function)
        function = click.option(
            "--limit",
            "limit_n",
            type=BoundedInt(0),
            default=default,
            show_default=True,
            metavar="N",
            help=f"At most N {noun}s, in every output format; 0 for all (as --all).",
        )(function)

        @functools.wraps(function)
        def wrapper(*args: Any, limit_n: int, all_items: bool, **kwargs: Any) -> Any:
            return function(*args, limit=None if all_items or limit_n == 0 else limit_n, **kwargs)

        return wrapper

    return decorate


@dataclass(frozen=True)
class ListingCut:
    """How a listing was cut: ``shown`` of ``total`` (None: more, count unknown)."""

    shown: int
    total: int | None
    noun: str
    plural_form: str | None = None
    #: Another way on, e.g. ``--from 101 to go on``.
    also: str = ""

    @classmethod
    def of(cls, shown: int, total: int | None, noun: str) -> ListingCut | None:
        """The cut of a listing showing ``shown`` of ``total`` items; None if it shows all."""
        return cls(shown, total, noun) if total is not None and total > shown else None

    def message(self) -> str:
        """``50 of 6,250 runs; --limit N or --all for more``."""
        nouns = plural(2, self.noun, self.plural_form).split(" ", 1)[1]
        more = "--limit N or --all for more" + (f", {self.also}" if self.also else "")
        if self.total is None:
            return f"the first {self.shown:,} {nouns}; more match: {more}"
        return f"{self.shown:,} of {plural(self.total, self.noun, self.plural_form)}; {more}"


def report_cut(cut: ListingCut | None, fmt: Format) -> None:
    """Say that a listing was cut: a footer under a table, a note on stderr for JSON."""
    if cut is None:
        return
    if fmt == "table":
        click.echo(cut.message())
    else:
        click.echo(f"Note: {cut.message()}.", err=True)


# -- tables that fit the terminal ------------------------------------------------------


def wide_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--wide``: every column, every value in full (tables fit the terminal otherwise)."""
    return click.option(
        "--wide", is_flag=True, help="Show every column and full values, however wide."
    )(function)


@dataclass(frozen=True)
class Column:
    """A table column and how it gives way when the terminal is narrow.

    ``drop``: columns with the highest value are dropped first when the table is
    too wide (0: never dropped; 1: only if shortening values cannot make it
    fit). ``fit``: ``keep`` (never shortened), ``end`` or ``middle``
    (ellipsized at the end or in the middle, down to ``min_width``), ``wrap``
    (wrapped onto more lines: the long free text of a property table).
    """

    header: str
    drop: int = 0
    fit: Literal["keep", "end", "middle", "wrap"] = "end"
    min_width: int = 8
    #: On a terminal, values are ellipsized beyond this width even when there is room
    #: (a long error message must not push the other columns off the table).
    max_width: int | None = None


def _terminal_width() -> int | None:
    """The width to fit tables to: the terminal's, $COLUMNS if set; None when piped."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if not sys.stdout.isatty():
        return None
    import shutil

    return shutil.get_terminal_size().columns


def _ellipsize(text: str, width: int, where: str) -> str:
    from rich.cells import cell_len, set_cell_size

    if cell_len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    if where == "middle":
        head = (width - 1) // 2
        tail = width - 1 - head
        reversed_tail = set_cell_size(text[::-1], tail)
        return set_cell_size(text, head) + "…" + reversed_tail[::-1]
    return set_cell_size(text, width - 1) + "…"


#: Columns, padding and box edges add this many cells per column, plus one.
_PER_COLUMN = 3


def _fit(
    columns: list[Column], rows: list[list[str]], width: int
) -> tuple[list[Column], list[list[str]], dict[int, int]]:
    """Drop, then shorten columns until the table fits ``width``; the kept widths."""
    from rich.cells import cell_len

    def natural(index: int) -> int:
        width = max([cell_len(columns[index].header), *(cell_len(r[index]) for r in rows)])
        cap = columns[index].max_width
        return width if cap is None or columns[index].fit == "keep" else min(width, cap)

    keep = list(range(len(columns)))
    widths = {i: natural(i) for i in keep}

    def least(index: int) -> int:
        if columns[index].fit in ("end", "middle"):
            floor = max(columns[index].min_width, cell_len(columns[index].header))
            return min(widths[index], floor)
        return widths[index]

    def total(size: Callable[[int], int] = widths.__getitem__) -> int:
        return sum(size(i) for i in keep) + _PER_COLUMN * len(keep) + 1

    for index in sorted(keep, key=lambda i: -columns[i].drop):
        if total() <= width or columns[index].drop == 0:
            break
        # drop=1 marks the last column worth keeping: dropped only when shortening
        # the long values cannot make the table fit.
        if columns[index].drop == 1 and total(least) <= width:
            break
        keep.remove(index)
    shrinkable = [i for i in keep if columns[i].fit in ("end", "middle")]
    excess = total() - width
    while excess > 0:
        candidates = [
            i
            for i in shrinkable
            if widths[i] > max(columns[i].min_width, cell_len(columns[i].header))
        ]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    fitted = [
        [
            _ellipsize(row[i], widths[i], columns[i].fit)
            if columns[i].fit in ("end", "middle")
            else row[i]
            for i in keep
        ]
        for row in rows
    ]
    return [columns[i] for i in keep], fitted, {n: widths[i] for n, i in enumerate(keep)}


def _console(width: int | None = None) -> Any:
    from rich.console import Console

    # Not a terminal (a pipe, a test): wide, so tables never wrap mid-value; the
    # padding rich would add to that width is stripped by _print.
    return Console(highlight=False, width=width or 100_000, soft_wrap=False)


def _print(renderable: Any, width: int | None) -> None:
    """Print for a terminal of ``width``, or unpadded at natural width (pipes, --wide)."""
    if width is not None and sys.stdout.isatty():
        _console(width).print(renderable)
        return
    from rich.console import Console

    console = Console(highlight=False, width=width or 100_000, soft_wrap=False, no_color=True)
    with console.capture() as capture:
        console.print(renderable)
    text = "\n".join(line.rstrip() for line in capture.get().splitlines())
    click.echo(text)


def print_renderable(renderable: Any) -> None:
    """Print a rich renderable (a tree) fitted to the terminal, unpadded when piped."""
    _print(renderable, _terminal_width())


def print_table(
    columns: Sequence[str | Column],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    wide: bool = False,
) -> None:
    """Print a table with upper-case headers, as ZenML does, fitted to the terminal.

    On a terminal (or with $COLUMNS) a table wider than the screen first loses
    the columns marked droppable, then its long values are ellipsized; ``wide``
    keeps everything. Piped output is printed at its natural width, unpadded.
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    specs = [c if isinstance(c, Column) else Column(c, fit="wrap") for c in columns]
    # Escaped before fitting: the widths must count what the terminal shows.
    cells = [["" if value is None else visible(str(value)) for value in row] for row in rows]
    width = None if wide else _terminal_width()
    widths: dict[int, int] = {}
    if width is not None:
        specs, cells, widths = _fit(specs, cells, width)
    table = Table(
        title=None if title is None else literal(title),
        box=box.SIMPLE_HEAVY,
        title_justify="left",
        show_lines=False,
    )
    for index, column in enumerate(specs):
        if column.fit == "wrap":
            table.add_column(Text(column.header), overflow="fold")
        else:
            table.add_column(
                Text(column.header), no_wrap=True, overflow="ellipsis", min_width=widths.get(index)
            )
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))
    _print(table, width)


def print_properties(
    rows: Iterable[tuple[str, Any]],
    *,
    title: str | None = None,
    headers: tuple[str, str] = ("PROPERTY", "VALUE"),
) -> None:
    """Print a two-column property table (``COMPONENT_PROPERTY | VALUE`` and the like).

    The property names are kept whole; long values wrap within the terminal.
    """
    print_table((Column(headers[0], fit="keep"), Column(headers[1], fit="wrap")), rows, title=title)
