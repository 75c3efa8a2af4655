"""MoleculeNet with ``model.kernel_blend``: the blend beside the network alone (same runs) and ECFP peers.

Reads the records of ``molchannel benchmark moleculenet --set model.kernel_blend=ecfp_svc`` (or ``ecfp_svr``;
each record holds the blend's test metric and the network's own, ``network_test_metric``) and, optionally,
peer tables in the ``benchmarks/ecfp_moleculenet.py`` / ``benchmarks/chemprop_peer.py`` format, and writes a
Markdown table (mean ± std over seeds), its CSV and a per-run ``results.csv``::

    python benchmarks/summarize_moleculenet_blend.py runs/bench11/blend-cls \\
        --peers results/peers/ecfp/summary.csv results/peers/ecfp-more/summary.csv \\
        --output results/moleculenet/kernel-blend-cls-2026-12-06
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from molchannel.finetune.tables import display_name, metric_scale


def read_runs(folders: list[Path]) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = defaultdict(list)
    for folder in folders:
        for path in sorted(folder.glob("records/*/seed*.json")):
            record = json.loads(path.read_text(encoding="utf-8"))
            if record.get("kind") == "finetune" and "network_test_metric" in record:
                runs[record["dataset"]].append(record)
    return runs


def read_peers(paths: list[Path]) -> dict[tuple[str, str], float]:
    """(dataset, method) -> mean test metric, from peer summary.csv files (mean over seeds)."""
    peers = {}
    for path in paths:
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                peers[(row["dataset"], row["method"])] = float(row["mean"])
    return peers


def _fmt(values: list[float], digits: int) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("benchmarks", nargs="+", type=Path, help="`molchannel benchmark moleculenet` folders")
    parser.add_argument("--peers", nargs="*", type=Path, default=[], help="peer summary.csv files")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    runs = read_runs(args.benchmarks)
    peers = read_peers(args.peers)
    methods = sorted({m for _, m in peers})
    lines = [
        "| dataset | metric | seeds | network alone (same runs) | + ECFP-SVM blend | network weight | "
        + " | ".join(methods)
        + (" |" if methods else ""),
        "|---|---|---|---:|---:|---|" + "---:|" * len(methods),
    ]
    rows = []
    for dataset, records in runs.items():
        records.sort(key=lambda r: int(r["seed"]))
        metric = records[0]["metric"]
        scale, digits = metric_scale(metric), (1 if metric == "roc_auc" else 3)
        network = [scale * r["network_test_metric"] for r in records]
        blend = [scale * r["test_metric"] for r in records]
        weights = [" ".join(f"{w:.2f}" for w in r["network_weights"]) for r in records]
        if len(records[0]["network_weights"]) > 3:  # many tasks: the mean weight per seed
            weights = [f"mean {np.mean(r['network_weights']):.2f}" for r in records]
        peer_cells = [
            f"{scale * peers[(dataset, m)]:.{digits}f}" if (dataset, m) in peers else "–" for m in methods
        ]
        seeds = " ".join(str(r["seed"]) for r in records)
        cells = [
            display_name(dataset),
            metric,
            seeds,
            _fmt(network, digits),
            _fmt(blend, digits),
            ", ".join(weights),
        ]
        lines.append("| " + " | ".join(cells + peer_cells) + " |")
        row = {"dataset": dataset, "metric": metric, "seeds": seeds, "network_mean": np.mean(network),
               "network_std": np.std(network), "blend_mean": np.mean(blend), "blend_std": np.std(blend),
               "network_weights": "; ".join(weights)}  # fmt: skip
        row.update({m: scale * peers[(dataset, m)] for m in methods if (dataset, m) in peers})
        rows.append(row)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "blend.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with open(args.output / "blend.csv", "w", newline="") as fh:
        columns = list(dict.fromkeys(k for r in rows for k in r))
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    with open(args.output / "results.csv", "w", newline="") as fh:  # one row per run, for compare_finetune
        writer = csv.writer(fh)
        writer.writerow(
            ["dataset", "seed", "metric", "test_metric", "network_test_metric", "network_weights"]
        )
        for dataset, records in runs.items():
            for r in records:
                weights = " ".join(f"{w:.2f}" for w in r["network_weights"])
                writer.writerow(
                    [dataset, r["seed"], r["metric"], r["test_metric"], r["network_test_metric"], weights]
                )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
