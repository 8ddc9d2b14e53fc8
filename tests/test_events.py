"""The event catalogue and its codec: tags, versions, upcasting, raw events, bad values."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventstore import (
    EVENT_TYPES,
    ComponentRegistered,
    DecodeError,
    Event,
    EventCodec,
    InvalidEventError,
    MetadataLogged,
    RawEvent,
    StepFinished,
    open_store,
)
from eventstore.envelope import datetime_from_us, us_from_datetime
from eventstore.events import AnyEvent
from eventstore.upcasting import UpcasterRegistry


class MetadataLoggedV1(Event, frozen=True, tag="metadata.logged"):
    """metadata.logged as version 1 stored it: one key and one value per event."""

    schema_version: ClassVar[int] = 1

    run_id: uuid.UUID
    key: str
    value: str | int | float | bool | None = None
    step_run_id: uuid.UUID | None = None


class FutureThing(Event, frozen=True, tag="future.thing"):
    """An event type this release does not know (as if written by a newer one)."""

    colour: str


class StepFinishedV9(Event, frozen=True, tag="step.finished"):
    """step.finished in a schema version newer than this release knows."""

    schema_version: ClassVar[int] = 9

    run_id: uuid.UUID
    outcome: str


def _codec_with(*classes: type[Event]) -> EventCodec:
    types = dict(EVENT_TYPES)
    for cls in classes:
        types[cls.event_type()] = cls
    return EventCodec(event_types=types)


class TestCatalogue:
    """The union and its tags."""

    def test_every_event_has_a_stable_dotted_tag(self) -> None:
        """Each class's tag is explicit, dotted and not its class name."""
        for tag, cls in EVENT_TYPES.items():
            assert "." in tag
            assert tag != cls.__name__
            assert cls.__struct_config__.frozen
            assert cls.schema_version >= 1

    def test_union_decodes_by_tag(self) -> None:
        """The tagged union decodes JSON by its tag."""
        run_id = uuid.uuid4()
        text = msgspec.json.encode(
            {"event_type": "run.deleted", "run_id": str(run_id), "reason": "x"}
        )
        event = msgspec.json.decode(text, type=AnyEvent)
        assert run_id == event.run_id

    def test_events_are_frozen(self) -> None:
        """Events cannot be changed after creation."""
        event = MetadataLogged(run_id=uuid.uuid4(), values={"a": 1})
        with pytest.raises(AttributeError):
            event.values = {}  # type: ignore[misc]


class TestCodec:
    """Encoding and decoding payloads."""

    def test_round_trip_every_type(self) -> None:
        """Each event encodes and decodes back to an equal event."""
        codec = EventCodec()
        now = datetime.now(UTC)
        event = StepFinished(
            run_id=uuid.uuid4(),
            step_run_id=uuid.uuid4(),
            status="failed",
            finished_at=now,
            error="boom",
        )
        tag, version, data = codec.encode(event)
        assert (tag, version) == ("step.finished", 1)
        assert event == codec.decode(tag, version, data)

    def test_payload_is_json_isomorphic(self) -> None:
        """A payload re-encoded from its JSON form is byte-identical (export keeps hashes)."""
        codec = EventCodec()
        event = ComponentRegistered(
            component_id=uuid.uuid4(),
            type="orchestrator",
            flavor="local",
            name="o",
            configuration={"nested": {"list": [1, 2.5, "x", None, True]}},
            labels={"team": "a"},
        )
        _, _, data = codec.encode(event)
        as_json = msgspec.json.encode(codec.to_builtins(data))
        assert data == codec.from_builtins_bytes(msgspec.json.decode(as_json))

    @pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
    def test_nan_and_infinity_are_refused(self, bad: float) -> None:
        """NaN and infinities cannot be stored: JSON could not carry them."""
        with pytest.raises(InvalidEventError, match=r"NaN|Infinity"):
            EventCodec().encode(MetadataLogged(run_id=uuid.uuid4(), values={"loss": bad}))

    def test_wrong_types_are_refused(self) -> None:
        """A field of the wrong type is refused at encode time, naming the field."""
        event = ComponentRegistered(
            component_id=uuid.uuid4(),
            type="orchestrator",
            flavor="local",
            name=123,  # type: ignore[arg-type]
        )
        with pytest.raises(InvalidEventError, match="name"):
            EventCodec().encode(event)

    def test_oversized_events_are_refused(self) -> None:
        """An event over the size limit is refused with its size."""
        codec = EventCodec(max_event_bytes=1000)
        event = ComponentRegistered(
            component_id=uuid.uuid4(),
            type="orchestrator",
            flavor="local",
            name="o",
            configuration={"blob": "x" * 2000},
        )
        with pytest.raises(InvalidEventError, match="limit"):
            codec.encode(event)

    def test_corrupt_payload_of_known_type_is_a_decode_error(self) -> None:
        """A known type whose payload does not decode raises DecodeError, not a crash."""
        with pytest.raises(DecodeError):
            EventCodec().decode("step.finished", 1, b"\xc1garbage")


