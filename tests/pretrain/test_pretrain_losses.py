"""Pre-training losses on hand-made embeddings whose answers are worked out by hand (METHOD section 5)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from molchannel.pretrain.losses import (
    LossWeights,
    adaptive_margin_loss,
    attention_uniform_loss,
    context_loss,
    hinge_fn,
    knowledge_loss,
    motif_loss,
    reduce_hinges,
    select_triplets,
)

SQRT2 = math.sqrt(2.0)


def _three_anchors() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Anchors at 0, 90 and 180 degrees on the unit circle, one positive each.

    Embedding distances: d01 = d12 = sqrt(2), d02 = 2. The positive of anchor 0 sits at 90
    degrees (d = sqrt(2)); the others coincide with their anchors (d = 0). Fingerprint
    distances: D01 = 0.5, D02 = 1.0, D12 = 0 (identical fingerprints: no pair term).
    """
    anchors = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    positives = torch.tensor([[[0.0, 1.0]], [[0.0, 1.0]], [[-1.0, 0.0]]])
    dist = torch.tensor([[0.0, 0.5, 1.0], [0.5, 0.0, 0.0], [1.0, 0.0, 0.0]])
    return anchors, positives, dist


# Pair terms with m = 0.8 (only D > 0 pairs count: (0,1), (0,2), (1,0), (2,0); P = 1):
#   i=0, j=1: 0.8*0.5 + sqrt2 - sqrt2 = 0.4       i=0, j=2: 0.8*1.0 + sqrt2 - 2 = sqrt2 - 1.2
#   i=1, j=0: 0.4 + 0 - sqrt2 < 0 -> 0             i=2, j=0: 0.8 + 0 - 2 < 0 -> 0
PAIR = (0.4 + (SQRT2 - 1.2)) / 4
# Triplets with gap D_ik - D_ij > 0.3: (0,1,2) gap 0.5, (1,2,0) gap 0.5, (2,1,0) gap 1.0:
#   (0,1,2): 0.4 + sqrt2 - 2 < 0 -> 0;  (1,2,0): 0.4 + sqrt2 - sqrt2 = 0.4;  (2,1,0): 0.8 + sqrt2 - 2
TRIPLET_210 = 0.8 + SQRT2 - 2.0
TRIPLET = (0.0 + 0.4 + TRIPLET_210) / 3


def test_margin_loss_is_zero_when_every_margin_is_met() -> None:
    anchors = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    positives = anchors[:, None, :].clone()
    dist = torch.tensor([[0.0, 0.5], [0.5, 0.0]])
    out = adaptive_margin_loss(anchors, positives, dist)
    assert out.total.item() == 0.0 and out.pair.item() == 0.0 and out.triplet.item() == 0.0


def test_margin_loss_hand_computed_on_three_anchors() -> None:
    anchors, positives, dist = _three_anchors()
    out = adaptive_margin_loss(anchors, positives, dist, margin=0.8, triplet_gap=0.3)
    assert out.pair.item() == pytest.approx(PAIR, abs=1e-6)
    assert out.triplet.item() == pytest.approx(TRIPLET, abs=1e-6)
    assert out.total.item() == pytest.approx(PAIR + TRIPLET, abs=1e-6)
    weighted = adaptive_margin_loss(anchors, positives, dist, triplet_weight=0.5)
    assert weighted.total.item() == pytest.approx(PAIR + 0.5 * TRIPLET, abs=1e-6)
    # embeddings are L2-normalised inside: scaling them changes nothing
    scaled = adaptive_margin_loss(3 * anchors, 0.5 * positives, dist)
    assert scaled.total.item() == pytest.approx(out.total.item(), abs=1e-6)


