"""Stack components: ``orchestrator``, ``artifact-store``, ``metadata-store``, ``component TYPE``.

Each group has the same commands, as in ZenML: ``register NAME --flavor F
[--key=value ...]``, ``list``, ``describe [NAME]``, ``update NAME --key=value``,
``rename OLD NEW`` and ``delete NAME``. Configuration is given as extra
``--key=value`` options; values that parse as JSON (numbers, true/false,
objects) are stored as such, anything else as a string.
"""

from __future__ import annotations

from typing import Any

import click

from .context import as_of_option, open_fresh_views, open_store_for, run_async, run_on_store
from .errors import CLIError
from .output import (
    Column,
    Format,
    emit,
    format_time,
    mask_secrets,
    output_options,
    print_properties,
    print_table,
    say,
    show_secrets_option,
)

__all__ = [
    "artifact_store",
    "component",
    "component_item",
    "components_with_active",
    "display_name",
    "metadata_store",
    "orchestrator",
    "parse_config_args",
]

_EXTRA_ARGS = {"ignore_unknown_options": True, "allow_extra_args": True}


def display_name(component_type: str) -> str:
    """``artifact_store`` -> ``artifact store``."""
    return component_type.replace("_", " ")


def parse_config_args(args: list[str]) -> dict[str, Any]:
    """Parse ``--key=value`` / ``--key value`` options into a configuration mapping."""
    import msgspec

    config: dict[str, Any] = {}
    index = 0
    while index < len(args):
        item = args[index]
        if not item.startswith("--") or item == "--":
            raise CLIError(f"unexpected argument {item!r}: configuration is given as --key=value")
        key, sep, value = item[2:].partition("=")
        if not sep:
            if index + 1 >= len(args) or args[index + 1].startswith("--"):
                raise CLIError(f"--{key} needs a value: --{key}=VALUE")
            index += 1
            value = args[index]
        key = key.replace("-", "_")
        if not key:
            raise CLIError(f"bad option {item!r}")
        try:
            config[key] = msgspec.json.decode(value)
        except msgspec.DecodeError:
            config[key] = value
        except RecursionError:
            raise CLIError(f"--{key}: the value is nested too deeply to store") from None
        index += 1
    return config


