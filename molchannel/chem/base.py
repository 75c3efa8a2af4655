"""What every featurizer shares: its spec, its protocol, the graph constructor and the registry.

A featurizer turns a molecule into a PyG :class:`~torch_geometric.data.Data` and is selected by a
:class:`FeaturizerSpec` saved with every model folder and processed-data cache. Each scheme lives in
its own module (:mod:`molchannel.chem.basic`, :mod:`molchannel.chem.rich`) and registers itself
with ``@register_featurizer(name)``; :func:`molchannel.chem.featurizers.get_featurizer` builds one
from its spec. A new scheme is one new module: a class with ``spec``, ``featurize_mol`` and
``__call__`` (and optionally ``featurize_batch``), registered under its name, whose constructor
takes the spec's ``options`` as keyword arguments.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import torch
from rdkit import Chem

from molchannel.registry import Registry

if TYPE_CHECKING:
    from torch_geometric.data import Data

BATCH_BLOCK = 64
"""Molecules parsed together by the ``featurize_batch`` methods before any is featurized."""


@dataclass(frozen=True)
class FeaturizerSpec:
    """Names a featurization exactly: scheme, version of that scheme, and its options.

    Bump ``version`` whenever the features a scheme produces change, so that caches and
    model folders made with the old features are recognised as incompatible.
    """

    name: str
    version: int = 1
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeaturizerSpec:
        return cls(name=str(d["name"]), version=int(d.get("version", 1)), options=dict(d.get("options", {})))

    def key(self) -> str:
        """A stable string for cache keys."""
        opts = ",".join(f"{k}={self.options[k]}" for k in sorted(self.options))
        return f"{self.name}-v{self.version}" + (f"[{opts}]" if opts else "")

    def __hash__(self) -> int:  # options is a dict, so hash the key
        return hash(self.key())


@runtime_checkable
class Featurizer(Protocol):
    """Turns an RDKit molecule into a PyG :class:`~torch_geometric.data.Data`."""

    spec: FeaturizerSpec

    def featurize_mol(self, mol: Chem.Mol) -> Data: ...

    def __call__(self, smiles: str) -> Data: ...


FeaturizerFactory = Callable[..., Featurizer]
"""A featurizer class (or function) called with a spec's ``options`` as keyword arguments."""

F = TypeVar("F", bound=Callable[..., Any])

FEATURIZERS: Registry[FeaturizerFactory] = Registry("featurizer")
"""Scheme name -> featurizer class; filled by :func:`register_featurizer`."""


def register_featurizer(name: str) -> Callable[[F], F]:
    """Class decorator: make a featurizer available to ``get_featurizer`` under the scheme ``name``.

    The class's ``spec.name`` must be ``name``; calling it without arguments gives the scheme's
    latest version with default options.
    """
    return FEATURIZERS.register(name)


def new_graph(**tensors: torch.Tensor) -> Data:
    """``Data(**tensors)`` for a brand-new graph, at about a fifth of the cost.

    ``Data.__init__`` runs the constructors of three base classes and routes every attribute
    through ``__setattr__`` checks and cache invalidation that an object nobody has seen yet does
    not need (~25 us, as much as the rest of a fast featurization). Here the instance is laid out
    directly as ``Data.__init__`` would leave it: the class-level fields copied from an empty
    ``Data``, a fresh attribute store pointing back at the graph, the tensors in that store. Falls
    back to ``Data(**tensors)`` if a PyG release lays ``Data`` out differently (checked on first use).
    PyG is imported on the first call, not with this module: inference builds no ``Data`` (see
    :mod:`molchannel.chem.graph_batch`) and so never pays for importing it.
    """
    return (_GRAPH_FACTORY or _graph_factory())(**tensors)


_GRAPH_FACTORY: Callable[..., Data] | None = None


def _graph_factory() -> Callable[..., Data]:
    """:func:`new_graph`'s constructor for the installed PyG, decided (and PyG imported) once."""
    global _GRAPH_FACTORY
    from torch_geometric.data import Data
    from torch_geometric.data.storage import GlobalStorage

    empty_fields = {k: v for k, v in Data().__dict__.items() if k != "_store"}

    def directly(**tensors: torch.Tensor) -> Data:
        graph = Data.__new__(Data)
        graph.__dict__.update(empty_fields)
        store = GlobalStorage.__new__(GlobalStorage)
        store.__dict__.update(_mapping=tensors, _parent=weakref.ref(graph))
        graph.__dict__["_store"] = store
        return graph

    _GRAPH_FACTORY = directly if _same_layout(directly, Data) else Data
    return _GRAPH_FACTORY


def _same_layout(directly: Callable[..., Data], data_class: type[Data]) -> bool:
    """Whether ``directly`` builds graphs laid out as ``Data.__init__`` does in this PyG release."""
    try:
        empty = data_class()
        if set(empty._store.__dict__) != {"_mapping", "_parent"}:
            return False
        x, edges = torch.zeros(2, 1), torch.zeros(2, 0, dtype=torch.long)
        graph = directly(x=x, edge_index=edges)
        reference = data_class(x=x, edge_index=edges)
        return (
            set(graph.__dict__) == set(reference.__dict__)
            and type(graph._store) is type(reference._store)
            and graph._store._parent() is graph
            and graph.keys() == reference.keys()
            and graph.num_nodes == 2
            and graph.num_edges == 0
        )
    except (AttributeError, TypeError):
        return False