def test_active_reduction_averages_over_the_violated_hinges_only() -> None:
    anchors, positives, dist = _three_anchors()
    out = adaptive_margin_loss(anchors, positives, dist, hinge_reduction="active")
    # two of the four pair hinges and two of the three triplets are violated (see PAIR / TRIPLET)
    assert out.pair.item() == pytest.approx((0.4 + (SQRT2 - 1.2)) / 2, abs=1e-6)
    assert out.triplet.item() == pytest.approx((0.4 + TRIPLET_210) / 2, abs=1e-6)
    assert out.pair_active.item() == pytest.approx(0.5) and out.triplet_active.item() == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="hinge reduction"):
        adaptive_margin_loss(anchors, positives, dist, hinge_reduction="max")


@pytest.mark.parametrize("hinge", ["relu", "softplus"])
def test_active_reduction_keeps_the_gradient_as_hinges_become_satisfied(hinge: str) -> None:
    """The reference mean's gradient shrinks with the violated fraction; the active one does not."""
    gen = torch.Generator().manual_seed(0)
    b, d = 32, 16
    dist = torch.rand(b, b, generator=gen) * 0.5 + 0.5
    dist = (dist + dist.T) / 2
    anchors = torch.randn(b, d, generator=gen)
    norms = {}
    for spread in (0.5, 2.0):  # positives close to their anchors (few violations) or far (many)
        for reduction in ("all", "active"):
            z = anchors.clone().requires_grad_(True)
            positives = z[:, None, :] + spread * torch.randn(b, 2, d, generator=gen)
            out = adaptive_margin_loss(
                z, positives, dist, triplet_weight=0.0, hinge=hinge, hinge_reduction=reduction
            )
            (grad,) = torch.autograd.grad(out.total, z)
            norms[spread, reduction] = (grad.norm().item(), out.pair_active.item())
    few, many = norms[0.5, "all"][1], norms[2.0, "all"][1]
    assert few < 0.5 * many  # the setting does what it should
    fade_all = norms[0.5, "all"][0] / norms[2.0, "all"][0]
    fade_active = norms[0.5, "active"][0] / norms[2.0, "active"][0]
    assert fade_active > 2 * fade_all


def test_reduce_hinges_matches_its_definition() -> None:
    gen = torch.Generator().manual_seed(1)
    args = torch.randn(50, generator=gen)
    mask = torch.rand(50, generator=gen) > 0.3
    kept = args[mask]
    assert reduce_hinges(args, mask).item() == pytest.approx(torch.relu(kept).mean().item(), rel=1e-6)
    relu_active = torch.relu(kept).sum() / (kept > 0).sum()
    assert reduce_hinges(args, mask, reduction="active").item() == pytest.approx(relu_active.item(), rel=1e-6)
    soft = hinge_fn(kept, "softplus", 0.2).sum() / torch.sigmoid(kept / 0.2).sum().clamp(min=1.0)
    got = reduce_hinges(args, mask, "softplus", 0.2, "active")
    assert got.item() == pytest.approx(soft.item(), rel=1e-6)
    # nothing violated: 0, not a division by zero
    assert reduce_hinges(-args.abs() - 1, None, reduction="active").item() == 0.0


def test_triplet_term_respects_gap_and_cap() -> None:
    anchors, positives, dist = _three_anchors()
    capped = adaptive_margin_loss(anchors, positives, dist, max_triplets=1)  # keeps (2,1,0), gap 1.0
    assert capped.triplet.item() == pytest.approx(TRIPLET_210, abs=1e-6)
    wide_gap = adaptive_margin_loss(anchors, positives, dist, triplet_gap=0.6)  # only (2,1,0) again
    assert wide_gap.triplet.item() == pytest.approx(TRIPLET_210, abs=1e-6)
    no_triplet = adaptive_margin_loss(anchors, positives, dist, triplet_gap=1.0)  # strict: 1.0 is not > 1.0
    assert no_triplet.triplet.item() == 0.0
    assert no_triplet.total.item() == pytest.approx(PAIR, abs=1e-6)


