"""Upcasters: functions that bring a stored payload of an old schema version up one version.

An upcaster works on the decoded builtins (a ``dict``) so it never needs the old
class; chains of upcasters run until the payload reaches the current version.
Registering is a decorator::

    @upcaster("metadata.logged", from_version=1)
    def _metadata_logged_v1(data: dict[str, Any]) -> dict[str, Any]:
        ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Upcaster", "UpcasterRegistry", "registry", "upcaster"]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class UpcasterRegistry:
    """Maps (event type, from_version) to the function producing version from_version + 1."""

    def __init__(self) -> None:
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, event_type: str, from_version: int, function: Upcaster) -> None:
        """Register ``function`` to lift ``event_type`` payloads from ``from_version`` by one."""
        key = (event_type, from_version)
        if key in self._upcasters:
            raise ValueError(f"an upcaster for {event_type} v{from_version} is already registered")
        self._upcasters[key] = function

    def can_upcast(self, event_type: str, from_version: int, to_version: int) -> bool:
        """Whether a chain of upcasters leads from ``from_version`` to ``to_version``."""
        return all((event_type, v) in self._upcasters for v in range(from_version, to_version))

    def upcast(
        self, event_type: str, data: dict[str, Any], from_version: int, to_version: int
    ) -> dict[str, Any]:
        """Apply the chain of upcasters from ``from_version`` up to ``to_version``."""
        for version in range(from_version, to_version):
            data = self._upcasters[(event_type, version)](data)
        return data


#: The registry the codec consults.
registry = UpcasterRegistry()


def upcaster(event_type: str, *, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Decorator registering an upcaster in the default registry."""

    def decorate(function: Upcaster) -> Upcaster:
        registry.register(event_type, from_version, function)
        return function

    return decorate


@upcaster("metadata.logged", from_version=1)
def _metadata_logged_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 logged one ``key``/``value`` pair per event; version 2 logs ``values``."""
    upcast = {k: v for k, v in data.items() if k not in ("key", "value")}
    upcast["values"] = {data["key"]: data.get("value")}
    return upcast
