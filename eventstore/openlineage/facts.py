"""What an accepted OpenLineage event says, in the terms the views need.

The projections read the raw event (the fact the log keeps) through
:func:`run_facts` and :func:`static_facts`: which run (a UUID; a runId that is
not one is mapped to a name-based UUID, as Marquez does), which job, the run
state the event reports, its parent and root runs (``ParentRunFacet``), the
facets to show on the run, and the datasets read and written. Everything here
is lenient: a facet of an unexpected shape is ignored, never an error, because
the event was already accepted whole.

Run ids: each run gets a name-based UUID of its runId (:func:`run_uuid`), so
no OpenLineage event can collide with a native run or step id.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .parsing import canonical_key, event_kind, parse_event_time

__all__ = [
    "OPENLINEAGE_NAMESPACE",
    "TERMINAL_STATES",
    "DatasetRef",
    "RunFacts",
    "RunRef",
    "dataset_name",
    "datasets",
    "decode",
    "event_id_for",
    "run_facts",
    "run_uuid",
    "static_datasets",
]

#: Namespace of the UUIDs metaledger derives for OpenLineage (event ids, run ids, artifacts).
OPENLINEAGE_NAMESPACE = uuid.UUID("2f0c8e51-6a7d-5b3e-9c14-8d2e7f6a5b40")
#: OpenLineage's end states and the run status each becomes.
TERMINAL_STATES = {"COMPLETE": "completed", "FAIL": "failed", "ABORT": "stopped"}
#: Ties between end events at the same time: the worse one wins, whatever the order.
_TERMINAL_RANK = {"COMPLETE": 1, "ABORT": 2, "FAIL": 3}
#: Facet values shown on a run are cut to this many characters (the raw event keeps all).
_SHOWN_CHARS = 400
_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def event_id_for(key: str) -> uuid.UUID:
    """The log event id of the event whose canonical key is ``key`` (one per content)."""
    return uuid.uuid5(OPENLINEAGE_NAMESPACE, key)


# A DAG run's tasks each name it as their parent: its id is asked for again and again.
@functools.lru_cache(maxsize=4096)
def run_uuid(run_id: str) -> str:
    """The id metaledger gives the run whose OpenLineage ``runId`` is ``run_id``.

    Always a name-based UUID of the runId (UUID or not), never the runId itself:
    an OpenLineage event can then never name, and so overwrite in the views, a
    native run or step. The runId stays the run's name (``run describe RUNID``).
    """
    return str(uuid.uuid5(OPENLINEAGE_NAMESPACE, f"run:{run_id}"))


def dataset_name(namespace: str, name: str) -> str:
    """The artifact name of a dataset: its namespace and name joined by ``/``."""
    return f"{namespace.rstrip('/')}/{name}"


@dataclass(frozen=True, slots=True)
class RunRef:
    """A run named by a facet: its UUID, raw id and job."""

    run_id: str
    raw_run_id: str
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class DatasetRef:
    """A dataset read or written: namespace, name, version facet, facets shown."""

    namespace: str
    name: str
    version: str | None = None
    #: The dataset's facets as the event gave them.
    raw_facets: dict[str, Any] = field(default_factory=dict)

    @property
    def facets(self) -> dict[str, str]:
        """The facets as shown (JSON text, cut to the shown length), by ``openlineage.facet.NAME``.

        Made when asked for: the views never show them, and encoding every
        dataset's schema facet was a tenth of what folding an event cost.
        """
        return {f"openlineage.facet.{k}": _text(v) for k, v in sorted(self.raw_facets.items())}

    @property
    def artifact_name(self) -> str:
        """The artifact name (namespace/name)."""
        return dataset_name(self.namespace, self.name)


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What one RunEvent says about its run."""

    run_id: str
    raw_run_id: str
    namespace: str
    name: str
    event_type: str
    time_us: int
    #: Orders events of a run whatever their arrival: time, end-state rank, content.
    sort_key: str
    parent: RunRef | None
    root: RunRef | None
    error: str | None
    shown: dict[str, str]
    inputs: list[DatasetRef]
    outputs: list[DatasetRef]

    @property
    def status(self) -> str | None:
        """The end status this event reports (completed, failed, stopped), or None."""
        return TERMINAL_STATES.get(self.event_type)


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else _encoder.encode(value).decode()
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def _ref(node: Any) -> RunRef | None:
    if not isinstance(node, dict):
        return None
    run, job = node.get("run"), node.get("job")
    if not isinstance(run, dict) or not isinstance(job, dict):
        return None
    raw, namespace, name = run.get("runId"), job.get("namespace"), job.get("name")
    if not (isinstance(raw, str) and isinstance(namespace, str) and isinstance(name, str)):
        return None
    return RunRef(run_uuid(raw), raw, namespace, name)


