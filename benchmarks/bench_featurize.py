"""Featurization throughput (molecules/s) on ZINC, against bare RDKit parsing and PyG, CPU.

Times, in one process, on the first N molecules of the MOSES ZINC15 training set:

* ``Chem.MolFromSmiles`` alone (the yardstick: no featurizer can beat parsing);
* molchannel ``basic`` and ``rich``, once per SMILES (``featurizer(smiles)``) and in bulk
  (``featurize_smiles``, which parses blocks of molecules before featurizing them);
* molchannel ``basic`` as inference featurizes: in bulk to NumPy arrays
  (``featurize_block(..., arrays=True)``, no PyG ``Data``), and the same collated into
  ``GraphBatch`` batches of 128 (what ``embed`` does before the network);
* PyG's ``torch_geometric.utils.from_smiles`` (9 integer atom features; note that it switches
  RDKit's logging off for the whole process).

The machine may be shared, so the molecules are split into chunks, every method runs each chunk
in turn (``--repeats`` times, keeping the fastest), and a rate is N / (sum of its chunk times):
a burst of load from other processes then hits all methods alike and is mostly filtered out.
Prints a Markdown table; ``--output`` also writes the figures as JSON.

    python benchmarks/bench_featurize.py --n 20000
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import rdkit
import torch
import torch_geometric
from rdkit import Chem, RDLogger
from torch_geometric.utils import from_smiles

from molchannel.chem import BasicFeaturizer, RichFeaturizer, featurize_smiles
from molchannel.chem.bulk import featurize_block
from molchannel.chem.graph_batch import collate_graphs


def read_zinc(data_dir: Path, n: int) -> list[str]:
    with gzip.open(data_dir / "zinc" / "moses_train.csv.gz", "rt") as fh:
        if next(fh).strip() != "SMILES":
            raise SystemExit("zinc/moses_train.csv.gz does not start with the header 'SMILES'")
        smiles = [line.strip() for _, line in zip(range(n), fh, strict=False)]
    if len(smiles) < n:
        raise SystemExit(f"asked for {n} molecules, the file has {len(smiles)}")
    return smiles


def per_call(function: Callable[[str], object]) -> Callable[[list[str]], None]:
    def run(chunk: list[str]) -> None:
        for smiles in chunk:
            function(smiles)

    return run


def batched(chunk: list[str], featurizer: BasicFeaturizer) -> None:
    """What ``embed`` does before the network: featurize to arrays, collate batches of 128."""
    graphs = featurize_block(chunk, featurizer, "skip", arrays=True).graphs
    for i in range(0, len(graphs), 128):
        collate_graphs(graphs[i : i + 128])  # type: ignore[arg-type]  # "skip" leaves no None


def pyg_from_smiles(chunk: list[str]) -> None:
    for smiles in chunk:
        from_smiles(smiles)
    RDLogger.EnableLog("rdApp.*")  # from_smiles disables it process-wide; undo that side effect


def time_methods(
    methods: dict[str, Callable[[list[str]], None]], smiles: list[str], chunk_size: int, repeats: int
) -> dict[str, float]:
    """Seconds per method: per chunk the fastest of ``repeats`` runs, summed over chunks."""
    total = dict.fromkeys(methods, 0.0)
    for start in range(0, len(smiles), chunk_size):
        chunk = smiles[start : start + chunk_size]
        best = dict.fromkeys(methods, float("inf"))
        for _ in range(repeats):
            for name, run in methods.items():
                began = time.perf_counter()
                run(chunk)
                best[name] = min(best[name], time.perf_counter() - began)
        for name in methods:
            total[name] += best[name]
    return total


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("MOLCHANNEL_DATA_DIR"),
        help="data folder (default: $MOLCHANNEL_DATA_DIR)",
    )
    parser.add_argument("--n", type=int, default=20000, help="molecules (default: 20000)")
    parser.add_argument("--chunk-size", type=int, default=1000, help="molecules per chunk (default: 1000)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per chunk and method, fastest kept (default: 3)"
    )
    parser.add_argument("--output", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("give --data-dir or set MOLCHANNEL_DATA_DIR")
    torch.set_num_threads(1)
    smiles = read_zinc(Path(args.data_dir), args.n)
    basic, rich = BasicFeaturizer(), RichFeaturizer()
    methods = {
        "RDKit `Chem.MolFromSmiles` (parse only)": per_call(Chem.MolFromSmiles),
        "molchannel basic, per call": per_call(basic),
        "molchannel basic, bulk `featurize_smiles`": lambda chunk: featurize_smiles(chunk, basic),
        "molchannel basic, bulk to arrays (inference)": lambda chunk: featurize_block(
            chunk, basic, "skip", arrays=True
        ),
        "molchannel basic, bulk to arrays + GraphBatch of 128": lambda chunk: batched(chunk, basic),
        "molchannel rich, per call": per_call(rich),
        "molchannel rich, bulk `featurize_smiles`": lambda chunk: featurize_smiles(chunk, rich),
        "PyG `from_smiles`": pyg_from_smiles,
    }
    seconds = time_methods(methods, smiles, args.chunk_size, args.repeats)
    bare = seconds[next(iter(methods))]
    rows = [
        {
            "method": name,
            "molecules_per_s": len(smiles) / s,
            "us_per_molecule": s / len(smiles) * 1e6,
            "rate_vs_rdkit_parse": bare / s,
        }
        for name, s in seconds.items()
    ]
    print(
        f"{len(smiles)} ZINC molecules, chunks of {args.chunk_size}, best of {args.repeats} per chunk; "
        f"CPU {cpu_model()} ({os.cpu_count()} cores), load average {os.getloadavg()[0]:.1f}; "
        f"Python {platform.python_version()}, RDKit {rdkit.__version__}, torch {torch.__version__}, "
        f"PyG {torch_geometric.__version__}\n"
    )
    print("| method | molecules/s | us/molecule | rate vs RDKit parse |")
    print("|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['method']} | {row['molecules_per_s']:,.0f} | {row['us_per_molecule']:.0f} | "
            f"{row['rate_vs_rdkit_parse']:.2f}x |"
        )
    if args.output:
        report = {
            "n": len(smiles),
            "chunk_size": args.chunk_size,
            "repeats": args.repeats,
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "versions": {
                "rdkit": rdkit.__version__,
                "torch": torch.__version__,
                "pyg": torch_geometric.__version__,
            },
            "rows": rows,
        }
        args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
