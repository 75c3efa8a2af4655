"""Which per-molecule signals rank the errors of a seed ensemble: Spearman(|error|, signal) on the test rows.

For each regression dataset of a benchmark folder (seeds sharing one split), the ensemble error
``|mean over seeds - label|`` against: the spread over seeds; one minus the Tanimoto similarity (ECFP4, 2,048
bits) to the nearest training molecule and to the 5 nearest on average; the label spread of those 5 nearest
training molecules; their mean label's distance from the prediction; and, for runs with
``model.kernel_blend``, the gap between the blend and the network alone::

    MOLCHANNEL_DATA_DIR=... python benchmarks/uncertainty_signals.py runs/bench10/default-2026-12-06
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator
from scipy.stats import spearmanr

from molchannel.data import load_dataset


def _read(path: Path) -> tuple[list[int], np.ndarray, np.ndarray]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    labels, predictions = (np.array([float(r[k]) for r in rows]) for k in (2, 3))
    return [int(r[0]) for r in rows], labels, predictions


def signals(folder: Path) -> dict[str, float] | None:
    seeds = sorted(folder.glob("seed*/test_predictions.csv"))
    if len(seeds) < 2:
        return None
    loaded = [_read(p) for p in seeds]
    index, labels, _ = loaded[0]
    stacked = np.stack([p for _, _, p in loaded])
    mean, error = stacked.mean(0), np.abs(stacked.mean(0) - labels)
    table = load_dataset(folder.name)
    split = json.loads((seeds[0].parent / "split.json").read_text(encoding="utf-8"))
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)

    def fingerprint(row: int) -> object:
        return generator.GetFingerprint(Chem.MolFromSmiles(table.smiles[row]))

    train_fp = [fingerprint(i) for i in split["train"]]
    sims = np.array([DataStructs.BulkTanimotoSimilarity(fingerprint(i), train_fp) for i in index])
    nearest = np.argsort(-sims, axis=1)[:, :5]
    train_labels = table.targets[split["train"], 0][nearest]
    out = {
        "seed spread": stacked.std(0),
        "1 - nearest similarity": 1 - sims.max(1),
        "1 - mean similarity of 5 nearest": 1 - np.take_along_axis(sims, nearest, 1).mean(1),
        "label spread of 5 nearest": train_labels.std(1),
        "|5-nearest mean label - prediction|": np.abs(train_labels.mean(1) - mean),
    }
    results = [json.loads((p.parent / "result.json").read_text(encoding="utf-8")) for p in seeds]
    if all(r.get("kernel_blend") for r in results):
        gaps = [np.abs(p - np.ravel(r["kernel_blend"]["network_test_predictions"]))
                for (_, _, p), r in zip(loaded, results, strict=True)]  # fmt: skip
        if np.mean(gaps) > 0:
            out["|blend - network|"] = np.mean(gaps, axis=0)
    return {name: float(spearmanr(error, value).statistic) for name, value in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("benchmarks", nargs="+", type=Path, help="`molchannel benchmark` output folders")
    args = parser.parse_args()
    for bench in args.benchmarks:
        for folder in sorted((bench / "runs").iterdir()):
            if load_dataset(folder.name).task_type != "regression" or (found := signals(folder)) is None:
                continue
            print(f"{bench} {folder.name}: " + ", ".join(f"{k} {v:.2f}" for k, v in found.items()))


if __name__ == "__main__":
    main()
