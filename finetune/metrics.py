"""Losses, metrics and the target scaler of fine-tuning (METHOD.md section 6).

Missing labels are NaN everywhere: losses mask them, metrics skip them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

HIGHER_IS_BETTER = {"roc_auc": True, "rmse": False}


def masked_bce_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean binary cross-entropy over the labelled entries (``targets`` NaN = missing)."""
    mask = ~torch.isnan(targets)
    if not mask.any():
        return logits.sum() * 0.0  # keeps the graph; a batch without labels teaches nothing
    loss = F.binary_cross_entropy_with_logits(logits, torch.nan_to_num(targets), reduction="none")
    return loss[mask].mean()


def masked_mse_loss(outputs: Tensor, targets: Tensor) -> Tensor:
    """Mean squared error over the labelled entries (``targets`` NaN = missing)."""
    mask = ~torch.isnan(targets)
    if not mask.any():
        return outputs.sum() * 0.0
    return ((outputs - torch.nan_to_num(targets)) ** 2)[mask].mean()


def masked_gaussian_nll(outputs: Tensor, variance: Tensor, targets: Tensor) -> Tensor:
    """Gaussian negative log-likelihood ``0.5 * (log var + (y - mu)^2 / var)`` (the constant left out),
    averaged over the labelled entries (``targets`` NaN = missing)."""
    mask = ~torch.isnan(targets)
    if not mask.any():
        return (outputs.sum() + variance.sum()) * 0.0
    per_entry = 0.5 * (variance.log() + (outputs - torch.nan_to_num(targets)) ** 2 / variance)
    return per_entry[mask].mean()


def roc_auc_per_task(targets: np.ndarray, scores: np.ndarray) -> list[float | None]:
    """ROC-AUC of each task over its labelled rows; ``None`` where the split lacks a class."""
    from sklearn.metrics import roc_auc_score

    out: list[float | None] = []
    for t in range(targets.shape[1]):
        labelled = ~np.isnan(targets[:, t])
        y = targets[labelled, t]
        if y.size == 0 or y.min() == y.max():
            out.append(None)
            continue
        out.append(float(roc_auc_score(y, scores[labelled, t])))
    return out


def mean_roc_auc(targets: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC averaged over the tasks that have both classes here (NaN when none has)."""
    values = [v for v in roc_auc_per_task(targets, scores) if v is not None]
    return float(np.mean(values)) if values else math.nan


def mean_rmse(targets: np.ndarray, predictions: np.ndarray) -> float:
    """RMSE per task over its labelled rows, averaged over tasks with labels (NaN when none)."""
    values = []
    for t in range(targets.shape[1]):
        labelled = ~np.isnan(targets[:, t])
        if labelled.any():
            values.append(float(np.sqrt(np.mean((predictions[labelled, t] - targets[labelled, t]) ** 2))))
    return float(np.mean(values)) if values else math.nan


def expected_calibration_error(targets: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """ECE of probabilities ``[n, T]``: per task, the mean over equal-width probability bins of
    ``|observed positive rate - mean probability|`` weighted by the bin's share of labelled rows;
    averaged over tasks with labels (NaN when none)."""
    values = []
    for t in range(targets.shape[1]):
        labelled = ~np.isnan(targets[:, t])
        if not labelled.any():
            continue
        y, p = targets[labelled, t], np.clip(probabilities[labelled, t], 0.0, 1.0)
        which = np.minimum((p * bins).astype(np.int64), bins - 1)
        gap = 0.0
        for b in np.unique(which):
            in_bin = which == b
            gap += in_bin.mean() * abs(float(y[in_bin].mean()) - float(p[in_bin].mean()))
        values.append(gap)
    return float(np.mean(values)) if values else math.nan


def brier_score(targets: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean squared difference of probability and 0/1 label per task, averaged over labelled tasks."""
    values = [
        float(np.mean((probabilities[labelled, t] - targets[labelled, t]) ** 2))
        for t in range(targets.shape[1])
        if (labelled := ~np.isnan(targets[:, t])).any()
    ]
    return float(np.mean(values)) if values else math.nan


def score(metric: str, targets: np.ndarray, predictions: np.ndarray) -> float:
    """``roc_auc`` (predictions are probabilities or logits) or ``rmse`` (original units)."""
    if metric == "roc_auc":
        return mean_roc_auc(targets, predictions)
    if metric == "rmse":
        return mean_rmse(targets, predictions)
    raise ValueError(f"unknown metric {metric!r}; expected 'roc_auc' or 'rmse'")


def is_better(metric: str, value: float, best: float | None) -> bool:
    """Strict improvement; NaN never improves, anything beats no best yet."""
    if math.isnan(value):
        return best is None
    if best is None or math.isnan(best):
        return True
    return value > best if HIGHER_IS_BETTER[metric] else value < best
