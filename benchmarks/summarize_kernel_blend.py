"""MoleculeACE with ``model.kernel_blend: ecfp_svr``: the blend, the network alone and ECFP + SVM, one run.

Reads the records of ``molchannel benchmark moleculeace --set model.kernel_blend=ecfp_svr`` (each holds
the blend's test predictions and the network's own, ``network_rmse`` / ``network_cliff_rmse``) and the
ECFP + SVM baseline records of the same output folders, and writes per dataset and overall the mean over
seeds of RMSE and cliff-RMSE, the blend weight, a Markdown table and a plot:

    python benchmarks/summarize_kernel_blend.py --runs runs/ace-blend/half0 runs/ace-blend/half1 \\
        --output results/moleculeace/kernel-blend-2026-12-06

``--baselines`` reads the ECFP + SVM records from other folders (a ``--scratch --no-baseline`` run).
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

METHODS = ("blend", "network", "ecfp_svm")


def read_records(folders: list[Path]) -> tuple[dict[str, dict[int, dict]], dict[str, dict]]:
    runs: dict[str, dict[int, dict]] = defaultdict(dict)
    svm: dict[str, dict] = {}
    for folder in folders:
        for path in sorted(folder.glob("records/*/*.json")):
            if path.name.endswith(".started.json"):
                continue
            record = json.loads(path.read_text())
            if record.get("kind") == "ecfp_svm":
                svm[record["dataset"]] = record
            elif record.get("kind") == "finetune" and "network_cliff_rmse" in record:
                runs[record["dataset"]][int(record["seed"])] = record
    return runs, svm


def summarize(runs: dict[str, dict[int, dict]], svm: dict[str, dict], seeds: list[int]) -> list[dict]:
    """One row per dataset that has every seed and a baseline: means over seeds."""
    rows = []
    for dataset in sorted(runs):
        if dataset not in svm or any(s not in runs[dataset] for s in seeds):
            continue
        chosen = [runs[dataset][s] for s in seeds]
        row = {"dataset": dataset, "n_seeds": len(seeds)}
        for key, name in (("", "blend"), ("network_", "network")):
            row[f"{name}_rmse"] = float(np.mean([r[f"{key}rmse"] for r in chosen]))
            row[f"{name}_cliff_rmse"] = float(np.mean([r[f"{key}cliff_rmse"] for r in chosen]))
        row["ecfp_svm_rmse"], row["ecfp_svm_cliff_rmse"] = svm[dataset]["rmse"], svm[dataset]["cliff_rmse"]
        row["network_weight"] = float(np.mean([r["network_weight"] for r in chosen]))
        row["blend_cliff_rmse_std"] = float(np.std([r["cliff_rmse"] for r in chosen]))
        rows.append(row)
    return rows


def write_outputs(rows: list[dict], output: Path, seeds: list[int]) -> str:
    output.mkdir(parents=True, exist_ok=True)
    with open(output / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in ("dataset", "n_seeds")}
    wins = {
        m: sum(r[f"{m}_cliff_rmse"] <= r["ecfp_svm_cliff_rmse"] for r in rows) for m in ("blend", "network")
    }
    lines = [
        f"{len(rows)} MoleculeACE datasets, official test split, mean over seeds {' '.join(map(str, seeds))}",
        "",
        "| method | RMSE | cliff-RMSE | cliff-RMSE at or below ECFP + SVM |",
        "|---|---:|---:|---:|",
        f"| molchannel + ECFP-SVR blend | {mean['blend_rmse']:.3f} | {mean['blend_cliff_rmse']:.3f} | "
        f"{wins['blend']} of {len(rows)} |",
        f"| molchannel network alone (same runs) | {mean['network_rmse']:.3f} | "
        f"{mean['network_cliff_rmse']:.3f} | {wins['network']} of {len(rows)} |",
        f"| ECFP + SVM (MoleculeACE protocol, same run) | {mean['ecfp_svm_rmse']:.3f} | "
        f"{mean['ecfp_svm_cliff_rmse']:.3f} | |",
        "",
        f"Mean network weight in the blend: {mean['network_weight']:.2f}.",
    ]
    text = "\n".join(lines) + "\n"
    (output / "results.md").write_text(text)
    (output / "summary.json").write_text(json.dumps({"seeds": seeds, "mean": mean, "wins": wins}, indent=1))
    _plot(rows, output / "cliff_rmse.png")
    return text


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    svm = np.array([r["ecfp_svm_cliff_rmse"] for r in rows])
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(
        svm, [r["network_cliff_rmse"] for r in rows], marker="x", color="tab:gray", label="network alone"
    )
    ax.scatter(svm, [r["blend_cliff_rmse"] for r in rows], color="tab:blue", label="network + ECFP-SVR blend")
    lo, hi = min(ax.get_xlim()[0], ax.get_ylim()[0]), max(ax.get_xlim()[1], ax.get_ylim()[1])
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
    ax.set_xlabel("ECFP + SVM cliff-RMSE")
    ax.set_ylabel("molchannel cliff-RMSE")
    ax.set_title("MoleculeACE: below the diagonal beats ECFP + SVM")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", nargs="+", required=True, help="benchmark output folders")
    parser.add_argument(
        "--baselines", nargs="+", default=None, help="folders with the ECFP + SVM records (default: --runs)"
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=None, help="default: every seed all sets have"
    )
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    runs, svm = read_records([Path(f) for f in args.runs])
    if args.baselines:
        svm = read_records([Path(f) for f in args.baselines])[1]
    seeds = args.seeds
    if seeds is None:
        seeds = sorted(set.intersection(*(set(v) for v in runs.values()))) if runs else []
    rows = summarize(runs, svm, seeds)
    if not rows:
        raise SystemExit("no dataset has records for every seed and a baseline")
    print(write_outputs(rows, Path(args.output), seeds))


if __name__ == "__main__":
    main()
