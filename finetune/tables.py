"""Benchmark tables from result records: per-run rows, per-dataset summaries, Markdown and a PNG.

Kept as one module: every function reads the same records, and the MoleculeNet and MoleculeACE
tables share the formatting and averaging helpers, so that both follow the conventions below.

Records are the JSON dicts that :mod:`molchannel.finetune.benchmark` writes, one per finished
(dataset, seed) fine-tuning run (``kind == "finetune"``) and one per dataset for the ECFP baselines
(``kind == "ecfp_svm"`` on MoleculeACE, ``kind == "ecfp_moleculenet"`` on MoleculeNet: SVM and RF).
Everything here is a pure function of those records.

Conventions: the test metric is the one at the epoch of best validation metric (the runner picks it);
"mean ± std" is over seeds, with the population standard deviation (``numpy.std``, ``ddof=0``) as in
the pre-training literature's tables; ROC-AUC is shown in %, as the published references.
An average over datasets is the mean of the per-dataset means; its ± is the std over seeds of the
per-seed averages, over the seeds that every averaged dataset has.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from molchannel.atomic import atomic_path, write_text_atomic
from molchannel.finetune.references import (
    MOLECULEACE_REFERENCE,
    MOLECULEACE_SVM_PER_DATASET,
    MOLECULEACE_SVM_PER_DATASET_SOURCE,
    MOLECULENET_COLUMNS,
    MOLECULENET_REFERENCE,
    MOLECULENET_REFERENCE_AVG,
)

DISPLAY_NAMES = {
    "bbbp": "BBBP", "tox21": "Tox21", "toxcast": "ToxCast", "sider": "SIDER", "clintox": "ClinTox",
    "muv": "MUV", "hiv": "HIV", "bace": "BACE", "esol": "ESOL", "freesolv": "FreeSolv",
    "lipophilicity": "Lipophilicity",
}  # fmt: skip
OUR_METHOD = "molchannel (this run)"


def display_name(dataset: str) -> str:
    return DISPLAY_NAMES.get(dataset, dataset)


def metric_scale(metric: str) -> float:
    """Factor from the stored metric to the shown one (ROC-AUC in %)."""
    return 100.0 if metric == "roc_auc" else 1.0


def metric_label(metric: str) -> str:
    return {"roc_auc": "ROC-AUC (%)", "rmse": "RMSE"}.get(metric, metric)


# ---- statistics ---------------------------------------------------------------------------
def mean_std(values: Iterable[float]) -> tuple[float, float, int]:
    """Mean, population std (``ddof=0``) and count of the finite values; NaNs when there are none."""
    finite = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return math.nan, math.nan, 0
    return float(finite.mean()), float(finite.std()), int(finite.size)


def average_over_datasets(per_dataset: Mapping[str, Mapping[int, float]]) -> tuple[float, float, int]:
    """Mean over datasets of the per-dataset seed means, and the std over seeds of per-seed averages.

    ``per_dataset`` maps dataset -> seed -> value. The std uses the seeds present in every dataset
    (NaN when there is none); the third value is that number of common seeds.
    """
    means = [mean_std(seeds.values())[0] for seeds in per_dataset.values()]
    means = [m for m in means if math.isfinite(m)]
    if not means:
        return math.nan, math.nan, 0
    common = set.intersection(*(set(seeds) for seeds in per_dataset.values())) if per_dataset else set()
    per_seed = [float(np.mean([per_dataset[d][s] for d in per_dataset])) for s in sorted(common)]
    _, std, _ = mean_std(per_seed)
    return float(np.mean(means)), std if per_seed else math.nan, len(per_seed)


def fmt(mean: float, std: float = math.nan, n: int = 1, digits: int = 3) -> str:
    """``"mean ± std"``; just the mean for one seed; an en dash for no value."""
    if not math.isfinite(mean):
        return "–"
    if n > 1 and math.isfinite(std):
        return f"{mean:.{digits}f} ± {std:.{digits}f}"
    return f"{mean:.{digits}f}"


# ---- files --------------------------------------------------------------------------------
def write_csv(
    path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
) -> Path:
    """Write ``rows`` (dicts) with ``columns`` as header, atomically; floats at full precision."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in columns})
    write_text_atomic(path, buf.getvalue())
    return Path(path)


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    if isinstance(value, dict):
        return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items())
    return value


