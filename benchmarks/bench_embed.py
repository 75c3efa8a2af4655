"""Throughput of `molchannel embed` (molecules/s) on ZINC molecules, CPU.

Runs the real command line end to end (read file, featurize, encode, write .npy) on the first
N molecules of the MOSES ZINC15 training set, for the shipped default model and for a
reference-size (5 x 300) GIN model, and prints a Markdown table.

    python benchmarks/bench_embed.py --n 20000
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
import yaml

from molchannel.api import init_model
from molchannel.cli.main import main as cli

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("MOLCHANNEL_DATA_DIR"),
        help="benchmark data folder (default: $MOLCHANNEL_DATA_DIR)",
    )
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("give --data-dir or set MOLCHANNEL_DATA_DIR")
    with gzip.open(Path(args.data_dir) / "zinc" / "moses_train.csv.gz", "rt") as fh:
        next(fh)
        smiles = [next(fh).strip() for _ in range(args.n)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "zinc.smi"
        src.write_text("\n".join(smiles) + "\n")
        reference = init_model(yaml.safe_load((REPO / "configs/model/gin.yaml").read_text()), seed=0)
        models = {
            "default (GIN 5x128)": "default",
            "reference GIN 5x300": str(reference.save(Path(tmp) / "ref")),
        }
        for label, model in models.items():
            out = Path(tmp) / "out.npy"
            start = time.perf_counter()
            cli(
                [
                    "embed",
                    "-q",
                    "-m",
                    model,
                    "-i",
                    str(src),
                    "-o",
                    str(out),
                    "--batch-size",
                    str(args.batch_size),
                ]
            )
            elapsed = time.perf_counter() - start
            rows.append((label, args.n / elapsed, elapsed))
    print(
        f"molchannel embed, {args.n} ZINC molecules, batch {args.batch_size}, CPU "
        f"({platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()})\n"
    )
    print("| model | molecules/s | wall time (s) |\n|---|---:|---:|")
    for label, rate, elapsed in rows:
        print(f"| {label} | {rate:,.0f} | {elapsed:.1f} |")


if __name__ == "__main__":
    main()
