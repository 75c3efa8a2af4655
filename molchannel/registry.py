"""Name -> implementation registries: how a name in a config selects a featurizer or a backbone.

A :class:`Registry` is a read-only mapping that implementations add themselves to, usually through
a decorator next to their definition::

    FEATURIZERS: Registry[type[Featurizer]] = Registry("featurizer")

    @FEATURIZERS.register("basic")
    class BasicFeaturizer: ...

    FEATURIZERS.lookup("basic")  # -> BasicFeaturizer; an unknown name raises ValueError

The registries in use are ``molchannel.chem.base.FEATURIZERS`` (``@register_featurizer``) and
``molchannel.nn.backbones.BACKBONES`` (``@register_backbone``). This module imports nothing from
molchannel, so every layer can use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar, cast

T = TypeVar("T")
E = TypeVar("E")


class Registry(Mapping[str, T]):
    """Names of one kind of thing (``kind``: "featurizer", "backbone") -> their implementations.

    Indexing an unknown name raises ``KeyError`` as for any mapping; :meth:`lookup` raises a
    ``ValueError`` that lists the known names, for errors a user reads. Registering a second,
    different implementation under a taken name is an error; registering the same (or an equal) one
    again is not, so re-importing a module that registers something is harmless.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name`` and return it."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        known = self._entries.get(name)
        if known is not None and known is not entry and known != entry:
            raise ValueError(f"{self.kind} {name!r} is already registered ({_describe(known)})")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[E], E]:
        """Decorator: register the decorated class or function itself under ``name``."""

        def decorator(entry: E) -> E:
            self.add(name, cast(T, entry))  # the decorated object keeps its own, narrower type
            return entry

        return decorator

    def lookup(self, name: str) -> T:
        """The entry registered as ``name``; ``ValueError`` naming the known ones if there is none."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name from a hand-written config
            raise ValueError(f"unknown {self.kind} {name!r}; choose one of {self.names()}") from None

    def names(self) -> tuple[str, ...]:
        """Registered names, sorted."""
        return tuple(sorted(self._entries))

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kind!r}: {', '.join(self.names())})"


def _describe(entry: object) -> str:
    return getattr(entry, "__qualname__", None) or repr(entry)
