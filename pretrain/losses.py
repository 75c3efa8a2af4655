"""Pre-training losses (METHOD section 5), as plain torch functions.

Conventions shared by every function here:

* Means over an empty set (no valid pair, no triplet, no masked centre, no molecule with a
  scaffold) are 0 and still connected to the inputs, so ``backward()`` works and nothing is NaN.
* Distances between embeddings are Euclidean, computed exactly (no ``|a|^2 + |b|^2 - 2ab``
  shortcut, whose rounding turns the distance of an embedding to itself into noise).
* Nothing here loops in Python over pairs or triplets; triplet selection loops only over chunks
  of anchors, to bound memory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

DEFAULT_MARGIN = 0.8
DEFAULT_TRIPLET_GAP = 0.3
# Gap entries examined at once during triplet selection. Each costs at most 4 B (gap) + 2 B (masks)
# + 12 B (candidate id and value), so 2**21 bounds the working memory to about 40 MB for any batch size.
DEFAULT_CHUNK_ELEMENTS = 1 << 21


HINGES = ("relu", "softplus")
# How the hinges of a distancing term are averaged: "all" (the reference: the mean over every pair /
# triplet, so the term's gradient shrinks with the fraction still violated) or "active" (divided by the
# total gradient weight of the hinges, see `reduce_hinges`, so it keeps its strength as that fraction falls).
HINGE_REDUCTIONS = ("all", "active")


class MarginLoss(NamedTuple):
    """The adaptive-margin loss, its two parts and how much of it is still teaching (for logging).

    ``pair_active`` / ``triplet_active`` are the fractions of pair hinges and selected triplets whose
    margin is violated (hinge argument > 0). With the reference's ReLU hinge, only those send a
    gradient: a fraction near 0 means the loss has stopped teaching.
    """

    total: Tensor
    pair: Tensor
    triplet: Tensor
    pair_active: Tensor
    triplet_active: Tensor


class Triplets(NamedTuple):
    """Selected anchor triplets: ``dist[anchor, far] - dist[anchor, near] = gap``."""

    anchor: Tensor
    near: Tensor
    far: Tensor
    gap: Tensor


def _zero_like_graph(t: Tensor) -> Tensor:
    """A scalar 0 that depends on ``t``, so an empty mean still has a gradient path."""
    return t.sum() * 0.0


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def hinge_fn(x: Tensor, kind: str = "relu", temperature: float = 0.1) -> Tensor:
    """``relu(x)`` (the reference) or ``t * softplus(x / t)``, a smooth hinge that never goes flat.

    The softplus hinge equals the ReLU one up to ``t * log 2`` at ``x = 0`` and converges to it as
    ``t -> 0``; its gradient ``sigmoid(x / t)`` weights each pair by how close it is to violating
    its margin, so satisfied pairs keep sending a (small, graded) signal.
    """
    if kind == "relu":
        return F.relu(x)
    if kind == "softplus":
        return temperature * F.softplus(x / temperature)
    raise ValueError(f"unknown hinge {kind!r}; use one of {HINGES}")


def hinge_weight(x: Tensor, kind: str = "relu", temperature: float = 0.1) -> Tensor:
    """The derivative of :func:`hinge_fn` at ``x``, without gradient: 0/1 (ReLU) or ``sigmoid(x / t)``."""
    with torch.no_grad():
        if kind == "relu":
            return (x > 0).to(x.dtype)
        return torch.sigmoid(x / temperature)


def reduce_hinges(
    args: Tensor,
    mask: Tensor | None,
    kind: str = "relu",
    temperature: float = 0.1,
    reduction: str = "all",
) -> Tensor:
    """Average ``hinge_fn(args)`` over the entries where ``mask`` holds (all entries when None).

    ``reduction="all"`` is the plain mean (the reference). ``"active"`` divides the sum by the summed
    hinge derivatives (at least 1) instead of by the number of entries: with the ReLU hinge, the mean over
    the violated entries only; with softplus, its graded equivalent. The gradient is then an average of
    the per-entry gradients weighted by how violated each is, and does not fade as most entries become
    satisfied, which is what stops the reference's distancing losses from teaching (see docs/method.md).
    """
    if reduction not in HINGE_REDUCTIONS:
        raise ValueError(f"unknown hinge reduction {reduction!r}; use one of {HINGE_REDUCTIONS}")
    values = hinge_fn(args, kind, temperature)
    keep = torch.ones_like(args) if mask is None else mask.to(args.dtype)
    if reduction == "all":
        return (values * keep).sum() / keep.sum().clamp(min=1.0)
    weight = (hinge_weight(args, kind, temperature) * keep).sum()
    return (values * keep).sum() / weight.clamp(min=1.0)


def embedding_distances(z: Tensor) -> Tensor:
    """Exact Euclidean distances between the rows of ``z`` (``[B, D]`` -> ``[B, B]``)."""
    return torch.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist")


@torch.no_grad()
def select_triplets(
    dist: Tensor,
    min_gap: float = DEFAULT_TRIPLET_GAP,
    max_triplets: int | None = None,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> Triplets:
    """Anchor triplets ``(i, j, k)`` with ``dist[i, k] - dist[i, j] > min_gap``, largest gaps first.

    ``i``, ``j``, ``k`` are pairwise distinct. At most ``max_triplets`` are kept (``B**2`` when
    None); among equal gaps at the cut-off the choice is arbitrary. The ``[B, B, B]`` gap tensor
    is never built whole: anchors are processed ``chunk_elements // B**2`` at a time, each chunk
    keeps its own best ``max_triplets``, and the survivors are ranked once more.
    """
    b = dist.size(0)
    cap = b * b if max_triplets is None else int(max_triplets)
    device = dist.device
    empty = torch.empty(0, dtype=torch.long, device=device)
    if b < 3 or cap <= 0:
        return Triplets(empty, empty, empty, torch.empty(0, dtype=dist.dtype, device=device))
    eye = torch.eye(b, dtype=torch.bool, device=device)
    rows_per_chunk = max(1, chunk_elements // (b * b))
    gaps: list[Tensor] = []
    flat_ids: list[Tensor] = []
    for start in range(0, b, rows_per_chunk):
        rows = slice(start, min(b, start + rows_per_chunk))
        d = dist[rows]  # [r, B]
        gap = d[:, None, :] - d[:, :, None]  # gap[r, j, k] = D[i, k] - D[i, j]
        valid = (gap > min_gap) & ~(eye[rows, :, None] | eye[rows, None, :] | eye[None])
        ids = valid.flatten().nonzero().flatten()
        values = gap.flatten()[ids]
        if ids.numel() > cap:  # top-k on the candidates only: much cheaper than on the whole chunk
            best = torch.topk(values, cap, sorted=False).indices
            ids, values = ids[best], values[best]
        gaps.append(values)
        flat_ids.append(ids + start * b * b)
    gap_all, id_all = torch.cat(gaps), torch.cat(flat_ids)
    if gap_all.numel() > cap:
        best = torch.topk(gap_all, cap, sorted=False).indices
        gap_all, id_all = gap_all[best], id_all[best]
    return Triplets(id_all // (b * b), (id_all // b) % b, id_all % b, gap_all)


def adaptive_margin_loss(
    anchor_z: Tensor,
    positive_z: Tensor,
    dist: Tensor,
    margin: float = DEFAULT_MARGIN,
    triplet_gap: float = DEFAULT_TRIPLET_GAP,
    max_triplets: int | None = None,
    triplet_weight: float = 1.0,
    normalize: bool = True,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    hinge: str = "relu",
    hinge_temperature: float = 0.1,
    hinge_reduction: str = "all",
) -> MarginLoss:
    """MCD / SCD loss: adaptive-margin pair term plus the anchor triplet term.

    Args:
        anchor_z: ``[B, D]`` channel embeddings of the anchors (the original molecules).
        positive_z: ``[B, P, D]`` embeddings of each anchor's positives (masked views for MCD,
            scaffold-invariant perturbations for SCD).
        dist: ``[B, B]`` fingerprint distances ``1 - Tanimoto`` between anchors (no gradient).
        margin: ``m``; the margin of a pair is ``m * dist``, so it grows with dissimilarity.
        triplet_gap: a triplet ``(i, j, k)`` is used when ``dist[i, k] - dist[i, j]`` exceeds it.
        max_triplets: keep at most this many triplets, largest gaps first (``B**2`` when None).
        triplet_weight: factor on the triplet term (the reference's ``adamg_coeff``, 1).
        normalize: L2-normalise the embeddings here (pass False if they already are).
        chunk_elements: memory bound of the triplet selection, see :func:`select_triplets`.
        hinge / hinge_temperature: ``relu`` (the reference) or ``softplus`` with that temperature,
            see :func:`hinge_fn`.
        hinge_reduction: ``all`` (the reference: mean over every pair / triplet) or ``active`` (normalised
            by the hinges' total gradient weight), see :func:`reduce_hinges`.

    Pair term: mean over anchors ``i``, positives ``p`` and other anchors ``j`` with
    ``dist[i, j] > 0`` of ``relu(m * dist[i, j] + d(z_i, z_p) - d(z_i, z_j))``. Pairs with
    distance 0 (identical fingerprints) are left out of the mean, not counted as zeros.
    Triplet term: mean over selected triplets of
    ``relu(m * (dist[i, k] - dist[i, j]) + d(z_i, z_j) - d(z_i, z_k))``.
    """
    if anchor_z.dim() != 2 or positive_z.dim() != 3 or positive_z.shape[::2] != anchor_z.shape:
        raise ValueError(
            f"expected anchor_z [B, D] and positive_z [B, P, D], got {tuple(anchor_z.shape)} "
            f"and {tuple(positive_z.shape)}"
        )
    b = anchor_z.size(0)
    if dist.shape != (b, b):
        raise ValueError(f"dist must be [{b}, {b}] for {b} anchors, got {tuple(dist.shape)}")
    if normalize:
        anchor_z = F.normalize(anchor_z, dim=-1)
        positive_z = F.normalize(positive_z, dim=-1)
    dist = dist.detach().to(anchor_z.dtype)
    d_anchor = embedding_distances(anchor_z)  # [B, B]
    d_pos = torch.linalg.vector_norm(anchor_z[:, None, :] - positive_z, dim=-1)  # [B, P]

    # pair term: argument of hinge[i, p, j]
    pair_arg = margin * dist[:, None, :] + d_pos[:, :, None] - d_anchor[:, None, :]
    off_diagonal = ~torch.eye(b, dtype=torch.bool, device=dist.device)
    pair_mask = ((dist > 0) & off_diagonal)[:, None, :].expand_as(pair_arg)
    if pair_arg.numel():
        pair = reduce_hinges(pair_arg, pair_mask, hinge, hinge_temperature, hinge_reduction)
        pair_active = _masked_mean((pair_arg > 0).detach(), pair_mask.detach())
    else:
        pair, pair_active = _zero_like_graph(anchor_z), anchor_z.new_zeros(())

    triplets = select_triplets(dist, triplet_gap, max_triplets, chunk_elements)
    if triplets.gap.numel():
        i, j, k = triplets.anchor, triplets.near, triplets.far
        triplet_arg = margin * triplets.gap + d_anchor[i, j] - d_anchor[i, k]
        triplet = reduce_hinges(triplet_arg, None, hinge, hinge_temperature, hinge_reduction)
        triplet_active = (triplet_arg > 0).detach().to(anchor_z.dtype).mean()
    else:
        triplet, triplet_active = _zero_like_graph(d_anchor), anchor_z.new_zeros(())
    return MarginLoss(pair + triplet_weight * triplet, pair, triplet, pair_active, triplet_active)


def context_loss(atom_logits: Tensor, labels: Tensor, ignore_index: int | None = None) -> Tensor:
    """Cross-entropy of the atom-context class of each masked centre (``[M, V]`` logits, ``[M]`` labels).

    ``ignore_index`` drops one class from the mean (e.g. 0 = ``<other>``); by default every
    centre counts, ``<other>`` included, as in the reference.
    """
    if labels.numel() == 0:
        return _zero_like_graph(atom_logits)
    per_centre = F.cross_entropy(atom_logits, labels, reduction="none")
    keep = torch.ones_like(labels, dtype=torch.bool) if ignore_index is None else labels != ignore_index
    return _masked_mean(per_centre, keep)


def motif_loss(pred: Tensor, target: Tensor, beta: float = 1.0) -> Tensor:
    """Smooth-L1 between predicted and normalised motif targets; non-finite targets are skipped."""
    valid = torch.isfinite(target)
    per_entry = F.smooth_l1_loss(pred, torch.where(valid, target, pred.detach()), reduction="none", beta=beta)
    return _masked_mean(per_entry, valid)


def attention_uniform_loss(
    attention: Tensor,
    batch: Tensor,
    support_mask: Tensor | None = None,
    num_graphs: int | None = None,
    beta: float = 1.0,
    scale_by_support: bool = False,
) -> Tensor:
    """Smooth-L1 pulling per-atom attention towards uniform over each molecule's support atoms.

    Args:
        attention: ``[N]`` (or ``[N, H]`` per head) attention weight of each atom of the batch.
        batch: ``[N]`` molecule index of each atom (PyG ``batch``).
        support_mask: ``[N]`` bool, the atoms the attention should spread over: None means all
            atoms (MCD regulariser), the scaffold atoms for the SCD regulariser.
        num_graphs: number of molecules (saves a device sync when given).
        scale_by_support: compare ``|support| * attention`` with ``|support| * target`` (1 on
            support atoms), i.e. measure attention in units of the uniform weight. The reference
            compares raw weights of ~``1/N``, where smooth-L1 with ``beta = 1`` is a tiny quadratic
            (values ~1e-4) that cannot move the attention; scaled, deviations are O(1).

    The target is ``1 / |support|`` on support atoms and 0 elsewhere. Molecules whose support is
    empty (acyclic molecules for SCD) contribute nothing. The mean runs over the atoms of the
    contributing molecules (the reference also averages over padding slots, which only rescales).
    """
    if support_mask is None:
        support_mask = torch.ones_like(batch, dtype=torch.bool)
    if num_graphs is None:
        num_graphs = int(batch.max()) + 1 if batch.numel() else 0
    support = support_mask.to(attention.dtype)
    support_size = torch.zeros(num_graphs, dtype=attention.dtype, device=attention.device)
    support_size.index_add_(0, batch, support)
    atom_support_size = support_size[batch]
    target = support / atom_support_size.clamp(min=1.0)
    contributes = atom_support_size > 0
    if scale_by_support:
        scale = atom_support_size.clamp(min=1.0)
        target = target * scale
        attention = attention * (scale[:, None] if attention.dim() == 2 else scale)
    if attention.dim() == 2:
        target, contributes = target[:, None], contributes[:, None].expand_as(attention)
    per_atom = F.smooth_l1_loss(attention, target.expand_as(attention), reduction="none", beta=beta)
    return _masked_mean(per_atom, contributes)


def knowledge_loss(
    descriptor_pred: Tensor,
    descriptor_target: Tensor,
    fp_logits: Tensor,
    fp_target: Tensor,
    beta: float = 1.0,
) -> Tensor:
    """Optional knowledge term: smooth-L1 on normalised descriptors (NaNs skipped) + BCE on Morgan bits."""
    descriptor = motif_loss(descriptor_pred, descriptor_target, beta=beta)
    fingerprint = F.binary_cross_entropy_with_logits(fp_logits, fp_target.to(fp_logits.dtype))
    return descriptor + fingerprint


@dataclass
class LossWeights:
    """Weights of the pre-training loss terms (METHOD section 5)."""

    mcd: float = 1.0
    scd: float = 1.0
    cp: float = 1.0
    attn_reg: float = 0.1
    knowledge: float = 0.1
    knowledge_from_epoch: int = 20

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LossWeights:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown loss weight(s) {unknown}; known: {sorted(known)}")
        return cls(**d)

    def knowledge_active(self, epoch: int) -> bool:
        return self.knowledge > 0 and epoch >= self.knowledge_from_epoch

    def combine(
        self,
        *,
        mcd: Tensor,
        scd: Tensor,
        cp: Tensor,
        attn_mcd: Tensor,
        attn_scd: Tensor,
        knowledge: Tensor | None = None,
        epoch: int = 0,
    ) -> Tensor:
        """``mcd*L_MCD + scd*L_SCD + cp*L_CP + attn_reg*(R_MCD + R_SCD) [+ knowledge*L_know]``.

        The knowledge term is added only from ``knowledge_from_epoch`` on, and only when given.
        """
        total = self.mcd * mcd + self.scd * scd + self.cp * cp + self.attn_reg * (attn_mcd + attn_scd)
        if knowledge is not None and self.knowledge_active(epoch):
            total = total + self.knowledge * knowledge
        return total
