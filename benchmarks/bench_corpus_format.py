"""Corpus formats 3 (zstd blocks) and 2 (zlib records) against 1 (columns): bytes per molecule, speed.

Converts the first shards of a format-1 corpus to format 2, once with the descriptors as float16
(the same molecules, positives and targets, checked equal) and once as 8-bit codes, and to format 3
(8-bit codes, records compressed 32 at a time with zstd: the default of ``molchannel prepare``);
the 8-bit variants are checked equal but for the descriptors, whose largest difference after
normalisation is reported. Then it reports for each the bytes per molecule on disk, the time to
read one molecule as training does (anchor and ``n_scd`` of its positives) and the time of the
whole data step of a batch (views + collation, ``PretrainDataModule``'s dataset and collate), with
the two formats interleaved so that a busy machine slows both alike.

    python benchmarks/bench_corpus_format.py --corpus runs/corpora/moses300k --shards 2 \\
        --output results/bench/corpus-format-2026-12-07.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

VARIANTS = {
    "format1": (1, False, ""),
    "format2-f16": (2, False, "zlib"),
    "format2": (2, True, "zlib"),
    "format3": (3, True, "zstd"),
}
"""folder -> (corpus format, 8-bit descriptors, compression)"""


def convert(source: Path, target: Path, n_shards: int) -> dict:
    """Format-2 and -3 copies of ``source``'s first ``n_shards`` shards (and a format-1 copy of them)."""
    from molchannel.pretrain.corpus import _ColumnShard, _shard_name
    from molchannel.pretrain.records import RecordCodec, write_records

    manifest = json.loads((source / "corpus.json").read_text())
    if manifest["format"] != 1:
        raise SystemExit(f"{source} is not a format-1 corpus")
    shards = manifest["shards"][:n_shards]
    write_s = {name: 0.0 for name in VARIANTS}  # encoding + compression + writing, per variant
    n_stored = int(manifest["settings"]["config"]["n_stored"])
    for folder, (fmt, quantize, compression) in VARIANTS.items():
        out = target / folder
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        for s in shards:
            name = _shard_name(s["index"])
            shutil.copyfile(source / f"{name}.summary.json", out / f"{name}.summary.json")
            if fmt == 1:
                for part in ("anchors", "positives"):
                    for ext in ("safetensors", "json"):
                        shutil.copyfile(source / f"{name}.{part}.{ext}", out / f"{name}.{part}.{ext}")
                continue
            old = _ColumnShard(source, s["index"], n_stored)
            molecules = [old.molecule(i) for i in range(len(old.row_index))]
            anchors = [a for a, _ in molecules]
            positives = [list(p) for _, p in molecules]
            start = time.perf_counter()
            codec = RecordCodec.fit(anchors, positives, quantize)
            raws = [codec.raw(a, p) for a, p in zip(anchors, positives, strict=True)]
            write_records(
                out / f"{name}.records.safetensors", out / f"{name}.records.json", codec, raws,
                old.row_index.tolist(), {"format": fmt, "shard": s["index"]}, compression,
            )  # fmt: skip
            write_s[folder] += time.perf_counter() - start
        kept = sum(s["kept"] for s in shards)
        (out / "corpus.json").write_text(
            json.dumps({**manifest, "format": fmt, "shards": shards, "n_molecules": kept})
        )
    return {"molecules": sum(s["kept"] for s in shards), "n_stored": n_stored, "write_s": write_s}


def _same(a: Any, b: Any, but: tuple[str, ...] = ()) -> bool:
    keys = sorted(a.keys())
    return keys == sorted(b.keys()) and all(torch.equal(a[k], b[k]) for k in keys if k not in but)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", required=True, help="a format-1 corpus")
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--workdir", default="runs/corpora/format-bench")
    parser.add_argument("--molecules", type=int, default=2000, help="molecules read per timing round")
    parser.add_argument("--batches", type=int, default=10, help="batches of 64 per data-step round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from molchannel.pretrain.corpus import PretrainCorpus
    from molchannel.pretrain.data import ViewDataset, collate_views

    work = Path(args.workdir)
    info = convert(Path(args.corpus), work, args.shards)
    corpora = {name: PretrainCorpus(work / name) for name in VARIANTS}
    n = len(corpora["format1"])
    worst = 0.0  # the largest difference of a normalised 8-bit descriptor from its float16 value
    for i in np.random.default_rng(0).choice(n, 200, replace=False).tolist():  # same molecules, all variants
        a = corpora["format1"][i]
        for name in ("format2-f16", "format2", "format3"):
            b = corpora[name][i]
            coded = ("descriptors",) if VARIANTS[name][1] else ()
            assert _same(a.anchor, b.anchor, coded) and a.n_real == b.n_real and a.row == b.row
            assert all(_same(a.positives[j], b.positives[j]) for j in range(info["n_stored"]))
            if coded:
                worst = max(worst, float((a.anchor.descriptors - b.anchor.descriptors).abs().max()))
    result: dict = {"corpus": args.corpus, **info, "max_descriptor_error_std": worst, "formats": {}}
    for name in VARIANTS:
        size = sum(p.stat().st_size for p in (work / name).glob("shard-*"))
        result["formats"][name] = {
            "bytes_per_molecule": size / n,
            "write_ms_per_molecule": info["write_s"][name] / n * 1e3,
            "read_us": [],
            "batch_ms": [],
        }
    rng = np.random.default_rng(1)
    for _ in range(args.rounds):
        picks = rng.choice(n, args.molecules, replace=False).tolist()
        batches = [rng.choice(n, 64, replace=False) for _ in range(args.batches)]
        for fmt, corpus in corpora.items():
            start = time.perf_counter()
            for i in picks:
                item = corpus[i]
                _ = [item.positives[j] for j in range(5)]
            result["formats"][fmt]["read_us"].append((time.perf_counter() - start) / len(picks) * 1e6)
            dataset = ViewDataset(corpus, np.arange(n))
            start = time.perf_counter()
            for batch in batches:
                collate_views([dataset[int(i)] for i in batch])
            result["formats"][fmt]["batch_ms"].append((time.perf_counter() - start) / len(batches) * 1e3)
    for fmt, r in result["formats"].items():
        read, step = statistics.median(r["read_us"]), statistics.median(r["batch_ms"])
        print(
            f"{fmt}: {r['bytes_per_molecule']:.0f} B/molecule, "
            f"written in {r['write_ms_per_molecule']:.2f} ms per molecule, read {read:.0f} us "
            f"(anchor + 5 positives), data step {step:.1f} ms per batch of 64"
        )
    print(f"8-bit descriptors: largest difference {worst:.4f} std (after the corpus's normalisation)")
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
