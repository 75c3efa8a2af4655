"""ECFP baselines on molchannel's MoleculeNet splits: SVM / SVR (Tanimoto kernel) and random forest.

The peers a practitioner tries first, on exactly the splits `molchannel benchmark moleculenet` uses (the
deterministic scaffold split 80/10/10, chirality in the scaffold key), scored with molchannel's metric code:

* ECFP4 = RDKit Morgan bits, radius 2, 2,048 bits;
* SVM: scikit-learn SVC / SVR on the precomputed Tanimoto kernel, C in {0.1, 0.3, 1, 3, 10, 30} chosen on
  the validation split (regression targets standardised on the training rows, epsilon 0.1); deterministic,
  so one row (seed "-") stands for every seed;
* RF: 500 trees, ``max_features="sqrt"``, seeds as given (the split is the same for every seed).

One model per task on its labelled rows; ROC-AUC averaged over the test tasks with both classes, RMSE over
tasks in the original units. Writes OUTPUT/results.csv (one row per dataset, method, seed) and
OUTPUT/summary.csv (mean and std over seeds)::

    MOLCHANNEL_DATA_DIR=... python benchmarks/ecfp_moleculenet.py \\
        --datasets bbbp bace esol freesolv lipophilicity --seeds 0 1 2 --output results/peers/ecfp
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np

from molchannel.chem.mol_features import molecule_features
from molchannel.data import load_dataset
from molchannel.data.splits import benchmark_split
from molchannel.finetune.baselines import tanimoto_kernel
from molchannel.finetune.metrics import score

C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


def _svm_task(kernel_tr, kernel_va, kernel_te, y_tr, y_va, classification: bool) -> tuple[np.ndarray, float]:
    """Test scores of the SVM whose C is best on validation, and that C."""
    from sklearn.svm import SVC, SVR

    best: tuple[float, float, np.ndarray] | None = None
    for c in C_GRID:
        if classification:
            model = SVC(kernel="precomputed", C=c).fit(kernel_tr, y_tr)
            metric = score("roc_auc", y_va[:, None], model.decision_function(kernel_va)[:, None])
            better = best is None or metric > best[0]
        else:
            mean, std = y_tr.mean(), y_tr.std() or 1.0
            model = SVR(kernel="precomputed", C=c, epsilon=0.1).fit(kernel_tr, (y_tr - mean) / std)
            pred_va = model.predict(kernel_va) * std + mean
            metric = score("rmse", y_va[:, None], pred_va[:, None])
            better = best is None or metric < best[0]
        if better:
            test = (
                model.decision_function(kernel_te)
                if classification
                else model.predict(kernel_te) * std + mean
            )
            best = (metric, c, test)
    assert best is not None
    return best[2], best[1]


def _rf_task(x_tr, x_te, y_tr, classification: bool, seed: int) -> np.ndarray:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    cls = RandomForestClassifier if classification else RandomForestRegressor
    model = cls(n_estimators=500, max_features="sqrt", n_jobs=1, random_state=seed).fit(x_tr, y_tr)
    return model.predict_proba(x_te)[:, 1] if classification else model.predict(x_te)


def run_dataset(name: str, seeds: list[int]) -> list[dict[str, object]]:
    table = load_dataset(name)
    split = benchmark_split(table)
    classification = table.task_type == "classification"
    # ECFP4 bits of every row; invalid SMILES (in no split subset) get NaN rows, zeroed
    fps = np.nan_to_num(molecule_features(list(table.smiles), ["morgan_bits"])).astype(np.uint8)
    rows: list[dict[str, object]] = []
    y = table.targets
    tasks = range(y.shape[1])
    start = time.perf_counter()
    svm_pred = np.full((len(split.test), y.shape[1]), np.nan)
    cs: list[float] = []
    rf_preds = {seed: np.full((len(split.test), y.shape[1]), np.nan) for seed in seeds}
    for t in tasks:
        tr = split.train[np.isfinite(y[split.train, t])]
        va = split.valid[np.isfinite(y[split.valid, t])]
        if classification and (len(np.unique(y[tr, t])) < 2 or len(np.unique(y[va, t])) < 2):
            continue
        k_tr = tanimoto_kernel(fps[tr], fps[tr])
        k_va, k_te = tanimoto_kernel(fps[va], fps[tr]), tanimoto_kernel(fps[split.test], fps[tr])
        pred, c = _svm_task(k_tr, k_va, k_te, y[tr, t], y[va, t], classification)
        svm_pred[:, t] = pred
        cs.append(c)
        for seed in seeds:
            rf_preds[seed][:, t] = _rf_task(fps[tr], fps[split.test], y[tr, t], classification, seed)
    metric = table.metric
    y_test = y[split.test]
    elapsed = time.perf_counter() - start
    # the SVM is deterministic: one row (seed "-"); the forest has one row per seed
    runs = [("ECFP4 + SVM", "-", svm_pred, f"C={cs}")]
    runs += [("ECFP4 + RF", seed, rf_preds[seed], "500 trees, sqrt") for seed in seeds]
    for method, seed, pred, params in runs:
        row = {"dataset": name, "method": method, "seed": seed, "metric": metric}
        rows.append({**row, "test_metric": score(metric, y_test, pred), "params": params})
    figures = ", ".join(f"{r['method']} seed {r['seed']} {r['test_metric']:.4f}" for r in rows)
    print(f"{name}: {elapsed:.0f} s; {figures}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--datasets", nargs="+", default=["bbbp", "bace", "esol", "freesolv", "lipophilicity"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--output", type=Path, default=Path("results/peers/ecfp"))
    args = parser.parse_args()
    rows = [row for name in args.datasets for row in run_dataset(name, args.seeds)]
    args.output.mkdir(parents=True, exist_ok=True)
    with open(args.output / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(args.output / "summary.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["dataset", "method", "metric", "mean", "std", "seeds"])
        for name in args.datasets:
            for method in ("ECFP4 + SVM", "ECFP4 + RF"):
                values = [r["test_metric"] for r in rows if r["dataset"] == name and r["method"] == method]
                metric = next(r["metric"] for r in rows if r["dataset"] == name)
                std = float(np.std(values)) if len(values) > 1 else float("nan")
                writer.writerow([name, method, metric, float(np.mean(values)), std, len(values)])
    print(f"wrote {args.output / 'results.csv'} and summary.csv")


if __name__ == "__main__":
    main()
