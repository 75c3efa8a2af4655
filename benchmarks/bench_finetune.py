"""Fine-tuning throughput on BBBP with the shipped default model, CPU.

Runs ``run_finetune`` (the same code as ``molchannel finetune``) on BBBP's scaffold split for a few
epochs and prints a Markdown table: featurization (graph cache built from scratch), training
molecules/s, seconds per epoch for training alone and for training plus evaluation of the
validation and test sets, and the wall time of the whole run.

    MOLCHANNEL_DATA_DIR=<data> python benchmarks/bench_finetune.py --epochs 3 --threads 2
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="default", help='model folder or "default" (default: %(default)s)')
    parser.add_argument("--dataset", default="bbbp")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--limit", type=int, default=None, help="first N rows only")
    args = parser.parse_args()
    if not os.environ.get("MOLCHANNEL_DATA_DIR"):
        parser.error("set MOLCHANNEL_DATA_DIR to the benchmark data folder")
    if args.threads:
        torch.set_num_threads(args.threads)

    from molchannel.api import load
    from molchannel.data import load_dataset, load_or_build_graphs
    from molchannel.finetune import run_finetune

    model = load(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MOLCHANNEL_CACHE_DIR"] = str(Path(tmp) / "cache")
        table = load_dataset(args.dataset)
        start = time.perf_counter()
        load_or_build_graphs(table, model.featurizer, Path(tmp) / "cache" / "graphs")
        featurize_s = time.perf_counter() - start
        config = {
            "data": {"dataset": args.dataset, "batch_size": args.batch_size, "limit": args.limit},
            "model": {"pretrained": args.model},
            "optim": {"epochs": args.epochs},
        }
        result = run_finetune(config, Path(tmp) / "run", quiet=True)
        with open(result.run_dir / "metrics.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
    train_s = [float(r["train_time_s"]) for r in rows]
    epoch_s = [float(r["epoch_time_s"]) for r in rows]
    n_train = int(rows[0]["train_molecules"])
    info = model.info()
    print(
        f"molchannel fine-tuning, {args.dataset} ({n_train} training molecules per epoch, batch "
        f"{args.batch_size}), model {args.model} ({info['backbone']} {info['num_layers']}x"
        f"{info['embedding_dim']}), {args.epochs} epochs, CPU ({platform.processor() or platform.machine()}, "
        f"torch threads {torch.get_num_threads()}), {time.strftime('%Y-%m-%d')}\n"
    )
    print("| featurize (s) | train mol/s | train s/epoch | train+eval s/epoch | run wall time (s) |")
    print("|---:|---:|---:|---:|---:|")
    print(
        f"| {featurize_s:.1f} | {result.train_molecules_per_s:,.0f} | {statistics.mean(train_s):.1f} | "
        f"{statistics.mean(epoch_s):.1f} | {result.wall_time_s:.1f} |"
    )


if __name__ == "__main__":
    main()
