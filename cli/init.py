"""``metaledger init``: create the store and its default stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .context import open_store_for, run_async
from .output import Format, emit, output_options, say

__all__ = ["artifact_root", "init", "initialise"]


def artifact_root(store_path: Path | None) -> Path:
    """Where the default local artifact store keeps files: beside the log, or the data dir."""
    if store_path is not None:
        return store_path / "artifacts"
    import platformdirs

    return platformdirs.user_data_path("metaledger", appauthor=False) / "artifacts"


async def initialise(store: Any) -> dict[str, Any]:
    """Register the default components and stack if missing; say what was done."""
    from eventstore.defaults import ensure_default_stack

    before = await store.head()
    await ensure_default_stack(store, artifact_root(store.location.path))
    workspace = await store.workspace()
    active = workspace.stacks.get(workspace.active_stack_id) if workspace.active_stack_id else None
    return {
        "store": store.location.display,
        "created": before == 0,
        "changed": await store.head() != before,
        "active_stack": active.name if active else None,
    }


@click.command()
@output_options()
def init(fmt: Format) -> None:
    """Create the store and its default stack.

    The store is created at --store, else $METALEDGER_STORE, else the default
    location. The default stack has a local orchestrator, a local artifact store under the
    store's directory and a sqlite metadata store pointing at the store itself,
    and is made active. Running it again changes nothing.

    Example: metaledger --store ./mystore init
    """

    async def body() -> dict[str, Any]:
        async with open_store_for(create=True) as store:
            return await initialise(store)

    result = run_async(body)

    def text() -> None:
        if result["changed"]:
            say(f"Initialised the metaledger store at {result['store']}.")
            say(f"Active stack: {result['active_stack']}.")
        else:
            say(f"The store at {result['store']} is already initialised; nothing changed.")

    emit(result, fmt, text)
