"""OpenLineage ingest: parse, validate and store OpenLineage events whole, once each.

- :mod:`.parsing`: a body (object, array, NDJSON) into events, each valid or
  refused with a reason; kind, canonical key and time of each.
- :mod:`.schema`: validation against the shipped 2-0-x JSON schema (``spec/``).
- :mod:`.ingest`: :func:`ingest`, one outcome per event (stored, duplicate, invalid).
- :mod:`.facts`: what a stored event says about runs and datasets, for the views.

Named ``eventstore.openlineage`` (never a top-level ``openlineage``, which would
shadow the ``openlineage-python`` client).
"""

from .facts import (
    OPENLINEAGE_NAMESPACE,
    TERMINAL_STATES,
    DatasetRef,
    RunFacts,
    RunRef,
    dataset_name,
    decode,
    event_id_for,
    run_facts,
    run_uuid,
    static_datasets,
)
from .ingest import (
    IngestOutcome,
    IngestResult,
    ingest,
    ingest_parsed,
    outcome_for,
    received_for,
    stream_for,
)
from .parsing import (
    MAX_EVENT_BYTES,
    BodyError,
    InvalidOpenLineageEvent,
    Kind,
    OpenLineageEvent,
    canonical_key,
    event_kind,
    parse_body,
    parse_event,
    parse_event_time,
    split_body,
)
from .schema import CORE_SCHEMA_ID, KINDS, schema_problem

__all__ = [
    "CORE_SCHEMA_ID",
    "KINDS",
    "MAX_EVENT_BYTES",
    "OPENLINEAGE_NAMESPACE",
    "TERMINAL_STATES",
    "BodyError",
    "DatasetRef",
    "IngestOutcome",
    "IngestResult",
    "InvalidOpenLineageEvent",
    "Kind",
    "OpenLineageEvent",
    "RunFacts",
    "RunRef",
    "canonical_key",
    "dataset_name",
    "decode",
    "event_id_for",
    "event_kind",
    "ingest",
    "ingest_parsed",
    "outcome_for",
    "parse_body",
    "parse_event",
    "parse_event_time",
    "received_for",
    "run_facts",
    "run_uuid",
    "schema_problem",
    "split_body",
    "static_datasets",
    "stream_for",
]