def _brute_force_triplets(dist: torch.Tensor, min_gap: float) -> list[tuple[float, tuple[int, int, int]]]:
    b = dist.size(0)
    found = []
    for i, j, k in itertools.permutations(range(b), 3):
        gap = float(dist[i, k] - dist[i, j])
        if gap > min_gap:
            found.append((gap, (i, j, k)))
    return sorted(found, reverse=True)


@pytest.mark.parametrize("chunk_elements", [1, 50, 1 << 22])
def test_select_triplets_matches_brute_force(chunk_elements: int) -> None:
    gen = torch.Generator().manual_seed(0)
    # distances on a 0.05 grid and a cut-off between grid points, so rounding cannot move a gap across it
    dist = torch.randint(0, 21, (9, 9), generator=gen).float() * 0.05
    dist = torch.triu(dist, 1) + torch.triu(dist, 1).t()
    expected = _brute_force_triplets(dist, 0.325)
    assert len(expected) > 81  # more candidates than the default cap B**2

    every = select_triplets(dist, 0.325, max_triplets=10_000, chunk_elements=chunk_elements)
    got = {(int(i), int(j), int(k)) for i, j, k in zip(every.anchor, every.near, every.far, strict=True)}
    assert got == {t for _, t in expected}
    assert torch.allclose(every.gap, dist[every.anchor, every.far] - dist[every.anchor, every.near])

    capped = select_triplets(dist, 0.325, chunk_elements=chunk_elements)  # cap B**2 = 81
    assert capped.gap.numel() == 81
    top_gaps = torch.tensor([g for g, _ in expected[:81]])
    assert torch.allclose(capped.gap.sort(descending=True).values, top_gaps)
    assert (capped.anchor != capped.near).all() and (capped.anchor != capped.far).all()


def test_margin_loss_gradients_are_finite_with_coincident_embeddings() -> None:
    gen = torch.Generator().manual_seed(1)
    anchors = torch.randn(16, 8, generator=gen)
    anchors[1] = anchors[0]  # two anchors embedded identically
    anchors.requires_grad_(True)
    positives = anchors.detach()[:, None, :].repeat(1, 3, 1).requires_grad_(True)  # positives on the anchor
    fps = torch.rand(16, 16, generator=gen)
    dist = (fps + fps.t()) / 2
    dist.fill_diagonal_(0)
    out = adaptive_margin_loss(anchors, positives, dist)
    out.total.backward()
    assert out.total.item() > 0
    assert torch.isfinite(anchors.grad).all() and torch.isfinite(positives.grad).all()


@pytest.mark.parametrize("batch_size", [1, 2, 4])
def test_margin_loss_empty_sets_give_zero_without_nan(batch_size: int) -> None:
    anchors = torch.randn(batch_size, 4, requires_grad=True)
    positives = torch.randn(batch_size, 2, 4, requires_grad=True)
    dist = torch.zeros(batch_size, batch_size)  # all fingerprints identical: no pair, no triplet
    out = adaptive_margin_loss(anchors, positives, dist)
    assert out.total.item() == 0.0 and out.pair.item() == 0.0 and out.triplet.item() == 0.0
    out.total.backward()
    assert anchors.grad is not None and torch.equal(anchors.grad, torch.zeros_like(anchors))


def test_margin_loss_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="dist"):
        adaptive_margin_loss(torch.randn(3, 4), torch.randn(3, 2, 4), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="positive_z"):
        adaptive_margin_loss(torch.randn(3, 4), torch.randn(3, 4), torch.zeros(3, 3))


# ---- context, motif, knowledge ----------------------------------------------------------------


