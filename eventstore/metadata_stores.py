"""Where a stack's pipeline runs go: its ``metadata_store`` component, resolved to a store.

The store a program opens (``--store``, ``METALEDGER_STORE``, the default data
directory) is the *home* store: it holds the components, the stacks and the
active stack. A stack's ``metadata_store`` component says where that stack's
runs are recorded:

- "this store": the home store itself. The default stack's metadata store is
  recorded so (``uri`` = :data:`THIS_STORE`), never as an absolute path, so an
  export imported elsewhere or a copy to a server still points at itself. A
  stack without a metadata store, and a metadata store whose location is the
  home store's, mean the same.
- ``sqlite`` with a ``uri``: the store at that path (created on first use);
  without a ``uri``: a store of its own under the data directory, one per
  component (``<home>/metadata-stores/<component id>`` beside a local home
  store, else under the user data directory).
- ``postgresql`` with a ``uri``: that server store (its credentials are masked
  in every output, as every configuration's are).

Stores made before this module existed recorded their default metadata store
as ``{"uri": <the home store's URI when it was made>}``. That component (named
``default``, holding only that ``uri``, never updated) is read as "this store" too, so such a
store keeps recording its runs where it always did, even moved or copied.

:func:`stack_warnings` gives the seed's stack validation: a local SQLite
metadata store only works with an orchestrator on this machine, and a custom
``uri`` is best left to the default.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from .errors import UnsupportedURIError
from .events import DescribedComponent
from .secret_masking import mask_secrets, mask_uri_credentials
from .uri import StoreLocation, parse_location

if TYPE_CHECKING:
    from .fold_states import ComponentState, StackState, WorkspaceState

__all__ = [
    "LOCAL_ORCHESTRATOR_FLAVORS",
    "THIS_STORE",
    "MetadataTarget",
    "default_metadata_root",
    "describe_stack",
    "resolve_metadata_store",
    "stack_metadata_store",
    "stack_warnings",
]

#: The ``uri`` of a metadata store that is the home store itself.
THIS_STORE = "this-store:"
#: Orchestrator flavors that run on this machine, so they can reach a local store.
LOCAL_ORCHESTRATOR_FLAVORS = ("local", "local_docker")
#: Metadata store flavors that record into a store of this machine.
LOCAL_METADATA_FLAVORS = ("sqlite",)


@dataclass(frozen=True, slots=True)
class MetadataTarget:
    """Where a metadata store records: the home store, or another store's location."""

    #: ``home`` (the store that holds the stacks) or ``other``.
    kind: Literal["home", "other"]
    #: The other store's location (None for home).
    location: StoreLocation | None = None
    #: Why it is where it is, for ``describe`` ("this store", "default location"...).
    how: str = "this store"

    @property
    def is_home(self) -> bool:
        """Whether the runs go to the home store."""
        return self.kind == "home"

    def display(self, home: StoreLocation) -> str:
        """The resolved location for people (credentials masked)."""
        return (home if self.location is None else self.location).display


def default_metadata_root(home: StoreLocation) -> Path:
    """Where ``sqlite`` metadata stores without a ``uri`` live: beside the home, or the data dir."""
    if home.path is not None:
        return Path(home.path) / "metadata-stores"
    import platformdirs

    return platformdirs.user_data_path("metaledger", appauthor=False) / "metadata-stores"


def _is_legacy_default(component: ComponentState) -> bool:
    """The default metadata store as stores made before routing recorded it.

    ``ensure_default_stack`` registered it as ``default``, of the store's backend,
    configured with the store's own URI as ``Log.uri`` spells it (``sqlite:////abs``
    or ``postgresql://...``) and nothing else; one a user updated since is theirs.
    """
    uri = component.configuration.get("uri")
    return (
        component.name == "default"
        and not component.updated
        and set(component.configuration) == {"uri"}
        and isinstance(uri, str)
        and uri.startswith(("sqlite://", "postgresql://"))
    )


