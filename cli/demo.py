"""``metaledger demo``: record a small pipeline run, then describe it."""

from __future__ import annotations

import click

from .context import open_store_for, run_async

__all__ = ["demo"]


@click.command()
@click.option(
    "--run-name",
    metavar="NAME",
    help="Name the run (unique among live runs) [default: training_pipeline-<UTC time>].",
)
@click.pass_context
def demo(ctx: click.Context, run_name: str | None) -> None:
    """Record a demo pipeline run, then describe it.

    An example async orchestrator (eventstore.demo) runs a six-step DAG against
    the store: featurize_train and featurize_test run concurrently, train fails
    once and is retried, and the lineage from split to evaluate is a diamond.
    The store and its default stack are created first if missing, as `init`
    would.

    Example: metaledger demo
    """
    from eventstore.demo import run_demo

    from .init import artifact_root, initialise
    from .runs import describe

    async def body() -> str:
        async with open_store_for(create=True) as store:
            await initialise(store)
            run_id = await run_demo(
                store, artifact_root=artifact_root(store.location.path), run_name=run_name
            )
            return str(run_id)

    run_id = run_async(body)
    click.echo(f"Recorded demo run {run_id}.\n")
    ctx.invoke(describe, run_ref=run_id, as_of=None)
