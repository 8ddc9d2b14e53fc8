"""``metaledger demo``: record a small pipeline run, then describe it."""

from __future__ import annotations

import click

from .context import open_store_for, run_async
from .output import say

__all__ = ["demo"]


@click.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
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
            run_id = await run_demo(store, artifact_root=artifact_root(store.location.path))
            return str(run_id)

    run_id = run_async(body)
    say(f"Recorded demo run {run_id}.\n")
    ctx.invoke(describe, run_ref=run_id, as_of=None)
