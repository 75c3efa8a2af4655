"""What Platt scaling does to the probabilities of fine-tuned classifiers: calibration error before / after.

For every classification run of the given benchmark folders (``RUN/model`` and ``RUN/split.json``), fits
:class:`molchannel.nn.model.ProbabilityCalibrator` on the run's validation rows, exactly as
``model.calibration: platt`` does at the end of fine-tuning, and scores the run's own test predictions
(``RUN/test_predictions.csv``) before and after: expected calibration error (10 bins), Brier score and
ROC-AUC (unchanged by construction). Runs whose model is already calibrated are read from their
``result.json`` instead. Writes OUTPUT/calibration.md and OUTPUT/calibration.csv, one row per dataset
(mean over seeds)::

    MOLCHANNEL_DATA_DIR=... python benchmarks/calibration_gain.py runs/bench10/default-2026-12-06 \\
        runs/bench10/default-2026-12-06-tox --output results/comparison/calibration
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch

from molchannel.data import load_dataset
from molchannel.finetune.metrics import brier_score, expected_calibration_error, mean_roc_auc
from molchannel.nn.model import ProbabilityCalibrator, logits_of

FIGURES = ("ece_before", "ece_after", "brier_before", "brier_after", "roc_auc_before", "roc_auc_after")


def _test_predictions(run: Path, tasks: int) -> tuple[np.ndarray, np.ndarray]:
    with open(run / "test_predictions.csv", newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    return np.array([int(r[0]) for r in rows]), np.array([[float(v) for v in r[2 + tasks :]] for r in rows])


def run_figures(run: Path) -> dict[str, float] | None:
    """Calibration figures of one run (None for a regression run)."""
    import molchannel

    model = molchannel.load(run / "model")
    head = model.config["head"]
    if head["task_type"] != "classification":
        return None
    table = load_dataset(run.parent.name)
    tasks = len(table.target_names)
    test_rows, test_p = _test_predictions(run, tasks)
    labels = table.targets[test_rows]
    if model.net.calibrator is not None:  # calibrated while fine-tuning: its own record
        record = json.loads((run / "result.json").read_text(encoding="utf-8"))["calibration"]
        auc = mean_roc_auc(labels, test_p)
        return {
            "ece_before": record["test_ece_before"], "ece_after": record["test_ece_after"],
            "brier_before": record["test_brier_before"], "brier_after": record["test_brier_after"],
            "roc_auc_before": auc, "roc_auc_after": auc,
        }  # fmt: skip
    valid = json.loads((run / "split.json").read_text(encoding="utf-8"))["valid"]
    valid_p = model.predict([table.smiles[i] for i in valid], on_invalid="nan")
    calibrator = ProbabilityCalibrator(tasks)
    calibrator.fit(logits_of(valid_p), table.targets[valid])
    after = torch.sigmoid(calibrator(torch.from_numpy(logits_of(test_p)))).numpy()
    return {
        "ece_before": expected_calibration_error(labels, test_p),
        "ece_after": expected_calibration_error(labels, after),
        "brier_before": brier_score(labels, test_p),
        "brier_after": brier_score(labels, after),
        "roc_auc_before": mean_roc_auc(labels, test_p),
        "roc_auc_after": mean_roc_auc(labels, after),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("benchmarks", nargs="+", type=Path, help="`molchannel benchmark` output folders")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    per_dataset: dict[str, list[dict[str, float]]] = {}
    for bench in args.benchmarks:
        for run in sorted(bench.glob("runs/*/seed*")):
            if not (run / "model").is_dir():
                continue
            figures = run_figures(run)
            if figures is not None:
                per_dataset.setdefault(run.parent.name, []).append(figures)
                print(run, " ".join(f"{k}={v:.4f}" for k, v in figures.items()))
    rows = [
        {"dataset": name, "seeds": len(runs), **{k: float(np.mean([r[k] for r in runs])) for k in FIGURES}}
        for name, runs in per_dataset.items()
    ]
    args.output.mkdir(parents=True, exist_ok=True)
    with open(args.output / "calibration.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["dataset", "seeds", *FIGURES])
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "| dataset | seeds | ECE before | ECE after | Brier before | Brier after | ROC-AUC (unchanged) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['seeds']} | {r['ece_before']:.3f} | {r['ece_after']:.3f} | "
            f"{r['brier_before']:.3f} | {r['brier_after']:.3f} | {100 * r['roc_auc_after']:.1f} |"
        )
    if rows:
        mean = {k: float(np.mean([r[k] for r in rows])) for k in FIGURES}
        lines.append(
            f"| mean of {len(rows)} | | {mean['ece_before']:.3f} | {mean['ece_after']:.3f} | "
            f"{mean['brier_before']:.3f} | {mean['brier_after']:.3f} | |"
        )
    (args.output / "calibration.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
