"""Stack queries: stacks with their components, and the active one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from eventstore import datetime_from_us
from projections.errors import QueryError, ViewNotFoundError
from projections.transactions import Fetch, Tx

from .common import ViewsReader, _active_stack_id, _check_ref, _like_prefix, _loads, _suggest


class ComponentRef(msgspec.Struct, frozen=True, kw_only=True):
    """A component named by a stack."""

    component_id: str
    name: str
    flavor: str


class StackView(msgspec.Struct, frozen=True, kw_only=True):
    """A stack with its components by type."""

    stack_id: str
    name: str
    description: str
    labels: dict[str, str]
    active: bool
    components: dict[str, ComponentRef]
    created_at: datetime
    updated_at: datetime


def _stacks(where: str, params: tuple[Any, ...]) -> Tx[list[StackView]]:
    active = yield from _active_stack_id()
    rows = yield Fetch(
        "SELECT stack_id, name, description, labels, created_at_us, updated_at_us FROM stacks "
        f"WHERE deleted = 0 AND {where} ORDER BY name",
        params,
    )
    members = yield Fetch(
        "SELECT sc.stack_id, sc.type, c.component_id, c.name, c.flavor "
        "FROM stack_components sc JOIN components c ON c.component_id = sc.component_id "
        "ORDER BY sc.type"
    )
    by_stack: dict[str, dict[str, ComponentRef]] = {}
    for stack_id, component_type, component_id, name, flavor in members:
        by_stack.setdefault(stack_id, {})[component_type] = ComponentRef(
            component_id=component_id, name=name, flavor=flavor
        )
    return [
        StackView(
            stack_id=row[0],
            name=row[1],
            description=row[2],
            labels=_loads(row[3]),
            active=row[0] == active,
            components=by_stack.get(row[0], {}),
            created_at=datetime_from_us(row[4]),
            updated_at=datetime_from_us(row[5]),
        )
        for row in rows
    ]


class StackQueries(ViewsReader):
    """Queries of stacks."""

    async def stacks(self) -> list[StackView]:
        """Live stacks by name, each with its components and whether it is active."""
        result: list[StackView] = await self.views.read(lambda: _stacks("1 = 1", ()))
        return result

    async def stack(self, ref: str | None = None) -> StackView:
        """One live stack by name or id; ``None`` for the active stack."""

        if ref is not None:
            _check_ref("stack", ref)

        def body() -> Tx[StackView]:
            if ref is None:
                active = yield from _active_stack_id()
                if active is None:
                    raise ViewNotFoundError("active stack", "(none set)")
                found = yield from _stacks("stack_id = ?", (active,))
            else:
                found = yield from _stacks("(name = ? OR stack_id = ?)", (ref, ref))
                if not found:
                    found = yield from _stacks("stack_id LIKE ? ESCAPE '\\'", (_like_prefix(ref),))
            if len(found) != 1:
                if len(found) > 1:
                    raise QueryError(f"{ref!r} matches {len(found)} stacks; give more of the id")
                names = yield Fetch("SELECT name FROM stacks WHERE deleted = 0")
                raise ViewNotFoundError(
                    "stack", str(ref), _suggest(str(ref), [n for (n,) in names])
                )
            return found[0]

        result: StackView = await self.views.read(body)
        return result
