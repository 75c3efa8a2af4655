"""Embed the molecules of a file with a model folder.

Input: .smi/.txt (one SMILES per line) or .csv/.tsv with a SMILES column, optionally gzipped.
Output: .npy (float32, [N, D], or [N, K, D] with --channel all) or .parquet (input row,
SMILES, validity and the embedding). Rows line up with the input; invalid molecules give NaN
rows (or are dropped with --on-invalid skip) and are listed in OUTPUT.invalid.csv.

Example:
    molchannel embed -m default -i molecules.smi -o embeddings.npy
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any, cast

import numpy as np

from molchannel.api import load
from molchannel.chem.smiles import OnInvalid
from molchannel.cli.common import add_input_arguments, escape_undecodable, map_in_chunks, report_invalid
from molchannel.data.smiles_file import read_smiles_file

log = logging.getLogger("molchannel.embed")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-m", "--model", default="default", help='model folder or "default" (default: %(default)s)'
    )
    p.add_argument("-o", "--output", required=True, help="output .npy or .parquet")
    p.add_argument("--channel", default="mix", help='"mix" (default), a channel name, or "all"')
    add_input_arguments(p, "invalid SMILES: NaN row (default), drop the row, or stop with an error")


def run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    suffix = out.suffix.lower()
    if suffix not in (".npy", ".parquet"):
        raise ValueError(f"output must end in .npy or .parquet, got {out.name!r}")
    table = read_smiles_file(args.input, args.smiles_col)
    model = load(args.model, device=args.device)
    if not model.info()["pretrained"]:
        log.warning("model %s is not pre-trained: its embeddings are from random weights", args.model)
    n = len(table)
    width: tuple[int, ...] = (model.embedding_dim,)
    if args.channel == "all":
        width = (len(model.channels), model.embedding_dim)

    def embed_chunk(chunk: list[str], policy: str) -> Any:
        return model.embed(
            chunk,
            channel=args.channel,
            batch_size=args.batch_size,
            on_invalid=cast(OnInvalid, policy),
            return_report=True,
        )

    start = time.perf_counter()
    emb, kept, invalid = map_in_chunks(
        embed_chunk, table.smiles, width, args.on_invalid, args.quiet, "embedding"
    )
    elapsed = time.perf_counter() - start
    rows = np.asarray(kept if args.on_invalid == "skip" else range(n), dtype=np.int64)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npy":
        np.save(out, emb[rows] if args.on_invalid == "skip" else emb)
    else:
        _write_parquet(
            out, table.smiles, rows, emb, set(kept), model.channels if args.channel == "all" else None
        )
    report_invalid(out, invalid, n)
    log.info(
        "embedded %d molecules in %.1f s (%.0f mol/s) -> %s",
        n - len(invalid),
        elapsed,
        (n - len(invalid)) / max(elapsed, 1e-9),
        out,
    )
    return 0


def _write_parquet(
    out: Path,
    smiles: list[str],
    rows: np.ndarray,
    emb: np.ndarray,
    valid: set[int],
    channels: list[str] | None,
) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise RuntimeError("writing .parquet needs pyarrow: pip install 'molchannel[io]'") from exc
    cols: dict[str, pa.Array] = {
        "row": pa.array(rows),
        "smiles": pa.array([escape_undecodable(smiles[i]) for i in rows]),
        "valid": pa.array([int(i) in valid for i in rows]),
    }
    if channels is None:
        cols["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(emb[rows].ravel()), emb.shape[1])
    else:
        for k, name in enumerate(channels):
            cols[f"embedding_{name}"] = pa.FixedSizeListArray.from_arrays(
                pa.array(emb[rows, k].ravel()), emb.shape[2]
            )
    pq.write_table(pa.table(cols), out)
