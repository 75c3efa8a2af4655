"""Benchmark of the scaffold-invariant perturbation precompute (SCD positives, issue 3).

For each method (CReM fragment replacement, own side-chain edits) it measures, on ZINC molecules of
``zinc/moses_train.csv.gz``:

- the precompute rate in molecules / second / process (``precompute_perturbations`` with one process),
- the mean number of real perturbations kept per molecule (``n_real`` with ``--n-keep``, default 5),
- the mean number of distinct scaffold-preserving candidates before any cap, and how many molecules
  have none,
- for CReM, the time and size of the fragment database built from ``--db-size`` corpus molecules,

and checks that every stored perturbation has its anchor's Murcko scaffold. The molecules perturbed
are taken after those used for the database, as in real use where the database is built from a
sample of a much larger corpus.

    MOLCHANNEL_DATA_DIR=... python benchmarks/bench_perturb.py --method both --n 200
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rdkit import Chem

from molchannel.pretrain.perturb import (
    build_crem_db,
    load_perturbations,
    make_perturber,
    precompute_perturbations,
    scaffold_key,
)

ZINC_2M_ROWS = 1_936_962  # the three MOSES files together: the local stand-in for ZINC 2M


def first_smiles(path: Path, n: int) -> list[str]:
    """The first ``n`` SMILES of a one-column CSV with a header (MOSES)."""
    with gzip.open(path, "rt") as fh:
        next(fh)
        return [line.strip() for line, _ in zip(fh, range(n), strict=False)]


def count_scaffold_violations(store: Any, corpus: list[str]) -> int:
    bad = 0
    for i, anchor in enumerate(corpus):
        record = store[i]
        scaffold = scaffold_key(Chem.MolFromSmiles(anchor))
        for smiles in record.perturbations[: record.n_real]:
            bad += scaffold_key(Chem.MolFromSmiles(smiles)) != scaffold
    return bad


def measure(
    name: str,
    method: str,
    options: dict[str, Any],
    corpus: list[str],
    n_keep: int,
    seed: int,
    work: Path,
) -> dict[str, Any]:
    out = work / f"precompute-{name}"
    report = precompute_perturbations(
        corpus,
        out,
        method=method,
        n_keep=n_keep,
        shard_size=max(1, len(corpus) // 4),
        processes=1,
        seed=seed,
        perturber_options=options,
        progress=False,
    )
    if report.computed_shards != list(range(report.n_shards)):
        raise SystemExit(f"{out} held an earlier run; remove it or pick another --work-dir")
    store = load_perturbations(out, corpus)
    n_real = [store[i].n_real for i in range(len(corpus))]

    perturber = make_perturber(method, **options)
    began = time.perf_counter()
    n_candidates = [len(perturber.candidates(s)) for s in corpus]
    enumerate_seconds = time.perf_counter() - began
    rate = report.molecules_per_second_per_process
    return {
        "method": name,
        "molecules": len(corpus),
        "molecules_per_s_per_process": rate,
        "mean_n_real": statistics.fmean(n_real),
        "share_with_n_keep_real": sum(n == n_keep for n in n_real) / len(corpus),
        "mean_candidates": statistics.fmean(n_candidates),
        "median_candidates": statistics.median(n_candidates),
        "share_without_candidates": sum(n == 0 for n in n_candidates) / len(corpus),
        "full_enumeration_molecules_per_s": len(corpus) / enumerate_seconds,
        "failed_rows": report.rows_failed,
        "scaffold_violations": count_scaffold_violations(store, corpus),
        "hours_for_zinc_2m_on_1_process": ZINC_2M_ROWS / rate / 3600,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("MOLCHANNEL_DATA_DIR"),
        help="benchmark data folder (default: $MOLCHANNEL_DATA_DIR)",
    )
    parser.add_argument("--method", choices=("crem", "sidechain", "both"), default="both")
    parser.add_argument("--n", type=int, default=200, help="molecules perturbed per method (default 200)")
    parser.add_argument("--n-sidechain", type=int, help="molecules for the side-chain method (default: --n)")
    parser.add_argument("--db-size", type=int, default=2000, help="corpus molecules in the CReM database")
    parser.add_argument("--radius", type=int, default=2, help="CReM context radius (reference: 2)")
    parser.add_argument("--n-keep", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", help="where the database and outputs go (default: a temporary folder)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if not args.data_dir:
        parser.error("no data folder: pass --data-dir or set MOLCHANNEL_DATA_DIR")

    n_side = args.n_sidechain or args.n
    rows = first_smiles(
        Path(args.data_dir) / "zinc" / "moses_train.csv.gz", args.db_size + max(args.n, n_side)
    )
    db_corpus, rest = rows[: args.db_size], rows[args.db_size :]
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench-perturb-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs visible, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "n_keep": args.n_keep,
        "methods": [],
    }

    if args.method in ("sidechain", "both"):
        corpus = rest[:n_side]
        results["methods"].append(measure("sidechain", "sidechain", {}, corpus, args.n_keep, args.seed, work))

    if args.method in ("crem", "both"):
        db_path = work / f"crem-{args.db_size}-r{args.radius}.db"
        if not db_path.exists():
            began = time.perf_counter()
            build_crem_db(db_corpus, db_path, radius=args.radius, max_heavy_atoms=5, processes=1)
            results["crem_db_build_seconds"] = time.perf_counter() - began
        results["crem_db"] = {
            "molecules": args.db_size,
            "radius": args.radius,
            "megabytes": db_path.stat().st_size / 1e6,
        }
        options = {"db_path": str(db_path), "radius": args.radius, "max_size": 5}
        corpus = rest[: args.n]
        results["methods"].append(measure("crem", "crem", options, corpus, args.n_keep, args.seed, work))

    print(json.dumps(results, indent=2))
    print()
    print(
        f"| method | molecules | molecules/s/process | mean n_real (n_keep={args.n_keep}) | mean candidates "
        "| no candidate | h for 1.94M on 1 process |"
    )
    print("|---|---|---|---|---|---|---|")
    for m in results["methods"]:
        print(
            f"| {m['method']} | {m['molecules']} | {m['molecules_per_s_per_process']:.1f} | "
            f"{m['mean_n_real']:.2f} | {m['mean_candidates']:.1f} | {m['share_without_candidates']:.1%} | "
            f"{m['hours_for_zinc_2m_on_1_process']:.1f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
