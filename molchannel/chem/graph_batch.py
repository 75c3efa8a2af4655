"""Graphs for inference without PyG: one molecule as NumPy arrays, many as one flat tensor batch.

Training goes through PyG (``Data`` objects, ``Batch.from_data_list``, its loaders and caches).
Inference of the ``basic`` featurization does not need any of it: the featurizer can hand over
each molecule as a :class:`GraphArrays` and :meth:`GraphBatch.from_arrays` concatenates a batch
of them in a handful of NumPy calls. That spares ~2 s of ``import torch_geometric`` per command
(a fifth of ``molchannel embed`` on 20k molecules), ~10 us per molecule of ``Data`` construction
and ~50 us of ``Batch.from_data_list``. A :class:`GraphBatch` has the fields a PyG ``Batch`` of
the same graphs has (``x``, ``edge_index``, ``edge_attr``, ``batch``, ``ptr``, ``num_graphs``),
with equal values (tests/chem/test_graph_batch.py), so the encoder reads either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from molchannel.chem.base import new_graph

if TYPE_CHECKING:
    from torch_geometric.data import Batch, Data


class GraphArrays(NamedTuple):
    """One molecule's graph as int64 NumPy arrays (the fields of its PyG ``Data``)."""

    x: np.ndarray
    """``[N, F]`` atom features."""
    edge_index: np.ndarray
    """``[2, E]`` bonds, once per direction, coalesced."""
    edge_attr: np.ndarray
    """``[E, G]`` bond features."""


@dataclass
class GraphBatch:
    """B molecular graphs as flat tensors, laid out as a PyG ``Batch`` of the same graphs would be.

    Atoms of graph ``g`` are rows ``ptr[g]:ptr[g + 1]`` of ``x``; ``edge_index`` counts atoms
    from the start of the batch; ``batch[i]`` is atom ``i``'s graph. ``mol_features`` (``[B, F]``)
    is set by callers whose head reads molecule-level features, ``kernel_predictions`` (``[B, T]``) by
    models that blend an ECFP SVR with the network (:mod:`molchannel.kernel_member`).
    """

    x: Tensor
    edge_index: Tensor
    edge_attr: Tensor
    batch: Tensor
    ptr: Tensor
    mol_features: Tensor | None = None
    kernel_predictions: Tensor | None = None

    @property
    def num_graphs(self) -> int:
        return self.ptr.numel() - 1

    @property
    def num_nodes(self) -> int:
        return self.x.size(0)

    def to(self, device: str | torch.device, non_blocking: bool = False) -> GraphBatch:
        """This batch with every tensor on ``device``: a copy, or ``self`` when all are already there."""
        tensors = {f.name: value for f in fields(self) if isinstance(value := getattr(self, f.name), Tensor)}
        moved = {name: value.to(device, non_blocking=non_blocking) for name, value in tensors.items()}
        if all(moved[name] is tensors[name] for name in tensors):
            return self
        return replace(self, **moved)

    @classmethod
    def from_arrays(cls, graphs: Sequence[GraphArrays]) -> GraphBatch:
        """Concatenate graphs; atom indices in ``edge_index`` are shifted to count from the batch start."""
        if not graphs:
            raise ValueError("a GraphBatch needs at least one graph")
        atoms = np.fromiter((len(g.x) for g in graphs), dtype=np.int64, count=len(graphs))
        edges = np.fromiter((g.edge_index.shape[1] for g in graphs), dtype=np.int64, count=len(graphs))
        ptr = np.zeros(len(graphs) + 1, dtype=np.int64)
        np.cumsum(atoms, out=ptr[1:])
        edge_index = np.concatenate([g.edge_index for g in graphs], axis=1)
        edge_index += np.repeat(ptr[:-1], edges)
        return cls(
            x=torch.from_numpy(np.concatenate([g.x for g in graphs])),
            edge_index=torch.from_numpy(edge_index),
            edge_attr=torch.from_numpy(np.concatenate([g.edge_attr for g in graphs])),
            batch=torch.from_numpy(np.repeat(np.arange(len(graphs), dtype=np.int64), atoms)),
            ptr=torch.from_numpy(ptr),
        )


def collate_graphs(graphs: Sequence[GraphArrays | Data]) -> GraphBatch | Batch:
    """One batch of featurized graphs: a :class:`GraphBatch` of :class:`GraphArrays`, else a PyG ``Batch``."""
    if all(isinstance(g, GraphArrays) for g in graphs):
        return GraphBatch.from_arrays(graphs)  # type: ignore[arg-type]  # checked just above
    from torch_geometric.data import Batch  # featurizers without an array form (rich) need PyG anyway

    return Batch.from_data_list(list(graphs))


def graph_from_arrays(arrays: GraphArrays, **extra: Any) -> Data:
    """The PyG ``Data`` of one graph (the form training and the caches use)."""
    return new_graph(
        x=torch.from_numpy(arrays.x),
        edge_index=torch.from_numpy(arrays.edge_index),
        edge_attr=torch.from_numpy(arrays.edge_attr),
        **extra,
    )


__all__ = ["GraphArrays", "GraphBatch", "collate_graphs", "graph_from_arrays"]
