"""``metaledger metadata-store migrate NAME``: move the home store's runs to a metadata store.

The seed's "moving up" in one command: the home store's log (its runs, and the
stacks they name) is copied, as ``copy --to`` copies it, into the store that
metadata store NAME records into (its ``uri``, password included, or its
default location), then verified; ``--set STACK`` makes a stack using it the
active one afterwards, so `run list` shows the migrated runs at once.
"""

from __future__ import annotations

from typing import Any

import click

from .context import run_on_store
from .errors import CLIError
from .output import Format, emit, output_options, plural, say

__all__ = ["migrate"]


@click.command("migrate")
@click.argument("name")
@click.option("--set", "stack", metavar="STACK", help="Then make STACK (using NAME) active.")
@output_options()
def migrate(name: str, stack: str | None, fmt: Format) -> None:
    """Copy the home store's runs into metadata store NAME's store, then verify.

    The home store's whole log goes over, exactly as `copy --to` copies it (the
    target must be empty or an earlier copy of this log); NAME's location is
    resolved as `metadata-store describe` shows it, credentials included, so
    they need not be typed again. --set STACK then makes STACK the active stack
    (it must use NAME), so `run list` reads the migrated runs from there.

    Example: metaledger metadata-store migrate team --set team_stack
    """
    from eventstore import StoreLocation

    from .transfer_copy import copy_to

    async def resolve(store: Any) -> StoreLocation:
        from eventstore.metadata_stores import resolve_metadata_store

        workspace = await store.workspace()
        component = workspace.component("metadata_store", name)
        if stack is not None:
            chosen = workspace.stack(stack)
            if chosen.components.get("metadata_store") != component.component_id:
                raise CLIError(f"stack {stack!r} does not use metadata store {name!r}")
        target = resolve_metadata_store(component, store.location)
        if target.location is None:
            raise CLIError(f"metadata store {name!r} is this store: there is nothing to migrate")
        return target.location

    location = run_on_store(resolve)
    result = copy_to(location)
    if not result["verified"]:
        raise CLIError(f"the copy at {result['to']} does not verify: {result['problem']}")
    if stack is not None:
        run_on_store(lambda store: store.set_active_stack(stack))
    result = {**result, "metadata_store": name, "active_stack": stack}

    def text() -> None:
        say(
            f"Migrated {plural(result['copied'], 'event')} to metadata store `{name}` "
            f"({result['to']}); the copy verifies: head {result['head_position']}."
        )
        if stack is not None:
            say(f"Active stack set to: `{stack}`")

    emit(result, fmt, text)
