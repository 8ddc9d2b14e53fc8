"""The event catalogue: every fact metaledger records, as frozen msgspec Structs.

Each event class carries an explicit, stable, dotted tag (``run.started``), never
its class name, and a ``schema_version``. Stored events keep their tag and
version beside the payload; a reader decodes the payload with the class of that
tag, after the upcasters of :mod:`eventstore.upcasting` have brought older
versions up to date.

Schema evolution follows msgspec's rules: a new field needs a default, a field
never changes type, nothing is reordered. A change of meaning is a new
``schema_version`` and an upcaster, never an edit of the old shape.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

import msgspec

__all__ = [
    "ARTIFACT_TYPES",
    "COMPONENT_TYPES",
    "EVENT_TYPES",
    "AnyEvent",
    "ArtifactConsumed",
    "ArtifactProduced",
    "ComponentDeleted",
    "ComponentRegistered",
    "ComponentRenamed",
    "ComponentUpdated",
    "DescribedComponent",
    "Event",
    "FlavorRegistered",
    "MetadataLogged",
    "OpenLineageReceived",
    "RunDeleted",
    "RunFinished",
    "RunStackDescribed",
    "RunStarted",
    "RunStatus",
    "StackDeleted",
    "StackRegistered",
    "StackRenamed",
    "StackUpdated",
    "StepFinished",
    "StepStarted",
    "StepStatus",
    "WorkspaceActiveStackSet",
    "event_class",
]

#: ZenML's stack component types. The catalogue accepts any lower-case
#: identifier, so a newer orchestrator can add a type without a new release.
COMPONENT_TYPES: tuple[str, ...] = (
    "orchestrator",
    "artifact_store",
    "metadata_store",
    "container_registry",
    "step_operator",
    "experiment_tracker",
    "model_deployer",
    "model_registry",
    "alerter",
    "annotator",
    "data_validator",
    "feature_store",
    "image_builder",
)

#: ZenML's artifact types.
ARTIFACT_TYPES: tuple[str, ...] = (
    "DataArtifact",
    "ModelArtifact",
    "DataAnalysisArtifact",
    "ServiceArtifact",
    "BaseArtifact",
)

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
ComponentType = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
UtcDateTime = Annotated[datetime, msgspec.Meta(tz=True)]
Scalar = str | int | float | bool | None
#: Configuration, parameters and tags: JSON-compatible mappings.
JsonObject = dict[str, Any]

StepStatus = Literal["completed", "failed", "cached", "skipped", "stopped"]
RunStatus = Literal["completed", "failed", "stopped"]

COMPONENT_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="event_type"):
    """Base of every event: a frozen, keyword-only msgspec Struct with a stable tag.

    Subclasses set ``tag="noun.verb"`` and, when their shape changes meaning, a
    higher ``schema_version`` plus an upcaster for the old one.
    """

    schema_version: ClassVar[int] = 1

    @classmethod
    def event_type(cls) -> str:
        """The stable tag this class is stored under."""
        tag = cls.__struct_config__.tag
        assert isinstance(tag, str)
        return tag


# -- stack components and stacks: stream ``workspace`` -------------------------


class ComponentRegistered(Event, frozen=True, tag="component.registered"):
    """A stack component (orchestrator, artifact store...) was registered."""

    component_id: UUID
    type: ComponentType
    flavor: Name
    name: Name
    configuration: JsonObject = {}
    labels: dict[str, str] = {}


class ComponentUpdated(Event, frozen=True, tag="component.updated"):
    """A component's configuration was replaced; ``configuration`` is the new whole."""

    component_id: UUID
    configuration: JsonObject


class ComponentRenamed(Event, frozen=True, tag="component.renamed"):
    """A component got a new name."""

    component_id: UUID
    name: Name


class ComponentDeleted(Event, frozen=True, tag="component.deleted"):
    """A component was deleted; views hide it, the log keeps its history."""

    component_id: UUID


class StackRegistered(Event, frozen=True, tag="stack.registered"):
    """A stack was registered: one component per type, by component id."""

    stack_id: UUID
    name: Name
    components: dict[str, UUID]
    description: str = ""
    labels: dict[str, str] = {}


class StackUpdated(Event, frozen=True, tag="stack.updated"):
    """A stack's components were replaced; ``components`` is the new whole mapping."""

    stack_id: UUID
    components: dict[str, UUID]


class StackRenamed(Event, frozen=True, tag="stack.renamed"):
    """A stack got a new name."""

    stack_id: UUID
    name: Name


class StackDeleted(Event, frozen=True, tag="stack.deleted"):
    """A stack was deleted; views hide it, the log keeps its history."""

    stack_id: UUID


class WorkspaceActiveStackSet(Event, frozen=True, tag="workspace.active_stack_set"):
    """The workspace's active stack changed."""

    stack_id: UUID


class FlavorRegistered(Event, frozen=True, tag="flavor.registered"):
    """A custom flavor of a component type was registered, so components may use it."""

    type: ComponentType
    name: Name
    description: str = ""


