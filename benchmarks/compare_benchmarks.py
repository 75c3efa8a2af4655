"""Pre-trained vs from-scratch: one Markdown table from two `molchannel benchmark` output folders.

Reads each folder's ``summary.csv`` (mean ± std over seeds per dataset) and prints, per dataset
present in both, the two results and the pre-training gain (positive = better, in the metric's
unit: ROC-AUC points or RMSE reduction).

    python benchmarks/compare_benchmarks.py results/moleculenet/default results/moleculenet/scratch
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def read_summary(folder: Path) -> dict[str, dict[str, str]]:
    with open(folder / "summary.csv", newline="") as fh:
        return {row["dataset"]: row for row in csv.DictReader(fh)}


def _cell(fmt: str, row: dict) -> str:
    """mean ± std over seeds; a single seed has no spread to show."""
    mean = fmt.format(float(row["test_mean"]))
    return mean if int(row["n_seeds"]) < 2 else f"{mean} ± {fmt.format(float(row['test_std']))}"


def comparison_table(pretrained: dict[str, dict], scratch: dict[str, dict]) -> str:
    lines = [
        "| dataset | metric | pre-trained | from scratch | gain | seeds |",
        "|---|---|---:|---:|---:|---|",
    ]
    gains: dict[str, list[float]] = {}
    for name in [d for d in pretrained if d in scratch]:
        p, s = pretrained[name], scratch[name]
        higher_better = p["metric"] == "roc_auc"
        pm, sm = float(p["test_mean"]), float(s["test_mean"])
        gain = pm - sm if higher_better else sm - pm
        gains.setdefault(p["unit"], []).append(gain)
        fmt = "{:.1f}" if higher_better else "{:.3f}"
        lines.append(
            f"| {name} | {p['unit']} | {_cell(fmt, p)} | {_cell(fmt, s)} | {gain:+.3g} | {p['seeds']} |"
        )
    for unit, values in gains.items():
        lines.append(
            f"| **mean gain** | {unit} | | | **{sum(values) / len(values):+.3g}** | {len(values)} datasets |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("pretrained", type=Path, help="benchmark output folder of the pre-trained model")
    parser.add_argument("scratch", type=Path, help="benchmark output folder of the --scratch run")
    args = parser.parse_args()
    print(comparison_table(read_summary(args.pretrained), read_summary(args.scratch)))


if __name__ == "__main__":
    main()
