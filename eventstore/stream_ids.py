"""The streams and derived event ids of the write API: pure names, importing nothing.

The write API (``workspace.py``, ``runs.py``) and the domain rules
(``rules.py``) both need them; here neither imports the other for them.
"""

from __future__ import annotations

import functools
from uuid import UUID, uuid5

__all__ = [
    "ARTIFACT_NAMESPACE",
    "RUN_NAME_NAMESPACE",
    "WORKSPACE_STREAM",
    "artifact_event_id",
    "run_name_event_id",
    "run_stream",
]

#: The stream holding every component and stack event.
WORKSPACE_STREAM = "workspace"
#: Namespace of the event ids of ``artifact.produced`` events (uuid5 of the artifact id).
ARTIFACT_NAMESPACE = UUID("6a1f5c3e-2d4b-5e8f-9a7c-0b1d2e3f4a5b")
#: Namespace of the event ids of ``run.started`` events (uuid5 of generation and run name).
RUN_NAME_NAMESPACE = UUID("0c6e1d2a-7b3f-5a49-8e21-4f5d6c7b8a90")


@functools.lru_cache(maxsize=16_384)
def run_stream(run_id: UUID) -> str:
    """The stream of a run and its steps."""
    # Cached: the rules and readers ask for the same run's stream once per event,
    # and ``str(UUID)`` is pure Python.
    return f"run-{run_id}"


def artifact_event_id(artifact_id: UUID) -> UUID:
    """The event id under which an artifact's ``artifact.produced`` event is stored."""
    return uuid5(ARTIFACT_NAMESPACE, str(artifact_id))


def run_name_event_id(run_name: str, generation: int = 0) -> UUID:
    """The event id of the ``run.started`` event of the ``generation``-th run named so.

    Generation 0 is the first run of that name; each deleted holder of the name
    moves the next run to the following generation.
    """
    return uuid5(RUN_NAME_NAMESPACE, f"{generation}:{run_name}")
