"""``metaledger verify``: check the log's hash chain and invariants.

JSON (``--json``, printed whether the log is sound or not): ``ok``, ``events`` (how
many rows verified), ``first_bad_position`` and ``reason`` (null when sound),
``head_position``, ``view_faults`` (events the views could not apply: items with
``projection``, ``position``, ``reason``).
"""

from __future__ import annotations

import contextlib
from typing import Any

import click

from .context import PROGRESS_THRESHOLD, open_store_for, progress_bar, run_async
from .errors import EXIT_DAMAGED, EXIT_STALE, CLIError
from .output import Format, emit_json, output_options, plural, say

__all__ = ["verify", "verify_item"]


async def _view_faults(store: Any) -> list[dict[str, Any]]:
    """The events the views could not apply, after catching them up where they can be.

    Views that cannot be opened or written (read-only storage, a full disk) are
    left out: the log is what verify checks, the views are disposable.
    """
    from eventstore import LedgerError
    from projections import open_views

    try:
        async with open_views(store, auto_rebuild=False) as views:
            await views.catch_up()
            return [
                {"projection": f.projection, "position": f.position, "reason": f.reason}
                for f in await views.faults()
            ]
    except (LedgerError, OSError):
        return []


def verify_item(report: Any, view_faults: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON shape of ``verify``: a ``VerifyReport`` and the views' faults."""
    return {
        "ok": report.ok,
        "events": report.events,
        "first_bad_position": report.first_bad_position,
        "reason": report.reason,
        "head_position": report.head_position,
        "view_faults": view_faults,
    }


@click.command()
@output_options()
def verify(fmt: Format) -> None:
    """Verify the log's hash chain and invariants.

    Walks the whole log: positions 1, 2, 3... without gaps, each stream's versions
    1, 2, 3..., times that never go backwards, and every row's hash recomputed
    from its contents and the previous hash, so any edited, deleted, inserted or
    reordered row is found. Exit 0 with "ok: N events, head P, chain intact";
    exit 5 naming the first bad position and the reason when the log is damaged
    (a SQLite file too corrupt to read counts as damaged too). On a sound log it
    then brings the views up to date and reports, as findings, the events they
    could not apply (events the write side refuses today, appended by an older
    release or the raw Log.append API): one "finding:" line each, exit 7.
    --json prints {"ok", "events", "first_bad_position", "reason",
    "head_position", "view_faults"} either way. A progress bar shows on a
    terminal for large logs.

    Example: metaledger verify --json
    """

    async def body() -> dict[str, Any]:
        from eventstore import NotAStoreError, StoreCorruptError

        head: int | None = None
        try:
            async with open_store_for() as store:
                with contextlib.suppress(StoreCorruptError):  # verify walks to the damage
                    head = await store.head()
                try:
                    with progress_bar(
                        "verifying", enabled=(head or 0) > PROGRESS_THRESHOLD
                    ) as progress:
                        report = await store.verify(progress=progress)
                except NotAStoreError as exc:  # the file became unreadable half-way: damage
                    return _unreadable(exc, head)
                faults = await _view_faults(store) if report.ok else []
        except StoreCorruptError as exc:  # our log, too damaged to open: damage, not "no store"
            return _unreadable(exc, head)
        return verify_item(report, faults)

    result = run_async(body)
    if fmt != "table":
        emit_json(result)
    if result["ok"]:
        if fmt == "table":
            say(
                f"ok: {plural(result['events'], 'event')}, head {result['head_position']}, "
                "chain intact"
            )
            for fault in result["view_faults"]:
                say(
                    f"finding: the {fault['projection']} view could not apply the event at "
                    f"position {fault['position']}: {fault['reason']}"
                )
        if result["view_faults"]:
            raise CLIError(
                f"the views could not apply {plural(len(result['view_faults']), 'event')} of "
                "the log (see `metaledger projections status`)",
                EXIT_STALE,
            )
        return
    where = result["first_bad_position"]
    if where is None:
        raise CLIError(f"the log is damaged: {result['reason']}", EXIT_DAMAGED)
    raise CLIError(
        f"the log is damaged at position {where}: {result['reason']} "
        f"({plural(result['events'], 'event')} before it "
        f"{'verifies' if result['events'] == 1 else 'verify'}; head {result['head_position']})",
        EXIT_DAMAGED,
    )


def _unreadable(exc: Exception, head: int | None) -> dict[str, Any]:
    return {
        "ok": False,
        "events": 0,
        "first_bad_position": None,
        "reason": str(exc),
        "head_position": head,
        "view_faults": [],
    }
