"""Encoding events to stored bytes and back, with upcasting and raw fallbacks.

A payload is stored as MessagePack of the event's JSON-compatible builtins
(times as RFC 3339 strings, UUIDs as strings, no tag: the tag has its own
column). Keeping the payload JSON-isomorphic means a JSON export re-encodes to
the very same bytes, so an imported log keeps its hash chain.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from .envelope import Metadata, RawEvent, decode_metadata
from .errors import DecodeError, InvalidEventError
from .events import EVENT_TYPES, Event
from .upcasting import UpcasterRegistry
from .upcasting import registry as default_registry

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "MAX_INT",
    "MIN_INT",
    "EventCodec",
    "check_json_compatible",
    "decode_metadata",
    "encode_metadata",
    "find_unencodable",
]

#: The largest encoded event payload accepted by default (1 MiB).
DEFAULT_MAX_EVENT_BYTES = 1 << 20
#: How deep configuration may nest: far beyond any real configuration, far below
#: what would exhaust the interpreter's stack.
MAX_NESTING = 64

_msgpack_encoder = msgspec.msgpack.Encoder()
_builtins_decoder = msgspec.msgpack.Decoder()


#: The integers an event may hold: signed 64 bits, what SQLite, PostgreSQL and
#: most JSON readers keep exactly.
MIN_INT = -(1 << 63)
MAX_INT = (1 << 63) - 1


def _int_fault(value: int, where: str) -> InvalidEventError:
    digits = len(str(abs(value))) if abs(value) < 1 << 4000 else None
    size = f"a {digits}-digit integer" if digits else "an integer of over 1200 digits"
    return InvalidEventError(
        f"{where}: {size} is out of range (integers are limited to 64 bits: {MIN_INT} to {MAX_INT})"
    )


def _text_fault(value: str, where: str) -> InvalidEventError | None:
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        return InvalidEventError(
            f"{where}: not valid Unicode text ({value[exc.start]!r} at index {exc.start} "
            "is a lone surrogate, from bytes that were not UTF-8)"
        )
    return None


def check_json_compatible(
    value: Any, *, where: str = "$", depth: int = 0, top: str | None = None
) -> None:
    """Raise InvalidEventError for what a JSON export could not carry exactly.

    NaN and infinities (JSON has none), non-string keys, integers beyond 64 bits,
    text that is not valid Unicode (lone surrogates) and nesting deeper than
    ``MAX_NESTING``: these would break the promise that an exported log re-imports
    to the same bytes, or could not be stored at all.
    """
    top = where if top is None else top
    if depth > MAX_NESTING:
        raise InvalidEventError(f"{top}: nested deeper than {MAX_NESTING} levels")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidEventError(f"{where}: {value!r} is not allowed (JSON has no NaN/Infinity)")
    elif isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            raise _int_fault(value, where)
    elif isinstance(value, str):
        if not value.isascii():
            fault = _text_fault(value, where)
            if fault is not None:
                raise fault
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidEventError(f"{where}: keys must be strings, got {key!r}")
            if not key.isascii():
                fault = _text_fault(key, f"{where} (a key)")
                if fault is not None:
                    raise fault
            if not (
                isinstance(item, str | bool | None)
                and (not isinstance(item, str) or item.isascii())
            ):
                check_json_compatible(item, where=f"{where}.{key}", depth=depth + 1, top=top)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if not (
                isinstance(item, str | bool | None)
                and (not isinstance(item, str) or item.isascii())
            ):
                check_json_compatible(item, where=f"{where}[{index}]", depth=depth + 1, top=top)


def find_unencodable(value: Any, where: str, depth: int = 0) -> InvalidEventError | None:
    """The first value under ``value`` that cannot be stored, as an error naming its place.

    Used after an encoding failed, to say where: it walks what the encoder refused.
    """
    if depth > MAX_NESTING:
        return InvalidEventError(f"{where}: nested deeper than {MAX_NESTING} levels")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if MIN_INT <= value <= MAX_INT else _int_fault(value, where)
    if isinstance(value, str):
        return _text_fault(value, where)
    if isinstance(value, dict):
        for key, item in value.items():
            found = (
                _text_fault(key, f"{where} (a key)") if isinstance(key, str) else None
            ) or find_unencodable(item, f"{where}.{key}", depth + 1)
            if found is not None:
                return found
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = find_unencodable(item, f"{where}[{index}]", depth + 1)
            if found is not None:
                return found
    return None


def _encode(builtins: Any, where: str) -> bytes:
    """MessagePack of ``builtins``; InvalidEventError naming the value that cannot be stored."""
    try:
        return _msgpack_encoder.encode(builtins)
    except (OverflowError, UnicodeEncodeError, TypeError, ValueError, RecursionError) as exc:
        found = find_unencodable(builtins, where)
        raise (found or InvalidEventError(f"{where}: {exc}")) from exc


#: MessagePack type bytes of a map or an array (fixmap, fixarray, 16- and 32-bit):
#: there are at least as many of them in an encoding as containers nest deep.
_CONTAINER_MARKERS = bytes([*range(0x80, 0xA0), 0xDC, 0xDD, 0xDE, 0xDF])


def _screened(builtins: Any, *, floats: bool) -> bytes | None:
    """MessagePack of JSON-decoded ``builtins`` when a scan of it proves them storable, else None.

    msgspec's JSON decoder yields no NaN or infinity, no non-string key and no
    lone surrogate, so only integers, nesting (and, with ``floats``, the floats
    a lax conversion parsed from strings such as "nan") can break
    :func:`check_json_compatible`. The encoding holds none of them when it has
    no uint64 (0xcf, the only form of integers of 2**32 and more), no float
    (0xca, 0xcb) and at most MAX_NESTING container bytes, counted in C. Anything else
    (None) gets the full walk, with its exact message.
    """
    try:
        data = _msgpack_encoder.encode(builtins)
    except (OverflowError, UnicodeEncodeError, TypeError, ValueError, RecursionError):
        return None
    if b"\xcf" in data or (floats and (b"\xcb" in data or b"\xca" in data)):
        return None
    if len(data) - len(data.translate(None, _CONTAINER_MARKERS)) > MAX_NESTING:
        return None
    return data


def encode_metadata(metadata: Metadata) -> bytes:
    """The stored bytes of an event's metadata."""
    try:
        builtins = msgspec.to_builtins(metadata)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidEventError(f"metadata: {exc}") from exc
    check_json_compatible(builtins, where="metadata")
    return _encode(builtins, "metadata")


