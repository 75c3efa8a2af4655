"""Bulk `molchannel embed` / `predict` over a file with 1% invalid rows: nothing lost, nothing misaligned.

Takes N ZINC molecules, puts invalid SMILES of several kinds (garbage text, bad valence, unclosed
rings, empty cells, non-UTF-8 bytes) at 1% of the rows, at random positions, runs the real command line
on that file and on the clean file, and checks:

* every valid row is written, in input order, and its embedding equals the clean run's row;
* every invalid row is NaN in the output and listed (index + reason) in the sidecar ``OUTPUT.invalid.csv``;
* the throughput with invalid rows, relative to the clean file (same run, same machine, best of
  ``--repeats`` alternating runs).

    python benchmarks/bench_invalid_rows.py --n 20000
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import platform
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from molchannel.cli.main import main as cli

BAD = [
    b"not a molecule",
    b"C1CC",  # unclosed ring
    b"C(C)(C)(C)(C)C",  # carbon with five bonds
    b"c1ccccc",  # unclosed aromatic ring
    b"",  # empty cell
    b"[Xx]",  # unknown element
    b"CC\xff\xfeO",  # not UTF-8
    b"C=C=C=C=(",  # unbalanced branch
]


def write_input(path: Path, smiles: list[str], bad_rows: set[int], seed: int) -> dict[int, bytes]:
    """A CSV with an id column and the SMILES, bad SMILES at ``bad_rows``; returns what was put where."""
    rng = random.Random(seed)
    planted = {}
    with open(path, "wb") as fh:
        fh.write(b"id,smiles\n")
        for i, s in enumerate(smiles):
            text = s.encode()
            if i in bad_rows:
                text = rng.choice(BAD)
                planted[i] = text
            fh.write(b"mol%d,%s\n" % (i, text))
    return planted


def run(args: list[str]) -> float:
    start = time.perf_counter()
    code = cli(args)
    if code != 0:
        raise SystemExit(f"molchannel {' '.join(args)} exited with {code}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=os.environ.get("MOLCHANNEL_DATA_DIR"))
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--fraction", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="runs per file; the best time counts")
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("give --data-dir or set MOLCHANNEL_DATA_DIR")
    with gzip.open(Path(args.data_dir) / "zinc" / "moses_train.csv.gz", "rt") as fh:
        next(fh)
        smiles = [next(fh).strip() for _ in range(args.n)]
    bad_rows = set(random.Random(args.seed).sample(range(args.n), round(args.n * args.fraction)))

    with tempfile.TemporaryDirectory() as tmp:
        clean, dirty = Path(tmp) / "clean.csv", Path(tmp) / "dirty.csv"
        write_input(clean, smiles, set(), args.seed)
        planted = write_input(dirty, smiles, bad_rows, args.seed)
        common = ["-m", "default", "--quiet"]
        # alternate the two files and keep each one's best time, so load changes hit both alike
        t_clean = t_dirty = float("inf")
        for _ in range(args.repeats):
            t_clean = min(
                t_clean, run(["embed", *common, "-i", str(clean), "-o", str(Path(tmp) / "clean.npy")])
            )
            t_dirty = min(
                t_dirty, run(["embed", *common, "-i", str(dirty), "-o", str(Path(tmp) / "dirty.npy")])
            )
        ref, out = np.load(Path(tmp) / "clean.npy"), np.load(Path(tmp) / "dirty.npy")
        with open(Path(tmp) / "dirty.npy.invalid.csv", newline="") as fh:
            sidecar = list(csv.DictReader(fh))

    assert out.shape == ref.shape, (out.shape, ref.shape)
    nan_rows = {int(i) for i in np.flatnonzero(np.isnan(out).any(axis=1))}
    listed = {int(r["index"]) for r in sidecar}
    valid = sorted(set(range(args.n)) - bad_rows)
    aligned = bool(np.array_equal(out[valid], ref[valid]))
    reasons = sorted({r["reason"].split(":")[0].split(" (")[0] for r in sidecar})

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    print()
    print("| rows | invalid planted | NaN rows in output | listed in sidecar | valid rows equal to clean run "
          "| clean mol/s | with invalid rows mol/s | ratio |")  # fmt: skip
    print("|---:|---:|---:|---:|---|---:|---:|---:|")
    rates = f"{args.n / t_clean:,.0f} | {args.n / t_dirty:,.0f} | {t_clean / t_dirty:.2f}"
    print(f"| {args.n:,} | {len(planted)} | {len(nan_rows)} | {len(listed)} | {'yes' if aligned else 'NO'} "
          f"({len(valid):,}) | {rates} |")  # fmt: skip
    print()
    print("reasons in the sidecar:", "; ".join(reasons))
    if nan_rows != bad_rows or listed != bad_rows or not aligned:
        raise SystemExit("MISMATCH: invalid rows were not all reported, or valid rows moved")


if __name__ == "__main__":
    main()
