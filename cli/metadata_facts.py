"""What ``metadata-store describe`` adds to a metadata store's configuration.

Where the store is (the resolved location: the home store's real path for
"this store", the default location of a ``sqlite`` store without ``uri``),
whether it can be reached, its backend, event count and head position. The
store is opened read-only and never created here: a ``sqlite`` store nobody
recorded a run into yet is "not created yet", not an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from eventstore import EventStore

__all__ = ["fact_rows", "metadata_store_facts"]


async def metadata_store_facts(home: EventStore, found: Any) -> dict[str, Any] | None:
    """The facts of the metadata store ``found`` (a component view), seen from ``home``.

    None when ``found`` is a component of another type.
    """
    if found.type != "metadata_store":
        return None
    from eventstore import LedgerError, StoreNotFoundError, open_store
    from eventstore.fold_states import ComponentState
    from eventstore.metadata_stores import resolve_metadata_store

    component = ComponentState(
        component_id=UUID(found.component_id),
        type=found.type,
        flavor=found.flavor,
        name=found.name,
        configuration=dict(found.configuration),
        labels={},
        # The view keeps no update flag: a component changed since it was made was updated
        # (or renamed, which a "default" metadata store of an old store never was).
        updated=found.updated_at != found.created_at,
    )
    facts: dict[str, Any] = {
        "location": None,
        "how": None,
        "reachable": False,
        "backend": None,
        "events": None,
        "head_position": None,
        "error": None,
    }
    try:
        target = resolve_metadata_store(component, home.location)
    except LedgerError as exc:
        facts["error"] = str(exc)
        return facts
    facts.update(location=target.display(home.location), how=target.how)
    if target.is_home:
        info = await home.info()
        facts.update(reachable=True, backend=info.get("backend", home.location.kind))
        facts.update(events=info["events"], head_position=info["head_position"])
        return facts
    assert target.location is not None
    facts["backend"] = target.location.kind
    try:
        async with open_store(
            target.location, create=False, read_only=True, default_stack=False
        ) as store:
            info = await store.info()
    except StoreNotFoundError:
        # Reachable, in the sense that matters: the first run recorded there creates it.
        facts.update(reachable=True, events=0, head_position=0)
        facts["error"] = "not created yet: the first run recorded there creates it"
        return facts
    except (LedgerError, OSError) as exc:
        facts["error"] = str(exc)
        return facts
    facts.update(reachable=True, backend=info.get("backend", target.location.kind))
    facts.update(events=info["events"], head_position=info["head_position"])
    return facts


def fact_rows(shown: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """The facts as ``describe`` table rows: URI (resolved), REACHABLE, BACKEND, EVENTS, HEAD."""
    rows: list[tuple[str, Any]] = []
    if shown is None:
        return rows
    if shown["location"] is not None:
        rows.append(("URI", f"{shown['location']} ({shown['how']})"))
    reachable = "yes" if shown["reachable"] else "no"
    if shown["error"]:
        reachable += f" ({shown['error']})"
    rows += [("REACHABLE", reachable), ("BACKEND", shown["backend"] or "")]
    if shown["events"] is not None:
        rows += [("EVENTS", f"{shown['events']:,}"), ("HEAD", shown["head_position"])]
    return rows