def _seed_values(records: Iterable[Mapping[str, Any]], key: str) -> dict[str, dict[int, float]]:
    """``dataset -> seed -> value`` of ``key`` (metrics in display units), finite values only."""
    out: dict[str, dict[int, float]] = defaultdict(dict)
    for r in records:
        value = r.get(key)
        if value is None or not math.isfinite(value):
            continue
        scale = metric_scale(r["metric"]) if key in ("test_metric", "valid_metric") else 1.0
        out[r["dataset"]][int(r["seed"])] = float(value) * scale
    return dict(out)


def _order(datasets: Iterable[str], preferred: Sequence[str]) -> list[str]:
    names = set(datasets)
    return [d for d in preferred if d in names] + sorted(names - set(preferred))


# ---- MoleculeNet --------------------------------------------------------------------------
RESULT_COLUMNS_MOLECULENET = (
    "dataset", "seed", "task_type", "metric", "best_epoch", "valid_metric", "test_metric", "wall_time_s",
    "train_molecules_per_s", "channel_weights", "config_hash", "run_dir",
)  # fmt: skip
SUMMARY_COLUMNS_MOLECULENET = (
    "dataset", "task_type", "metric", "unit", "n_seeds", "seeds", "test_mean", "test_std", "valid_mean",
    "valid_std", "best_epoch_mean", "wall_time_s_mean", "train_molecules_per_s_mean", "ecfp_svm_test",
    "ecfp_rf_test_mean", "ecfp_rf_test_std", "ecfp_rf_seeds", "ecfp_svm_skipped", "ecfp_rf_skipped",
)  # fmt: skip
BASELINE_ROWS_MOLECULENET = (
    ("ECFP4 + SVM (Tanimoto, this run)", "ecfp_svm_test", None),
    ("ECFP4 + RF (this run)", "ecfp_rf_test_mean", "ecfp_rf_test_std"),
)


def moleculenet_result_rows(
    records: Iterable[Mapping[str, Any]], order: Sequence[str]
) -> list[dict[str, Any]]:
    """One row per (dataset, seed), metrics as stored (ROC-AUC as a fraction)."""
    rows = [dict(r) for r in records if r.get("kind") == "finetune"]
    rank = {d: i for i, d in enumerate(_order((r["dataset"] for r in rows), order))}
    return sorted(rows, key=lambda r: (rank[r["dataset"]], int(r["seed"])))


def summarize_moleculenet(records: Iterable[Mapping[str, Any]], order: Sequence[str]) -> list[dict[str, Any]]:
    """Per dataset: mean ± std over seeds of the test (and validation) metric, in display units, and the
    ECFP baselines of the same run where the benchmark computed them (NaN otherwise)."""
    by_dataset: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    baselines: dict[str, Mapping[str, Any]] = {}
    for r in records:
        if r.get("kind") == "finetune":
            by_dataset[r["dataset"]].append(r)
        elif r.get("kind") == "ecfp_moleculenet":
            baselines[r["dataset"]] = r
    rows = []
    for dataset in _order([*by_dataset, *baselines], order):
        runs = sorted(by_dataset.get(dataset, []), key=lambda r: int(r["seed"]))
        base = baselines.get(dataset, {})
        metric = runs[0]["metric"] if runs else base["metric"]
        scale = metric_scale(metric)
        test_mean, test_std, n = mean_std(scale * r["test_metric"] for r in runs)
        valid_mean, valid_std, _ = mean_std(scale * r["valid_metric"] for r in runs)
        rf = {int(k): scale * float(v) for k, v in base.get("rf_test_metric", {}).items()}
        rf_mean, rf_std, _ = mean_std(rf.values())
        rows.append({
            "dataset": dataset,
            "task_type": "classification" if metric == "roc_auc" else "regression",
            "metric": metric,
            "unit": metric_label(metric),
            "n_seeds": n,
            "seeds": [int(r["seed"]) for r in runs],
            "test_mean": test_mean,
            "test_std": test_std,
            "valid_mean": valid_mean,
            "valid_std": valid_std,
            "best_epoch_mean": mean_std(float(r["best_epoch"]) for r in runs)[0],
            "wall_time_s_mean": mean_std(float(r["wall_time_s"]) for r in runs)[0],
            "train_molecules_per_s_mean": mean_std(float(r["train_molecules_per_s"]) for r in runs)[0],
            "ecfp_svm_test": scale * float(base.get("svm_test_metric", math.nan)),
            "ecfp_rf_test_mean": rf_mean,
            "ecfp_rf_test_std": rf_std,
            "ecfp_rf_seeds": sorted(k for k, v in rf.items() if math.isfinite(v)),
            "ecfp_svm_skipped": base.get("svm_skipped"),
            "ecfp_rf_skipped": base.get("rf_skipped"),
        })  # fmt: skip
    return rows


