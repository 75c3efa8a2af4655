"""GraphGPS backbone for the ``rich`` featurization (the backbone of the released MCL results).

Each layer (:class:`torch_geometric.nn.GPSConv`) adds a local ``GINEConv`` message pass and a
global multi-head self-attention over the atoms of the same molecule. Atoms enter as
``Linear(atom features) || Linear(BatchNorm(random-walk PE))``; bonds as ``Linear(bond features)``.

PyG's layers are imported when a GPS backbone is built, not with this module, so that GIN models
(the default) run inference without importing PyG (~2 s; see :mod:`molchannel.chem.graph_batch`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from torch_geometric.data import Data


class GPSBackbone(nn.Module):
    """Float atom/bond features plus a random-walk PE -> per-atom embeddings ``[N, dim]``.

    Args:
        atom_dim: width of ``Data.x`` (the rich featurizer's ``ATOM_DIM``).
        bond_dim: width of ``Data.edge_attr`` (the rich featurizer's ``BOND_DIM``).
        pe_dim: width of ``Data.pe``, the random-walk positional encoding (20); it keeps this
            width after its ``Linear``, and the atom features get ``dim - pe_dim``.
        dim: hidden size (300).
        num_layers: number of GPS layers (5).
        heads: global attention heads (6); ``dim`` must be divisible by it.
        dropout: dropout inside each GPS layer (after the local and global blocks and its MLP).
        attn_dropout: dropout on the global attention weights.
    """

    def __init__(
        self,
        atom_dim: int,
        bond_dim: int,
        pe_dim: int = 20,
        dim: int = 300,
        num_layers: int = 5,
        heads: int = 6,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        from torch_geometric.nn import GINEConv, GPSConv

        if not 0 < pe_dim < dim:
            raise ValueError(f"pe_dim must be in 1..dim-1 (dim={dim}), got {pe_dim}")
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.atom_dim, self.bond_dim, self.pe_dim = atom_dim, bond_dim, pe_dim
        self.dim, self.num_layers, self.heads = dim, num_layers, heads
        self.dropout, self.attn_dropout = dropout, attn_dropout
        self.atom_encoder = nn.Linear(atom_dim, dim - pe_dim)
        self.pe_norm = nn.BatchNorm1d(pe_dim)
        self.pe_encoder = nn.Linear(pe_dim, pe_dim)
        self.bond_encoder = nn.Linear(bond_dim, dim)
        self.layers = nn.ModuleList(
            GPSConv(
                dim,
                GINEConv(nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))),
                heads=heads,
                dropout=dropout,
                attn_type="multihead",
                attn_kwargs={"dropout": attn_dropout},
            )
            for _ in range(num_layers)
        )
        self.reset_parameters()

    @property
    def out_dim(self) -> int:
        return self.dim

    def reset_parameters(self) -> None:
        for module in (self.atom_encoder, self.pe_norm, self.pe_encoder, self.bond_encoder):
            module.reset_parameters()  # type: ignore[operator]  # nn.Module attributes type as Tensor | Module
        for layer in self.layers:
            layer.reset_parameters()  # type: ignore[operator]

    def forward(self, data: Data) -> Tensor:
        """Embed every atom of ``data`` (a :class:`Data` or a PyG ``Batch``); returns ``[N, dim]``.

        ``data.batch`` tells the global attention which atoms share a molecule; a single
        :class:`Data` without it is treated as one molecule.
        """
        x, edge_attr, pe = data.x, data.edge_attr, getattr(data, "pe", None)
        self._check_input(x, edge_attr, pe)
        assert pe is not None  # _check_input raises without one
        batch = getattr(data, "batch", None)
        if batch is None:  # a single molecule
            batch = torch.zeros(x.size(0), dtype=torch.long, device=x.device)
        h = torch.cat([self.atom_encoder(x.float()), self.pe_encoder(self.pe_norm(pe.float()))], dim=-1)
        e = self.bond_encoder(edge_attr.float())
        for layer in self.layers:
            h = layer(h, data.edge_index, batch, edge_attr=e)
        return h

    def _check_input(self, x: Tensor, edge_attr: Tensor, pe: Tensor | None) -> None:
        hint = "featurize with the 'rich' featurizer whose dims this model was built for"
        if x.dim() != 2 or x.size(1) != self.atom_dim:
            raise ValueError(f"GPSBackbone expects x [N, {self.atom_dim}], got {tuple(x.shape)}; {hint}")
        if edge_attr.dim() != 2 or edge_attr.size(1) != self.bond_dim:
            raise ValueError(
                f"GPSBackbone expects edge_attr [E, {self.bond_dim}], got {tuple(edge_attr.shape)}; {hint}"
            )
        if pe is None or pe.dim() != 2 or pe.size(1) != self.pe_dim:
            got = "no 'pe' attribute" if pe is None else f"pe {tuple(pe.shape)}"
            raise ValueError(f"GPSBackbone expects a random-walk PE [N, {self.pe_dim}], got {got}; {hint}")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.atom_dim}+pe{self.pe_dim}, {self.dim}, "
            f"num_layers={self.num_layers}, heads={self.heads}, bond_dim={self.bond_dim})"
        )
