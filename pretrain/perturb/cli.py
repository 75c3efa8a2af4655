"""The ``molchannel perturb`` command: argument handling around :func:`precompute_perturbations`.

Reads the corpus, optionally builds the CReM database from a sample of it (``--build-crem-db N``),
runs the sharded precompute and prints its report as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from molchannel.pretrain.perturb.corpus_io import read_smiles
from molchannel.pretrain.perturb.crem import build_crem_db
from molchannel.pretrain.perturb.registry import perturber_names
from molchannel.pretrain.perturb.shards import precompute_perturbations

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="molchannel perturb",
        description="Precompute scaffold-invariant perturbations (SCD positives) for a pre-training corpus.",
    )
    parser.add_argument("input", help="corpus: CSV with a 'smiles' column or one SMILES per line (.gz ok)")
    parser.add_argument("out_dir", help="output folder (manifest.json + shard files); rerun to resume")
    parser.add_argument("--method", choices=perturber_names(), default="sidechain")
    parser.add_argument("--n-keep", type=int, default=5, help="positives stored per molecule (default: 5)")
    parser.add_argument("--shard-size", type=int, default=10_000, help="rows per shard (default 10000)")
    parser.add_argument("--processes", type=int, default=1, help="worker processes (default: 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-per-molecule", type=int, default=100)
    crem = parser.add_argument_group("CReM")
    crem.add_argument("--crem-db", help="CReM fragment database (SQLite)")
    crem.add_argument("--crem-radius", type=int, default=2, help="context radius (default 2, as reference)")
    crem.add_argument("--crem-max-size", type=int, default=5, help="largest replaced fragment, heavy atoms")
    crem.add_argument(
        "--build-crem-db",
        type=int,
        metavar="N",
        help="if --crem-db does not exist, build it from N corpus molecules drawn with --seed",
    )
    parser.add_argument(
        "-q", "--quiet", "--no-progress", dest="no_progress", action="store_true", help="quiet: warnings only"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``molchannel perturb``; user errors raise (``molchannel.cli.main`` reports them)."""
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.no_progress else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    corpus = read_smiles(args.input)
    options: dict[str, Any] = {"max_per_molecule": args.max_per_molecule, "seed": args.seed}
    if args.method == "crem":
        if not args.crem_db:
            raise ValueError("--method crem needs --crem-db PATH (add --build-crem-db N to build it)")
        if args.build_crem_db and not Path(args.crem_db).exists():
            rng = np.random.default_rng(args.seed)
            pick = rng.choice(len(corpus), size=min(args.build_crem_db, len(corpus)), replace=False)
            logger.info("building CReM database %s from %d molecules", args.crem_db, len(pick))
            build_crem_db(
                [corpus[i] for i in sorted(pick)],
                args.crem_db,
                radius=args.crem_radius,
                max_heavy_atoms=args.crem_max_size,
                processes=args.processes,
            )
        options.update(db_path=args.crem_db, radius=args.crem_radius, max_size=args.crem_max_size)
    report = precompute_perturbations(
        corpus,
        args.out_dir,
        method=args.method,
        n_keep=args.n_keep,
        shard_size=args.shard_size,
        processes=args.processes,
        seed=args.seed,
        perturber_options=options,
        progress=not args.no_progress,
    )
    summary = asdict(report)
    summary["molecules_per_second_per_process"] = report.molecules_per_second_per_process
    print(json.dumps(summary, indent=2))
    return 0
