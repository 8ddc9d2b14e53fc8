"""``metaledger pipeline``: pipelines as their runs show them (as ``zenml pipeline``)."""

from __future__ import annotations

from typing import Any

import click

from .context import (
    as_of_option,
    open_fresh_views,
    open_runs_store,
    run_async,
    run_on_views,
    stack_option,
)
from .output import Column, Format, emit, format_time, output_options, print_table, say
from .runs import list_ as run_list

__all__ = ["pipeline", "pipeline_item"]


def pipeline_item(found: Any) -> dict[str, Any]:
    """The stable JSON shape of a pipeline."""
    return {
        "name": found.name,
        "runs": found.runs,
        "last_run_id": found.last_run_id,
        "last_run_name": found.last_run_name,
        "last_status": found.last_status,
        "last_started_at": found.last_started_at,
    }


@click.group()
def pipeline() -> None:
    """List pipelines and their runs.

    A pipeline is known by its runs: the pipeline name every live run records.

    Example: metaledger pipeline runs training_pipeline
    """


@pipeline.command("list")
@stack_option
@as_of_option
@output_options()
def list_(as_of: str | None, fmt: Format) -> None:
    """List pipelines with their run count and latest run, most recently run first.

    Example: metaledger pipeline list --json
    """

    found = run_on_views(lambda views: views.query.pipelines(), as_of, runs=True)
    items = [pipeline_item(p) for p in found]

    def table() -> None:
        if not found:
            say("No pipelines: no runs recorded yet.")
            return
        print_table(
            (
                Column("PIPELINE", min_width=16),
                Column("RUNS", fit="keep"),
                Column("LAST RUN", fit="middle", min_width=20, drop=2),
                Column("LAST STATUS", fit="keep"),
                Column("LAST STARTED", fit="keep", drop=1),
            ),
            [
                (
                    p.name,
                    p.runs,
                    p.last_run_name,
                    p.last_status,
                    format_time(p.last_started_at),
                )
                for p in found
            ],
        )

    emit(items, fmt, table)


def _runs(name: str, **options: Any) -> None:
    as_of = options.get("as_of")

    async def check() -> None:
        async with open_runs_store() as store, open_fresh_views(store, as_of) as views:
            await views.query.pipelines(name)

    run_async(check)
    click.get_current_context().invoke(run_list, pipeline=name, **options)


runs = click.Command(
    "runs",
    params=[
        click.Argument(["name"], metavar="NAME"),
        *[p for p in run_list.params if p.name != "pipeline"],
    ],
    callback=_runs,
    help="List the runs of pipeline NAME, newest first (as `run list --pipeline NAME`).\n\n"
    "An unknown NAME exits 4 with close names.\n\n"
    "Example: metaledger pipeline runs training_pipeline --status failed",
)
pipeline.add_command(runs)