def _parse_labels(labels: tuple[str, ...]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for label in labels:
        key, sep, value = label.partition("=")
        if not sep or not key:
            raise CLIError(f"a label is KEY=VALUE, not {label!r}")
        parsed[key] = value
    return parsed


def _component_type() -> str:
    ctx: click.Context | None = click.get_current_context()
    meta = ctx.meta if ctx is not None else {}
    while ctx is not None:
        fixed = getattr(ctx.command, "component_type", None)
        if isinstance(fixed, str):
            return fixed
        ctx = ctx.parent
    return str(meta["metaledger.component_type"])


def _done(action: str, component_type: str, name: str, component_id: Any) -> dict[str, Any]:
    """The JSON document a component change prints: what was done, to which component."""
    return {"action": action, "type": component_type, "name": name, "id": str(component_id)}


def _register(name: str, flavor: str, labels: tuple[str, ...], fmt: Format) -> None:
    ctx = click.get_current_context()
    component_type = _component_type()
    configuration = parse_config_args(list(ctx.args))

    component_id = run_on_store(
        lambda store: store.register_component(
            component_type,
            name,
            flavor=flavor,
            configuration=configuration,
            labels=_parse_labels(labels),
        )
    )
    result = {
        **_done("registered", component_type, name, component_id),
        "flavor": flavor,
        "configuration_keys": sorted(configuration),
    }
    emit(
        result,
        fmt,
        lambda: say(f"Successfully registered {display_name(component_type)} `{name}`."),
    )


def component_item(found: Any, *, active: bool, show_secrets: bool = False) -> dict[str, Any]:
    """The stable JSON shape of a component (``list``, ``describe``, the read API)."""
    return {
        "name": found.name,
        "id": found.component_id,
        "type": found.type,
        "flavor": found.flavor,
        "active": active,
        "configuration": mask_secrets(found.configuration, show=show_secrets),
        "labels": mask_secrets(found.labels, show=show_secrets),
        "stacks": found.stacks,
        "created_at": found.created_at,
        "updated_at": found.updated_at,
    }


async def components_with_active(
    query: Any, component_type: str | None
) -> tuple[list[Any], set[str]]:
    """The live components of a type (None: all), and the ids of the active stack's."""
    components = await query.components(component_type)
    try:
        active = await query.stack()
    except LookupError:
        return components, set()
    return components, {c.component_id for c in active.components.values()}


def _list(fmt: Format, as_of: str | None, show_secrets: bool) -> None:
    component_type = _component_type()

    async def body() -> tuple[list[Any], set[str]]:
        async with open_store_for() as store, open_fresh_views(store, as_of) as views:
            return await components_with_active(views.query, component_type)

    components, in_active = run_async(body)
    items = [
        component_item(c, active=c.component_id in in_active, show_secrets=show_secrets)
        for c in components
    ]

    def table() -> None:
        if not items:
            say(f"No {display_name(component_type)}s registered.")
            return
        print_table(
            (
                Column("ACTIVE", fit="keep"),
                Column("NAME", fit="middle", min_width=12),
                Column("FLAVOR", min_width=6),
                Column("UUID", min_width=8),
                Column("STACKS", min_width=10),
            ),
            [
                (
                    "👉" if i["active"] else "",
                    i["name"],
                    i["flavor"],
                    i["id"],
                    ", ".join(i["stacks"]),
                )
                for i in items
            ],
        )

    emit(items, fmt, table)


def _describe(name: str | None, fmt: Format, as_of: str | None, show_secrets: bool) -> None:
    component_type = _component_type()

    async def body() -> tuple[Any, bool]:
        async with open_store_for() as store, open_fresh_views(store, as_of) as views:
            found = await views.query.component(component_type, name)
            try:
                active = await views.query.stack()
            except LookupError:
                return found, False
            ids = {c.component_id for c in active.components.values()}
            return found, found.component_id in ids

    found, active = run_async(body)
    item = component_item(found, active=active, show_secrets=show_secrets)
    configuration = item["configuration"]

    def table() -> None:
        rows: list[tuple[str, Any]] = [
            ("TYPE", found.type),
            ("FLAVOR", found.flavor),
            ("NAME", found.name),
            ("UUID", found.component_id),
        ]
        rows += [(key.upper(), _value(value)) for key, value in configuration.items()]
        rows += [(f"LABEL {key}", value) for key, value in item["labels"].items()]
        rows += [
            ("STACKS", ", ".join(found.stacks)),
            ("CREATED", format_time(found.created_at)),
            ("UPDATED", format_time(found.updated_at)),
        ]
        title = f"{display_name(found.type).title()} '{found.name}'" + (
            " (ACTIVE)" if active else ""
        )
        print_properties(rows, title=title, headers=("COMPONENT_PROPERTY", "VALUE"))

    emit(item, fmt, table)


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    import msgspec

    return msgspec.json.encode(value).decode()


def _update(name: str, remove_key: tuple[str, ...], fmt: Format) -> None:
    ctx = click.get_current_context()
    component_type = _component_type()
    configuration = parse_config_args(list(ctx.args))
    if not configuration and not remove_key:
        raise CLIError("nothing to update: give --key=value options or --remove-key KEY")

    component_id = run_on_store(
        lambda store: store.update_component(component_type, name, configuration, remove=remove_key)
    )
    result = {
        **_done("updated", component_type, name, component_id),
        "configuration_keys": sorted(configuration),
        "removed_keys": sorted(remove_key),
    }
    emit(result, fmt, lambda: say(f"Updated {display_name(component_type)} `{name}`."))


def _rename(old: str, new: str, fmt: Format) -> None:
    component_type = _component_type()

    component_id = run_on_store(lambda store: store.rename_component(component_type, old, new))
    result = {**_done("renamed", component_type, new, component_id), "old_name": old}
    emit(
        result,
        fmt,
        lambda: say(f"Renamed {display_name(component_type)} `{old}` to `{new}`."),
    )


def _delete(name: str, fmt: Format) -> None:
    component_type = _component_type()

    component_id = run_on_store(lambda store: store.delete_component(component_type, name))
    emit(
        _done("deleted", component_type, name, component_id),
        fmt,
        lambda: say(
            f"Deleted {display_name(component_type)} `{name}` (its history stays in the log)."
        ),
    )


def _add_commands(group: click.Group, label: str) -> None:
    """Attach the six component commands to ``group`` (examples use ``label``)."""

    @group.command("register", context_settings=_EXTRA_ARGS)
    @click.argument("name")
    @click.option(
        "--flavor",
        "-f",
        required=True,
        help="The component's flavor (e.g. local): built in, or registered with `flavor register`.",
    )
    @click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="A label.")
    @output_options()
    def register(name: str, flavor: str, labels: tuple[str, ...], fmt: Format) -> None:
        """Register a component NAME of a FLAVOR, configured with --key=value options."""
        _register(name, flavor, labels, fmt)

    register.help = (
        register.help or ""
    ) + f"\n\nExample: metaledger {label} register my_one --flavor local --path=/tmp/x"

    @group.command("list")
    @as_of_option
    @show_secrets_option
    @output_options()
    def list_(fmt: Format, as_of: str | None, show_secrets: bool) -> None:
        """List the components (ACTIVE marks those of the active stack)."""
        _list(fmt, as_of, show_secrets)

    list_.help = (list_.help or "") + f"\n\nExample: metaledger {label} list --json"

    @group.command("describe")
    @click.argument("name", required=False)
    @as_of_option
    @show_secrets_option
    @output_options()
    def describe(name: str | None, fmt: Format, as_of: str | None, show_secrets: bool) -> None:
        """Describe a component by name or id (default: the active stack's)."""
        _describe(name, fmt, as_of, show_secrets)

    describe.help = (describe.help or "") + f"\n\nExample: metaledger {label} describe default"

    @group.command("update", context_settings=_EXTRA_ARGS)
    @click.argument("name")
    @click.option("--remove-key", multiple=True, metavar="KEY", help="Drop a configuration key.")
    @output_options()
    def update(name: str, remove_key: tuple[str, ...], fmt: Format) -> None:
        """Change a component's configuration with --key=value options."""
        _update(name, remove_key, fmt)

    update.help = (
        update.help or ""
    ) + f"\n\nExample: metaledger {label} update default --path=/data"

    @group.command("rename")
    @click.argument("old")
    @click.argument("new")
    @output_options()
    def rename(old: str, new: str, fmt: Format) -> None:
        """Rename a component."""
        _rename(old, new, fmt)

    rename.help = (rename.help or "") + f"\n\nExample: metaledger {label} rename old_name new_name"

    @group.command("delete")
    @click.argument("name")
    @output_options()
    def delete(name: str, fmt: Format) -> None:
        """Delete a component (refused while a stack uses it)."""
        _delete(name, fmt)

    delete.help = (delete.help or "") + f"\n\nExample: metaledger {label} delete old_one"