def resolve_metadata_store(component: ComponentState | None, home: StoreLocation) -> MetadataTarget:
    """The store a metadata store component records into, seen from ``home``.

    UnsupportedURIError for a flavor metaledger cannot record into (``mysql``)
    or a ``uri`` it cannot use.
    """
    if component is None:
        return MetadataTarget("home", how="this store (the stack has no metadata store)")
    uri = component.configuration.get("uri")
    if uri == THIS_STORE:
        return MetadataTarget("home")
    if _is_legacy_default(component):
        return MetadataTarget("home", how="this store (the default metadata store)")
    if component.flavor == "sqlite":
        if uri is None or uri == "":
            path = default_metadata_root(home) / str(component.component_id)
            location = StoreLocation("sqlite", path=path.absolute())
            how = "default location"
        else:
            location = _parse(str(uri), component)
            if location.kind != "sqlite":
                raise UnsupportedURIError(
                    f"metadata store {component.name!r}: flavor sqlite needs a path, "
                    f"not {mask_uri_credentials(str(uri))!r}"
                )
            how = "custom uri"
    elif component.flavor == "postgresql":
        if not isinstance(uri, str) or not uri:
            raise UnsupportedURIError(
                f"metadata store {component.name!r}: flavor postgresql needs a uri "
                "(postgresql://user@host:5432/db)"
            )
        location = _parse(uri, component)
        if location.kind != "postgresql":
            raise UnsupportedURIError(
                f"metadata store {component.name!r}: flavor postgresql needs a "
                f"postgresql:// uri, not {mask_uri_credentials(uri)!r}"
            )
        how = "server"
    else:
        raise UnsupportedURIError(
            f"metadata store {component.name!r}: metaledger cannot record runs in a "
            f"{component.flavor!r} metadata store (use sqlite or postgresql)"
        )
    if location.same_place(home):
        return MetadataTarget("home", how="this store (its uri is the home store's)")
    return MetadataTarget("other", location, how)


def _parse(uri: str, component: ComponentState) -> StoreLocation:
    try:
        return parse_location(uri)
    except UnsupportedURIError as exc:
        raise UnsupportedURIError(f"metadata store {component.name!r}: {exc}") from None


def stack_metadata_store(workspace: WorkspaceState, stack: StackState) -> ComponentState | None:
    """The stack's metadata store component, or None (a stack without one)."""
    component_id = stack.components.get("metadata_store")
    return None if component_id is None else workspace.components.get(component_id)


def describe_stack(workspace: WorkspaceState, stack: StackState) -> list[DescribedComponent]:
    """The stack's components as a run carries them to another store (secrets masked)."""
    described = []
    for component_type, component_id in sorted(stack.components.items()):
        component = workspace.components.get(component_id)
        if component is None:
            continue
        configuration: dict[str, Any] = mask_secrets(component.configuration)
        described.append(
            DescribedComponent(
                component_id=component.component_id,
                type=component_type,
                flavor=component.flavor,
                name=component.name,
                configuration=configuration,
            )
        )
    return described


def stack_warnings(
    workspace: WorkspaceState, components: dict[str, UUID], stack_name: str
) -> list[str]:
    """The seed's warnings about a stack of these components (empty when it is sound).

    A local SQLite metadata store keeps its runs in files of this machine, so
    only an orchestrator running on this machine can record into it; and a
    custom ``uri`` is allowed but the default location is the advised one.
    """
    warnings: list[str] = []
    metadata_id = components.get("metadata_store")
    orchestrator_id = components.get("orchestrator")
    metadata = workspace.components.get(metadata_id) if metadata_id else None
    orchestrator = workspace.components.get(orchestrator_id) if orchestrator_id else None
    if metadata is None:
        return warnings
    # "this store" on a SQLite home is recorded with flavor sqlite: local as well.
    local = metadata.flavor in LOCAL_METADATA_FLAVORS
    if local and orchestrator is not None and orchestrator.flavor not in LOCAL_ORCHESTRATOR_FLAVORS:
        warnings.append(
            f"stack {stack_name!r} combines the {orchestrator.flavor} orchestrator "
            f"{orchestrator.name!r} with the local SQLite metadata store {metadata.name!r}: "
            "a local metadata store lives on this machine's filesystem, so only an "
            f"orchestrator that runs on this machine ({', '.join(LOCAL_ORCHESTRATOR_FLAVORS)}) "
            "can record into it; use a postgresql metadata store for this orchestrator"
        )
    uri = metadata.configuration.get("uri")
    if (
        metadata.flavor == "sqlite"
        and isinstance(uri, str)
        and uri not in ("", THIS_STORE)
        and not _is_legacy_default(metadata)
    ):
        warnings.append(
            f"metadata store {metadata.name!r} has a custom uri ({uri}): the default "
            "location (no uri) is recommended, as metaledger then manages where the store is"
        )
    return warnings