def _facets(node: Any) -> dict[str, Any]:
    facets = node.get("facets") if isinstance(node, dict) else None
    return facets if isinstance(facets, dict) else {}


def datasets(items: Any) -> list[DatasetRef]:
    """The datasets of an ``inputs`` or ``outputs`` list (odd entries skipped), sorted."""
    found: dict[tuple[str, str], DatasetRef] = {}
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        namespace, name = item.get("namespace"), item.get("name")
        if not (isinstance(namespace, str) and isinstance(name, str)):
            continue
        facets = _facets(item)
        version_facet = facets.get("version")
        version = version_facet.get("datasetVersion") if isinstance(version_facet, dict) else None
        found[namespace, name] = DatasetRef(
            namespace, name, version if isinstance(version, str) else None, facets
        )
    return [found[k] for k in sorted(found)]


def _shown(
    run_facets: dict[str, Any], job_facets: dict[str, Any], event_type: str
) -> dict[str, str]:
    shown: dict[str, str] = {"openlineage.state": event_type}
    nominal = run_facets.get("nominalTime")
    if isinstance(nominal, dict):
        for part in ("nominalStartTime", "nominalEndTime"):
            if isinstance(nominal.get(part), str):
                shown[f"openlineage.{part}"] = nominal[part]
    for name, value in sorted(run_facets.items()):
        if name not in ("nominalTime", "parent", "errorMessage"):
            shown[f"openlineage.run_facet.{name}"] = _text(value)
    for name, value in sorted(job_facets.items()):
        shown[f"openlineage.job_facet.{name}"] = _text(value)
    return shown


def run_facts(document: dict[str, Any], key: str | None = None) -> RunFacts | None:
    """What a RunEvent says about its run; None for a JobEvent, a DatasetEvent or no run."""
    if event_kind(document) != "RunEvent":
        return None
    run, job = document.get("run"), document.get("job")
    if not isinstance(run, dict) or not isinstance(job, dict):
        return None
    raw, namespace, name = run.get("runId"), job.get("namespace"), job.get("name")
    if not (isinstance(raw, str) and isinstance(namespace, str) and isinstance(name, str)):
        return None
    event_type = document.get("eventType")
    event_type = event_type if isinstance(event_type, str) else "OTHER"
    time_us = parse_event_time(document.get("eventTime"))
    run_facets, job_facets = _facets(run), _facets(job)
    this = run_uuid(raw)
    parent_facet = run_facets.get("parent")
    parent = _ref(parent_facet)
    root = _ref(parent_facet.get("root")) if isinstance(parent_facet, dict) else None
    if parent is not None and parent.run_id == this:
        parent = None
    if root is not None and (root.run_id == this or parent is None):
        root = None
    error = None
    error_facet = run_facets.get("errorMessage")
    if isinstance(error_facet, dict) and isinstance(error_facet.get("message"), str):
        error = error_facet["message"]
    shown = _shown(run_facets, job_facets, event_type)
    if parent is not None:
        shown["openlineage.parent"] = f"{parent.namespace}/{parent.name} run {parent.raw_run_id}"
    if error is not None:
        shown["openlineage.errorMessage"] = _text(error)
    rank = _TERMINAL_RANK.get(event_type, 0)
    sort_key = f"{time_us:020d}.{rank}.{key or canonical_key(document)}"
    return RunFacts(
        this,
        raw,
        namespace,
        name,
        event_type,
        time_us,
        sort_key,
        parent,
        root,
        error,
        shown,
        datasets(document.get("inputs")),
        datasets(document.get("outputs")),
    )


def static_datasets(document: dict[str, Any]) -> list[DatasetRef]:
    """The datasets a JobEvent or DatasetEvent names (for the namespaces and datasets read)."""
    kind = event_kind(document)
    if kind == "DatasetEvent":
        return datasets([document.get("dataset")])
    if kind == "JobEvent":
        return datasets(document.get("inputs")) + datasets(document.get("outputs"))
    return []


def decode(text: str) -> dict[str, Any]:
    """The document of a stored event's JSON text."""
    try:
        document: dict[str, Any] = _decoder.decode(text)
    except msgspec.DecodeError as exc:
        # Only an imported or hand-appended event can be unreadable: skipped by the views.
        raise ValueError(f"not an OpenLineage event: {exc}") from exc
    if not isinstance(document, dict):
        raise ValueError("not an OpenLineage event: not a JSON object")
    return document
