"""The default stack every store has: ``default`` components and stack, made once.

:func:`ensure_default_stack` is one workspace command: it folds the workspace,
decides which of the default components, the default stack and the active
stack are missing, and appends them all in one append with the version it
validated against. Of several processes opening a new store at once, one
appends; the others find the stream moved, reload, see nothing missing and
append nothing. So it is idempotent, also across processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from .events import ComponentRegistered, Event, StackRegistered, WorkspaceActiveStackSet
from .metadata_stores import THIS_STORE
from .workspace import WorkspaceState

if TYPE_CHECKING:
    from .store import EventStore
    from .uri import StoreLocation

__all__ = ["DEFAULT_NAME", "default_artifact_root", "ensure_default_stack"]

#: The name of the default components and stack (as in ZenML).
DEFAULT_NAME = "default"


def default_artifact_root(location: StoreLocation) -> Path:
    """Where the default local artifact store keeps files: beside the log, or the data dir."""
    if location.path is not None:
        return Path(location.path) / "artifacts"
    import platformdirs

    return platformdirs.user_data_path("metaledger", appauthor=False) / "artifacts"


async def ensure_default_stack(store: EventStore, artifact_path: Path | None = None) -> UUID:
    """Register the ``default`` components and stack if missing, and make it active if none is.

    Idempotent, also across processes: a store that has them only gets the
    default stack's id back (and the stack set active if no stack is).
    ``artifact_path`` defaults to :func:`default_artifact_root`.
    """
    path = artifact_path if artifact_path is not None else default_artifact_root(store.location)
    defaults: dict[str, tuple[str, dict[str, Any]]] = {
        "orchestrator": ("local", {}),
        "artifact_store": ("local", {"path": str(path)}),
        # The metadata store is this store itself, whichever backend holds it: recorded
        # as "this store", not a path, so an export or a copy still points at itself.
        "metadata_store": (store.location.kind, {"uri": THIS_STORE}),
    }
    chosen: list[UUID] = []

    def decide(state: WorkspaceState) -> list[Event]:
        chosen.clear()
        events: list[Event] = []
        ids: dict[str, UUID] = {}
        for component_type, (flavor, configuration) in defaults.items():
            existing = [c for c in state.live_components(component_type) if c.name == DEFAULT_NAME]
            if existing:
                ids[component_type] = existing[0].component_id
                continue
            ids[component_type] = uuid4()
            events.append(
                ComponentRegistered(
                    component_id=ids[component_type],
                    type=component_type,
                    flavor=flavor,
                    name=DEFAULT_NAME,
                    configuration=configuration,
                )
            )
        stacks = [s for s in state.live_stacks() if s.name == DEFAULT_NAME]
        stack_id = stacks[0].stack_id if stacks else uuid4()
        if not stacks:
            events.append(
                StackRegistered(
                    stack_id=stack_id,
                    name=DEFAULT_NAME,
                    components=ids,
                    description="the default local stack",
                )
            )
        if state.active_stack_id is None:
            events.append(WorkspaceActiveStackSet(stack_id=stack_id))
        chosen.append(stack_id)
        return events

    await store.workspace_commands._workspace_command(decide)
    return chosen[0]
