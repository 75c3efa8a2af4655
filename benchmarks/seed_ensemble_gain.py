"""What averaging the seeds of a benchmark buys: an N-member ensemble against its single members.

A benchmark's runs of one dataset share the split and differ only in seed, which is exactly what
``molchannel finetune --ensemble-size N`` trains; so the mean of their test predictions is the test prediction
of that ensemble. Reads BENCHMARK/runs/<dataset>/seed<k>/test_predictions.csv and writes, per dataset, the
ensemble's test metric beside the mean and the best of its members', plus, for regression, how well the
spread over members ranks the errors (Spearman correlation of |error| and std) and the test coverage of
conformal 90% intervals calibrated on the validation rows (``molchannel.ensemble.ConformalCalibration``, the
seeds' model folders loaded as one ensemble)::

    python benchmarks/seed_ensemble_gain.py runs/bench11/rdkit2d --output results/comparison/ensemble
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np

from molchannel.data import MoleculeTable, load_dataset
from molchannel.finetune.metrics import score


def _read(path: Path) -> tuple[list[int], np.ndarray, np.ndarray]:
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    t = sum(1 for h in header if h.startswith("predicted "))
    index = [int(r[0]) for r in rows]
    labels = np.array([[float(v) if v else np.nan for v in r[2 : 2 + t]] for r in rows])
    preds = np.array([[float(v) for v in r[2 + t : 2 + 2 * t]] for r in rows])
    return index, labels, preds


def dataset_gain(folder: Path) -> dict[str, object] | None:
    seeds = sorted(folder.glob("seed*/test_predictions.csv"))
    if len(seeds) < 2:
        return None
    loaded = [_read(p) for p in seeds]
    index, labels, _ = loaded[0]
    if any(other[0] != index for other in loaded[1:]):
        raise ValueError(f"{folder}: the seeds were tested on different rows")
    stacked = np.stack([p for _, _, p in loaded])
    table = load_dataset(folder.name)
    regression = table.task_type == "regression"
    metric = table.metric
    members = [score(metric, labels, p) for p in stacked]
    ensemble = score(metric, labels, stacked.mean(0))
    out: dict[str, object] = {
        "dataset": folder.name,
        "metric": metric,
        "members": len(members),
        "member_mean": float(np.mean(members)),
        "member_best": float(min(members) if regression else max(members)),
        "ensemble": float(ensemble),
    }
    if regression:
        out.update(_uncertainty(table, seeds, labels, stacked))
    return out


def _uncertainty(
    table: MoleculeTable, seeds: list[Path], labels: np.ndarray, stacked: np.ndarray
) -> dict[str, float]:
    """Spearman(|error|, spread) on the test rows, and the test coverage of conformal 90% intervals
    calibrated on the validation rows with the seeds' models loaded as one ensemble."""
    from scipy.stats import spearmanr

    from molchannel.api import load
    from molchannel.ensemble import ConformalCalibration, EnsembleModel

    mean, std = stacked.mean(0), stacked.std(0)
    error = np.abs(mean - labels)
    keep = np.isfinite(error)
    rho = float(spearmanr(error[keep], std[keep]).statistic)
    ensemble = EnsembleModel([load(p.parent / "model") for p in seeds])
    valid = json.loads((seeds[0].parent / "split.json").read_text(encoding="utf-8"))["valid"]
    v_mean, v_std = ensemble.predict([table.smiles[i] for i in valid], return_std=True)
    calibration = ConformalCalibration.fit(table.targets[valid], v_mean, v_std)
    half = calibration.half_width(std, 0.9)
    inside = (error <= half) & keep
    v_error = np.abs(table.targets[valid] - v_mean)
    out = {
        "spearman_abs_error_std": rho,
        "coverage_90": float(inside.sum() / keep.sum()),
        "interval_width_90": float(2 * half[keep].mean()),
        # the calibration assumes validation and test molecules alike; on a scaffold split they are not
        "valid_rmse": float(np.sqrt(np.nanmean(v_error**2))),
        "test_rmse": float(np.sqrt(np.nanmean(error[keep] ** 2))),
    }
    # what other scores give on the same predictions: constant width, and the spread with another beta
    median = float(np.nanmedian(v_std))
    for name, beta in (("plain", None), ("beta_0.1", 0.1 * median), ("beta_3", 3 * median)):
        v_scale = np.ones_like(v_std) if beta is None else v_std + beta
        t_scale = np.ones_like(std) if beta is None else std + beta
        scores = np.sort((v_error / v_scale)[np.isfinite(v_error)])
        k = math.ceil((len(scores) + 1) * 0.9)
        q = scores[k - 1] if k <= len(scores) else math.inf
        out[f"coverage_90_{name}"] = float(((error <= q * t_scale) & keep).sum() / keep.sum())
        out[f"interval_width_90_{name}"] = float(2 * (q * t_scale)[keep].mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("benchmark", type=Path, help="a `molchannel benchmark` output folder")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    results = [r for d in sorted((args.benchmark / "runs").iterdir()) if (r := dataset_gain(d)) is not None]
    lines = [
        f"# Seed ensembles of {args.benchmark} (test metric)",
        "",
        "| dataset | metric | members | member mean | best member | ensemble | Spearman(abs error, std) "
        "| coverage of 90% intervals | mean width |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        figures = [f"{r[k]:.4f}" for k in ("member_mean", "member_best", "ensemble")]
        extra = [
            f"{r[k]:{fmt}}" if k in r else ""
            for k, fmt in (
                ("spearman_abs_error_std", ".2f"),
                ("coverage_90", ".3f"),
                ("interval_width_90", ".3f"),
            )
        ]
        lines.append(f"| {r['dataset']} | {r['metric']} | {r['members']} | {' | '.join(figures + extra)} |")
    regression = [r for r in results if "coverage_90" in r]
    if regression:
        lines += [
            "",
            "Coverage / mean width of 90% intervals with other nonconformity scores (same predictions; "
            "beta = median validation spread in the first column):",
            "",
            "| dataset | validation RMSE | test RMSE | normalised, beta | plain residual | beta x 0.1 "
            "| beta x 3 |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in regression:
            cells = [
                f"{r[f'coverage_90{suffix}']:.3f} / {r[f'interval_width_90{suffix}']:.2f}"
                for suffix in ("", "_plain", "_beta_0.1", "_beta_3")
            ]
            lines.append(
                f"| {r['dataset']} | {r['valid_rmse']:.3f} | {r['test_rmse']:.3f} | {' | '.join(cells)} |"
            )
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "ensemble.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (args.output / "ensemble.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
