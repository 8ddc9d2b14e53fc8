"""Validation of an OpenLineage event's shape against the shipped 2-0-x JSON schema.

The schema files in ``spec/`` (a vendored copy, see ``spec/SOURCE.md``) are
loaded once into a :class:`referencing.Registry` keyed by their ``$id``, so
validation never touches the network. An event is validated against the
definition of its kind (``RunEvent``, ``JobEvent``, ``DatasetEvent``) in the
core schema, whatever spec version its ``schemaURL`` names: real integrations
still declare ``1-0-1`` or ``1-0-5`` and send a shape the current schema
accepts. Facets are checked as facets (the core schema's ``BaseFacet``:
``_producer`` and ``_schemaURL``) and otherwise kept whole, unknown and custom
ones included.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

__all__ = ["CORE_SCHEMA_ID", "KINDS", "schema_problem"]

#: The ``$id`` of the shipped core schema.
CORE_SCHEMA_ID = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
#: The event kinds, as the ``$defs`` of the core schema name them.
KINDS = ("RunEvent", "JobEvent", "DatasetEvent")


def _load(name: str) -> dict[str, Any]:
    spec = resources.files(__package__) / "spec"
    document: dict[str, Any] = json.loads((spec / name).read_text(encoding="utf-8"))
    return document


@cache
def _registry() -> Registry[Any]:
    spec = resources.files(__package__) / "spec"
    documents = [_load("OpenLineage.json")]
    documents += [
        json.loads(f.read_text(encoding="utf-8"))
        for f in (spec / "facets").iterdir()
        if f.name.endswith(".json")
    ]
    resources_ = [(d["$id"], Resource.from_contents(d)) for d in documents]
    return Registry().with_resources(resources_)


@cache
def _validator(kind: str) -> Draft202012Validator:
    schema = {"$ref": f"{CORE_SCHEMA_ID}#/$defs/{kind}"}
    return Draft202012Validator(schema, registry=_registry())


def _where(error: ValidationError) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return path.lstrip(".") or "the event"


def schema_problem(document: Any, kind: str) -> str | None:
    """Why ``document`` is not a valid OpenLineage ``kind``, or None when it is.

    The reason names the place (``run.runId``) and the rule broken, in one line.
    """
    error = best_match(_validator(kind).iter_errors(document))
    if error is None:
        return None
    message = error.message
    if len(message) > 300:
        message = message[:297] + "..."
    return f"{_where(error)}: {message}"
