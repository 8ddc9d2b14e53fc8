"""The streams and derived event ids of the write API: pure names, importing nothing.

The write API (``workspace.py``, ``runs.py``) and the domain rules
(``rules.py``) both need them; here neither imports the other for them.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any
from uuid import UUID, uuid5

__all__ = [
    "ARTIFACT_NAMESPACE",
    "RUN_NAME_NAMESPACE",
    "WORKSPACE_STREAM",
    "artifact_event_id",
    "artifact_event_id_text",
    "run_name_event_id",
    "run_stream",
    "uuid5_text",
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


def uuid5_text(prefix: Any, name: bytes) -> str:
    """``str(uuid5(namespace, prefix_text + name))``, from ``prefix``, a SHA-1 already fed
    the namespace's bytes (and any common start of the names).

    uuid5 is SHA-1 of the namespace then the name; hashing the common part once and
    formatting the text directly skips ``uuid.UUID``'s pure-Python constructor and
    ``__str__``, most of ``str(uuid5(...))``'s cost when it runs once per event.
    """
    sha = prefix.copy()
    sha.update(name)
    raw = bytearray(sha.digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


_ARTIFACT_PREFIX = hashlib.sha1(ARTIFACT_NAMESPACE.bytes, usedforsecurity=False)


def artifact_event_id_text(artifact_id: UUID) -> str:
    """``str(artifact_event_id(artifact_id))``, without building the UUID (bulk checks)."""
    return uuid5_text(_ARTIFACT_PREFIX, str(artifact_id).encode())


def artifact_event_id(artifact_id: UUID) -> UUID:
    """The event id under which an artifact's ``artifact.produced`` event is stored."""
    return uuid5(ARTIFACT_NAMESPACE, str(artifact_id))


def run_name_event_id(run_name: str, generation: int = 0) -> UUID:
    """The event id of the ``run.started`` event of the ``generation``-th run named so.

    Generation 0 is the first run of that name; each deleted holder of the name
    moves the next run to the following generation.
    """
    return uuid5(RUN_NAME_NAMESPACE, f"{generation}:{run_name}")