def test_context_loss_hand_checked_and_empty() -> None:
    logits = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]])
    labels = torch.tensor([0, 1])
    # -log(1/2) and -log(3/4)
    assert context_loss(logits, labels).item() == pytest.approx((math.log(2) + math.log(4 / 3)) / 2, abs=1e-6)
    assert context_loss(logits, labels, ignore_index=0).item() == pytest.approx(math.log(4 / 3), abs=1e-6)
    assert context_loss(logits, torch.tensor([0, 0]), ignore_index=0).item() == 0.0
    empty = torch.zeros(0, 5, requires_grad=True)
    loss = context_loss(empty, torch.zeros(0, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0 and not torch.isnan(loss)


def test_motif_loss_is_smooth_l1_and_skips_missing_targets() -> None:
    pred = torch.tensor([[0.0, 2.0, 5.0]])
    target = torch.tensor([[0.5, 0.0, float("nan")]])
    # 0.5 * 0.5**2 = 0.125 (quadratic zone) and |2| - 0.5 = 1.5 (linear zone); NaN skipped
    assert motif_loss(pred, target).item() == pytest.approx((0.125 + 1.5) / 2)


def test_knowledge_loss_adds_descriptor_and_fingerprint_terms() -> None:
    descriptors = torch.tensor([[1.0, -2.0]])
    loss = knowledge_loss(descriptors, descriptors.clone(), torch.zeros(1, 4), torch.tensor([[1, 0, 1, 0]]))
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)  # BCE of logit 0 is log 2 for either label


# ---- attention regulariser --------------------------------------------------------------------


def test_attention_loss_is_zero_for_uniform_attention() -> None:
    batch = torch.tensor([0, 0, 0, 1, 1])
    uniform = torch.tensor([1 / 3, 1 / 3, 1 / 3, 0.5, 0.5])
    assert attention_uniform_loss(uniform, batch).item() == pytest.approx(0.0, abs=1e-9)
    # per-head attention [N, H] works the same way
    assert attention_uniform_loss(uniform[:, None].repeat(1, 4), batch).item() == pytest.approx(0.0, abs=1e-9)


def test_attention_loss_hand_checked_with_scaffold_support() -> None:
    batch = torch.tensor([0, 0, 0, 1, 1])
    attention = torch.tensor([1.0, 0.0, 0.0, 0.3, 0.7])
    # molecule 0, scaffold = atoms 0 and 1 -> target [0.5, 0.5, 0]; molecule 1 has no scaffold
    support = torch.tensor([True, True, False, False, False])
    # smooth-L1 per atom of molecule 0: 0.125, 0.125, 0 -> mean over its 3 atoms; molecule 1 ignored
    loss = attention_uniform_loss(attention, batch, support)
    assert loss.item() == pytest.approx(0.25 / 3, abs=1e-7)
    alone = attention_uniform_loss(attention[:3], batch[:3], support[:3], num_graphs=1)
    assert alone.item() == pytest.approx(loss.item())


def test_attention_loss_with_no_support_anywhere_is_zero_without_nan() -> None:
    attention = torch.tensor([0.2, 0.8, 1.0], requires_grad=True)
    loss = attention_uniform_loss(attention, torch.tensor([0, 0, 1]), torch.zeros(3, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(attention.grad).all()


# ---- weights ----------------------------------------------------------------------------------


def test_loss_weights_round_trip_and_combination() -> None:
    weights = LossWeights()
    assert weights.to_dict() == {
        "mcd": 1.0,
        "scd": 1.0,
        "cp": 1.0,
        "attn_reg": 0.1,
        "knowledge": 0.1,
        "knowledge_from_epoch": 20,
    }
    assert LossWeights.from_dict(weights.to_dict() | {"cp": 2.0}).cp == 2.0
    with pytest.raises(ValueError, match="unknown loss weight"):
        LossWeights.from_dict({"mdc": 1.0})
    parts = {
        name: torch.tensor(value)
        for name, value in zip(["mcd", "scd", "cp", "attn_mcd", "attn_scd"], [1, 2, 3, 4, 5.0], strict=True)
    }
    knowledge = torch.tensor(10.0)
    assert weights.combine(**parts, knowledge=knowledge, epoch=19).item() == pytest.approx(6 + 0.9)
    assert weights.combine(**parts, knowledge=knowledge, epoch=20).item() == pytest.approx(6 + 0.9 + 1.0)
