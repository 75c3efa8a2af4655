"""ECFP baselines of MoleculeNet, computed beside our model in ``molchannel benchmark moleculenet``.

The peers a practitioner tries first, on exactly the split the fine-tuning runs use (the deterministic
scaffold split 80/10/10, chirality in the scaffold key) and scored with the same metric code:

* **Features**: ECFP4 bits, RDKit Morgan radius 2, 2,048 bits (the ``morgan_bits`` molecule feature).
* **SVM**: scikit-learn ``SVC`` / ``SVR`` on the precomputed Tanimoto kernel; ``C`` in
  {0.1, 0.3, 1, 3, 10, 30} chosen on the validation split (regression targets standardised on the training
  rows, epsilon 0.1). Deterministic, so one figure stands for every seed. Its kernel matrix grows with the
  square of the training set, so above ``svm_max_train`` labelled training molecules (HIV: 33k, MUV: 74k)
  it is skipped, and the record says so.
* **RF**: 500 trees, ``max_features="sqrt"``, one forest per benchmark seed (the split is the same for
  every seed; only the forest's randomness changes).

One model per task on its labelled rows (classification tasks whose training or validation rows hold a
single class are skipped, as the metric skips test tasks with one class); ROC-AUC is averaged over the
test tasks with both classes, RMSE over tasks in the original units.

Cost, one core of the 2-core development machine: FreeSolv 9 s; Tox21 29 minutes (its 12 tasks: C search
6, three forests 23) beside other jobs. Both are fitted per task; the SVMs share one Gram matrix of the
split's molecules, but the forests cannot share anything, so above ``rf_max_tasks`` tasks (ToxCast's 617)
they are not grown and the record says why.
Needs scikit-learn (the ``train`` extra).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from molchannel.finetune.baselines import tanimoto_kernel
from molchannel.finetune.metrics import score

SVM_METHOD = "ECFP4 + SVM"
RF_METHOD = "ECFP4 + RF"


@dataclass(frozen=True)
class EcfpBaselineConfig:
    """Everything that determines the baselines' numbers (hashed into their cached record)."""

    radius: int = 2
    n_bits: int = 2048
    c_grid: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
    epsilon: float = 0.1
    trees: int = 500
    svm_max_train: int = 20_000
    #: above this many tasks the forests are not grown (ToxCast: 617 tasks x 3 seeds x 500 trees is 3-5
    #: CPU-hours here); it decides only whether the RF figures exist, so it is not in the record's hash
    rf_max_tasks: int = 100
    #: the Tanimoto Gram matrix of all the split's molecules is computed once (and sliced per task) up
    #: to this many molecules (it holds 8 bytes per pair, and computing it needs ~4.5x that at its peak:
    #: 10,000 molecules are 0.8 GB, 3.6 GB at the peak); above, per task
    gram_max_molecules: int = 10_000

    def __post_init__(self) -> None:
        if not self.c_grid:
            raise ValueError("the SVM's C grid is empty: give at least one C")
        if min(self.trees, self.svm_max_train, self.rf_max_tasks) < 1 or self.gram_max_molecules < 0:
            raise ValueError("trees, svm_max_train and rf_max_tasks must be positive integers, "
                             "gram_max_molecules >= 0")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": f"ECFP (RDKit Morgan bits, radius {self.radius}, {self.n_bits} bits)",
            "radius": self.radius,
            "n_bits": self.n_bits,
            "svm": {"kernel": "tanimoto", "c_grid": list(self.c_grid), "epsilon": self.epsilon,
                    "max_train": self.svm_max_train},
            "rf": {"trees": self.trees, "max_features": "sqrt"},
        }  # fmt: skip


