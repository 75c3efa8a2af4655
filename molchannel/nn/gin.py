"""GIN backbone for the ``basic`` featurization (Hu et al. 2020, "Strategies for Pre-training GNNs").

Atoms and bonds arrive as small integer vocabularies (see :mod:`molchannel.chem.basic`);
each column gets its own embedding table and the embeddings of a row are summed. Every layer is a
GIN convolution whose messages are ``neighbour embedding + bond embedding``; self-loops are added
inside the convolution with their own bond type, so an atom also hears itself through a learned
"self bond".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from molchannel.chem.basic import (
    BOND_SELF_LOOP,
    NUM_ATOM_TYPES,
    NUM_BOND_DIRS,
    NUM_BOND_TYPES,
    NUM_CHIRALITY_TAGS,
)
from molchannel.chem.graph_batch import GraphBatch

if TYPE_CHECKING:
    from torch_geometric.data import Data

JK_MODES = ("last", "sum")


class BondNeighbourhood(NamedTuple):
    """What every :class:`BondGINConv` of a batch needs about its bonds, computed once per batch."""

    source: Tensor
    """``[E]`` the atom each directed bond comes from."""
    target: Tensor
    """``[E]`` the atom it goes to."""
    bond_counts: Tensor
    """``[N, NUM_BOND_TYPES + NUM_BOND_DIRS]`` float: how many incoming bonds of each type, then of
    each direction, every atom has, its self-loop (type :data:`BOND_SELF_LOOP`, direction 0) included."""


def bond_neighbourhood(edge_index: Tensor, edge_attr: Tensor, num_atoms: int) -> BondNeighbourhood:
    """The :class:`BondNeighbourhood` of a graph (or a PyG batch of graphs)."""
    source, target = edge_index[0], edge_index[1]
    counts = torch.zeros(num_atoms, NUM_BOND_TYPES + NUM_BOND_DIRS, device=edge_index.device)
    if source.numel():
        rows = torch.cat([target, target])
        columns = torch.cat([edge_attr[:, 0], edge_attr[:, 1] + NUM_BOND_TYPES])
        counts.index_put_((rows, columns), torch.ones_like(rows, dtype=counts.dtype), accumulate=True)
    counts[:, BOND_SELF_LOOP] += 1
    counts[:, NUM_BOND_TYPES] += 1  # self-loop direction 0
    return BondNeighbourhood(source, target, counts)


class BondGINConv(nn.Module):
    """One GIN layer with bond embeddings: ``MLP(sum_j (x_j + e_ji))`` over neighbours and a self-loop.

    ``edge_attr`` holds integer ``(bond type, bond direction)`` pairs; the self-loop of every
    atom is given bond type :data:`BOND_SELF_LOOP` and direction 0.

    The sum is computed in its algebraic form rather than message by message (as PyG's
    ``MessagePassing`` would), the same function with a fraction of the memory traffic:
    ``sum_j (x_j + e_ji) = x_i + sum_{j->i} x_j + counts_i @ [W_type; W_dir]``, where ``counts_i``
    says how many incoming bonds of each type and direction atom ``i`` has (see
    :func:`bond_neighbourhood`). No ``[E, dim]`` bond embedding is ever built, and the counts are
    shared by all layers of a backbone.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.bond_type_embedding = nn.Embedding(NUM_BOND_TYPES, dim)
        self.bond_dir_embedding = nn.Embedding(NUM_BOND_DIRS, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.bond_type_embedding.weight)
        nn.init.xavier_uniform_(self.bond_dir_embedding.weight)
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor,
        neighbourhood: BondNeighbourhood | None = None,
    ) -> Tensor:
        """``x`` ``[N, dim]`` -> ``[N, dim]``; pass ``neighbourhood`` to reuse it across layers."""
        if neighbourhood is None:
            neighbourhood = bond_neighbourhood(edge_index, edge_attr, x.size(0))
        source, target, counts = neighbourhood
        bond_weight = torch.cat([self.bond_type_embedding.weight, self.bond_dir_embedding.weight])
        summed = x.index_add(0, target, x.index_select(0, source))
        summed = torch.addmm(summed, counts.to(summed.dtype), bond_weight.to(summed.dtype))
        return self.mlp(summed)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.dim}, mlp={self.dim}->{2 * self.dim}->{self.dim})"


class GINBackbone(nn.Module):
    """Hu et al. (2020) GIN: integer atom/bond features -> per-atom embeddings ``[N, dim]``.

    Args:
        dim: hidden size of every layer (300 in the reference).
        num_layers: number of GIN layers (5 in the reference).
        dropout: dropout after every layer (also the last, as in the reference).
        jk: jumping knowledge: ``"last"`` (reference) returns the last layer, ``"sum"`` the sum
            of all layer outputs (input embedding excluded).
    """

    def __init__(self, dim: int = 300, num_layers: int = 5, dropout: float = 0.0, jk: str = "last") -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if jk not in JK_MODES:
            raise ValueError(f"unknown jk mode {jk!r}; choose one of {JK_MODES}")
        self.dim = dim
        self.num_layers = num_layers
        self.dropout = dropout
        self.jk = jk
        self.atom_type_embedding = nn.Embedding(NUM_ATOM_TYPES, dim)
        self.chirality_embedding = nn.Embedding(NUM_CHIRALITY_TAGS, dim)
        self.convs = nn.ModuleList(BondGINConv(dim) for _ in range(num_layers))
        self.norms = nn.ModuleList(nn.BatchNorm1d(dim) for _ in range(num_layers))
        self.reset_parameters()

    @property
    def out_dim(self) -> int:
        return self.dim

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.atom_type_embedding.weight)
        nn.init.xavier_uniform_(self.chirality_embedding.weight)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            conv.reset_parameters()  # type: ignore[operator]  # nn.Module attributes type as Tensor | Module
            norm.reset_parameters()  # type: ignore[operator]

    def forward(self, data: Data | GraphBatch) -> Tensor:
        """Embed every atom of ``data`` (a ``Data``, a PyG ``Batch`` or a ``GraphBatch``): ``[N, dim]``."""
        x, edge_attr = data.x, data.edge_attr
        if x.dtype != torch.long or x.dim() != 2 or x.size(1) != 2:
            raise ValueError(
                f"GINBackbone expects the 'basic' featurization (x: long [N, 2]); got x {x.dtype} "
                f"{tuple(x.shape)}. Featurize with BasicFeaturizer, or use the 'gps' backbone for 'rich'."
            )
        if edge_attr.dtype != torch.long or edge_attr.dim() != 2 or edge_attr.size(1) != 2:
            raise ValueError(
                f"GINBackbone expects edge_attr long [E, 2] (bond type, direction); got {edge_attr.dtype} "
                f"{tuple(edge_attr.shape)}"
            )
        h = self.atom_type_embedding(x[:, 0]) + self.chirality_embedding(x[:, 1])
        neighbourhood = bond_neighbourhood(data.edge_index, edge_attr, h.size(0))
        layer_outputs = []
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            h = norm(conv(h, data.edge_index, edge_attr, neighbourhood))
            if i < self.num_layers - 1:
                h = F.relu(h)
            h = F.dropout(h, p=self.dropout, training=self.training)
            layer_outputs.append(h)
        if self.jk == "sum":
            return torch.stack(layer_outputs).sum(dim=0)
        return h

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.dim}, num_layers={self.num_layers}, jk={self.jk!r})"