# -- pipeline runs: stream ``run-<run_id>`` ------------------------------------


class DescribedComponent(msgspec.Struct, frozen=True, kw_only=True):
    """One component of a stack described in a run (see :class:`RunStackDescribed`)."""

    component_id: UUID
    type: ComponentType
    flavor: Name
    name: Name
    #: The configuration with secrets masked (it travels to another store).
    configuration: JsonObject = {}


class RunStackDescribed(Event, frozen=True, tag="run.stack_described"):
    """The stack of a run recorded in another store than the stack's (its home store).

    Written just before the run's ``run.started``, in the same append and stream,
    only when the run goes to a metadata store that is not the home store: that
    store's workspace does not know the stack, so the run carries its description.
    """

    run_id: UUID
    stack_id: UUID
    name: Name
    components: list[DescribedComponent] = []
    #: The home store that holds the stack (its URI, credentials masked).
    home: str = ""


class RunStarted(Event, frozen=True, tag="run.started"):
    """A pipeline run started on a stack."""

    run_id: UUID
    pipeline_name: Name
    run_name: Name
    started_at: UtcDateTime
    stack_id: UUID | None = None
    orchestrator_run_id: str | None = None
    config: JsonObject = {}
    tags: list[str] = []


class StepStarted(Event, frozen=True, tag="step.started"):
    """A step run of a pipeline run started."""

    run_id: UUID
    step_run_id: UUID
    step_name: Name
    started_at: UtcDateTime
    upstream_steps: list[str] = []
    parameters: JsonObject = {}
    cache_key: str | None = None


class ArtifactConsumed(Event, frozen=True, tag="artifact.consumed"):
    """A step run read an existing artifact as its input ``input_name``."""

    run_id: UUID
    step_run_id: UUID
    input_name: Name
    artifact_id: UUID


class ArtifactProduced(Event, frozen=True, tag="artifact.produced"):
    """A step run wrote a new artifact as its output ``output_name``."""

    run_id: UUID
    step_run_id: UUID
    output_name: Name
    artifact_id: UUID
    artifact_name: Name
    uri: str
    artifact_type: str = "DataArtifact"
    data_type: str | None = None
    materializer: str | None = None
    content_hash: str | None = None
    size_bytes: Annotated[int, msgspec.Meta(ge=0)] | None = None
    metadata: dict[str, Scalar] = {}


class MetadataLogged(Event, frozen=True, tag="metadata.logged"):
    """Key/value metadata was logged on a run, or on one of its steps.

    Version 2: ``values`` holds several keys at once. Version 1 stored a single
    ``key`` and ``value``; its upcaster turns it into ``values={key: value}``.
    """

    schema_version: ClassVar[int] = 2

    run_id: UUID
    values: dict[str, Scalar]
    step_run_id: UUID | None = None


class StepFinished(Event, frozen=True, tag="step.finished"):
    """A step run ended with a final status."""

    run_id: UUID
    step_run_id: UUID
    status: StepStatus
    finished_at: UtcDateTime
    error: str | None = None


class RunFinished(Event, frozen=True, tag="run.finished"):
    """A pipeline run ended with a final status."""

    run_id: UUID
    status: RunStatus
    finished_at: UtcDateTime
    error: str | None = None


class RunDeleted(Event, frozen=True, tag="run.deleted"):
    """A tombstone: views forget the run; the log keeps every event of it."""

    run_id: UUID
    reason: str = ""


# -- OpenLineage: streams ``openlineage-run-<uuid>``, ``openlineage-job``, ``openlineage-dataset``


class OpenLineageReceived(Event, frozen=True, tag="openlineage.received"):
    """An OpenLineage event (RunEvent, JobEvent or DatasetEvent) was accepted, kept whole.

    ``event`` is the event's JSON text exactly as received (every facet, unknown
    and custom ones included), so it is recoverable byte for byte; the views
    derive runs, steps and artifacts from it (``projections/openlineage.py``).
    """

    kind: Literal["RunEvent", "JobEvent", "DatasetEvent"]
    event: str
    key: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]


AnyEvent = (
    ComponentRegistered
    | ComponentUpdated
    | ComponentRenamed
    | ComponentDeleted
    | StackRegistered
    | StackUpdated
    | StackRenamed
    | StackDeleted
    | WorkspaceActiveStackSet
    | FlavorRegistered
    | RunStackDescribed
    | RunStarted
    | StepStarted
    | ArtifactConsumed
    | ArtifactProduced
    | MetadataLogged
    | StepFinished
    | RunFinished
    | RunDeleted
    | OpenLineageReceived
)
"""The tagged union of every current event class."""

#: Tag -> current class, in catalogue order.
EVENT_TYPES: dict[str, type[Event]] = {cls.event_type(): cls for cls in AnyEvent.__args__}


def event_class(event_type: str) -> type[Event] | None:
    """The current class stored under ``event_type``, or None for an unknown tag."""
    return EVENT_TYPES.get(event_type)
