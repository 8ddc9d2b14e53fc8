"""``metaledger replay`` and ``metaledger projections``: the audit replay and the live views.

JSON shapes:

- ``replay --json``: ``position`` (reached), ``head_position``, ``recorded_at`` (of the
  event at that position, or null), ``events`` (replayed), ``elapsed_s``,
  ``events_per_s``, ``into`` (the kept views file, or null), and ``summary``:
  ``components``, ``stacks``, ``active_stack``, ``runs`` (status -> count),
  ``steps``, ``artifacts``.
- ``projections status --json``: items with ``name``, ``version``, ``code_version``,
  ``position``, ``lag``, ``state``, ``error``, ``error_position``, ``skipped``,
  ``rebuild_version``, ``rebuild_position``, ``faults`` (the events it could not
  apply and went past: items with ``projection``, ``position``, ``reason``,
  ``recorded_at_us``).
- ``projections rebuild --json``: items with ``name``, ``version``, ``position``,
  ``seconds``.
"""

from __future__ import annotations

import difflib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .context import AsOf, app, open_store_for, progress_bar, run_async
from .errors import EXIT_NOT_FOUND, CLIError
from .input_limits import BoundedInt
from .interrupts import InterruptedAfter
from .output import (
    Column,
    Format,
    emit,
    format_time,
    output_options,
    plural,
    print_properties,
    print_table,
    say,
)

if TYPE_CHECKING:
    from projections import ProjectionStatus

__all__ = ["projections", "replay"]


@click.command()
@click.option(
    "--to",
    "to_position",
    type=BoundedInt(0),
    metavar="POSITION",
    help="Replay up to this log position (inclusive). [default: the head]",
)
@click.option(
    "--as-of",
    "as_of",
    metavar="TIME",
    help="Replay up to the last event recorded at or before this ISO-8601 time (or age: 2h).",
)
@click.option(
    "--into",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Keep the replayed views in DIR/views.db (replacing one there) for inspection.",
)
@output_options()
def replay(to_position: int | None, as_of: str | None, into: Path | None, fmt: Format) -> None:
    """Replay the log into scratch views and summarise them.

    Runs the log from position 1 up to --to POSITION or --as-of TIME (default:
    the head) through every projection into a scratch views store (in memory, or
    DIR/views.db with --into), with a progress bar on a terminal, then prints the
    state it arrives at: components, stacks, the active stack, runs by status,
    steps and artifacts, with the position reached, how many events were
    replayed, the time it took and the rate. The live views are not touched.

    Example: metaledger replay --to 120 --into ./audit
    """
    if to_position is not None and as_of is not None:
        raise click.UsageError("give --to or --as-of, not both")
    point = AsOf(position=to_position) if as_of is None else AsOf.parse(as_of)
    kept = _check_into(into)

    async def body() -> dict[str, Any]:
        from projections import views_as_of

        async with open_store_for() as store:
            head = await store.head()
            total = point.position if point.position is not None else head
            started = time.perf_counter()
            with progress_bar("replaying", enabled=min(total, head) > 0) as progress:
                async with views_as_of(
                    store, position=point.position, when=point.when, into=into, progress=progress
                ) as past:
                    elapsed = time.perf_counter() - started
                    summary = await past.query.summary()
                    reached = past.as_of or 0
            last = await store.stored_at(reached)
        return {
            "position": reached,
            "head_position": head,
            "recorded_at": last.recorded_at if last is not None else None,
            "events": reached,
            "elapsed_s": round(elapsed, 6),
            "events_per_s": round(reached / elapsed, 1) if elapsed > 0 else None,
            "into": kept,
            "summary": summary,
        }

    result = run_async(body)

    def table() -> None:
        summary = result["summary"]
        rate = result["events_per_s"]
        reached, head = result["position"], result["head_position"]
        if reached == 0:
            span = f"nothing: position 0 is before the first event; the head is {head}"
        elif reached == 1:
            span = f"position 1 of {head}"
        else:
            span = f"positions 1-{reached} of {head}"
        say(
            f"Replayed {plural(result['events'], 'event')} ({span}) in "
            f"{result['elapsed_s']:.3f} s"
            + (f": {rate:,.0f} events/s." if rate and result["events"] else ".")
        )
        runs = summary.runs
        runs_text = str(sum(runs.values()))
        if runs:
            runs_text += " (" + ", ".join(f"{k} {v}" for k, v in sorted(runs.items())) + ")"
        print_properties(
            [
                ("POSITION", result["position"]),
                ("RECORDED AT", format_time(result["recorded_at"])),
                ("COMPONENTS", summary.components),
                ("STACKS", summary.stacks),
                ("ACTIVE STACK", summary.active_stack or ""),
                ("RUNS", runs_text),
                ("STEPS", summary.steps),
                ("ARTIFACTS", summary.artifacts),
            ],
            title=f"State as of position {result['position']}",
            headers=("STATE", "VALUE"),
        )
        if result["into"] is not None:
            say(f"Views kept in {result['into']}.")

    emit(result, fmt, table)


def _check_into(into: Path | None) -> str | None:
    """The views file ``--into`` keeps; refuse the store's own directory (its live views)."""
    if into is None:
        return None
    location = app().location
    if location.path is not None and os.path.realpath(into) == os.path.realpath(location.path):
        raise CLIError(
            "--into names the store's own directory, where its live views are: "
            "give another directory"
        )
    return str(into.absolute() / "views.db")


@click.group()
def projections() -> None:
    """Show and rebuild the projections.

    Example: metaledger projections status
    """


