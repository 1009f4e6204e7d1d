"""Name -> factory registries with an entry-point group, the one mechanism behind every plug-in part.

Backbones, codecs, samplers, reward heads and env families are each a :class:`Registry`. A part
is found by name: first among those registered in this process (:meth:`Registry.register`), then
among the entry points that installed packages declare in the registry's group, which are loaded
only when their name is asked for. So a saved world model that names a third-party backbone loads
by name in a fresh process, once the package that declares it is installed:

.. code-block:: toml

    [project.entry-points."world_gym.backbones"]
    MyDiT = "my_package.dit:make_backbone"

>>> toys = Registry("toy", "world_gym.toys")
>>> toys.register("one", lambda: 1)
>>> toys.get("one")()
1
>>> "two" in toys
False
"""

from __future__ import annotations

import importlib.metadata
from importlib.metadata import EntryPoint
from typing import Any, Generic, Iterator, TypeVar

T = TypeVar("T")
_MISSING: Any = object()


class UnknownNameError(ValueError):
    """A registry has no part of that name, neither registered nor declared as an entry point."""


class Registry(Generic[T]):
    """Named factories of one kind of part, filled by :meth:`register` and by entry points.

    A registry reads like a ``Mapping[str, T]``: ``name in registry``, ``registry[name]``,
    ``sorted(registry)``, ``len(registry)``. Asking for a name that is not registered loads the entry
    point of that name in :attr:`group`, if an installed package declares one.

    Args:
        kind: what the parts are, for error messages (``"backbone"``).
        group: the entry-point group that packages declare parts in (``"world_gym.backbones"``).
    """

    def __init__(self, kind: str, group: str) -> None:
        self.kind = kind
        self.group = group
        self._parts: dict[str, T] = {}

    def register(self, name: str, factory: T) -> None:
        """Make ``factory`` the part called ``name`` (replacing any part of that name).

        Raises:
            ValueError: ``name`` is not a non-empty string.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        self._parts[name] = factory

    def entry_point_names(self) -> list[str]:
        """Names that installed packages declare in :attr:`group` (not loaded)."""
        return sorted({ep.name for ep in importlib.metadata.entry_points(group=self.group)})

    def _entry_point(self, name: str) -> EntryPoint | None:
        for ep in importlib.metadata.entry_points(group=self.group):
            if ep.name == name:
                return ep
        return None

    def load(self, name: str) -> bool:
        """Register the entry point ``name`` of :attr:`group` unless ``name`` is registered already.

        Returns:
            True when ``name`` is registered afterwards.
        """
        if name in self._parts:
            return True
        ep = self._entry_point(name)
        if ep is None:
            return False
        factory = ep.load()
        # loading a module may register its parts itself; an explicit registration wins
        self._parts.setdefault(name, factory)
        return True

    def get(self, name: str, default: Any = _MISSING) -> T:
        """The part called ``name``, loading its entry point on first use.

        Args:
            name: the part's name.
            default: returned when there is no such part (as ``dict.get``); without it, an unknown
                name raises.

        Raises:
            UnknownNameError: no part of that name is registered or declared (and no ``default``);
                the message lists the known names and the entry-point group.
        """
        if not isinstance(name, str) or not self.load(name):
            if default is not _MISSING:
                return default
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; known: {self.names()} (registered, or declared by an installed "
                f"package in the {self.group!r} entry-point group)"
            )
        return self._parts[name]

    def names(self) -> list[str]:
        """Every known name: registered ones and those declared as entry points, sorted."""
        return sorted(set(self._parts) | set(self.entry_point_names()))

    def unregister(self, name: str) -> None:
        """Forget the part ``name`` (an entry point of that name is loaded again on next use).

        Raises:
            KeyError: ``name`` is not registered.
        """
        del self._parts[name]

    def keys(self) -> list[str]:
        """Same as :meth:`names`."""
        return self.names()

    def values(self) -> list[T]:
        """Every part, loading all declared entry points."""
        return [self.get(name) for name in self.names()]

    def items(self) -> list[tuple[str, T]]:
        """``(name, part)`` pairs, loading all declared entry points."""
        return [(name, self.get(name)) for name in self.names()]

    def registered(self) -> dict[str, T]:
        """The parts registered so far (entry points not yet loaded are not in it)."""
        return dict(self._parts)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.load(name)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __setitem__(self, name: str, factory: T) -> None:
        self.register(name, factory)

    def __delitem__(self, name: str) -> None:
        self.unregister(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, group={self.group!r}, names={self.names()})"