def _baseline_lines(rows: Sequence[Mapping[str, Any]], digits: int, with_avg: bool) -> list[str]:
    """The ECFP rows of a MoleculeNet table (only when the benchmark computed them for some dataset)."""
    lines = []
    for label, mean_key, std_key in BASELINE_ROWS_MOLECULENET:
        means = [float(r[mean_key]) for r in rows]
        if not any(math.isfinite(m) for m in means):
            continue
        cells = []
        for r, mean in zip(rows, means, strict=True):
            std = float(r[std_key]) if std_key else math.nan
            cells.append(fmt(mean, std, len(r["ecfp_rf_seeds"]) if std_key else 1, digits))
        avg = float(np.mean(means)) if all(math.isfinite(m) for m in means) else math.nan
        tail = f" | {fmt(avg, digits=digits)} |" if with_avg else " |"
        lines.append(f"| {label} | " + " | ".join(cells) + tail)
    return lines


def moleculenet_markdown(
    summary: Sequence[Mapping[str, Any]],
    records: Iterable[Mapping[str, Any]],
    header: str = "",
    method: str = OUR_METHOD,
) -> str:
    """Markdown: the classification table beside the published rows, the regression table, run costs.

    ``method`` labels the row of ``summary`` (a peer's records, e.g. chemprop's, tabulate the same way).
    """
    records = [r for r in records if r.get("kind") == "finetune"]
    by_name = {row["dataset"]: row for row in summary}
    lines = [header] if header else []
    cls = [d for d in _order(by_name, MOLECULENET_COLUMNS) if by_name[d]["metric"] == "roc_auc"]
    reg = [d for d in _order(by_name, ()) if by_name[d]["metric"] != "roc_auc"]
    if cls:
        seeds = _seed_values([r for r in records if r["dataset"] in cls], "test_metric")
        avg, avg_std, n_common = average_over_datasets(seeds)
        referenced = [d for d in cls if d in MOLECULENET_COLUMNS]
        full = set(referenced) == set(MOLECULENET_COLUMNS) and len(cls) == len(MOLECULENET_COLUMNS)
        avg_head = "avg" if full else f"avg ({len(cls)} dataset{'s' if len(cls) > 1 else ''})"
        lines += [
            "## MoleculeNet classification: test ROC-AUC (%), higher is better",
            "",
            "Scaffold split 80/10/10; test metric at the epoch of best validation ROC-AUC; mean ± std over "
            "seeds. Published rows for comparison, as the MCL paper's comparison table gives them (sources "
            "below).",
            "",
            "| method | " + " | ".join(display_name(d) for d in cls) + f" | {avg_head} |",
            "|---|" + "---:|" * (len(cls) + 1),
            f"| **{method}** | "
            + " | ".join(fmt(by_name[d]["test_mean"], by_name[d]["test_std"], by_name[d]["n_seeds"], 1)
                         for d in cls)
            + f" | **{fmt(avg, avg_std, n_common, 1)}** |",
            *_baseline_lines([by_name[d] for d in cls], 1, with_avg=True),
        ]  # fmt: skip
        for ref in MOLECULENET_REFERENCE:
            cells = [fmt(ref.values[d], digits=1) if d in ref.values else "–" for d in cls]
            if full:
                ref_avg = MOLECULENET_REFERENCE_AVG[ref.method]
            elif len(referenced) == len(cls):
                ref_avg = float(np.mean([ref.values[d] for d in cls]))
            else:
                ref_avg = math.nan
            lines.append(f"| {ref.method} | " + " | ".join(cells) + f" | {fmt(ref_avg, digits=1)} |")
        lines.append("")
        if not full:
            lines += [
                f"The average is over the {len(cls)} dataset(s) above only (published rows recomputed over "
                "the same datasets), so it is not the published 8-dataset average.",
                "",
            ]
    if reg:
        lines += [
            "## MoleculeNet regression: test RMSE, lower is better",
            "",
            "| method | " + " | ".join(display_name(d) for d in reg) + " |",
            "|---|" + "---:|" * len(reg),
            f"| **{method}** | "
            + " | ".join(fmt(by_name[d]["test_mean"], by_name[d]["test_std"], by_name[d]["n_seeds"], 3)
                         for d in reg) + " |",
            *_baseline_lines([by_name[d] for d in reg], 3, with_avg=False),
            "",
            "The MCL paper's comparison table has no regression figures to print beside these.",
            "",
        ]  # fmt: skip
    skipped = [
        f"{display_name(r['dataset'])} ({r['ecfp_svm_skipped']})" for r in summary if r["ecfp_svm_skipped"]
    ]
    if skipped:
        lines += ["ECFP4 + SVM not fitted on: " + "; ".join(skipped) + ".", ""]
    no_forest = [
        f"{display_name(r['dataset'])} ({r['ecfp_rf_skipped']})" for r in summary if r.get("ecfp_rf_skipped")
    ]
    if no_forest:
        lines += ["ECFP4 + RF not grown on: " + "; ".join(no_forest) + ".", ""]
    if any(math.isfinite(r["ecfp_rf_test_mean"]) for r in summary):
        lines += [
            "ECFP rows: ECFP4 bits (2,048) on the same split; SVM with a Tanimoto kernel and C chosen on the "
            "validation split (deterministic: one figure), RF with 500 trees per seed "
            "(`molchannel.finetune.moleculenet_baselines`).",
            "",
        ]
    lines += _cost_table(summary)
    lines += _sources([ref.source for ref in MOLECULENET_REFERENCE] if cls else [])
    return "\n".join(lines)


