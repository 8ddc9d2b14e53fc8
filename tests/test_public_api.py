"""Each package exports a small, sorted, complete public API."""

from __future__ import annotations

import importlib
import types

import pytest

PACKAGES = ["eventstore"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_resolvable_and_complete(name: str) -> None:
    """``__all__`` is sorted, names only real attributes, and misses no public one.

    Sorted as ruff's RUF022 sorts it: constants, then classes, then the rest.
    """
    package = importlib.import_module(name)
    exported = package.__all__

    def kind(attribute: str) -> tuple[int, str]:
        if attribute.isupper():
            return (0, attribute)
        return (1 if attribute[0].isupper() else 2, attribute)

    assert sorted(exported, key=kind) == exported
    for attribute in exported:
        assert hasattr(package, attribute), attribute
    public = {
        attribute
        for attribute, value in vars(package).items()
        if not attribute.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(exported)


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_name_has_a_docstring(name: str) -> None:
    """Every exported class and function says what it is."""
    package = importlib.import_module(name)
    for attribute in package.__all__:
        value = getattr(package, attribute)
        if isinstance(value, type | types.FunctionType):
            assert (value.__doc__ or "").strip(), attribute
