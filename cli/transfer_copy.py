"""``metaledger copy``: copy the store to another URI, then verify the copy.

The work is the library's (:func:`eventstore.copy`); this module opens both
stores, draws the progress bars (:func:`cli.transfer.stage_bars`), says how far
an interrupted copy got, prints the summary and maps the library's refusals to
messages and exit codes.

``--json``: ``to``, ``copied``, ``already_there``, ``head_position``, ``head_hash``,
``verified``, ``problem``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from .context import PROGRESS_THRESHOLD, open_store_for, run_async
from .errors import EXIT_DAMAGED, CLIError
from .interrupts import interrupted_after
from .output import Format, emit, output_options, plural, say
from .transfer import stage_bars

if TYPE_CHECKING:
    from eventstore import CopyResult, StoreLocation
    from eventstore.transfer import StageProgress

__all__ = ["copy", "copy_to"]


@click.command("copy")
@click.option(
    "--to",
    "target_uri",
    required=True,
    metavar="URI",
    help="The target store: a directory, sqlite:////abs/path or postgresql://...",
)
@output_options()
def copy(target_uri: str, fmt: Format) -> None:
    """Copy the store to another URI, then verify the copy.

    Copies every event of the current store, exactly as stored (positions, ids,
    times, hashes), to the store at URI, which is created if missing. The target
    must be empty or hold a prefix of the same log (an earlier copy): what it
    holds is skipped, so an interrupted copy is resumed by running it again.
    A target `init` already wrote to holds its own default stack, another log:
    it is refused (exit 1), so copy first and run `init` on the target after.
    Every event the target lacks is first checked as `import` checks a line
    (the event itself and the domain rules); one refused event copies nothing
    (exit 1).
    The source's chain is checked on the way (a damaged source stops the copy
    at the first bad position: exit 5), events go over in transactions of 5,000,
    and then the copy is verified and its head hash compared with the source's:
    exit 1 if they disagree. A verified copy's views are then built, so its
    first read does not wait. --json: {"to", "copied", "already_there",
    "head_position", "head_hash", "verified", "problem"}.

    Example: metaledger copy --to /backup/metaledger-store
    """
    result = run_async(_copy_body, target_uri)

    def text() -> None:
        if result["verified"]:
            say(
                f"Copied {plural(result['copied'], 'event')} to {result['to']} "
                f"({result['already_there']:,} {'was' if result['already_there'] == 1 else 'were'}"
                f" there already); the copy verifies: head {result['head_position']}, "
                f"hash {result['head_hash'] or '-'}."
            )

    emit(result, fmt, text)
    if not result["verified"]:
        raise CLIError(f"the copy at {result['to']} does not verify: {result['problem']}")


_COPY_BARS = {
    "checking": "checking",
    "copying": "copying",
    "verifying": "verifying the copy",
    "views": "building the views",
}


async def _copy_body(target_uri: str | StoreLocation) -> dict[str, Any]:
    from eventstore import SameStoreError, open_store, resolve_store

    target_location = resolve_store(target_uri)
    if not isinstance(target_uri, str):  # a location: name it without its credentials
        target_uri = target_location.display
    async with open_store_for() as source:
        if target_location.same_place(source.location):
            raise CLIError(f"{target_uri} is the current store: copy it to another place")
        head = await source.head()
        async with open_store(target_location, create=True, default_stack=False) as target:
            display = target.location.display
            there = await target.head()

            async def copied_so_far() -> str:
                now = await target.head()
                if now <= there:
                    return f"Nothing was copied to {display}; run the copy again."
                if now < head:
                    return (
                        f"{now - there} events (positions {there + 1}-{now}) were copied to "
                        f"{display}; run the copy again to resume it."
                    )
                return (
                    f"All {head} events are in {display}, but the copy was not verified: "
                    f"run `metaledger --store {display} verify`."
                )

            def long_work(stage: str, total: int) -> bool:
                return (total - there if stage == "copying" else total) > PROGRESS_THRESHOLD

            with stage_bars(_COPY_BARS, long_work) as progress:
                async with interrupted_after(copied_so_far):
                    try:
                        result = await _copied(source, target, head, display, progress)
                    except SameStoreError:
                        raise CLIError(
                            f"{target_uri} is the current store: copy it to another place"
                        ) from None
                if result.verified:
                    await _build_views(target, progress)
    return {
        "to": display,
        "copied": result.copied,
        "already_there": result.already_there,
        "head_position": result.head_position,
        "head_hash": result.head_hash,
        "verified": result.verified,
        "problem": result.problem,
    }


async def _build_views(target: Any, progress: StageProgress) -> None:
    """Bring the copy's views up to its head now, so its first read does not wait.

    The views are derived data: a copy interrupted here is complete, and the
    next read (or ``projections rebuild``) finishes them.
    """
    from projections import open_views

    async with open_views(target, fresh=False) as views:
        await views.catch_up(progress=lambda done, total: progress("views", done, total))


async def _copied(
    source: Any, target: Any, head: int, display: str, progress: StageProgress
) -> CopyResult:
    """The library's copy, its refusals as the CLI's messages."""
    from eventstore import LogMismatchError, RowRefusedError, SourceDamagedError
    from eventstore import copy as copy_log

    try:
        return await copy_log(source, target, source_head=head, progress=progress)
    except LogMismatchError as exc:
        there = exc.target_head
        if exc.init_defaults:
            raise CLIError(
                f"{display} already holds a log: the default stack `metaledger init` made "
                f"there ({there} events), not a copy of this store's log; nothing was copied. "
                "Copy into an empty store first, then run `init` there (it changes nothing "
                "when the copied log has its default stack): see 'Moving a store' in "
                "docs/operations.md for clearing a server store that holds only init's events"
            ) from None
        if there > head:
            raise CLIError(
                f"{display} holds {plural(there, 'event')}, more than this store's {head}: it "
                "is not a copy of this log; nothing was copied"
            ) from None
        raise CLIError(
            f"{display} holds another log (its event {there} differs from this store's); "
            "nothing was copied"
        ) from None
    except RowRefusedError as exc:
        raise CLIError(
            f"this store's log holds an event the target may not take, at {exc.fault}; "
            "nothing was copied"
        ) from None
    except SourceDamagedError as exc:
        raise CLIError(
            f"this store's log is damaged at position {exc.position}: {exc.reason}; "
            f"{exc.copied} events were copied before it (run `metaledger verify`)",
            EXIT_DAMAGED,
        ) from None


def copy_to(target: StoreLocation) -> dict[str, Any]:
    """Copy the current store to ``target`` as `copy --to` does; the JSON result."""
    return run_async(_copy_body, target)
