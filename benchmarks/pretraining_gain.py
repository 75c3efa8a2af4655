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

A side may join several folders with ``+`` (``A+B,C+D``): one protocol run over several sessions, read
as one (a dataset and seed from the first folder that has it). Below the table, each protocol's reading
of issue 10's acceptance: classification sets won and their mean gain, regression sets won (on test). The
plot, ``pretraining_gain.png``, draws each protocol's test gain per dataset, its validation gain as a
marker.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

WIN = {"roc_auc": 1.0, "rmse": 1.0}  # ROC-AUC points, % of scratch's RMSE


def read(paths: str) -> dict[str, dict[int, tuple[str, float, float]]]:
    """dataset -> seed -> (metric, valid, test) of benchmark folders or results.csv files joined by ``+``;
    a dataset and seed is taken from the first that has it."""
    out: dict[str, dict[int, tuple[str, float, float]]] = defaultdict(dict)
    for part in paths.split("+"):
        path = Path(part)
        if path.is_dir():
            path = path / "results.csv"
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                out[row["dataset"]].setdefault(
                    int(row["seed"]),
                    (row["metric"], float(row["valid_metric"]), float(row["test_metric"])),
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
        pre, scratch = read(pre_path), read(scratch_path)
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
    if not rows:
        raise SystemExit("no dataset has seeds in both folders of any --protocol: nothing to compare")
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
    lines += [
        "",
        "Test wins, counting a gain of at least 1 ROC-AUC point or 1% of RMSE (the project's goal for a "
        "pre-trained start: >= 6 of 8 classification sets with a mean gain >= +2.0 ROC-AUC points, and all 3 "
        "regression sets):",
        "",
        *(acceptance([r for r in rows if r["protocol"] == label]) for label in labels),
    ]
    (out / "pretraining_gain.md").write_text("\n".join(lines) + "\n")
    plot(rows, datasets, labels, out / "pretraining_gain.png")
    print("\n".join(lines))


def acceptance(rows: list[dict]) -> str:
    """One protocol's rows read against the project's goal, on test: classification sets won (>= 1 point)
    and their mean gain (goal: >= 6 of 8, mean >= +2.0 points), regression sets won (>= 1%; goal: all 3)."""
    cls = [r for r in rows if r["metric"] == "roc_auc"]
    reg = [r for r in rows if r["metric"] != "roc_auc"]
    won_cls = sum(r["gain_test"] >= WIN["roc_auc"] for r in cls)
    won_reg = sum(r["gain_test"] >= WIN["rmse"] for r in reg)
    mean_cls = float(np.mean([r["gain_test"] for r in cls])) if cls else float("nan")
    return (
        f"- {rows[0]['protocol']}: {won_cls} of {len(cls)} classification sets (mean gain "
        f"{mean_cls:+.1f} points), {won_reg} of {len(reg)} regression sets"
    )


def plot(rows: list[dict], datasets: list[str], labels: list[str], path: Path) -> None:
    """Test gain per dataset as bars (one per protocol), validation gain as a marker on each bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(datasets) * max(1, len(labels)) ** 0.5), 3.8))
    for k, label in enumerate(labels):
        by = {r["dataset"]: r for r in rows if r["protocol"] == label}
        present = [d for d in datasets if d in by]
        xs = [datasets.index(d) + (k - (len(labels) - 1) / 2) * width for d in present]
        ax.bar(xs, [by[d]["gain_test"] for d in present], width, label=f"{label} (test)")
        ax.scatter(xs, [by[d]["gain_valid"] for d in present], marker="_", s=200, color="black", zorder=3,
                   label="validation" if k == 0 else None)  # fmt: skip
    ax.axhline(0.0, color="grey", linewidth=0.8)
    for level in (-WIN["roc_auc"], WIN["roc_auc"]):
        ax.axhline(level, color="grey", linewidth=0.5, linestyle=":")
    ax.set_xticks(range(len(datasets)), datasets, rotation=30, ha="right")
    ax.set_ylabel("pre-trained gain over scratch\n(ROC-AUC points / % RMSE saved)")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
