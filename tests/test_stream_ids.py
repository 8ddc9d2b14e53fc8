"""The fast textual uuid5 of the derived event ids equals the standard library's."""

from __future__ import annotations

import hashlib
from uuid import UUID, uuid5

from hypothesis import given
from hypothesis import strategies as st

from eventstore.stream_ids import (
    ARTIFACT_NAMESPACE,
    artifact_event_id,
    artifact_event_id_text,
    uuid5_text,
)


@given(st.uuids())
def test_artifact_event_id_text_is_the_uuid5_text(artifact_id: UUID) -> None:
    assert artifact_event_id_text(artifact_id) == str(artifact_event_id(artifact_id))
    assert artifact_event_id(artifact_id) == uuid5(ARTIFACT_NAMESPACE, str(artifact_id))


# uuid5 encodes its name as UTF-8: text below the surrogates (1 to 3 bytes a character).
_names = st.text(st.characters(max_codepoint=0xD7FF), max_size=40)


@given(st.uuids(), _names, _names)
def test_uuid5_text_with_a_prehashed_prefix(namespace: UUID, start: str, name: str) -> None:
    prefix = hashlib.sha1(namespace.bytes + start.encode())
    assert uuid5_text(prefix, name.encode()) == str(uuid5(namespace, start + name))
