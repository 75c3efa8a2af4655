"""The registry of perturbation methods: ``@register_perturber(name)`` and ``make_perturber(name)``.

A perturber class registers itself under the name that ``precompute_perturbations(method=...)``, the
``--method`` flag of ``molchannel perturb`` and the corpus preparation use to select it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from molchannel.pretrain.perturb.base import ScaffoldInvariantPerturber

P = TypeVar("P", bound=type[ScaffoldInvariantPerturber])

_PERTURBERS: dict[str, type[ScaffoldInvariantPerturber]] = {}


def register_perturber(name: str) -> Callable[[P], P]:
    """Class decorator: make a :class:`ScaffoldInvariantPerturber` subclass available under ``name``."""

    def register(cls: P) -> P:
        if not (isinstance(cls, type) and issubclass(cls, ScaffoldInvariantPerturber)):
            raise TypeError(f"{cls!r} is not a ScaffoldInvariantPerturber subclass")
        known = _PERTURBERS.get(name)
        if known is not None and known is not cls:
            raise ValueError(f"perturbation method {name!r} is already registered ({known.__qualname__})")
        _PERTURBERS[name] = cls
        return cls

    return register


def perturber_names() -> tuple[str, ...]:
    """Names of the registered perturbation methods, sorted."""
    return tuple(sorted(_PERTURBERS))


def perturber_class(name: str) -> type[ScaffoldInvariantPerturber]:
    """The class registered under ``name``; ``ValueError`` naming the known methods if there is none."""
    try:
        return _PERTURBERS[name]
    except KeyError:
        raise ValueError(f"unknown perturbation method {name!r}; choose one of {perturber_names()}") from None


def make_perturber(name: str, /, **options: Any) -> ScaffoldInvariantPerturber:
    """Build the perturber registered as ``name`` (``"crem"`` needs ``db_path``; ``"sidechain"``)."""
    return perturber_class(name).from_options(**options)