def _flavor_list(fmt: Format) -> None:
    component_type = _component_type()

    async def body() -> dict[str, str | None]:
        async with open_store_for() as store:
            return (await store.workspace()).flavors_of(component_type)

    flavors = run_async(body)
    items = [
        {
            "name": name,
            "type": component_type,
            "builtin": description is None,
            "description": description or "",
        }
        for name, description in flavors.items()
    ]

    def table() -> None:
        if not items:
            say(f"No {display_name(component_type)} flavors known: any flavor is accepted.")
            return
        print_table(
            ("FLAVOR", "SOURCE", "DESCRIPTION"),
            [
                (i["name"], "built-in" if i["builtin"] else "custom", i["description"])
                for i in items
            ],
        )

    emit(items, fmt, table)


def _flavor_register(name: str, description: str, fmt: Format) -> None:
    component_type = _component_type()
    run_on_store(lambda store: store.register_flavor(component_type, name, description=description))
    item = {"name": name, "type": component_type, "builtin": False, "description": description}
    emit(
        item,
        fmt,
        lambda: say(f"Registered the custom {display_name(component_type)} flavor `{name}`."),
    )


def _add_flavor_commands(group: click.Group, label: str) -> None:
    """Attach ``flavor list`` and ``flavor register`` to a component group."""

    @group.group("flavor")
    def flavor() -> None:
        """List the known flavors, or register a custom one."""

    flavor.help = (flavor.help or "") + f"\n\nExample: metaledger {label} flavor list"

    @flavor.command("list")
    @output_options()
    def list_(fmt: Format) -> None:
        """List the flavors a component may have: built-in, then custom ones."""
        _flavor_list(fmt)

    list_.help = (list_.help or "") + f"\n\nExample: metaledger {label} flavor list --json"

    @flavor.command("register")
    @click.argument("name")
    @click.option("--description", default="", help="What the flavor is.")
    @output_options()
    def register(name: str, description: str, fmt: Format) -> None:
        """Register a custom flavor NAME, so components of that flavor can be registered."""
        _flavor_register(name, description, fmt)

    register.help = (
        register.help or ""
    ) + f"\n\nExample: metaledger {label} flavor register my_flavor --description 'in-house'"


def _typed_group(command_name: str, component_type: str) -> click.Group:
    plural = f"{display_name(component_type)}s"
    group = click.Group(
        command_name,
        help=f"Manage {plural}.\n\nRegister, list, describe, update, rename and delete "
        f"{plural}; list their flavors and register custom ones (`flavor`)."
        f"\n\nExample: metaledger {command_name} list",
    )
    group.component_type = component_type  # type: ignore[attr-defined]
    _add_commands(group, command_name)
    _add_flavor_commands(group, command_name)
    return group


orchestrator = _typed_group("orchestrator", "orchestrator")
artifact_store = _typed_group("artifact-store", "artifact_store")
metadata_store = _typed_group("metadata-store", "metadata_store")


@click.group("component")
@click.argument("component_type", metavar="TYPE")
@click.pass_context
def component(ctx: click.Context, component_type: str) -> None:
    """Manage stack components of any TYPE.

    TYPE is one of ZenML's component types, such as step-operator,
    experiment-tracker, container-registry or model-deployer; any other TYPE is
    an error (exit 1) naming the known ones.

    Example: metaledger component experiment-tracker list
    """
    from eventstore.events import COMPONENT_TYPES

    normalized = component_type.replace("-", "_").lower()
    if normalized not in COMPONENT_TYPES:
        import difflib

        known = [t.replace("_", "-") for t in COMPONENT_TYPES]
        close = difflib.get_close_matches(component_type.replace("_", "-").lower(), known, n=3)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise CLIError(
            f"{component_type!r} is not a component type; {hint}known: {', '.join(known)}"
        )
    ctx.meta["metaledger.component_type"] = normalized


_add_commands(component, "component step-operator")
_add_flavor_commands(component, "component step-operator")
