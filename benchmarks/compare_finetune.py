"""One table of fine-tuning results beside their peers: molchannel runs, chemprop v2, ECFP baselines.

Reads ``results.csv`` files (one row per dataset and seed, ``test_metric`` as a fraction for ROC-AUC and in
original units for RMSE), as written by ``molchannel benchmark moleculenet``, ``benchmarks/chemprop_peer.py``
and ``benchmarks/ecfp_moleculenet.py`` (which holds several methods, told apart by its ``method`` column).
Writes a markdown table (mean ± std over seeds, best per dataset in bold), the count of datasets on which
each row beats the reference row (by at least the noise: 0.5 ROC-AUC points, 1% RMSE) and a bar plot::

    python benchmarks/compare_finetune.py --output results/comparison/finetune \\
        --run "molchannel (defaults)=runs/bench11/defaults" \\
        --run "molchannel + rdkit2d=runs/bench11/rdkit2d" \\
        --run "chemprop 2.3.1=results/peers/chemprop/results.csv" \\
        --run "ECFP=results/peers/ecfp/results.csv" --reference "chemprop 2.3.1"
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from molchannel.data.registry import get_dataset_spec

ORDER = (
    "bbbp",
    "bace",
    "clintox",
    "sider",
    "tox21",
    "toxcast",
    "hiv",
    "muv",
    "esol",
    "freesolv",
    "lipophilicity",
)


def read_runs(label: str, path: Path) -> dict[str, dict[str, list[float]]]:
    """``{row label: {dataset: [test metric per seed]}}`` of a results.csv or a benchmark folder; files with a
    ``method`` column (the ECFP baselines) give one row per method."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    if path.is_dir():  # a benchmark output folder, read from its per-run records (also while it runs)
        for record in sorted(path.glob("records/*/seed*.json")):
            if record.name.endswith(".started.json"):
                continue
            d = json.loads(record.read_text(encoding="utf-8"))
            out[label][d["dataset"]].append(float(d["test_metric"]))
        # the ECFP baselines the benchmark computed beside its runs: one row per method
        for record in sorted(path.glob("records/*/ecfp_moleculenet.json")):
            d = json.loads(record.read_text(encoding="utf-8"))
            if d["svm_skipped"] is None:
                out["ECFP4 + SVM"][d["dataset"]].append(float(d["svm_test_metric"]))
            forests = [float(v) for v in d["rf_test_metric"].values() if math.isfinite(float(v))]
            if forests:  # none when the benchmark did not grow them (ToxCast's 617 tasks)
                out["ECFP4 + RF"][d["dataset"]].extend(forests)
        return out
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            name = row["method"] if "method" in row and row["method"] else label
            out[name][row["dataset"]].append(float(row["test_metric"]))
    return out


def _is_classification(dataset: str) -> bool:
    return get_dataset_spec(dataset).task_type == "classification"


def _display(metric_values: list[float], classification: bool) -> tuple[float, float]:
    values = np.asarray(metric_values) * (100.0 if classification else 1.0)
    return float(values.mean()), float(values.std()) if len(values) > 1 else float("nan")


def build_table(rows: dict[str, dict[str, list[float]]], reference: str | None) -> tuple[str, list[str]]:
    datasets = [d for d in ORDER if any(d in r for r in rows.values())]
    classification = {d: _is_classification(d) for d in datasets}
    means = {
        label: {d: _display(r[d], classification[d])[0] for d in datasets if d in r}
        for label, r in rows.items()
    }
    best = {}
    for d in datasets:
        candidates = [(m[d], label) for label, m in means.items() if d in m]
        best[d] = (max if classification[d] else min)(candidates)[1]
    header = (
        "| method | "
        + " | ".join(f"{d} ({'ROC-AUC % ↑' if classification[d] else 'RMSE ↓'})" for d in datasets)
        + " | seeds |"
    )
    lines = [header, "|---|" + "---:|" * len(datasets) + "---|"]
    for label, r in rows.items():
        cells = []
        for d in datasets:
            if d not in r:
                cells.append("")
                continue
            mean, std = _display(r[d], classification[d])
            fmt = "{:.1f}" if classification[d] else "{:.3f}"
            text = fmt.format(mean) + ("" if np.isnan(std) else " ± " + fmt.format(std))
            cells.append(f"**{text}**" if best[d] == label else text)
        seeds = sorted({len(v) for v in r.values()})
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {'/'.join(map(str, seeds))} |")
    notes: list[str] = []
    if reference is not None and reference in means:
        for label, m in means.items():
            if label == reference:
                continue
            wins = []
            for d in datasets:
                if d not in m or d not in means[reference]:
                    continue
                ours, ref = m[d], means[reference][d]
                if (classification[d] and ours >= ref + 0.5) or (
                    not classification[d] and ours <= 0.99 * ref
                ):
                    wins.append(d)
            compared = sum(1 for d in datasets if d in m and d in means[reference])
            notes.append(
                f"{label} beats {reference} on {len(wins)} of {compared} datasets ({', '.join(wins) or '-'})"
            )
    return "\n".join(lines), notes


def plot(rows: dict[str, dict[str, list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = [d for d in ORDER if any(d in r for r in rows.values())]
    fig, axes = plt.subplots(1, len(datasets), figsize=(2.6 * len(datasets), 3.2), squeeze=False)
    for ax, d in zip(axes[0], datasets, strict=True):
        classification = _is_classification(d)
        labels = [label for label, r in rows.items() if d in r]
        stats = [_display(rows[label][d], classification) for label in labels]
        ax.bar(range(len(labels)), [s[0] for s in stats], yerr=[0 if np.isnan(s[1]) else s[1] for s in stats],
               color=[f"C{i}" for i in range(len(labels))])  # fmt: skip
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_title(f"{d} ({'ROC-AUC % ↑' if classification else 'RMSE ↓'})", fontsize=9)
        lo = min(s[0] for s in stats)
        ax.set_ylim(lo * 0.9 if classification else 0, None)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--run", action="append", required=True, metavar="LABEL=RESULTS_CSV",
        help="a results.csv or a benchmark folder; repeat a label to pool datasets or seeds run apart",
    )  # fmt: skip
    parser.add_argument("--reference", default=None, help="row label that the others are counted against")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    rows: dict[str, dict[str, list[float]]] = {}
    for item in args.run:
        label, _, path = item.partition("=")
        if not path:
            parser.error(f"--run expects LABEL=RESULTS_CSV, got {item!r}")
        # the same label may come from several files (datasets or seeds run apart): their values are pooled
        for name, datasets in read_runs(label, Path(path)).items():
            for dataset, values in datasets.items():
                rows.setdefault(name, {}).setdefault(dataset, []).extend(values)
    table, notes = build_table(rows, args.reference)
    args.output.mkdir(parents=True, exist_ok=True)
    text = [
        "# Fine-tuning beside its peers (test metric, scaffold split, mean ± std over seeds)",
        "",
        table,
        "",
    ]
    text += [f"- {n}" for n in notes]
    text += ["", "Sources: " + "; ".join(args.run)]
    (args.output / "comparison.md").write_text("\n".join(text) + "\n", encoding="utf-8")
    plot(rows, args.output / "comparison.png")
    print("\n".join(text))


if __name__ == "__main__":
    main()