@dataclass
class EcfpBaselineResult:
    """Test metrics of the two baselines on one dataset (metric as stored: ROC-AUC as a fraction)."""

    metric: str
    svm_test_metric: float  # NaN when skipped
    svm_valid_metric: float
    svm_c: list[float]  # the chosen C per fitted task
    svm_skipped: str | None  # why the SVM was not fitted
    rf_test_metric: dict[int, float]  # seed -> test metric (NaN when the forests were skipped)
    n_train: int
    n_tasks_fitted: int
    svm_wall_time_s: float = 0.0
    rf_wall_time_s: float = 0.0
    skipped_tasks: list[int] = field(default_factory=list)
    rf_skipped: str | None = None  # why the forests were not grown


def _fit_svm_task(
    k_tr: np.ndarray, k_va: np.ndarray, k_te: np.ndarray, y_tr: np.ndarray, y_va: np.ndarray,
    classification: bool, config: EcfpBaselineConfig,
) -> tuple[np.ndarray, np.ndarray, float]:  # fmt: skip
    """Validation and test scores of the SVM whose C is best on validation, and that C."""
    from sklearn.svm import SVC, SVR

    metric = "roc_auc" if classification else "rmse"
    mean, std = (0.0, 1.0) if classification else (float(y_tr.mean()), float(y_tr.std()) or 1.0)
    best: tuple[float, float, np.ndarray, np.ndarray] | None = None
    for c in config.c_grid:
        if classification:
            model: Any = SVC(kernel="precomputed", C=c).fit(k_tr, y_tr)
            predict = model.decision_function
        else:
            model = SVR(kernel="precomputed", C=c, epsilon=config.epsilon).fit(k_tr, (y_tr - mean) / std)
            predict = model.predict
        valid = predict(k_va) * std + mean
        value = score(metric, y_va[:, None], valid[:, None])
        if best is None or (value > best[0] if classification else value < best[0]):
            best = (value, c, valid, predict(k_te) * std + mean)
    assert best is not None
    return best[2], best[3], best[1]


def _fit_rf_task(
    x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, classification: bool, trees: int, seed: int
) -> np.ndarray:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    cls = RandomForestClassifier if classification else RandomForestRegressor
    model = cls(n_estimators=trees, max_features="sqrt", n_jobs=-1, random_state=seed).fit(x_tr, y_tr)
    return model.predict_proba(x_te)[:, 1] if classification else model.predict(x_te)


