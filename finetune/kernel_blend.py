"""Fit the ECFP SVR a fine-tuned regression model blends with its network (``model.kernel_blend: ecfp_svr``).

Per task: an RBF SVR on ECFP4 bits of the labelled *training* molecules, ``C`` and ``gamma`` chosen by
MoleculeACE's 5-fold search (:func:`molchannel.finetune.baselines.select_ecfp_svm`); then the network's
weight ``w`` (grid 0, 0.05, ..., 1) that minimises the *validation* RMSE of ``w * network + (1 - w) * svr``.
The SVR that is kept is then refit, with the same ``C`` and ``gamma``, on the training and validation
molecules together (the network has used the validation split only to pick its epoch; an SVR has no
epochs, so it gets the 10% more data, as MoleculeACE's SVM is fit on the whole official training set).
The test split is not read. The result is a :class:`~molchannel.kernel_member.KernelMember` that the model
folder stores and ``predict`` applies (see that module).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from molchannel.finetune.baselines import SvmBaselineConfig, refit_rbf_svm, rmse, select_ecfp_svm
from molchannel.kernel_member import KernelMember, SvrTask, ecfp_bits

log = logging.getLogger("molchannel.finetune")

WEIGHT_GRID = np.round(np.linspace(0.0, 1.0, 21), 2)
MIN_TRAIN = 10  # labelled training molecules a task needs for a 5-fold search
MIN_VALID = 3  # labelled validation molecules to choose its weight by (else 0.5)


def fit_kernel_member(
    train_smiles: list[str],
    train_targets: np.ndarray,
    valid_smiles: list[str],
    valid_targets: np.ndarray,
    valid_network: np.ndarray,
    config: SvmBaselineConfig | None = None,
) -> tuple[KernelMember, dict[str, Any], np.ndarray]:
    """The kernel member of a regression model, a record of how it was chosen, and the blended
    validation predictions ``[m, T]`` (made with the SVR fitted on the training molecules only).

    Args:
        train_smiles / train_targets: training molecules (all with a graph) and ``[n, T]`` labels (NaN:
            missing); the SVRs are fitted on them.
        valid_smiles / valid_targets / valid_network: validation molecules, their labels and the
            network's predictions ``[m, T]`` in the targets' units; the blend weights are chosen on them.
    """
    config = config or SvmBaselineConfig()
    if config.kernel != "rbf":
        raise ValueError(
            "the kernel member is an RBF SVR (MoleculeACE's); SvmBaselineConfig.kernel must be 'rbf'"
        )
    train_bits = ecfp_bits(train_smiles, config.radius, config.n_bits)
    valid_bits = ecfp_bits(valid_smiles, config.radius, config.n_bits)
    tasks: list[SvrTask | None] = []
    record: dict[str, Any] = {"kind": "ecfp_svr", "svm": config.to_dict(), "tasks": []}
    valid_blend = np.array(valid_network, dtype=np.float32, copy=True)
    for j in range(train_targets.shape[1]):
        labelled = np.flatnonzero(np.isfinite(train_targets[:, j]))
        if len(labelled) < MIN_TRAIN:
            log.warning("kernel blend: task %d has %d labelled training molecules (< %d): network alone",
                        j, len(labelled), MIN_TRAIN)  # fmt: skip
            tasks.append(None)
            record["tasks"].append(None)
            continue
        model, params, cv, _ = select_ecfp_svm(train_bits[labelled], train_targets[labelled, j], config)
        support = train_bits[labelled][model.support_]
        task = SvrTask(support, model.dual_coef_[0].astype(np.float64), float(model.intercept_[0]),
                       float(params["gamma"]), 1.0, params, float(cv))  # fmt: skip
        svr_valid = task.predict(valid_bits)
        ok = np.isfinite(valid_targets[:, j]) & np.isfinite(valid_network[:, j])
        y, net = valid_targets[ok, j], valid_network[ok, j]
        scores = [rmse(y, w * net + (1 - w) * svr_valid[ok]) for w in WEIGHT_GRID]
        if ok.sum() >= MIN_VALID:
            task.network_weight = float(WEIGHT_GRID[int(np.argmin(scores))])
        else:
            log.warning("kernel blend: task %d has %d labelled validation molecules: weight 0.5", j, ok.sum())
            task.network_weight = 0.5
        w = task.network_weight
        valid_blend[:, j] = w * valid_network[:, j] + (1 - w) * svr_valid
        both = np.flatnonzero(np.isfinite(valid_targets[:, j]))
        if len(both):  # the kept SVR: refit on training + validation molecules, same C and gamma
            x = np.concatenate([train_bits[labelled], valid_bits[both]])
            y_all = np.concatenate([train_targets[labelled, j], valid_targets[both, j]])
            refit = refit_rbf_svm(x, y_all, params, config.epsilon)
            task.support, task.dual = x[refit.support_], refit.dual_coef_[0].astype(np.float64)
            task.intercept = float(refit.intercept_[0])
        tasks.append(task)
        record["tasks"].append({
            "network_weight": task.network_weight, "params": params, "cv_rmse": float(cv),
            "n_support": len(task.dual), "n_train": len(labelled), "n_refit": len(labelled) + len(both),
            "valid_rmse_network": _at(scores, 1.0), "valid_rmse_svr": _at(scores, 0.0),
            "valid_rmse_blend": _at(scores, task.network_weight),
        })  # fmt: skip
        log.info("kernel blend: task %d: SVR C=%g gamma=%g, network weight %.2f (valid RMSE %.4f -> %.4f)",
                 j, params["C"], params["gamma"], task.network_weight, _at(scores, 1.0),
                 _at(scores, task.network_weight))  # fmt: skip
    return KernelMember(tasks, config.radius, config.n_bits), record, valid_blend


def _at(scores: list[float], weight: float) -> float:
    value = scores[int(np.argmin(np.abs(WEIGHT_GRID - weight)))]
    return float(value) if math.isfinite(value) else math.nan
