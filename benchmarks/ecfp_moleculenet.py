"""ECFP baselines on molchannel's MoleculeNet splits as a peer table: SVM / SVR (Tanimoto kernel) and RF.

The same fits that ``molchannel benchmark moleculenet`` now puts beside its own rows
(:mod:`molchannel.finetune.moleculenet_baselines`: ECFP4 bits, SVM with C chosen on the validation split,
RF with 500 trees per seed), written as a peer table for ``benchmarks/compare_finetune.py``:
OUTPUT/results.csv (one row per dataset, method, seed; the deterministic SVM as seed "-") and
OUTPUT/summary.csv (mean and std over seeds)::

    MOLCHANNEL_DATA_DIR=... python benchmarks/ecfp_moleculenet.py \\
        --datasets bbbp bace esol freesolv lipophilicity --seeds 0 1 2 --output results/peers/ecfp
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from molchannel.data import load_dataset
from molchannel.data.splits import benchmark_split
from molchannel.finetune.moleculenet_baselines import RF_METHOD, SVM_METHOD, ecfp_moleculenet_baselines


def run_dataset(name: str, seeds: list[int]) -> list[dict[str, object]]:
    table = load_dataset(name)
    split = benchmark_split(table)
    result = ecfp_moleculenet_baselines(
        table.smiles, table.targets, table.metric, split.train, split.valid, split.test, seeds
    )
    # the SVM is deterministic: one row (seed "-"); the forest has one row per seed
    rows: list[dict[str, object]] = [
        {"dataset": name, "method": SVM_METHOD, "seed": "-", "metric": table.metric,
         "test_metric": result.svm_test_metric, "params": f"C={result.svm_c}"}
    ]  # fmt: skip
    rows += [
        {"dataset": name, "method": RF_METHOD, "seed": seed, "metric": table.metric, "test_metric": value,
         "params": "500 trees, sqrt"}
        for seed, value in result.rf_test_metric.items()
        if result.rf_skipped is None
    ]  # fmt: skip
    elapsed = result.svm_wall_time_s + result.rf_wall_time_s
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
            for method in (SVM_METHOD, RF_METHOD):
                values = [r["test_metric"] for r in rows if r["dataset"] == name and r["method"] == method]
                if not values:  # forests not grown (more than rf_max_tasks tasks)
                    continue
                metric = next(r["metric"] for r in rows if r["dataset"] == name)
                std = float(np.std(values)) if len(values) > 1 else float("nan")
                writer.writerow([name, method, metric, float(np.mean(values)), std, len(values)])
    print(f"wrote {args.output / 'results.csv'} and summary.csv")


if __name__ == "__main__":
    main()
