"""Component queries: the components of the workspace and the stacks using them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from eventstore import datetime_from_us
from projections.errors import QueryError, ViewNotFoundError
from projections.transactions import Fetch, Tx

from .common import ViewsReader, _active_stack_id, _check_ref, _like_prefix, _loads, _suggest


class ComponentView(msgspec.Struct, frozen=True, kw_only=True):
    """A stack component as the views show it."""

    component_id: str
    type: str
    flavor: str
    name: str
    configuration: dict[str, Any]
    labels: dict[str, str]
    created_at: datetime
    updated_at: datetime
    deleted: bool = False
    stacks: list[str] = []


_COMPONENT_COLUMNS = (
    "component_id, type, flavor, name, configuration, labels, created_at_us, updated_at_us, deleted"
)


def _component(row: Sequence[Any], stacks: list[str]) -> ComponentView:
    return ComponentView(
        component_id=row[0],
        type=row[1],
        flavor=row[2],
        name=row[3],
        configuration=_loads(row[4]),
        labels=_loads(row[5]),
        created_at=datetime_from_us(row[6]),
        updated_at=datetime_from_us(row[7]),
        deleted=bool(row[8]),
        stacks=stacks,
    )


def display(component_type: str) -> str:
    """``artifact_store`` -> ``artifact store``."""
    return component_type.replace("_", " ")


def _stack_usage() -> Tx[dict[str, list[str]]]:
    rows = yield Fetch(
        "SELECT sc.component_id, s.name FROM stack_components sc "
        "JOIN stacks s ON s.stack_id = sc.stack_id WHERE s.deleted = 0 ORDER BY s.name"
    )
    usage: dict[str, list[str]] = {}
    for component_id, stack_name in rows:
        usage.setdefault(component_id, []).append(stack_name)
    return usage


class ComponentQueries(ViewsReader):
    """Queries of stack components."""

    async def components(
        self, component_type: str | None = None, *, include_deleted: bool = False
    ) -> list[ComponentView]:
        """Components, of one type or all, by type then name."""

        def body() -> Tx[list[ComponentView]]:
            where: list[str] = ["1 = 1"]
            params: list[Any] = []
            if component_type is not None:
                where.append("type = ?")
                params.append(component_type)
            if not include_deleted:
                where.append("deleted = 0")
            rows = yield Fetch(
                f"SELECT {_COMPONENT_COLUMNS} FROM components WHERE {' AND '.join(where)} "
                "ORDER BY type, name, created_at_us",
                tuple(params),
            )
            usage = yield from _stack_usage()
            return [_component(row, usage.get(row[0], [])) for row in rows]

        result: list[ComponentView] = await self.views.read(body)
        return result

    async def component(self, component_type: str, ref: str | None = None) -> ComponentView:
        """One live component of a type by name or id (or prefix); ``None``: the active stack's."""

        if ref is not None:
            _check_ref(display(component_type), ref)

        def body() -> Tx[ComponentView]:
            key = ref
            if key is None:
                active = yield from _active_stack_id()
                rows = yield Fetch(
                    "SELECT component_id FROM stack_components WHERE stack_id = ? AND type = ?",
                    (active or "", component_type),
                )
                if not rows:
                    raise ViewNotFoundError(component_type.replace("_", " "), "(active stack)")
                key = rows[0][0]
            rows = yield Fetch(
                f"SELECT {_COMPONENT_COLUMNS} FROM components WHERE type = ? AND deleted = 0 "
                "AND (name = ? OR component_id = ?)",
                (component_type, key, key),
            )
            if not rows:
                rows = yield Fetch(
                    f"SELECT {_COMPONENT_COLUMNS} FROM components WHERE type = ? AND deleted = 0 "
                    "AND component_id LIKE ? ESCAPE '\\'",
                    (component_type, _like_prefix(key)),
                )
            if len(rows) != 1:
                names = yield Fetch(
                    "SELECT name FROM components WHERE type = ? AND deleted = 0", (component_type,)
                )
                if len(rows) > 1:
                    raise QueryError(f"{key!r} matches {len(rows)} components; give more of the id")
                raise ViewNotFoundError(
                    component_type.replace("_", " "), key, _suggest(key, [n for (n,) in names])
                )
            usage = yield from _stack_usage()
            return _component(rows[0], usage.get(rows[0][0], []))

        result: ComponentView = await self.views.read(body)
        return result