class TestVersions:
    """Upcasting old versions, keeping unknown and newer ones raw."""

    def test_upcaster_registry_chains(self) -> None:
        """Registered upcasters chain from an old version to the current one."""
        registry = UpcasterRegistry()
        registry.register("x.y", 1, lambda d: {**d, "b": 1})
        registry.register("x.y", 2, lambda d: {**d, "c": d["b"] + 1})
        assert registry.can_upcast("x.y", 1, 3)
        assert not registry.can_upcast("x.y", 1, 4)
        assert registry.upcast("x.y", {"a": 0}, 1, 3) == {"a": 0, "b": 1, "c": 2}
        with pytest.raises(ValueError, match="already registered"):
            registry.register("x.y", 1, lambda d: d)

    async def test_v1_event_in_the_log_reads_back_upcast(self, tmp_path: Path) -> None:
        """metadata.logged stored as v1 (key/value) reads back as v2 (values)."""
        run_id = uuid.uuid4()
        old = MetadataLoggedV1(run_id=run_id, key="accuracy", value=0.93)
        async with open_store(
            tmp_path, codec=_codec_with(MetadataLoggedV1), default_stack=False
        ) as store:
            await store.append("run-x", [old])
        async with open_store(tmp_path) as store:
            [recorded] = [e async for e in store.read_all()]
        assert recorded.schema_version == 1
        assert MetadataLogged(run_id=run_id, values={"accuracy": 0.93}) == recorded.event

    async def test_unknown_type_and_newer_version_read_back_raw(self, tmp_path: Path) -> None:
        """Events of an unknown type or a newer version come back as RawEvent, never an error."""
        run_id = uuid.uuid4()
        async with open_store(
            tmp_path, codec=_codec_with(FutureThing, StepFinishedV9), default_stack=False
        ) as store:
            await store.append("s", [FutureThing(colour="teal")])
            await store.append("s", [StepFinishedV9(run_id=run_id, outcome="great")])
        async with open_store(tmp_path) as store:
            first, second = [e async for e in store.read_all()]
            assert (await store.verify()).ok
        assert isinstance(first.event, RawEvent)
        assert (first.event.type, first.event.schema_version) == ("future.thing", 1)
        assert first.event.decoded() == {"colour": "teal"}
        assert isinstance(second.event, RawEvent)
        assert second.event.schema_version == 9
        assert second.event.decoded()["outcome"] == "great"


class TestTimes:
    """Microsecond timestamps, as the log and the views store them."""

    # Year 1 to 9999: the whole range of datetime.
    @given(st.integers(min_value=-62_135_596_800_000_000, max_value=253_402_300_799_999_999))
    def test_datetime_from_us_is_exact_both_ways(self, value: int) -> None:
        """Every microsecond count maps to its exact datetime and back (fast path or not)."""
        exact = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)
        assert exact == datetime_from_us(value)
        assert value == us_from_datetime(datetime_from_us(value))