def ecfp_moleculenet_baselines(
    smiles: Sequence[str],
    targets: np.ndarray,
    metric: str,
    train: np.ndarray,
    valid: np.ndarray,
    test: np.ndarray,
    seeds: Sequence[int],
    config: EcfpBaselineConfig | None = None,
    on_task: Callable[[int, int], None] | None = None,
    fit_svm: bool = True,
) -> EcfpBaselineResult:
    """Fit both baselines on ``train`` (``C`` on ``valid``) and score them on ``test``, over the tasks
    that could be fitted (both classes in the training and validation rows, for classification).

    ``targets`` is ``[N, T]`` with NaN for missing labels; ``on_task(done, total)`` reports progress
    (ToxCast has 617 tasks); ``fit_svm=False`` fits the forests only (the SVM's figures are NaN).
    """
    from molchannel.chem.mol_features import molecule_features

    config = config or EcfpBaselineConfig()
    if (config.radius, config.n_bits) != (2, 2048):
        raise ValueError("the MoleculeNet baselines use the morgan_bits feature: radius 2, 2,048 bits")
    classification = metric == "roc_auc"
    y = np.asarray(targets, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    train, valid, test = (np.asarray(s, dtype=np.int64) for s in (train, valid, test))
    if len(test) == 0 or len(valid) == 0:
        raise ValueError("the ECFP baselines need validation and test molecules")
    used = np.concatenate([train, valid, test])
    # ECFP4 bits of the split's rows only (invalid SMILES are in no subset)
    bits = np.zeros((len(y), config.n_bits), dtype=np.uint8)
    bits[used] = np.nan_to_num(molecule_features([smiles[i] for i in used], ["morgan_bits"]))
    n_train = int(np.isfinite(y[train]).any(axis=1).sum())
    skip_svm = (
        f"{n_train} training molecules > svm_max_train {config.svm_max_train} (a dense kernel of "
        f"{n_train}^2 entries)"
        if n_train > config.svm_max_train
        else None
        if fit_svm
        else "not asked for (fit_svm=False)"
    )
    skip_rf = (
        f"{y.shape[1]} tasks > rf_max_tasks {config.rf_max_tasks} (one {config.trees}-tree forest per task "
        "and seed)"
        if y.shape[1] > config.rf_max_tasks
        else None
    )
    # many tasks over the same molecules (ToxCast): one Gram matrix, sliced per task
    gram = position = None
    gram_time = 0.0
    if skip_svm is None and y.shape[1] > 1 and len(used) <= config.gram_max_molecules:
        start = time.perf_counter()
        gram = tanimoto_kernel(bits[used], bits[used])
        position = np.full(len(y), -1, dtype=np.int64)
        position[used] = np.arange(len(used))
        gram_time = time.perf_counter() - start

    def kernel(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        if gram is None or position is None:
            return tanimoto_kernel(bits[rows], bits[cols])
        return gram[np.ix_(position[rows], position[cols])]

    svm_valid = np.full((len(valid), y.shape[1]), np.nan)
    svm_test = np.full((len(test), y.shape[1]), np.nan)
    rf_test = {int(s): np.full((len(test), y.shape[1]), np.nan) for s in seeds}
    cs: list[float] = []
    skipped: list[int] = []
    svm_time, rf_time = gram_time, 0.0
    for t in range(y.shape[1]):
        tr = train[np.isfinite(y[train, t])]
        va = valid[np.isfinite(y[valid, t])]
        one_class = classification and (len(np.unique(y[tr, t])) < 2 or len(np.unique(y[va, t])) < 2)
        if len(tr) == 0 or len(va) == 0 or one_class:
            skipped.append(t)
        else:
            if skip_svm is None:
                start = time.perf_counter()
                k_tr, k_va, k_te = kernel(tr, tr), kernel(va, tr), kernel(test, tr)
                pred_va, pred_te, c = _fit_svm_task(
                    k_tr, k_va, k_te, y[tr, t], y[va, t], classification, config
                )
                svm_valid[np.isin(valid, va), t] = pred_va
                svm_test[:, t] = pred_te
                cs.append(c)
                svm_time += time.perf_counter() - start
            if skip_rf is None:
                start = time.perf_counter()
                for seed in rf_test:
                    rf_test[seed][:, t] = _fit_rf_task(
                        bits[tr], y[tr, t], bits[test], classification, config.trees, seed
                    )
                rf_time += time.perf_counter() - start
        if on_task is not None:
            on_task(t + 1, y.shape[1])
    fitted = y.shape[1] - len(skipped)
    if fitted == 0:  # e.g. a --limit subset whose validation rows hold one class: no figure, no failure
        skip_svm = "no task has labelled training and validation rows (with both classes) to fit on"
    # scored over the fitted tasks only (a skipped task has no predictions)
    y_test, y_valid = y[test].copy(), y[valid].copy()
    y_test[:, skipped] = np.nan
    y_valid[:, skipped] = np.nan
    nan = math.nan
    return EcfpBaselineResult(
        metric=metric,
        svm_test_metric=nan if skip_svm else score(metric, y_test, svm_test),
        svm_valid_metric=nan if skip_svm else score(metric, y_valid, svm_valid),
        svm_c=cs,
        svm_skipped=skip_svm,
        rf_test_metric={
            s: score(metric, y_test, pred) if fitted and skip_rf is None else nan
            for s, pred in rf_test.items()
        },
        n_train=n_train,
        n_tasks_fitted=fitted,
        svm_wall_time_s=svm_time,
        rf_wall_time_s=rf_time,
        skipped_tasks=skipped,
        rf_skipped=skip_rf,
    )
