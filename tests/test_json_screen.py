"""The fast checks of JSON input (imports, ``events append``) agree with the full walk.

:meth:`EventCodec.from_json_builtins_bytes` and ``encode(..., from_json=True)``
vouch for most payloads by scanning their encoding; whatever they accept must
be what :func:`check_json_compatible` accepts, with the same bytes, and what
they refuse must be refused with the same message.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import InvalidEventError
from eventstore.codec import MAX_NESTING, EventCodec
from eventstore.events import MetadataLogged


def _outcome(make: Any, value: Any) -> tuple[str, Any]:
    try:
        return "ok", make(value)
    except InvalidEventError as exc:
        return "error", str(exc)


def _nested(depth: int, leaf: Any) -> Any:
    for index in range(depth):
        leaf = [leaf] if index % 2 else {"k": leaf}
    return leaf


# Integers on both sides of every msgpack width and of the 64-bit limits.
_EDGE_INTS = [
    0, -1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64,
    -(2**31), -(2**63), -(2**63) - 1, 10**30, -(10**30),
]  # fmt: skip

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(_EDGE_INTS)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(json_values)
def test_json_payloads_encode_and_fail_as_the_full_walk_says(value: Any) -> None:
    """Any JSON document: the same bytes, or the same InvalidEventError message."""
    decoded = msgspec.json.decode(msgspec.json.encode(value))  # what an import line holds
    fast = _outcome(EventCodec.from_json_builtins_bytes, decoded)
    full = _outcome(EventCodec.from_builtins_bytes, decoded)
    assert fast == full


@pytest.mark.parametrize("depth", [MAX_NESTING - 1, MAX_NESTING, MAX_NESTING + 1, 90])
@pytest.mark.parametrize("leaf", [1, 2**63, "x", None])
def test_deep_nesting_and_big_integers(depth: int, leaf: Any) -> None:
    """Around the nesting limit, with an integer past 64 bits at the bottom or not."""
    value = {"top": _nested(depth, leaf)}
    fast = _outcome(EventCodec.from_json_builtins_bytes, value)
    full = _outcome(EventCodec.from_builtins_bytes, value)
    assert fast == full


@pytest.mark.parametrize(
    "values",
    [
        {"loss": 0.5, "epochs": 3, "name": "é"},
        {"big": 2**63},
        {"small": -(2**63) - 1},
        {"at_limit": 2**63 - 1},
        {"nan": float("nan")},
        {"inf": float("inf")},
    ],
    ids=["plain", "past-max", "past-min", "at-max", "nan", "inf"],
)
def test_encode_from_json_refuses_what_encode_refuses(values: dict[str, Any]) -> None:
    """``encode(from_json=True)`` stores the same bytes and refuses with the same message.

    NaN and infinities cannot come from JSON itself, but a lax conversion parses
    them from strings ("nan"), so the fast path must still catch them.
    """
    codec = EventCodec()
    event = MetadataLogged(run_id=uuid.uuid4(), values=values)
    fast = _outcome(lambda e: codec.encode(e, validated=True, from_json=True), event)
    full = _outcome(codec.encode, event)
    assert fast == full
