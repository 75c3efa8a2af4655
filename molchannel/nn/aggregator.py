"""Prompt-guided aggregation: one learnable query reads a molecule's atoms out into one vector.

Each channel owns one :class:`PromptAggregator`. Its prompt ``p`` is the single attention query,
shared by all molecules; the atoms of a molecule (after a small MLP) are the keys and values.

The attention is written per atom with a segment softmax (softmax over the atoms that share a
``batch`` index) instead of padding molecules to a dense tensor, so there is no padding to mask
and a molecule's output cannot depend on the other molecules of its batch. With one query, this
is the same computation as ``nn.MultiheadAttention(query=p, key=value=x, key_padding_mask=pad)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from molchannel.nn.segment import segment_softmax, segment_sum


class AggregatorOutput(NamedTuple):
    """What a :class:`PromptAggregator` returns for a batch of B molecules with N atoms in all."""

    graph: Tensor
    """``[B, dim]`` molecule embeddings (after LayerNorm)."""
    attention: Tensor
    """``[N]`` attention of the prompt on each atom, averaged over heads; sums to 1 per molecule."""
    atoms: Tensor | None
    """``[N, dim]`` per-atom ``LayerNorm(MLP(h))``, or ``None`` when built with ``atom_output=False``."""


class PromptAggregator(nn.Module):
    """Attention pooling with a learnable prompt as the query (METHOD.md section 3).

    Args:
        dim: embedding size (300); must be divisible by ``heads``.
        heads: attention heads (4).
        dropout: dropout on the attention weights (training only).
        atom_output: also return per-atom ``LayerNorm(x)`` (the context channel needs it). Channels
            that never use it should leave it off, so that no parameter goes without a gradient
            (which distributed training treats as an error).
    """

    def __init__(
        self, dim: int = 300, heads: int = 4, dropout: float = 0.0, atom_output: bool = True
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.dim, self.heads, self.dropout = dim, heads, dropout
        self.prompt = nn.Parameter(torch.empty(dim))
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.atom_norm = nn.LayerNorm(dim) if atom_output else None
        self.reset_parameters()

    @property
    def atom_output(self) -> bool:
        return self.atom_norm is not None

    def reset_parameters(self) -> None:
        nn.init.normal_(self.prompt)
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        # Projections initialised as torch's MultiheadAttention does: Xavier weights, zero biases.
        for proj in (self.query, self.key, self.value):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)
        self.out.reset_parameters()
        nn.init.zeros_(self.out.bias)
        self.norm.reset_parameters()
        if self.atom_norm is not None:
            self.atom_norm.reset_parameters()

    def forward(self, h_atoms: Tensor, batch: Tensor, num_graphs: int | None = None) -> AggregatorOutput:
        """Pool ``h_atoms`` ``[N, dim]`` per molecule; ``batch`` ``[N]`` gives each atom's molecule index.

        ``num_graphs`` (B) defaults to ``batch.max() + 1``; pass it when trailing molecules may have
        no atoms. A molecule without atoms gets ``LayerNorm(out.bias)``, not NaN.
        """
        if num_graphs is None:
            num_graphs = int(batch.max()) + 1 if batch.numel() else 0
        heads, head_dim = self.heads, self.dim // self.heads
        x = self.mlp(h_atoms)
        q = self.query(self.prompt).view(heads, head_dim)
        # With a single query, the key and value projections can be folded so that no per-atom
        # D x D product is needed (exactly the same function, far fewer FLOPs):
        #   score[n, h] = (W_k x_n + b_k)_h . q_h = x_n . (W_k,h^T q_h) + b_k,h . q_h
        #   pooled[g, h] = sum_n a[n, h] (W_v x_n + b_v)_h = W_v,h (sum_n a[n, h] x_n) + b_v,h sum_n a[n, h]
        w_k = self.key.weight.view(heads, head_dim, self.dim)
        key_query = torch.einsum("hcd,hc->dh", w_k, q)  # [dim, heads]
        scores = (x @ key_query + (self.key.bias.view(heads, head_dim) * q).sum(-1)) / math.sqrt(head_dim)
        weights = segment_softmax(scores, batch, num_graphs)  # [N, heads]
        dropped = F.dropout(weights, p=self.dropout, training=self.training)
        mass = segment_sum(dropped, batch, num_graphs)  # [B, heads]
        summed = segment_sum(dropped.unsqueeze(-1) * x.unsqueeze(1), batch, num_graphs)
        w_v = self.value.weight.view(heads, head_dim, self.dim)
        pooled = torch.einsum("bhd,hcd->bhc", summed, w_v) + mass.unsqueeze(-1) * self.value.bias.view(
            heads, head_dim
        )
        graph = self.norm(self.out(pooled.reshape(num_graphs, self.dim)))
        atoms = self.atom_norm(x) if self.atom_norm is not None else None
        return AggregatorOutput(graph=graph, attention=weights.mean(dim=-1), atoms=atoms)

    def __repr__(self) -> str:
        extra = ", atom_output=True" if self.atom_output else ""
        return f"{type(self).__name__}({self.dim}, heads={self.heads}{extra})"
