"""Pre-training throughput: molecules/s (all channels, one training-step loop), data vs model time, peak RSS.

Measured as the reference implementation was (single process, batch 64 anchors with 5 + 5 positives,
torch with 2 threads), for each recipe in its own subprocess so peak RSS is per recipe. Data
preparation (view generation + collation) and the model step (forward, backward, Adam) are timed
separately; "serial" is their sum (num_workers=0), "overlapped" is the model time alone (what a
DataLoader worker hides when a core is free for it).

    python benchmarks/bench_pretrain.py --data-dir $MOLCHANNEL_DATA_DIR --steps 6
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPES = {
    # name: (encoder config file, featurizer)
    "cpu GIN 5x128 (basic)": ("configs/model/gin_cpu.yaml", "basic"),
    "reference GIN 5x300 (basic)": ("configs/model/gin.yaml", "basic"),
    "reference GPS 5x300 (rich)": ("configs/model/gps.yaml", "rich"),
}
REFERENCE = {"reference GIN 5x300 (basic)": (22.0, 2.2), "reference GPS 5x300 (rich)": (10.0, 5.1)}


def measure(recipe: str, corpus: str, precision: str, steps: int, batch: int, threads: int) -> dict:
    import torch
    import yaml

    torch.set_num_threads(threads)
    from molchannel.pretrain.data import PretrainDataModule
    from molchannel.pretrain.module import MCLPretrainModule

    encoder_file, featurizer = RECIPES[recipe]
    dm = PretrainDataModule(corpus, batch_size=batch, num_workers=0, val_fraction=0.0, leakage_datasets=[])
    encoder = yaml.safe_load((REPO / encoder_file).read_text())
    encoder.pop("atom_dim", None), encoder.pop("bond_dim", None)
    model = MCLPretrainModule(
        encoder=encoder, featurizer=featurizer, vocab_size=dm.vocab_size, loss_weights={"knowledge": 0.0}
    )
    model.train()
    optimizer = model.configure_optimizers()
    loader = iter(dm.train_dataloader())
    data_time = model_time = 0.0
    for step in range(steps + 1):  # step 0 warms up (allocator, oneDNN kernels)
        t0 = time.perf_counter()
        batch_data = next(loader)
        t1 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
            loss = model.losses(batch_data)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t2 = time.perf_counter()
        if step:
            data_time += t1 - t0
            model_time += t2 - t1
    n = steps * batch
    return {
        "recipe": recipe,
        "precision": precision,
        "molecules": n,
        "data_s_per_mol": data_time / n,
        "model_s_per_mol": model_time / n,
        "serial_mol_per_s": n / (data_time + model_time),
        "overlapped_mol_per_s": n / model_time,
        "data_fraction": data_time / (data_time + model_time),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        "parameters": sum(p.numel() for p in model.encoder.parameters()),
    }


def torch_cpu_capability() -> str:
    import torch

    return f"torch CPU capability {torch.backends.cpu.get_cpu_capability()}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=os.environ.get("MOLCHANNEL_DATA_DIR"))
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--molecules", type=int, default=1000, help="corpus size prepared for the benchmark")
    parser.add_argument(
        "--precision",
        nargs="+",
        default=None,
        help="default: 32-true, plus bf16-mixed where the CPU has native bfloat16 (AVX512-BF16/AMX)",
    )
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES))
    parser.add_argument("--output", default=None, help="write the results as JSON here")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)  # recipe, corpus, precision
    args = parser.parse_args()
    if args.worker:
        recipe, corpus, precision = args.worker
        print(json.dumps(measure(recipe, corpus, precision, args.steps, args.batch, args.threads)))
        return
    if not args.data_dir:
        parser.error("give --data-dir or set MOLCHANNEL_DATA_DIR")
    if args.precision is None:
        from molchannel.pretrain.cli import cpu_supports_bf16

        args.precision = ["32-true", "bf16-mixed"] if cpu_supports_bf16() else ["32-true"]
    from molchannel.pretrain.corpus import CorpusConfig, prepare_corpus

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(args.data_dir) / "zinc" / "moses_train.csv.gz"
        corpora = {}
        for featurizer in sorted({RECIPES[r][1] for r in args.recipes}):
            corpora[featurizer] = str(Path(tmp) / featurizer)
            prepare_corpus(
                source,
                corpora[featurizer],
                CorpusConfig(featurizer=featurizer, shard_size=5000),
                limit=args.molecules,
                progress=False,
            )
        for recipe in args.recipes:
            for precision in args.precision:
                cmd = [
                    sys.executable,
                    __file__,
                    "--worker",
                    recipe,
                    corpora[RECIPES[recipe][1]],
                    precision,
                    "--steps",
                    str(args.steps),
                    "--batch",
                    str(args.batch),
                    "--threads",
                    str(args.threads),
                ]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True)
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(f"  {recipe} {precision}: {results[-1]['serial_mol_per_s']:.1f} mol/s", file=sys.stderr)
    print(
        f"Pre-training throughput, batch {args.batch} anchors x (2 + 5 + 5) graphs, "
        f"{args.threads} torch threads, 1 process, {platform.machine()} CPU "
        f"({torch_cpu_capability()})\n"
    )
    print(
        "| recipe | precision | mol/s serial | mol/s overlapped | data share | peak RSS (GB) "
        "| reference mol/s, GB |"
    )
    print("|---|---|---:|---:|---:|---:|---|")
    for r in results:
        ref = REFERENCE.get(r["recipe"])
        ref_text = f"{ref[0]:.0f}, {ref[1]:.1f} (x{r['serial_mol_per_s'] / ref[0]:.1f})" if ref else "-"
        print(
            f"| {r['recipe']} | {r['precision']} | {r['serial_mol_per_s']:.1f} "
            f"| {r['overlapped_mol_per_s']:.1f} | "
            f"{r['data_fraction']:.0%} | {r['peak_rss_gb']:.2f} | {ref_text} |"
        )
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
