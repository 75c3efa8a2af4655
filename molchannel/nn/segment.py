"""Reductions over segments of rows (the atoms of each molecule in a flat batch), in plain torch.

What :mod:`molchannel.nn.aggregator` needs from ``torch_geometric.utils`` (``scatter`` with
``reduce="sum"`` and ``softmax``), written here so that inference never has to import PyG: its
import alone costs ~2 s (it pulls in ``torch._dynamo`` and its dataset zoo), a fifth of
``molchannel embed`` on 20k molecules. Same values as PyG's (tests/nn/test_segment.py).
"""

from __future__ import annotations

from torch import Tensor


def segment_sum(src: Tensor, index: Tensor, num_segments: int) -> Tensor:
    """``out[s] = sum of src[i] over the rows i with index[i] == s``; ``[N, ...]`` -> ``[S, ...]``."""
    out = src.new_zeros((num_segments, *src.shape[1:]))
    return out.index_add_(0, index, src)


def segment_softmax(src: Tensor, index: Tensor, num_segments: int) -> Tensor:
    """Softmax of ``src`` ``[N, ...]`` along dim 0 within each segment (rows sharing an ``index``).

    Each segment's maximum is subtracted first (detached, as it only shifts the exponent), so large
    scores do not overflow; an empty segment simply has no rows.
    """
    expanded = index.view(-1, *([1] * (src.dim() - 1))).expand_as(src)
    maximum = src.new_full((num_segments, *src.shape[1:]), float("-inf"))
    maximum = maximum.scatter_reduce(0, expanded, src.detach(), reduce="amax", include_self=True)
    exp = (src - maximum.index_select(0, index)).exp()
    total = segment_sum(exp, index, num_segments).index_select(0, index)
    return exp / (total + 1e-16)


__all__ = ["segment_softmax", "segment_sum"]