def _state(status: ProjectionStatus) -> str:
    text = status.state
    if status.version != status.code_version:
        text += " (outdated)"
    if status.rebuild_version is not None:
        text += f", rebuilding v{status.rebuild_version} at {status.rebuild_position or 0}"
    return text


@projections.command("status")
@output_options()
def status(fmt: Format) -> None:
    """Show each projection's version, position, lag, state and last error, then
    the events the projections could not apply.

    Does not catch up first: the lag is how far each projection is behind the
    log's head right now (reading commands catch up before they answer). An
    event a projection cannot apply (its handler fails on it) never stops the
    projection: it is recorded and listed here (projection, position, reason),
    and `metaledger verify` reports it as a finding.

    Example: metaledger projections status --json
    """

    async def body() -> list[ProjectionStatus]:
        from projections import open_views

        async with open_store_for() as store, open_views(store, auto_rebuild=False) as views:
            return await views.status()

    report = run_async(body)

    def table() -> None:
        print_table(
            (
                Column("PROJECTION", fit="keep"),
                Column("VERSION", fit="keep", drop=1),
                Column("CODE VERSION", fit="keep", drop=2),
                Column("POSITION", fit="keep"),
                Column("LAG", fit="keep"),
                Column("STATE", min_width=8),
                Column("SKIPPED", fit="keep", drop=3),
                Column("LAST ERROR", fit="wrap"),
            ),
            [
                (
                    s.name,
                    s.version,
                    s.code_version,
                    s.position,
                    s.lag,
                    _state(s),
                    s.skipped,
                    f"at {s.error_position}: {s.error}" if s.error else "",
                )
                for s in report
            ],
        )
        faults = [f for s in report for f in s.faults]
        if faults:
            print_table(
                ("PROJECTION", "POSITION", "REASON"),
                [(f.projection, f.position, f.reason) for f in faults],
                title="Events not applied",
            )

    emit(report, fmt, table)


@projections.command("rebuild")
@click.argument("name", required=False)
@output_options()
def rebuild(name: str | None, fmt: Format) -> None:
    """Rebuild one projection (or all), blue/green, from the log.

    Each is refilled from position 1 into new tables beside the live ones, which
    readers keep using until the new ones are swapped in, in one transaction;
    all of them are filled by one read of the log (each one's time is then the
    whole rebuild's). A progress bar shows on a terminal. An unknown NAME exits
    4 and lists the projections.

    Example: metaledger projections rebuild runs
    """
    from projections import default_projections

    known = [p.name for p in default_projections()]
    if name is not None and name not in known:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise CLIError(
            f"no projection named {name!r}{hint} (the projections: {', '.join(known)})",
            EXIT_NOT_FOUND,
        )
    names = [name] if name is not None else known

    async def body() -> list[dict[str, Any]]:
        import anyio

        from projections import open_views
        from projections.transactions import read_states

        results = []
        async with open_store_for() as store, open_views(store, auto_rebuild=False) as views:
            if views.memory_fallback is not None:
                raise CLIError(
                    f"nothing to rebuild: {views.memory_fallback} (reading commands "
                    "build the views in memory there)"
                )
            before = await views.views_store.read(read_states)
            seconds: dict[str, float] = {}
            try:
                started = time.perf_counter()
                # All of them at once: one read of the log fills every new table.
                with progress_bar(f"rebuilding {name or 'views'}") as progress:
                    await views.rebuild(name, progress=progress)
                seconds = dict.fromkeys(names, time.perf_counter() - started)
            except anyio.get_cancelled_exc_class():
                # Ctrl-C: the store says which swaps committed, whatever the
                # cancelled code saw; if all did, the rebuild is simply complete.
                with anyio.CancelScope(shield=True):
                    now_states = await views.views_store.read(read_states)
                rebuilt = [n for n in names if _swapped(before.get(n), now_states.get(n))]
                if len(rebuilt) < len(names):
                    raise InterruptedAfter(_rebuild_interrupted(names, rebuilt)) from None
            with anyio.CancelScope(shield=True):
                now = {s.name: s for s in await views.status()}
            for target in names:
                results.append(
                    {
                        "name": target,
                        "version": now[target].version,
                        "position": now[target].position,
                        "seconds": round(seconds.get(target, 0.0), 6),
                    }
                )
        return results

    results = run_async(body)

    def text() -> None:
        if len(results) > 1 and len({item["position"] for item in results}) == 1:
            # Rebuilt together (one read of the log): one line says it.
            names = ", ".join(f"{item['name']} (v{item['version']})" for item in results)
            first = results[0]
            say(f"Rebuilt {names}: position {first['position']}, {first['seconds']:.2f} s.")
            return
        for item in results:
            say(
                f"Rebuilt {item['name']} (v{item['version']}) up to position "
                f"{item['position']} in {item['seconds']:.2f} s."
            )

    emit(results, fmt, text)


def _swapped(before: Any, now: Any) -> bool:
    """A rebuild's new generation was swapped in between the two states."""
    return (
        before is not None
        and now is not None
        and now.generation > before.generation
        and now.pending_generation is None
    )


def _rebuild_interrupted(names: list[str], rebuilt: list[str]) -> str:
    left = [n for n in names if n not in rebuilt]
    done = f"Rebuilt: {', '.join(rebuilt)}. " if rebuilt else ""
    return (
        f"{done}Not rebuilt: {', '.join(left)} (their live views are unchanged; the "
        "next rebuild or read resumes where this one stopped)."
    )
