"""Roughness index (ROGI) of a structure-property landscape, and prompt selection by it.

ROGI (Aldeghi, Graff, Frey, Morrone, Coley, *J. Chem. Inf. Model.* 62:4660, 2022) measures how
rough a property is over a representation: property values are min-max scaled to [0, 1],
pairwise Euclidean distances are divided by the largest possible one (the diagonal of the
embedding's bounding box), molecules are clustered by complete linkage, and for every distance
threshold ``t`` the property is coarse-grained to its cluster means. The dispersion
``sigma(t) = 2 * std`` (size-weighted std of the cluster means; 2 so that sigma is in [0, 1])
falls from ``sigma(0)`` (every molecule alone) to 0 (one cluster at t = 1). ROGI is
``sigma(0) - integral_0^1 sigma(t) dt`` (trapezoid rule over the merge heights, thinned to
steps of at least ``min_dt``): a smooth landscape keeps its dispersion while clusters grow, so
its ROGI is low; a rough one loses it at once.

This is an own implementation of that definition (no dependency on the ``rogi`` package). The
dispersion after each merge is updated incrementally from the linkage matrix, so one clustering
scores every task. Missing labels (NaN) are left out of their task's cluster means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _normalise(y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Min-max scale each task's labelled values to [0, 1] (a constant task becomes 0)."""
    out = np.zeros_like(y, dtype=np.float64)
    for t in range(y.shape[1]):
        values = y[mask[:, t], t].astype(np.float64)
        if values.size == 0:
            continue
        lo, span = values.min(), values.max() - values.min()
        out[mask[:, t], t] = (values - lo) / span if span > 1e-12 else values - lo
    return out