def _cost_table(summary: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = [
        "## Runs",
        "",
        "| dataset | seeds | mean best epoch | wall time per run (s) | fine-tuning molecules/s |",
        "|---|---|---:|---:|---:|",
    ]
    for row in summary:
        lines.append(
            f"| {display_name(row['dataset'])} | {' '.join(str(s) for s in row['seeds'])} | "
            f"{fmt(row['best_epoch_mean'], digits=1)} | {fmt(row['wall_time_s_mean'], digits=1)} | "
            f"{fmt(row['train_molecules_per_s_mean'], digits=0)} |"
        )
    return [*lines, ""]


def _sources(sources: Iterable[str]) -> list[str]:
    unique = list(dict.fromkeys(sources))
    if not unique:
        return []
    return ["Sources of the published figures:", "", *[f"- {s}" for s in unique], ""]


# ---- MoleculeACE --------------------------------------------------------------------------
RESULT_COLUMNS_MOLECULEACE = (
    "dataset", "method", "seed", "rmse", "cliff_rmse", "n_test", "n_cliff_test", "best_epoch", "valid_metric",
    "wall_time_s", "train_molecules_per_s", "best_params", "config_hash", "run_dir",
)  # fmt: skip
SUMMARY_COLUMNS_MOLECULEACE = (
    "dataset", "n_test", "n_cliff_test", "n_seeds", "seeds", "rmse_mean", "rmse_std", "cliff_rmse_mean",
    "cliff_rmse_std", "svm_rmse", "svm_cliff_rmse", "svm_C", "svm_gamma", "published_svm_rmse",
    "published_svm_cliff_rmse", "wall_time_s_mean", "train_molecules_per_s_mean", "svm_wall_time_s",
)  # fmt: skip


def moleculeace_result_rows(
    records: Iterable[Mapping[str, Any]], order: Sequence[str]
) -> list[dict[str, Any]]:
    """One row per (dataset, seed) of our model (``method="molchannel"``) and one per dataset of the SVM."""
    rows = []
    for r in records:
        if r.get("kind") == "finetune":
            rows.append({**r, "method": "molchannel"})
        elif r.get("kind") == "ecfp_svm":
            rows.append({**r, "method": "ecfp_svm", "seed": None})
    rank = {d: i for i, d in enumerate(_order((r["dataset"] for r in rows), order))}
    return sorted(rows, key=lambda r: (rank[r["dataset"]], r["method"] != "molchannel", r["seed"] or 0))


def summarize_moleculeace(records: Iterable[Mapping[str, Any]], order: Sequence[str]) -> list[dict[str, Any]]:
    """Per dataset: our RMSE and cliff-RMSE (mean ± std over seeds) beside the SVM's."""
    ours: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    svm: dict[str, Mapping[str, Any]] = {}
    for r in records:
        if r.get("kind") == "finetune":
            ours[r["dataset"]].append(r)
        elif r.get("kind") == "ecfp_svm":
            svm[r["dataset"]] = r
    rows = []
    for dataset in _order(set(ours) | set(svm), order):
        runs = sorted(ours.get(dataset, []), key=lambda r: int(r["seed"]))
        base = svm.get(dataset, {})
        rmse_mean, rmse_std, n = mean_std(r["rmse"] for r in runs)
        cliff_mean, cliff_std, _ = mean_std(r["cliff_rmse"] for r in runs)
        params = base.get("best_params", {})
        first = runs[0] if runs else base
        published = MOLECULEACE_SVM_PER_DATASET.get(dataset, (math.nan, math.nan))
        rows.append({
            "dataset": dataset,
            "n_test": first.get("n_test"),
            "n_cliff_test": first.get("n_cliff_test"),
            "n_seeds": n,
            "seeds": [int(r["seed"]) for r in runs],
            "rmse_mean": rmse_mean,
            "rmse_std": rmse_std,
            "cliff_rmse_mean": cliff_mean,
            "cliff_rmse_std": cliff_std,
            "svm_rmse": base.get("rmse", math.nan),
            "svm_cliff_rmse": base.get("cliff_rmse", math.nan),
            "svm_C": params.get("C"),
            "svm_gamma": params.get("gamma"),
            "published_svm_rmse": published[0],
            "published_svm_cliff_rmse": published[1],
            "wall_time_s_mean": mean_std(float(r["wall_time_s"]) for r in runs)[0],
            "train_molecules_per_s_mean": mean_std(float(r["train_molecules_per_s"]) for r in runs)[0],
            "svm_wall_time_s": base.get("wall_time_s", math.nan),
        })  # fmt: skip
    return rows


def moleculeace_means(records: Iterable[Mapping[str, Any]]) -> dict[str, tuple[float, float, int, int]]:
    """Averages over datasets: ``key -> (mean, std over seeds, n common seeds, n datasets)``."""
    records = list(records)
    ours = [r for r in records if r.get("kind") == "finetune"]
    svm = [r for r in records if r.get("kind") == "ecfp_svm"]
    out = {}
    for key in ("rmse", "cliff_rmse"):
        per = _seed_values(ours, key)
        mean, std, n_common = average_over_datasets(per)
        out[key] = (mean, std, n_common, len(per))
        values = [r[key] for r in svm if r.get(key) is not None and math.isfinite(r[key])]
        out[f"svm_{key}"] = (float(np.mean(values)) if values else math.nan, math.nan, 1, len(values))
    return out


def moleculeace_markdown(
    summary: Sequence[Mapping[str, Any]], records: Iterable[Mapping[str, Any]], header: str = ""
) -> str:
    """Markdown: per-dataset RMSE / cliff-RMSE of our model beside ECFP + SVM, then the averages."""
    means = moleculeace_means(records)
    lines = [header] if header else []
    lines += [
        "## MoleculeACE: test RMSE on all molecules and on activity-cliff molecules, lower is better",
        "",
        "Official train/test split; our model: mean ± std over seeds, test at the epoch of best validation "
        "RMSE (validation drawn from the training set). ECFP + SVM: MoleculeACE's protocol, computed in this "
        "run (molchannel.finetune.baselines) on the registered data files; *published*: MoleculeACE's own "
        "results file, which seems to predate revisions of some dataset files: compare single datasets with "
        "the ECFP+SVM column of this run.",
        "",
        "| dataset | test | cliff | molchannel RMSE | ECFP+SVM RMSE | *published* | molchannel cliff-RMSE | "
        "ECFP+SVM cliff-RMSE | *published* |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in summary:
        n_test = "–" if row["n_test"] is None else row["n_test"]
        n_cliff = "–" if row["n_cliff_test"] is None else row["n_cliff_test"]
        lines.append(
            f"| {row['dataset']} | {n_test} | {n_cliff} | "
            f"{fmt(row['rmse_mean'], row['rmse_std'], row['n_seeds'])} | {fmt(row['svm_rmse'])} | "
            f"*{fmt(row['published_svm_rmse'])}* | "
            f"{fmt(row['cliff_rmse_mean'], row['cliff_rmse_std'], row['n_seeds'])} | "
            f"{fmt(row['svm_cliff_rmse'])} | *{fmt(row['published_svm_cliff_rmse'])}* |"
        )
    published_r = _nanmean([row["published_svm_rmse"] for row in summary])
    published_c = _nanmean([row["published_svm_cliff_rmse"] for row in summary])
    ours_r, ours_c = means["rmse"], means["cliff_rmse"]
    svm_r, svm_c = means["svm_rmse"], means["svm_cliff_rmse"]
    lines += [
        f"| **mean** | | | **{fmt(ours_r[0], ours_r[1], ours_r[2])}** | **{fmt(svm_r[0])}** | "
        f"*{fmt(published_r)}* | **{fmt(ours_c[0], ours_c[1], ours_c[2])}** | **{fmt(svm_c[0])}** | "
        f"*{fmt(published_c)}* |",
        "",
        "## MoleculeACE averages beside the published means",
        "",
        "| method | datasets | RMSE | cliff-RMSE |",
        "|---|---:|---:|---:|",
        f"| **{OUR_METHOD}** | {ours_r[3]} | {fmt(ours_r[0], ours_r[1], ours_r[2])} | "
        f"{fmt(ours_c[0], ours_c[1], ours_c[2])} |",
        f"| ECFP + SVM (this run) | {svm_r[3]} | {fmt(svm_r[0])} | {fmt(svm_c[0])} |",
        f"| ECFP + SVM (MoleculeACE results file, same datasets) | {len(summary)} | {fmt(published_r)} | "
        f"{fmt(published_c)} |",
    ]
    for ref in MOLECULEACE_REFERENCE:
        lines.append(f"| {ref.method} | 30 | {fmt(ref.rmse)} | {fmt(ref.cliff_rmse)} |")
    lines.append("")
    if ours_r[3] != svm_r[3] and ours_r[3] and svm_r[3]:
        lines += [
            "Our model and the SVM were averaged over different sets of datasets; compare per dataset.",
            "",
        ]
    if 0 < max(ours_r[3], svm_r[3]) < 30:
        lines += [
            f"Averages over {max(ours_r[3], svm_r[3])} of the 30 datasets are not comparable with the "
            "published means of all 30.",
            "",
        ]
    lines += _cost_table_ace(summary)
    lines += _sources([*(ref.source for ref in MOLECULEACE_REFERENCE), MOLECULEACE_SVM_PER_DATASET_SOURCE])
    return "\n".join(lines)


def _cost_table_ace(summary: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = [
        "## Runs",
        "",
        "| dataset | seeds | wall time per run (s) | fine-tuning molecules/s | SVM C | SVM gamma "
        "| SVM time (s) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in summary:
        c_value = "–" if row["svm_C"] is None else f"{row['svm_C']:g}"
        gamma = "–" if row["svm_gamma"] is None else f"{row['svm_gamma']:g}"
        seeds = " ".join(str(s) for s in row["seeds"]) or "–"
        lines.append(
            f"| {row['dataset']} | {seeds} | {fmt(row['wall_time_s_mean'], digits=1)} | "
            f"{fmt(row['train_molecules_per_s_mean'], digits=0)} | {c_value} | {gamma} | "
            f"{fmt(row['svm_wall_time_s'], digits=1)} |"
        )
    return [*lines, ""]


# ---- pictures -----------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, output: str | os.PathLike[str]) -> Path:
    out = Path(output)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    _pyplot().close(fig)
    return out


def plot_moleculenet(summary: Sequence[Mapping[str, Any]], output: str | os.PathLike[str]) -> Path:
    """Bars with std error bars per dataset (ROC-AUC % and RMSE panels), published rows as markers."""
    plt = _pyplot()
    cls = [r for r in summary if r["metric"] == "roc_auc"]
    reg = [r for r in summary if r["metric"] != "roc_auc"]
    panels = [(rows, label) for rows, label in ((cls, "test ROC-AUC (%)"), (reg, "test RMSE")) if rows]
    widths = [max(len(rows), 2) for rows, _ in panels] or [2]
    fig, axes = plt.subplots(
        1, len(panels) or 1, figsize=(1.0 + 0.9 * sum(widths), 4.8), squeeze=False,
        gridspec_kw={"width_ratios": widths},
    )  # fmt: skip
    markers = "ovs^D"
    for ax, (rows, label) in zip(axes.flat, panels, strict=False):
        x = np.arange(len(rows))
        means = [r["test_mean"] for r in rows]
        stds = [r["test_std"] if r["n_seeds"] > 1 else 0.0 for r in rows]
        ax.bar(x, means, yerr=stds, capsize=4, color="tab:blue", alpha=0.8, label=OUR_METHOD)
        for (name, key, _), marker in zip(BASELINE_ROWS_MOLECULENET, "x+", strict=True):
            pts = [(i, r[key]) for i, r in enumerate(rows) if math.isfinite(r.get(key, math.nan))]
            if pts:
                ax.scatter(*zip(*pts, strict=True), marker=marker, s=40, color="black", zorder=4, label=name)
        if rows is cls:
            for ref, marker in zip(MOLECULENET_REFERENCE, markers, strict=False):
                pts = [
                    (i, ref.values[r["dataset"]]) for i, r in enumerate(rows) if r["dataset"] in ref.values
                ]
                if pts:
                    ax.scatter(*zip(*pts, strict=True), marker=marker, s=22, zorder=3, label=ref.method)
            ecfp = [r[key] for r in rows for _, key, _ in BASELINE_ROWS_MOLECULENET]
            shown = [*means, *ecfp, *(v for ref in MOLECULENET_REFERENCE for v in ref.values.values())]
            low = min(v for v in shown if math.isfinite(v))
            ax.set_ylim(max(0.0, low - 10.0), 100.0)
        ax.set_xticks(x, [display_name(r["dataset"]) for r in rows], rotation=30, ha="right")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    legend: dict[str, Any] = {}  # one entry per label over both panels
    for ax in axes.flat:
        for handle, text in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(text, handle)
    fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle("MoleculeNet, scaffold split (mean ± std over seeds)")
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    return _save(fig, output)


def plot_moleculeace(summary: Sequence[Mapping[str, Any]], output: str | os.PathLike[str]) -> Path:
    """Grouped bars per dataset and for the mean: our model (± std over seeds) beside ECFP + SVM."""
    plt = _pyplot()
    names = [r["dataset"] for r in summary] + ["mean"]
    n = len(names)
    fig, axes = plt.subplots(2, 1, figsize=(max(7.0, 0.42 * n + 2.0), 8.0), sharex=True)
    x = np.arange(n, dtype=float)
    x[-1] += 0.5  # set the mean apart
    svm_ref = next((r for r in MOLECULEACE_REFERENCE if r.method.startswith("ECFP")), None)
    for ax, key, label in ((axes[0], "rmse", "test RMSE"), (axes[1], "cliff_rmse", "test cliff-RMSE")):
        ours = [r[f"{key}_mean"] for r in summary]
        err = [r[f"{key}_std"] if r["n_seeds"] > 1 else 0.0 for r in summary]
        svm = [r[f"svm_{key}"] for r in summary]
        ours.append(_nanmean(ours))
        err.append(0.0)
        svm.append(_nanmean(svm))
        ax.bar(x - 0.2, ours, 0.4, yerr=err, capsize=2, color="tab:blue", label="molchannel")
        ax.bar(x + 0.2, svm, 0.4, color="tab:gray", label="ECFP + SVM (this run)")
        published = [r[f"published_svm_{key}"] for r in summary]
        published.append(_nanmean(published))
        ax.scatter(x + 0.2, published, marker="_", s=120, color="black", zorder=3,
                   label="ECFP + SVM (MoleculeACE results file)")  # fmt: skip
        top = [v for v in (*ours, *svm, *published) if math.isfinite(v)]
        if svm_ref is not None:
            ref_value = svm_ref.rmse if key == "rmse" else svm_ref.cliff_rmse
            top.append(ref_value)
            ax.axhline(
                ref_value,
                color="black",
                ls="--",
                lw=1,
                label=f"ECFP + SVM published mean of 30 ({ref_value})",
            )
        ax.set_ylim(0.0, 1.3 * max(top, default=1.0))
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", ncol=3)
    axes[1].set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    fig.suptitle("MoleculeACE, official split (lower is better)")
    fig.tight_layout()
    return _save(fig, output)


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan
