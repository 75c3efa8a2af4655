"""Memory of pre-training as the corpus grows: bytes per molecule on disk, peak RSS per corpus size.

Preparing the full 1.9M-molecule MOSES corpus takes hours on a 2-core machine, so this script
*replicates* the shards of a prepared corpus (full copies, not links: every molecule of the large
corpus is a distinct set of pages on disk) up to the requested size, then runs the same training
steps (cpu recipe, batch 64 anchors, fp32) over a random sample of the whole corpus and reads the
process's peak resident memory. The corpus is memory-mapped, so only the anonymous memory (model,
optimizer, batches, index arrays) should stay flat as the corpus grows; file-backed pages of the
mapped shards are counted in RSS as they are touched and are reclaimable by the kernel.

    python benchmarks/bench_corpus_scale.py --corpus runs/corpora/moses50k-basic \\
        --sizes 50000 1900000 --steps 30 --workdir runs/corpora/scale
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARD_PARTS = (  # formats 2 and 3 (records); format-1 corpora have anchors and positives parts instead
    ".records.safetensors",
    ".records.json",
    ".summary.json",
)
FORMAT_1_PARTS = (
    ".anchors.safetensors",
    ".anchors.json",
    ".positives.safetensors",
    ".positives.json",
    ".summary.json",
)


def corpus_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def replicate(source: Path, target: Path, n_molecules: int) -> dict:
    """A corpus of at least ``n_molecules`` made of copies of ``source``'s shards."""
    manifest = json.loads((source / "corpus.json").read_text())
    per_copy = manifest["n_molecules"]
    copies = math.ceil(n_molecules / per_copy)
    marker = target / "corpus.json"
    if marker.is_file() and json.loads(marker.read_text())["n_molecules"] == copies * per_copy:
        return json.loads(marker.read_text())
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    shards = []
    for _copy in range(copies):
        for s in manifest["shards"]:
            new_index = len(shards)
            for part in SHARD_PARTS if manifest["format"] != 1 else FORMAT_1_PARTS:
                src = source / f"shard-{s['index']:05d}{part}"
                shutil.copyfile(src, target / f"shard-{new_index:05d}{part}")
            shards.append({**s, "index": new_index})
    big = {**manifest, "shards": shards, "n_molecules": copies * per_copy, "replicated_from": str(source)}
    (target / "corpus.json").write_text(json.dumps(big))
    return big


def measure(corpus: str, steps: int, batch: int, threads: int) -> dict:
    """Run ``steps`` training steps over ``corpus`` in this process; memory figures from /proc."""
    import torch
    import yaml

    torch.set_num_threads(threads)
    from molchannel.pretrain.data import PretrainDataModule
    from molchannel.pretrain.module import MCLPretrainModule

    dm = PretrainDataModule(corpus, batch_size=batch, num_workers=0, val_fraction=0.005, leakage_datasets=[])
    encoder = yaml.safe_load((REPO / "configs/model/gin_cpu.yaml").read_text())
    model = MCLPretrainModule(encoder=encoder, featurizer="basic", vocab_size=dm.vocab_size)
    model.train()
    optimizer = model.configure_optimizers()
    loader = iter(dm.train_dataloader())
    start = time.perf_counter()
    for _ in range(steps):
        loss = model.losses(next(loader))["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    elapsed = time.perf_counter() - start
    status = dict(
        line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line
    )

    def gb(key: str) -> float:
        return int(status[key].split()[0]) / 1024**2

    return {
        "steps": steps,
        "seconds": elapsed,
        "peak_rss_gb": gb("VmHWM"),
        "rss_anon_gb": gb("RssAnon"),
        "rss_file_gb": gb("RssFile"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", required=True, help="a prepared corpus (molchannel prepare)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 1_900_000])
    parser.add_argument(
        "--workdir", default="runs/corpora/scale", help="where replicated corpora are written"
    )
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the replicated corpora")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker, args.steps, args.batch, args.threads)))
        return
    source = Path(args.corpus)
    base = json.loads((source / "corpus.json").read_text())
    size_b = corpus_bytes(source)
    print(
        f"source corpus {source.name}: {base['n_molecules']:,} molecules, "
        f"{size_b / 1e6:.1f} MB, {size_b / base['n_molecules']:.0f} bytes/molecule",
        file=sys.stderr,
    )
    rows = []
    for size in args.sizes:
        target = Path(args.workdir) / f"n{size}"
        manifest = replicate(source, target, size)
        cmd = [sys.executable, __file__, "--corpus", str(source), "--worker", str(target), "--steps",
               str(args.steps), "--batch", str(args.batch), "--threads", str(args.threads)]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result.update(corpus_molecules=manifest["n_molecules"], corpus_gb=corpus_bytes(target) / 1e9)
        rows.append(result)
        print(
            f"  {manifest['n_molecules']:,} molecules: peak RSS {result['peak_rss_gb']:.2f} GB",
            file=sys.stderr,
        )
        if not args.keep and target != source:
            shutil.rmtree(target)
    print(f"Pre-training memory vs corpus size (cpu recipe, batch {args.batch}, {args.steps} steps, fp32)\n")
    print("| corpus molecules | corpus on disk (GB) | peak RSS (GB) | anonymous (GB) | file-backed (GB) |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['corpus_molecules']:,} | {r['corpus_gb']:.2f} | {r['peak_rss_gb']:.2f} "
            f"| {r['rss_anon_gb']:.2f} | {r['rss_file_gb']:.2f} |"
        )


if __name__ == "__main__":
    main()
