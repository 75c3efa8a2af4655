"""The plain-torch segment reductions equal PyG's, values and gradients."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.utils import scatter, softmax

from molchannel.nn.segment import segment_softmax, segment_sum


@pytest.mark.parametrize("trailing", [(), (3,), (2, 5)])
def test_segment_sum_and_softmax_equal_pyg(trailing: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    # segments of 0 to 6 rows (some empty, the last one empty too), large scores to test the max shift
    sizes = torch.tensor([3, 0, 1, 6, 2, 0])
    index = torch.repeat_interleave(torch.arange(len(sizes)), sizes)
    src = (50 * torch.randn(len(index), *trailing)).requires_grad_()
    weights = torch.randn(len(index), *trailing)

    ours, theirs = segment_softmax(src, index, len(sizes)), softmax(src, index, num_nodes=len(sizes), dim=0)
    torch.testing.assert_close(ours, theirs)
    assert torch.isfinite(ours).all()
    sums = segment_sum(ours, index, len(sizes))
    torch.testing.assert_close(sums[sizes > 0], torch.ones_like(sums[sizes > 0]))
    (grad_ours,) = torch.autograd.grad((ours * weights).sum(), src)
    (grad_theirs,) = torch.autograd.grad((theirs * weights).sum(), src)
    torch.testing.assert_close(grad_ours, grad_theirs)

    pooled = segment_sum(src * weights, index, len(sizes))
    torch.testing.assert_close(
        pooled, scatter(src * weights, index, dim=0, dim_size=len(sizes), reduce="sum")
    )
    assert pooled.shape == (len(sizes), *trailing) and (pooled[sizes == 0] == 0).all()
