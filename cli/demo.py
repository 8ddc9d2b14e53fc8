"""``metaledger demo``: record a small pipeline run, then describe it."""

from __future__ import annotations

from typing import Any

import click

from .context import open_fresh_views, open_store_for, run_async
from .output import Format, emit, output_options, say

__all__ = ["demo"]


@click.command()
@click.option(
    "--run-name",
    metavar="NAME",
    help="Name the run (unique among live runs) [default: training_pipeline-<UTC time>].",
)
@output_options()
@click.pass_context
def demo(ctx: click.Context, run_name: str | None, fmt: Format) -> None:
    """Record a demo pipeline run, then describe it.

    An example async orchestrator (eventstore.demo) runs a six-step DAG against
    the store: featurize_train and featurize_test run concurrently, train fails
    once and is retried, and the lineage from split to evaluate is a diamond.
    The store and its default stack are created first if missing, as `init`
    would. With --json it prints one object: `store`, `initialised` (what `init`
    would have said) and `run` (as `run describe --json`).

    Example: metaledger demo
    """
    from eventstore.demo import run_demo

    from .init import artifact_root, initialise
    from .runs import describe, describe_item

    async def body() -> tuple[dict[str, Any], str, Any]:
        async with open_store_for(create=True) as store:
            initialised = await initialise(store)
            run_id = await run_demo(
                store, artifact_root=artifact_root(store.location.path), run_name=run_name
            )
            if fmt == "table":
                return initialised, str(run_id), None
            # The run went to the active stack's metadata store: read it there.
            runs_store = await store.runs_store()
            async with open_fresh_views(runs_store) as views:
                return initialised, str(run_id), await views.query.run(str(run_id))

    initialised, run_id, found = run_async(body)
    if fmt != "table":
        emit(
            {
                "store": initialised["store"],
                "initialised": initialised,
                "run": describe_item(found),
            },
            fmt,
            lambda: None,
        )
        return
    say(f"Recorded demo run {run_id}.\n")
    ctx.invoke(describe, run_ref=run_id, as_of=None)