def _may_hold_floats(info: msgspec.inspect.Type) -> bool:
    # Integers too: msgpack would store up to 2**64 - 1, beyond what the views keep.
    if isinstance(
        info, msgspec.inspect.AnyType | msgspec.inspect.FloatType | msgspec.inspect.IntType
    ):
        return True
    if isinstance(info, msgspec.inspect.UnionType):
        return any(_may_hold_floats(t) for t in info.types)
    if isinstance(info, msgspec.inspect.DictType):
        return _may_hold_floats(info.value_type)
    if isinstance(
        info, msgspec.inspect.ListType | msgspec.inspect.SetType | msgspec.inspect.VarTupleType
    ):
        return _may_hold_floats(info.item_type)
    return False


def _free_fields(cls: type[Event]) -> tuple[str, ...]:
    """Fields that can hold a float or an int: the ones to check for NaN and range."""
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    return tuple(f.encode_name for f in info.fields if _may_hold_floats(f.type))


class EventCodec:
    """Encodes events to payload bytes and decodes them back, upcasting old versions.

    Decoders are built once per event class and reused (msgspec's advice); unknown
    types and versions newer than this release decode to :class:`RawEvent`.
    """

    def __init__(
        self,
        *,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        upcasters: UpcasterRegistry = default_registry,
        event_types: dict[str, type[Event]] | None = None,
    ) -> None:
        self.max_event_bytes = max_event_bytes
        self._upcasters = upcasters
        self._types = dict(EVENT_TYPES if event_types is None else event_types)
        self._decoders: dict[str, msgspec.msgpack.Decoder[Any]] = {
            tag: msgspec.msgpack.Decoder(cls) for tag, cls in self._types.items()
        }
        self._free_fields = {tag: _free_fields(cls) for tag, cls in self._types.items()}

    def encode(
        self, event: Event, *, validated: bool = False, from_json: bool = False
    ) -> tuple[str, int, bytes]:
        """Return (type, schema_version, payload bytes) for ``event``.

        The payload is decoded back with the event's own typed decoder before it is
        accepted, so a wrongly typed field is refused here and every stored event
        decodes. Raises InvalidEventError naming the fault (a bad value, NaN, a
        payload over the size limit). ``validated`` skips that decode for an event
        :meth:`from_builtins` made: msgspec built it by validating every field
        against the same type information, so the check could not fail (importers
        of large inputs save a decode per event). ``from_json`` says the event was
        converted from what msgspec's JSON decoder made: a scan of the encoding
        then stands in for the walk of its values when it proves them sound.
        """
        cls = type(event)
        tag = cls.__struct_config__.tag
        decoder = self._decoders.get(tag) if isinstance(tag, str) else None
        if decoder is None or not isinstance(tag, str) or self._types[tag] is not cls:
            raise InvalidEventError(f"{cls.__name__} is not an event class of the catalogue")
        try:
            builtins = msgspec.to_builtins(event)
        except RecursionError as exc:  # a cycle, or nesting deeper than the interpreter's stack
            raise InvalidEventError(
                f"{tag}: nested too deeply (or a value contains itself)"
            ) from exc
        except (TypeError, ValueError) as exc:
            raise InvalidEventError(f"{tag}: {exc}") from exc
        del builtins["event_type"]
        data = _screened(builtins, floats=True) if from_json else None
        if data is None:
            for name in self._free_fields[tag]:
                check_json_compatible(builtins.get(name), where=f"{tag}.{name}")
            data = _encode(builtins, tag)
        if len(data) > self.max_event_bytes:
            raise InvalidEventError(
                f"{tag}: the encoded event is {len(data):,} bytes, over the limit of "
                f"{self.max_event_bytes:,} bytes"
            )
        if not validated:
            try:
                decoder.decode(data)
            except msgspec.ValidationError as exc:
                raise InvalidEventError(f"{tag}: {exc}") from exc
        return tag, cls.schema_version, data

    def from_builtins(self, event_type: str, data: Any) -> Event:
        """Validate JSON-like ``data`` as an event of ``event_type`` (for importers).

        Raises InvalidEventError naming the field at fault.
        """
        cls = self._types.get(event_type)
        if cls is None:
            known = ", ".join(sorted(self._types))
            raise InvalidEventError(f"unknown event type {event_type!r} (known: {known})")
        if not isinstance(data, dict):
            raise InvalidEventError(f"{event_type}: data must be a JSON object")
        try:
            event = msgspec.convert(data, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise InvalidEventError(f"{event_type}: {exc}") from exc
        except RecursionError as exc:
            raise InvalidEventError(f"{event_type}: nested too deeply") from exc
        assert isinstance(event, Event)
        return event

    def current_decoders(self) -> dict[tuple[str, int], msgspec.msgpack.Decoder[Any]]:
        """The typed decoder of each known type at its current schema version, by (type, version).

        For bulk readers: a payload stored at the current version decodes with
        its decoder alone; anything else (older, newer, unknown, or a decoder
        error) goes through :meth:`decode`, which upcasts or reports it.
        """
        return {
            (tag, self._types[tag].schema_version): decoder
            for tag, decoder in self._decoders.items()
        }

    def decode(self, event_type: str, schema_version: int, data: bytes) -> Event | RawEvent:
        """Decode a stored payload to its current class, or to RawEvent if unknown or newer.

        Raises DecodeError only when the payload of a known type is corrupt.
        """
        decoder = self._decoders.get(event_type)
        if decoder is None:
            return RawEvent(event_type, schema_version, data)
        current = self._types[event_type].schema_version
        try:
            if schema_version == current:
                event: Event = decoder.decode(data)
                return event
            if schema_version < current and self._upcasters.can_upcast(
                event_type, schema_version, current
            ):
                builtins = _builtins_decoder.decode(data)
                if not isinstance(builtins, dict):
                    raise TypeError(f"the payload is a {type(builtins).__name__}, not a map")
                upcast = self._upcasters.upcast(event_type, builtins, schema_version, current)
                converted: Event = msgspec.convert(upcast, self._types[event_type])
                return converted
        except (
            msgspec.DecodeError,
            msgspec.ValidationError,
            LookupError,
            TypeError,
            ValueError,
            AttributeError,
        ) as exc:  # an upcaster meeting a corrupt payload
            raise DecodeError(f"{event_type} v{schema_version}: corrupt payload: {exc}") from exc
        return RawEvent(event_type, schema_version, data)

    @staticmethod
    def to_builtins(data: bytes) -> Any:
        """The payload as plain builtins, for JSON output."""
        return _builtins_decoder.decode(data)

    @staticmethod
    def from_builtins_bytes(data: Any) -> bytes:
        """Re-encode builtins produced by :meth:`to_builtins` to the identical payload bytes."""
        check_json_compatible(data, where="data")
        return _encode(data, "data")

    @staticmethod
    def from_json_builtins_bytes(data: Any) -> bytes:
        """:meth:`from_builtins_bytes` of what msgspec's JSON decoder made (an import's lines).

        The same bytes and the same errors; most payloads are vouched for by a scan
        of their encoding instead of a walk of their values (see ``_screened``).
        """
        screened = _screened(data, floats=False)
        return EventCodec.from_builtins_bytes(data) if screened is None else screened
