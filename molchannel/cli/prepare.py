"""Prepare a pre-training corpus: featurize, perturb, filter and shard a SMILES file once.

Resumable: rerun the same command after an interruption and finished shards are kept.
Molecules in the validation/test splits of the downstream benchmarks are removed (needs the
benchmark data: --data-dir or $MOLCHANNEL_DATA_DIR, or their InChIKeys: --heldout-keys;
--no-leakage-filter skips it).

Example:
    molchannel prepare -i zinc/moses_train.csv.gz -o runs/corpora/moses-basic --processes 8
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--input", required=True, help="SMILES file (.smi/.csv, optionally .gz)")
    p.add_argument("-o", "--output", required=True, help="corpus folder to write")
    p.add_argument("--featurizer", default="basic", choices=["basic", "rich"])
    p.add_argument(
        "--n-stored",
        type=int,
        default=10,
        help="perturbations stored per molecule; training draws --data.n_scd of them afresh each epoch",
    )
    p.add_argument(
        "--no-descriptors",
        action="store_true",
        help="do not store the 118 RDKit descriptors of the knowledge term (saves ~14 ms per molecule)",
    )
    p.add_argument(
        "--descriptor-bits",
        type=int,
        default=8,
        choices=[8, 16],
        help="store the descriptors as 8-bit codes (default: counts exact, others off by <= 0.03 std) "
        "or as float16",
    )
    p.add_argument("--perturb-method", default="sidechain", choices=["sidechain", "crem", "none"])
    p.add_argument("--crem-db", default=None, help="CReM fragment database (for --perturb-method crem)")
    p.add_argument("--shard-size", type=int, default=20000)
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--limit", type=int, default=None, help="only the first N molecules")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="benchmark data (default: $MOLCHANNEL_DATA_DIR)")
    p.add_argument(
        "--leakage-datasets",
        nargs="*",
        default=None,
        help="benchmarks whose valid/test molecules are removed (default: all)",
    )
    p.add_argument(
        "--heldout-keys",
        default=None,
        metavar="FILE",
        help="InChIKeys to remove, one a line (optionally .gz), instead of computing them from the benchmark "
        "data: for machines without it (scripts/pack_gpu_bundle.sh writes one)",
    )
    p.add_argument("--no-leakage-filter", action="store_true", help="keep benchmark molecules in the corpus")


def run(args: argparse.Namespace) -> int:
    from molchannel.pretrain.corpus import CorpusConfig, prepare_corpus
    from molchannel.pretrain.leakage import corpus_filter_keys, read_heldout_keys

    config = CorpusConfig(
        featurizer=args.featurizer,
        n_stored=args.n_stored,
        perturb_method=args.perturb_method,
        crem_db=args.crem_db,
        shard_size=args.shard_size,
        seed=args.seed,
        descriptors=not args.no_descriptors,
        descriptor_bits=args.descriptor_bits,
    )
    if args.no_leakage_filter:
        keys: set[str] = set()
    elif args.heldout_keys:
        keys = read_heldout_keys(args.heldout_keys)
    else:
        keys = corpus_filter_keys(args.leakage_datasets, args.data_dir, progress=not args.quiet)
    manifest = prepare_corpus(
        args.input,
        args.output,
        config,
        keys,
        processes=args.processes,
        limit=args.limit,
        progress=not args.quiet,
    )
    summary = {
        k: manifest[k] for k in ("n_molecules", "n_invalid", "n_removed_heldout", "mean_real_perturbations")
    }
    summary["vocab_size"] = len(manifest["vocab"]["tokens"]) + 1
    print(json.dumps(summary, indent=1))
    return 0
