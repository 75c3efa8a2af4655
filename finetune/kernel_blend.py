"""Fit the ECFP SVM a fine-tuned model blends with its network (``model.kernel_blend: ecfp_svr | ecfp_svc``).

**Regression** (``ecfp_svr``, :func:`fit_kernel_member`):

Per task: an RBF SVR on ECFP4 bits of the labelled *training* molecules, ``C`` and ``gamma`` chosen by
MoleculeACE's 5-fold search (:func:`molchannel.finetune.baselines.select_ecfp_svm`); then the network's
weight ``w`` (grid 0, 0.05, ..., 1) that minimises the *validation* RMSE of ``w * network + (1 - w) * svr``.
The SVR that is kept is then refit, with the same ``C`` and ``gamma``, on the training and validation
molecules together (the network has used the validation split only to pick its epoch; an SVR has no
epochs, so it gets the 10% more data, as MoleculeACE's SVM is fit on the whole official training set).
The test split is not read. The result is a :class:`~molchannel.kernel_member.KernelMember` that the model
folder stores and ``predict`` applies (see that module).

**Classification** (``ecfp_svc``, :func:`fit_classifier_member`): per task, an SVC on the Tanimoto kernel of
ECFP4 bits (2,048, as the MoleculeNet ECFP baseline) of the labelled training molecules, ``C`` chosen by the
mean ROC-AUC of a stratified 5-fold cross-validation on them; its decision value becomes a probability by
Platt scaling fitted on the validation split, and the network's weight ``w`` in
``w * p_network + (1 - w) * p_svc`` is the one with the best validation ROC-AUC (the middle of the best
plateau, as ROC-AUC is flat over ranges of ``w``). The SVC is not refit on the validation molecules (its
Platt scaling was fitted on them).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from molchannel.finetune.baselines import SvmBaselineConfig, refit_rbf_svm, rmse, select_ecfp_svm
from molchannel.finetune.metrics import mean_roc_auc
from molchannel.kernel_member import CLASSIFIER_KIND, KernelMember, SvrTask, ecfp_bits, tanimoto_bit_kernel

log = logging.getLogger("molchannel.finetune")

WEIGHT_GRID = np.round(np.linspace(0.0, 1.0, 21), 2)
SVC_C_GRID: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
SVC_BITS = 2048
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


def fit_classifier_member(
    train_smiles: list[str],
    train_targets: np.ndarray,
    valid_smiles: list[str],
    valid_targets: np.ndarray,
    valid_network: np.ndarray,
    c_grid: tuple[float, ...] = SVC_C_GRID,
    cv_folds: int = 5,
    seed: int = 0,
) -> tuple[KernelMember, dict[str, Any], np.ndarray]:
    """The kernel member of a classification model (Tanimoto SVCs), a record of how it was chosen, and the
    blended validation probabilities ``[m, T]``. Arguments as :func:`fit_kernel_member`, with 0/1 labels
    and the network's validation probabilities."""
    train_bits = ecfp_bits(train_smiles, 2, SVC_BITS)
    valid_bits = ecfp_bits(valid_smiles, 2, SVC_BITS)
    tasks: list[SvrTask | None] = []
    svm = {"features": f"ECFP4 bits ({SVC_BITS})", "kernel": "tanimoto", "c_grid": list(c_grid),
           "cv_folds": cv_folds}  # fmt: skip
    record: dict[str, Any] = {"kind": CLASSIFIER_KIND, "svm": svm, "tasks": []}
    valid_blend = np.array(valid_network, dtype=np.float32, copy=True)
    for j in range(train_targets.shape[1]):
        task, task_record, blended = _classifier_task(
            train_bits, train_targets[:, j], valid_bits, valid_targets[:, j], valid_network[:, j],
            c_grid, cv_folds, seed,
        )  # fmt: skip
        tasks.append(task)
        record["tasks"].append(task_record)
        if task is None or task_record is None or blended is None:
            log.warning("kernel blend: task %d lacks a class (or enough molecules of one): network alone", j)
            continue
        valid_blend[:, j] = blended
        log.info("kernel blend: task %d: SVC C=%g, network weight %.2f (valid ROC-AUC %.4f -> %.4f)", j,
                 task.params["C"], task.network_weight, task_record["valid_roc_auc_network"],
                 task_record["valid_roc_auc_blend"])  # fmt: skip
    return KernelMember(tasks, 2, SVC_BITS, CLASSIFIER_KIND), record, valid_blend


def _classifier_task(
    train_bits: np.ndarray, y_train: np.ndarray, valid_bits: np.ndarray, y_valid: np.ndarray,
    p_network: np.ndarray, c_grid: tuple[float, ...], cv_folds: int, seed: int,
) -> tuple[SvrTask | None, dict[str, Any] | None, np.ndarray | None]:  # fmt: skip
    from sklearn.model_selection import StratifiedKFold
    from sklearn.svm import SVC

    from molchannel.nn.model import ProbabilityCalibrator

    labelled = np.flatnonzero(np.isfinite(y_train))
    y = y_train[labelled]
    minority = int(min((y > 0.5).sum(), (y <= 0.5).sum()))
    ok = np.isfinite(y_valid) & np.isfinite(p_network)
    if minority < 2 or len(np.unique(y_valid[ok])) < 2:
        return None, None, None
    gram = tanimoto_bit_kernel(train_bits[labelled], train_bits[labelled])
    folds = list(StratifiedKFold(min(cv_folds, minority), shuffle=True, random_state=seed).split(gram, y))
    cv_scores = []
    for c in c_grid:
        scores = []
        for tr, va in folds:
            model = SVC(kernel="precomputed", C=c).fit(gram[np.ix_(tr, tr)], y[tr])
            scores.append(mean_roc_auc(y[va, None], model.decision_function(gram[np.ix_(va, tr)])[:, None]))
        cv_scores.append(float(np.nanmean(scores)))
    best = int(np.nanargmax(cv_scores))  # first of equals, in grid order
    model = SVC(kernel="precomputed", C=c_grid[best]).fit(gram, y)
    support, dual = train_bits[labelled][model.support_], model.dual_coef_[0].astype(np.float64)
    params = {"C": c_grid[best]}
    task = SvrTask(support, dual, float(model.intercept_[0]), float("nan"), 1.0, params, cv_scores[best])
    decision = task.decision(valid_bits)
    calibrator = ProbabilityCalibrator(1)
    calibrator.fit(decision[ok, None], y_valid[ok, None], min_count=2)
    task.platt = (float(calibrator.scale[0]), float(calibrator.shift[0]))
    p_svc = task.predict(valid_bits)
    scores = [mean_roc_auc(y_valid[ok, None], (w * p_network[ok] + (1 - w) * p_svc[ok])[:, None])
              for w in WEIGHT_GRID]  # fmt: skip
    top = np.flatnonzero(np.isclose(scores, np.nanmax(scores), rtol=0, atol=1e-12))
    task.network_weight = float(WEIGHT_GRID[top[len(top) // 2]])  # the middle of the best plateau
    w = task.network_weight
    task_record = {
        "network_weight": w, "params": task.params, "cv_roc_auc": cv_scores[best], "platt": list(task.platt),
        "n_support": len(task.dual), "n_train": len(labelled),
        "valid_roc_auc_network": _at(scores, 1.0), "valid_roc_auc_svc": _at(scores, 0.0),
        "valid_roc_auc_blend": _at(scores, w),
    }  # fmt: skip
    return task, task_record, w * p_network + (1 - w) * p_svc
