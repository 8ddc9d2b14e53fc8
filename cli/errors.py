"""How the CLI reports errors: one line on stderr and a distinct exit code.

Exit codes (documented in ``docs/cli.md``):

==== =========================================================
0    success
1    an error metaledger reports (bad input, refused command...)
2    wrong usage (unknown option, missing argument, non-UTF-8 argument, number out of range)
3    no store there, or not a metaledger store
4    the named thing does not exist
5    ``verify`` found the log damaged
6    the store is busy, full, or unreachable
7    the views do not hold the whole log: a read printed its answer from
     views behind the log (a projection failed or stopped; a warning on
     stderr names it; ``metaledger projections rebuild`` recovers), or
     ``verify`` found events the views could not apply
8    the name or id is already taken (a run name, a component or stack name...)
70   an internal error (a bug): rerun with ``-v`` for the traceback
130  interrupted (Ctrl-C); the store is left intact
==== =========================================================

Tracebacks are shown only with ``-v``. Messages are printed with control
characters escaped visibly (they quote what the user typed).
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator

import click

from .interrupts import InterruptedAfter
from .text import visible

__all__ = [
    "EXIT_BUSY",
    "EXIT_DAMAGED",
    "EXIT_ERROR",
    "EXIT_EXISTS",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_NO_STORE",
    "EXIT_STALE",
    "CLIError",
    "guarded",
]

EXIT_ERROR = 1
EXIT_NO_STORE = 3
EXIT_NOT_FOUND = 4
EXIT_DAMAGED = 5
EXIT_BUSY = 6
#: Output was printed from views behind the log (see the table above).
EXIT_STALE = 7
#: A name or id is already taken.
EXIT_EXISTS = 8
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


class CLIError(click.ClickException):
    """Raised by commands for a user-facing failure: a message and an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        # click declares exit_code on the class; each error carries its own.
        setattr(self, "exit_code", exit_code)  # noqa: B010

    def show(self, file: object = None) -> None:
        """Print ``Error: message`` on stderr."""
        # Messages quote names, values and paths the user gave: never raw to the terminal.
        click.echo(f"Error: {_visible(self.format_message())}", err=True)


def _visible(message: str) -> str:
    return visible(message, keep_newlines=True)


def _os_error(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.filename is None:
        return reason
    name = str(exc.filename)
    shown = name if len(name) <= 120 else f"{name[:60]}…{name[-40:]} ({len(name)} characters)"
    return f"{shown}: {reason}"


def _os_exit_code(exc: OSError) -> int:
    import errno

    return EXIT_BUSY if exc.errno in (errno.ENOSPC, errno.EDQUOT) else EXIT_ERROR


def _exit_code(exc: BaseException) -> int:
    from eventstore.errors import (
        AlreadyExistsError,
        BackendUnavailableError,
        NotAStoreError,
        NotFoundError,
        StoreBusyError,
        StoreFullError,
        StoreNotFoundError,
    )
    from projections.errors import UnknownProjectionError, ViewNotFoundError

    if isinstance(exc, StoreNotFoundError | NotAStoreError):
        return EXIT_NO_STORE
    if isinstance(exc, NotFoundError | ViewNotFoundError | UnknownProjectionError):
        return EXIT_NOT_FOUND
    if isinstance(exc, StoreBusyError | StoreFullError | BackendUnavailableError):
        return EXIT_BUSY
    if isinstance(exc, AlreadyExistsError):
        return EXIT_EXISTS
    return EXIT_ERROR


@contextlib.contextmanager
def guarded(ctx: click.Context) -> Iterator[None]:
    """Turn metaledger's errors, Ctrl-C and bugs into one line and an exit code."""

    def verbose() -> bool:
        return bool(getattr(ctx.find_root().obj, "verbose", 0))

    try:
        yield
        if getattr(ctx.find_root().obj, "stale", None):
            # The command printed its answer; the exit code tells scripts it is stale.
            raise click.exceptions.Exit(EXIT_STALE)
    except click.ClickException as exc:
        # click declares message final; parse errors quote what the user typed.
        setattr(exc, "message", _visible(exc.message))  # noqa: B010
        raise
    except (click.exceptions.Exit, click.exceptions.Abort):
        raise
    except KeyboardInterrupt:
        click.echo("Interrupted; the store is intact.", err=True)
        raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
    except BrokenPipeError:
        # The reader went away (`metaledger run list | head`): stop quietly, as `events
        # list` does; stdout points at devnull so Python's flush at exit stays silent.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise click.exceptions.Exit(0) from None
    except InterruptedAfter as exc:
        click.echo(f"Interrupted. {exc.message}", err=True)
        raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
    except Exception as exc:
        # Imported here, not above: `--help` must not pay for importing the store.
        from eventstore.errors import LedgerError

        if verbose():
            traceback.print_exc(file=sys.stderr)
        if isinstance(exc, LedgerError):
            raise CLIError(str(exc), _exit_code(exc)) from exc
        if isinstance(exc, OSError) and exc.errno is not None:
            # The system refused a path the user gave (too long, not a directory,
            # permission...): the user's to fix, not a bug.
            raise CLIError(_os_error(exc), _os_exit_code(exc)) from exc
        raise CLIError(
            f"internal error: {type(exc).__name__}: {exc} (rerun with -v for the traceback)",
            EXIT_INTERNAL,
        ) from exc