def _dispersion(sum_sq: np.ndarray, total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """``2 * std`` of the cluster means, weighted by cluster size, per task."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        variance = np.maximum(sum_sq / count - mean**2, 0.0)
    return np.where(count > 0, 2.0 * np.sqrt(variance), 0.0)


def roughness_indices(x: np.ndarray, y: np.ndarray, min_dt: float = 0.01) -> np.ndarray:
    """ROGI of each task: ``x`` ``[n, D]`` representations, ``y`` ``[n]`` or ``[n, T]`` (NaN = missing).

    A task with fewer than two labelled molecules gets NaN.
    """
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import pdist

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x must be [n, D] and y [n] or [n, T] with the same n; got {x.shape}, {y.shape}")
    n, n_tasks = y.shape
    mask = ~np.isnan(y)
    labelled = mask.sum(axis=0)
    if n < 2:
        return np.full(n_tasks, math.nan)
    yn = _normalise(y, mask)
    # state per task: sum over clusters of (sum of labels)^2 / (labelled members)
    sum_sq = (yn**2).sum(axis=0)
    total = yn.sum(axis=0)
    count = labelled.astype(np.float64)
    sigma0 = _dispersion(sum_sq, total, count)
    max_dist = math.sqrt(float(((x.max(axis=0) - x.min(axis=0)) ** 2).sum()))
    if max_dist <= 0:  # all representations identical: nothing to resolve, maximally rough
        return np.where(labelled >= 2, sigma0, math.nan)
    z = linkage(pdist(x) / max_dist, method="complete")
    cluster_sum = np.zeros((2 * n - 1, n_tasks))
    cluster_n = np.zeros((2 * n - 1, n_tasks))
    cluster_sum[:n] = yn
    cluster_n[:n] = mask
    thresholds, sigmas = [0.0], [sigma0]
    previous = -1.0
    for j in range(n - 1):
        a, b = int(z[j, 0]), int(z[j, 1])
        for c in (a, b):
            has = cluster_n[c] > 0
            sum_sq[has] -= cluster_sum[c, has] ** 2 / cluster_n[c, has]
        merged_sum = cluster_sum[a] + cluster_sum[b]
        merged_n = cluster_n[a] + cluster_n[b]
        has = merged_n > 0
        sum_sq[has] += merged_sum[has] ** 2 / merged_n[has]
        cluster_sum[n + j], cluster_n[n + j] = merged_sum, merged_n
        height = float(z[j, 2])
        last_at_height = j == n - 2 or float(z[j + 1, 2]) > height
        # sample sigma once all merges at this height are done, at least min_dt after the last sample
        if last_at_height and height - min_dt >= previous:
            thresholds.append(height)
            sigmas.append(_dispersion(sum_sq, total, count))
            previous = height
    thresholds.append(1.0)
    sigmas.append(np.zeros(n_tasks))  # one cluster at t = 1: no dispersion left
    t = np.asarray(thresholds)
    s = np.stack(sigmas)
    area = ((s[1:] + s[:-1]) * 0.5 * np.diff(t)[:, None]).sum(axis=0)
    return np.where(labelled >= 2, sigma0 - area, math.nan)


def roughness_index(x: np.ndarray, y: np.ndarray, min_dt: float = 0.01) -> float:
    """ROGI of one property (or the mean over the tasks of ``y`` ``[n, T]`` that have labels)."""
    values = roughness_indices(x, y, min_dt)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


@dataclass
class PromptSearch:
    """Outcome of :func:`select_prompt_weights`: every candidate and its ROGI, best first in ``best``."""

    weights: list[float]
    rogi: float
    candidates: list[list[float]]
    scores: list[float]
    n_molecules: int
    n_tasks: int

    def to_dict(self) -> dict[str, object]:
        return {
            "method": "rogi",
            "weights": self.weights,
            "rogi": self.rogi,
            "n_molecules": self.n_molecules,
            "n_tasks": self.n_tasks,
            "candidates": self.candidates,
            "scores": self.scores,
        }


def mix(stacked: np.ndarray, weights: np.ndarray, tau: float) -> np.ndarray:
    """``sum_c softmax(w / tau)_c * stacked[:, c]``: ``[n, K, D]`` -> ``[n, D]``."""
    logits = np.asarray(weights, dtype=np.float64) / tau
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    return np.einsum("nkd,k->nd", stacked.astype(np.float64), probs)


def select_prompt_weights(
    stacked: np.ndarray,
    targets: np.ndarray,
    tau: float = 1.0,
    n_candidates: int = 50,
    seed: int = 0,
    max_molecules: int = 2000,
    max_tasks: int = 32,
    min_dt: float = 0.01,
) -> PromptSearch:
    """Pick channel logits ``w`` whose mixture gives the smoothest landscape (lowest mean ROGI).

    ``stacked``: frozen channel embeddings ``[n, K, D]`` of the training molecules; ``targets``
    ``[n, T]`` (NaN = missing). Candidates: the uniform mixture (all zeros) and ``n_candidates``
    draws with ``w_0 = 0`` and the other logits N(0, 1) (softmax ignores a common shift), as in
    the reference. Molecules with at least one label are subsampled (seeded) to ``max_molecules``,
    tasks to ``max_tasks``; ties keep the earlier candidate, so uniform wins a tie.
    """
    stacked = np.asarray(stacked)
    targets = np.asarray(targets, dtype=np.float64)
    targets = targets[:, None] if targets.ndim == 1 else targets
    if stacked.ndim != 3 or stacked.shape[0] != targets.shape[0]:
        raise ValueError(
            "stacked must be [n, K, D] and targets [n, T] with the same n; "
            f"got {stacked.shape}, {targets.shape}"
        )
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero((~np.isnan(targets)).any(axis=1))
    if rows.size < 3:
        raise ValueError(
            f"the ROGI prompt search needs at least 3 labelled training molecules, found {rows.size}; "
            "use prompt.init: uniform"
        )
    if rows.size > max_molecules:
        rows = np.sort(rng.choice(rows, size=max_molecules, replace=False))
    tasks = np.arange(targets.shape[1])
    if tasks.size > max_tasks:
        tasks = np.sort(rng.choice(tasks, size=max_tasks, replace=False))
    k = stacked.shape[1]
    draws = rng.normal(size=(n_candidates, k))
    draws[:, 0] = 0.0
    candidates = np.concatenate([np.zeros((1, k)), draws])
    x_all, y = stacked[rows], targets[np.ix_(rows, tasks)]
    scores = [roughness_index(mix(x_all, w, tau), y, min_dt) for w in candidates]
    finite = [s if math.isfinite(s) else math.inf for s in scores]
    best = int(np.argmin(finite))
    return PromptSearch(
        weights=[float(v) for v in candidates[best]],
        rogi=float(scores[best]),
        candidates=[[float(v) for v in w] for w in candidates],
        scores=[float(s) for s in scores],
        n_molecules=int(rows.size),
        n_tasks=int(tasks.size),
    )
