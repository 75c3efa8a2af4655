"""``run_ensemble``: N fine-tuning runs (seeds ``seed .. seed + N - 1``, one split) kept as one model.

Run folder::

    members/seed<k>/     one complete fine-tuning run folder per member (see ``run_finetune``)
    model/               ensemble folder: ensemble.json + members/0 .. N-1 (copies of the members' models);
                         molchannel.load("RUN/model").predict(smiles, return_std=True)
    test_predictions.csv test rows: SMILES, labels, mean prediction and spread over members
    result.json          the EnsembleResult (without the arrays)

Every member trains on the split of the base seed, so the members differ only in initialisation, batch
order and dropout, and their test predictions can be averaged row by row. ``resume`` resumes or re-reports
each member as ``run_finetune`` does.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from molchannel.atomic import write_text_atomic
from molchannel.ensemble import (
    ConformalCalibration,
    EnsembleModel,
    copy_member_folders,
    load_ensemble,
    write_ensemble_manifest,
)
from molchannel.finetune.config import FinetuneConfig, as_config
from molchannel.finetune.data import load_table
from molchannel.finetune.metrics import score
from molchannel.finetune.run import FinetuneResult, run_finetune


@dataclass
class EnsembleResult:
    """Outcome of :func:`run_ensemble`: the ensemble's test metric and its members'."""

    dataset: str
    seeds: list[int]
    task_type: str
    metric: str
    test_metric: float  # of the mean prediction over members; NaN without a test set
    member_test_metrics: list[float]
    member_valid_metrics: list[float]
    test_indices: np.ndarray
    test_predictions: np.ndarray  # [n_test, T] mean over members
    test_std: np.ndarray  # [n_test, T] spread over members (population std)
    run_dir: Path
    model_dir: Path
    members: list[FinetuneResult]
    # regression: test coverage of the conformal 90% intervals, Spearman of |error| and spread
    uncertainty: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.seeds)

    def to_json_dict(self) -> dict[str, Any]:
        skip = ("test_indices", "test_predictions", "test_std", "members")
        d = {k: v for k, v in asdict(self).items() if k not in skip}
        d["run_dir"], d["model_dir"] = str(self.run_dir), str(self.model_dir)
        d["member_run_dirs"] = [str(m.run_dir) for m in self.members]
        d["n_test"] = int(len(self.test_indices))
        return d


def run_ensemble(
    config: dict[str, Any] | FinetuneConfig,
    output_dir: str | Path,
    size: int,
    resume: bool = False,
    quiet: bool = False,
) -> EnsembleResult:
    """Fine-tune ``size`` members on one split and write the ensemble's run folder (module docstring)."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"the ensemble size must be a positive integer, got {size!r}")
    cfg = as_config(config)
    run_dir = Path(output_dir)
    members: list[FinetuneResult] = []
    for k in range(size):
        seed = cfg.seed + k
        member = replace(cfg, seed=seed)
        members.append(
            run_finetune(
                member, run_dir / "members" / f"seed{seed}", resume=resume, quiet=quiet, split_seed=cfg.seed
            )
        )
    rows = members[0].test_indices
    if any(not np.array_equal(m.test_indices, rows) for m in members[1:]):
        raise RuntimeError(f"the members in {run_dir / 'members'} were tested on different rows: start again")
    stacked = np.stack([m.test_predictions for m in members])
    mean, std = stacked.mean(axis=0), stacked.std(axis=0)
    table = load_table(cfg.data)
    metric = members[0].metric
    test_metric = score(metric, table.targets[rows], mean) if len(rows) else math.nan
    model_dir = run_dir / "model"
    seeds = [m.seed for m in members]
    manifest: dict[str, Any] = {"seeds": seeds, "dataset": cfg.name}
    copy_member_folders(model_dir, [m.model_dir for m in members], manifest)
    uncertainty: dict[str, Any] = {}
    ensemble = load_ensemble(model_dir)
    if ensemble.members[0].has_variance_head and len(rows):
        # the members' own variances add to their disagreement: score what the ensemble model predicts
        # (the spread the conformal calibration below is fitted on), not the member predictions alone
        mean, std = ensemble.predict([table.smiles[i] for i in rows], return_std=True)
        test_metric = score(metric, table.targets[rows], mean)
    if members[0].task_type == "regression":
        calibration = _calibrate(ensemble, table, members[0].run_dir)
        if calibration is not None:
            write_ensemble_manifest(model_dir, size, {**manifest, "calibration": calibration.to_dict()})
            uncertainty = _test_uncertainty(calibration, table.targets[rows], mean, std)
    result = EnsembleResult(
        dataset=cfg.name,
        seeds=seeds,
        task_type=members[0].task_type,
        metric=metric,
        test_metric=float(test_metric),
        member_test_metrics=[float(m.test_metric) for m in members],
        member_valid_metrics=[float(m.valid_metric) for m in members],
        test_indices=rows,
        test_predictions=mean,
        test_std=std,
        run_dir=run_dir,
        model_dir=model_dir,
        members=members,
        uncertainty=uncertainty,
    )
    _write_predictions(run_dir / "test_predictions.csv", table.target_names, table, rows, mean, std)
    write_text_atomic(run_dir / "result.json", json.dumps(result.to_json_dict(), indent=1) + "\n")
    return result


def _write_predictions(
    path: Path, names: list[str], table: Any, rows: np.ndarray, mean: np.ndarray, std: np.ndarray
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["row", "smiles", *names, *[f"predicted {n}" for n in names], *[f"std {n}" for n in names]]
    )
    for row, m, s in zip(rows, mean, std, strict=True):
        labels = ["" if np.isnan(v) else repr(float(v)) for v in table.targets[row]]
        writer.writerow(
            [int(row), table.smiles[row], *labels, *map(repr, map(float, m)), *map(repr, map(float, s))]
        )
    write_text_atomic(path, buffer.getvalue())


def _calibrate(ensemble: EnsembleModel, table: Any, member_run: Path) -> ConformalCalibration | None:
    """Conformal calibration on the members' validation rows (None when there are none)."""
    split = json.loads((member_run / "split.json").read_text(encoding="utf-8"))
    valid = np.asarray(split["valid"], dtype=np.int64)
    if not len(valid):
        return None
    mean, std = ensemble.predict([table.smiles[i] for i in valid], return_std=True)
    return ConformalCalibration.fit(table.targets[valid], mean, std)


def _test_uncertainty(
    calibration: ConformalCalibration, labels: np.ndarray, mean: np.ndarray, std: np.ndarray
) -> dict[str, Any]:
    """Empirical coverage of the 90% intervals on the test rows and how well the spread ranks the errors."""
    from scipy.stats import spearmanr

    if not len(labels):
        return {}
    half = calibration.half_width(std, 0.9)
    labelled = np.isfinite(labels)
    inside = (np.abs(labels - mean) <= half) & labelled
    error, spread = np.abs(labels - mean)[labelled], std[labelled]
    rho = float(spearmanr(error, spread).statistic) if len(error) > 2 else math.nan
    return {
        "coverage_90": float(inside.sum() / labelled.sum()),
        "mean_interval_width_90": float(2 * half[labelled].mean()),
        "spearman_abs_error_std": rho,
    }
