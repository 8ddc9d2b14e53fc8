"""The ``stacks`` projection: stack components, stacks, and the active stack.

Deleted components and stacks stay in the tables with ``deleted = 1``: queries
hide them, the history keeps them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from eventstore import (
    ComponentDeleted,
    ComponentRegistered,
    ComponentRenamed,
    ComponentUpdated,
    Event,
    StackDeleted,
    StackRegistered,
    StackRenamed,
    StackUpdated,
    WorkspaceActiveStackSet,
)

from .definition import EventContext, Handler, Op, Projection, Table, to_json

__all__ = ["StacksProjection"]


class StacksProjection(Projection):
    """Components, stacks with their components by type, and the active stack."""

    name = "stacks"
    version = 1
    tables = {
        "components": Table(
            "component_id TEXT NOT NULL, type TEXT NOT NULL, flavor TEXT NOT NULL, "
            "name TEXT NOT NULL, configuration TEXT NOT NULL, labels TEXT NOT NULL, "
            "created_at_us BIGINT NOT NULL, updated_at_us BIGINT NOT NULL, "
            "deleted INTEGER NOT NULL DEFAULT 0, position BIGINT NOT NULL",
            "component_id",
            ("type, name",),
        ),
        "stacks": Table(
            "stack_id TEXT NOT NULL, name TEXT NOT NULL, description TEXT NOT NULL, "
            "labels TEXT NOT NULL, created_at_us BIGINT NOT NULL, updated_at_us BIGINT NOT NULL, "
            "deleted INTEGER NOT NULL DEFAULT 0, position BIGINT NOT NULL",
            "stack_id",
            ("name",),
        ),
        "stack_components": Table(
            "stack_id TEXT NOT NULL, type TEXT NOT NULL, component_id TEXT NOT NULL",
            "stack_id, type",
            ("component_id",),
        ),
        "active_stack": Table(
            "slot INTEGER NOT NULL, stack_id TEXT NOT NULL, set_at_us BIGINT NOT NULL",
            "slot",
        ),
    }

    def handlers(self) -> Mapping[type[Event], Handler]:
        """One handler per component, stack and workspace event."""
        return {
            ComponentRegistered: self._component_registered,
            ComponentUpdated: self._component_updated,
            ComponentRenamed: self._component_renamed,
            ComponentDeleted: self._component_deleted,
            StackRegistered: self._stack_registered,
            StackUpdated: self._stack_updated,
            StackRenamed: self._stack_renamed,
            StackDeleted: self._stack_deleted,
            WorkspaceActiveStackSet: self._active_stack_set,
        }

    @staticmethod
    def _component_registered(e: ComponentRegistered, c: EventContext) -> Iterable[Op]:
        yield (
            "INSERT INTO {components} (component_id, type, flavor, name, configuration, labels, "
            "created_at_us, updated_at_us, deleted, position) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
            (
                str(e.component_id),
                e.type,
                e.flavor,
                e.name,
                to_json(e.configuration),
                to_json(e.labels),
                c.recorded_at_us,
                c.recorded_at_us,
                c.position,
            ),
        )

    @staticmethod
    def _component_updated(e: ComponentUpdated, c: EventContext) -> Iterable[Op]:
        yield (
            "UPDATE {components} SET configuration = ?, updated_at_us = ? WHERE component_id = ?",
            (to_json(e.configuration), c.recorded_at_us, str(e.component_id)),
        )

    @staticmethod
    def _component_renamed(e: ComponentRenamed, c: EventContext) -> Iterable[Op]:
        yield (
            "UPDATE {components} SET name = ?, updated_at_us = ? WHERE component_id = ?",
            (e.name, c.recorded_at_us, str(e.component_id)),
        )

    @staticmethod
    def _component_deleted(e: ComponentDeleted, c: EventContext) -> Iterable[Op]:
        yield (
            "UPDATE {components} SET deleted = 1, updated_at_us = ? WHERE component_id = ?",
            (c.recorded_at_us, str(e.component_id)),
        )

    @staticmethod
    def _members(stack_id: str, components: Mapping[str, object]) -> Iterable[Op]:
        for component_type, component_id in sorted(components.items()):
            yield (
                "INSERT INTO {stack_components} (stack_id, type, component_id) VALUES (?, ?, ?)",
                (stack_id, component_type, str(component_id)),
            )

    def _stack_registered(self, e: StackRegistered, c: EventContext) -> Iterable[Op]:
        stack_id = str(e.stack_id)
        yield (
            "INSERT INTO {stacks} (stack_id, name, description, labels, created_at_us, "
            "updated_at_us, deleted, position) VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
            (
                stack_id,
                e.name,
                e.description,
                to_json(e.labels),
                c.recorded_at_us,
                c.recorded_at_us,
                c.position,
            ),
        )
        yield from self._members(stack_id, e.components)

    def _stack_updated(self, e: StackUpdated, c: EventContext) -> Iterable[Op]:
        stack_id = str(e.stack_id)
        yield ("DELETE FROM {stack_components} WHERE stack_id = ?", (stack_id,))
        yield from self._members(stack_id, e.components)
        yield (
            "UPDATE {stacks} SET updated_at_us = ? WHERE stack_id = ?",
            (c.recorded_at_us, stack_id),
        )

    @staticmethod
    def _stack_renamed(e: StackRenamed, c: EventContext) -> Iterable[Op]:
        yield (
            "UPDATE {stacks} SET name = ?, updated_at_us = ? WHERE stack_id = ?",
            (e.name, c.recorded_at_us, str(e.stack_id)),
        )

    @staticmethod
    def _stack_deleted(e: StackDeleted, c: EventContext) -> Iterable[Op]:
        stack_id = str(e.stack_id)
        yield (
            "UPDATE {stacks} SET deleted = 1, updated_at_us = ? WHERE stack_id = ?",
            (c.recorded_at_us, stack_id),
        )
        yield ("DELETE FROM {active_stack} WHERE stack_id = ?", (stack_id,))

    @staticmethod
    def _active_stack_set(e: WorkspaceActiveStackSet, c: EventContext) -> Iterable[Op]:
        yield (
            "INSERT INTO {active_stack} (slot, stack_id, set_at_us) VALUES (1, ?, ?) "
            "ON CONFLICT (slot) DO UPDATE SET stack_id = excluded.stack_id, "
            "set_at_us = excluded.set_at_us",
            (str(e.stack_id), c.recorded_at_us),
        )
