"""Pre-trained against scratch under several fine-tuning protocols: the gain, on validation and test.

Each ``--protocol LABEL=PRETRAINED,SCRATCH`` names two ``molchannel benchmark moleculenet`` folders (or
their ``results.csv``) fine-tuned with the same settings from the pre-trained model and from random
weights. Only the seeds both have are compared. Per dataset and protocol it reports the mean gain of the
pre-trained start (ROC-AUC points; RMSE in % of scratch's, positive = pre-trained better) on the
validation split, which a protocol may be chosen by, and on the test split, which reports it; and it
counts the sets where the gain reaches the noise floor of issue 10's acceptance (1 ROC-AUC point / 1%)::

    python benchmarks/pretraining_gain.py --output results/comparison/finetune-protocols-2026-12-07 \\
        --protocol "defaults=runs/bench10/default-2026-12-06,runs/bench10/scratch" \\
        --protocol "freeze 10 epochs=runs/bench12/lpft10-default,runs/bench12/lpft10-scratch"
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

WIN = {"roc_auc": 1.0, "rmse": 1.0}  # ROC-AUC points, % of scratch's RMSE


def read(path: Path) -> dict[str, dict[int, tuple[str, float, float]]]:
    """dataset -> seed -> (metric, valid, test) of a benchmark folder or results.csv."""
    if path.is_dir():
        path = path / "results.csv"
    out: dict[str, dict[int, tuple[str, float, float]]] = defaultdict(dict)
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            metric = row["metric"]
            out[row["dataset"]][int(row["seed"])] = (
                metric,
                float(row["valid_metric"]),
                float(row["test_metric"]),
            )
    return out


def gain(metric: str, pretrained: float, scratch: float) -> float:
    """Positive when the pre-trained start is better: ROC-AUC points, or RMSE saved in % of scratch's."""
    if metric == "roc_auc":
        return 100.0 * (pretrained - scratch)
    return 100.0 * (scratch - pretrained) / scratch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--protocol", action="append", required=True, metavar="LABEL=PRETRAINED,SCRATCH")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    rows = []
    for spec in args.protocol:
        label, _, paths = spec.partition("=")
        pre_path, _, scratch_path = paths.partition(",")
        pre, scratch = read(Path(pre_path)), read(Path(scratch_path))
        for dataset in sorted(set(pre) & set(scratch)):
            seeds = sorted(set(pre[dataset]) & set(scratch[dataset]))
            if not seeds:
                continue
            metric = pre[dataset][seeds[0]][0]
            pv = float(np.mean([pre[dataset][s][1] for s in seeds]))
            pt = float(np.mean([pre[dataset][s][2] for s in seeds]))
            sv = float(np.mean([scratch[dataset][s][1] for s in seeds]))
            st = float(np.mean([scratch[dataset][s][2] for s in seeds]))
            rows.append({
                "protocol": label, "dataset": dataset, "metric": metric, "seeds": " ".join(map(str, seeds)),
                "pretrained_valid": pv, "scratch_valid": sv, "gain_valid": gain(metric, pv, sv),
                "pretrained_test": pt, "scratch_test": st, "gain_test": gain(metric, pt, st),
            })  # fmt: skip
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "pretraining_gain.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    datasets = sorted({r["dataset"] for r in rows})
    labels = list(dict.fromkeys(r["protocol"] for r in rows))
    lines = [
        "Gain of the pre-trained start over scratch, validation / test (ROC-AUC points; RMSE saved in %; "
        "positive = pre-trained better), mean over the seeds both have.",
        "",
        "| protocol | " + " | ".join(datasets) + " | wins (valid / test) |",
        "|---|" + "---:|" * (len(datasets) + 1),
    ]
    for label in labels:
        by = {r["dataset"]: r for r in rows if r["protocol"] == label}
        cells = [
            f"{by[d]['gain_valid']:+.1f} / {by[d]['gain_test']:+.1f}" if d in by else "-" for d in datasets
        ]
        wins = [sum(by[d][f"gain_{k}"] >= WIN[by[d]["metric"]] for d in by) for k in ("valid", "test")]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {wins[0]} / {wins[1]} of {len(by)} |")
    (out / "pretraining_gain.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
