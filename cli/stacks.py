"""``metaledger stack``: register, list, describe, set, update, rename and delete stacks."""

from __future__ import annotations

from typing import Any

import click

from .context import as_of_option, run_on_store, run_on_views
from .errors import CLIError
from .output import Column, Format, emit, output_options, print_table, say

__all__ = ["stack", "stack_item"]

#: The columns of ``stack list``, as in ZenML's.
_MAIN_TYPES = ("artifact_store", "metadata_store", "orchestrator")


def _component_options(extra: tuple[str, ...]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in extra:
        component_type, sep, name = item.partition("=")
        if not sep or not component_type or not name:
            raise CLIError(f"-c takes TYPE=NAME, not {item!r}")
        parsed[component_type.replace("-", "_")] = name
    return parsed


def stack_item(stack: Any) -> dict[str, Any]:
    """The stable JSON shape of a stack (``stack list``, ``stack describe``, the read API)."""
    return {
        "name": stack.name,
        "id": stack.stack_id,
        "active": stack.active,
        "description": stack.description,
        "components": {t: ref.name for t, ref in sorted(stack.components.items())},
        "component_ids": {t: ref.component_id for t, ref in sorted(stack.components.items())},
        "created_at": stack.created_at,
        "updated_at": stack.updated_at,
    }


def _done(action: str, name: str, stack_id: Any, **extra: Any) -> dict[str, Any]:
    """The JSON document a stack change prints: what was done, to which stack."""
    return {"action": action, "type": "stack", "name": name, "id": str(stack_id), **extra}


@click.group()
def stack() -> None:
    """Register, list, describe and change stacks.

    Example: metaledger stack list
    """


@stack.command("register")
@click.argument("name")
@click.option("-o", "--orchestrator", required=True, help="The orchestrator's name.")
@click.option("-a", "--artifact-store", required=True, help="The artifact store's name.")
@click.option("-m", "--metadata-store", required=True, help="The metadata store's name.")
@click.option(
    "-c", "--component", "extra", multiple=True, metavar="TYPE=NAME", help="Another component."
)
@click.option("--description", default="", help="What the stack is for.")
@click.option("--set", "set_active", is_flag=True, help="Make it the active stack.")
@output_options()
def register(
    name: str,
    orchestrator: str,
    artifact_store: str,
    metadata_store: str,
    extra: tuple[str, ...],
    description: str,
    set_active: bool,
    fmt: Format,
) -> None:
    """Register a stack of existing components.

    Example: metaledger stack register custom_stack -o default -a default -m custom_sqlite --set
    """
    components = {
        "orchestrator": orchestrator,
        "artifact_store": artifact_store,
        "metadata_store": metadata_store,
        **_component_options(extra),
    }

    stack_id = run_on_store(
        lambda store: store.register_stack(
            name, components, description=description, set_active=set_active
        )
    )

    def text() -> None:
        say(f"Stack `{name}` successfully registered!")
        if set_active:
            say(f"Active stack set to: `{name}`")

    result = _done("registered", name, stack_id, components=components, active=set_active)
    emit(result, fmt, text)


@stack.command("list")
@as_of_option
@output_options()
def list_(fmt: Format, as_of: str | None) -> None:
    """List the stacks: ACTIVE, STACK NAME, and each one's components.

    Example: metaledger stack list --json
    """

    items = [stack_item(s) for s in run_on_views(lambda views: views.query.stacks(), as_of)]
    extra_types = sorted({t for i in items for t in i["components"]} - set(_MAIN_TYPES))

    def table() -> None:
        if not items:
            # As of a past position, `init` is no advice: the note above says where it stands.
            hint = "" if as_of else " Create the default one with `metaledger init`."
            say(f"No stacks registered.{hint}")
            return
        print_table(
            ("ACTIVE", "STACK NAME", *(t.upper() for t in (*_MAIN_TYPES, *extra_types))),
            [
                (
                    "👉" if i["active"] else "",
                    i["name"],
                    *(i["components"].get(t, "") for t in (*_MAIN_TYPES, *extra_types)),
                )
                for i in items
            ],
        )

    emit(items, fmt, table)


@stack.command("describe")
@click.argument("name", required=False)
@as_of_option
@output_options()
def describe(name: str | None, fmt: Format, as_of: str | None) -> None:
    """Describe a stack by name or id (default: the active stack).

    Example: metaledger stack describe default
    """

    found = run_on_views(lambda views: views.query.stack(name), as_of)
    item = stack_item(found)

    def table() -> None:
        title = f"'{found.name}' stack" + (" (ACTIVE)" if found.active else "")
        print_table(
            (
                Column("COMPONENT_TYPE", fit="keep"),
                Column("COMPONENT_NAME", fit="middle", min_width=14),
                Column("FLAVOR", min_width=6),
                Column("UUID", min_width=8),
            ),
            [
                (t.upper(), ref.name, ref.flavor, ref.component_id)
                for t, ref in sorted(found.components.items())
            ],
            title=f"{title}: Stack Configuration",
        )

    emit(item, fmt, table)


@stack.command("set")
@click.argument("name")
@output_options()
def set_(name: str, fmt: Format) -> None:
    """Make a stack the active one.

    Example: metaledger stack set custom_stack
    """

    stack_id = run_on_store(lambda store: store.set_active_stack(name))
    result = _done("activated", name, stack_id, active=True)
    emit(result, fmt, lambda: say(f"Active stack set to: `{name}`"))


@stack.command("update")
@click.argument("name")
@click.option("-o", "--orchestrator", help="A new orchestrator.")
@click.option("-a", "--artifact-store", help="A new artifact store.")
@click.option("-m", "--metadata-store", help="A new metadata store.")
@click.option("-c", "--component", "extra", multiple=True, metavar="TYPE=NAME", help="Set one.")
@click.option("-r", "--remove", "remove", multiple=True, metavar="TYPE", help="Remove a type.")
@output_options()
def update(
    name: str,
    orchestrator: str | None,
    artifact_store: str | None,
    metadata_store: str | None,
    extra: tuple[str, ...],
    remove: tuple[str, ...],
    fmt: Format,
) -> None:
    """Change some of a stack's components.

    Example: metaledger stack update custom_stack -m default
    """
    changes: dict[str, str | None] = {
        t: n
        for t, n in (
            ("orchestrator", orchestrator),
            ("artifact_store", artifact_store),
            ("metadata_store", metadata_store),
        )
        if n is not None
    }
    changes.update(_component_options(extra))
    changes.update({t.replace("-", "_"): None for t in remove})
    if not changes:
        raise CLIError("nothing to update: give -o, -a, -m, -c TYPE=NAME or -r TYPE")

    stack_id = run_on_store(lambda store: store.update_stack(name, changes))
    result = _done("updated", name, stack_id, changes=changes)
    emit(result, fmt, lambda: say(f"Stack `{name}` updated."))


@stack.command("rename")
@click.argument("old")
@click.argument("new")
@output_options()
def rename(old: str, new: str, fmt: Format) -> None:
    """Rename a stack.

    Example: metaledger stack rename custom_stack production
    """

    stack_id = run_on_store(lambda store: store.rename_stack(old, new))
    result = _done("renamed", new, stack_id, old_name=old)
    emit(result, fmt, lambda: say(f"Stack `{old}` renamed to `{new}`."))


@stack.command("delete")
@click.argument("name")
@output_options()
def delete(name: str, fmt: Format) -> None:
    """Delete a stack (not the active one); its history stays in the log.

    Example: metaledger stack delete old_stack
    """

    stack_id = run_on_store(lambda store: store.delete_stack(name))
    result = _done("deleted", name, stack_id)
    emit(result, fmt, lambda: say(f"Deleted stack `{name}`."))
