"""Platt scaling of classification probabilities: the fit, the calibration error, the model folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from molchannel.finetune.metrics import brier_score, expected_calibration_error, mean_roc_auc
from molchannel.nn.model import HeadConfig, ProbabilityCalibrator


def _overconfident(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits three times too large (true probability sigmoid(z / 3 - 0.5)) and their labels."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 4.0, size=(n, 1))
    labels = (rng.random((n, 1)) < 1 / (1 + np.exp(-(z / 3 - 0.5)))).astype(np.float64)
    return z, labels


def test_platt_fit_recovers_scale_and_shift_and_keeps_the_ranking():
    z, labels = _overconfident()
    calibrator = ProbabilityCalibrator(1)
    assert calibrator.fit(z, labels) == [True]
    assert calibrator.scale.item() == pytest.approx(1 / 3, abs=0.05)
    assert calibrator.shift.item() == pytest.approx(-0.5, abs=0.12)
    raw = 1 / (1 + np.exp(-z))
    calibrated = torch.sigmoid(calibrator(torch.from_numpy(z))).numpy()
    assert mean_roc_auc(labels, calibrated) == pytest.approx(mean_roc_auc(labels, raw), abs=1e-12)
    # on fresh molecules from the same process the calibrated probabilities are the better ones
    z2, labels2 = _overconfident(seed=1)
    raw2, calibrated2 = 1 / (1 + np.exp(-z2)), torch.sigmoid(calibrator(torch.from_numpy(z2))).numpy()
    assert expected_calibration_error(labels2, calibrated2) < 0.5 * expected_calibration_error(labels2, raw2)
    assert brier_score(labels2, calibrated2) < brier_score(labels2, raw2)


def test_an_inverted_ranking_stops_at_the_scale_floor_and_keeps_the_ranking():
    """Validation logits that rank the wrong way: the log-loss optimum is a -> 0, which would squeeze the
    probabilities into ties; the floor keeps them apart, so ROC-AUC stays that of the raw logits."""
    from molchannel.nn.model import MIN_PLATT_SCALE

    z, labels = _overconfident()
    calibrator = ProbabilityCalibrator(1)
    calibrator.fit(-z, labels)
    assert calibrator.scale.item() == pytest.approx(MIN_PLATT_SCALE, rel=1e-3)
    fresh = np.random.default_rng(5).normal(0.0, 4.0, size=(500, 1))
    fresh_labels = (fresh > 0).astype(float)
    calibrated = torch.sigmoid(calibrator(torch.from_numpy(fresh).float())).numpy()
    assert len(np.unique(calibrated)) == 500
    assert mean_roc_auc(fresh_labels, calibrated) == pytest.approx(1.0)


def test_too_few_molecules_of_a_class_keep_the_identity():
    z, labels = _overconfident(n=200)
    labels[:, 0] = 0.0
    labels[:4, 0] = 1.0  # 4 positives: fewer than the 5 a task needs
    calibrator = ProbabilityCalibrator(1)
    assert calibrator.fit(z, labels) == [False] and calibrator.scale.item() == 1.0
    assert calibrator.fit(z, labels, min_count=4) == [True]


def test_tasks_without_both_classes_keep_the_identity_and_nan_labels_are_skipped():
    z, labels = _overconfident(n=600)
    two = np.concatenate([labels, np.zeros_like(labels)], axis=1)  # task 1: negatives only
    two[::3, 0] = np.nan
    calibrator = ProbabilityCalibrator(2)
    assert calibrator.fit(np.concatenate([z, z], axis=1), two) == [True, False]
    assert calibrator.scale[1].item() == 1.0 and calibrator.shift[1].item() == 0.0
    assert calibrator.scale[0].item() > 0


def test_calibration_error_of_known_cases():
    labels = np.array([[1.0], [0.0], [1.0], [0.0]])
    assert expected_calibration_error(labels, np.full((4, 1), 0.5)) == pytest.approx(0.0)
    assert expected_calibration_error(labels, np.array([[1.0], [1.0], [1.0], [1.0]])) == pytest.approx(0.5)
    assert brier_score(labels, np.full((4, 1), 0.5)) == pytest.approx(0.25)
    assert np.isnan(expected_calibration_error(np.full((2, 1), np.nan), np.zeros((2, 1))))


def test_calibration_is_for_classification_heads_only():
    with pytest.raises(ValueError, match="classification tasks only"):
        HeadConfig(num_tasks=1, calibration=True, task_type="regression")
