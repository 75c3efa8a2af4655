"""Shared by the file commands (``embed``, ``predict``): chunked model calls, the invalid-row report."""

from __future__ import annotations

import argparse
import csv
import io
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from molchannel.atomic import write_text_atomic
from molchannel.chem.smiles import ON_INVALID_CHOICES, InvalidRecord

log = logging.getLogger("molchannel.cli")
CHUNK = 8192  # rows per model call, so the progress bar moves and memory stays bounded


def add_input_arguments(p: argparse.ArgumentParser, invalid_help: str) -> None:
    """Input file, SMILES column, invalid-row policy, batch size and device of a file command."""
    p.add_argument("-i", "--input", required=True, help="input .smi/.txt/.csv/.tsv (optionally .gz)")
    p.add_argument("--smiles-col", default=None, help="SMILES column of a CSV (default: smiles/SMILES/...)")
    p.add_argument("--on-invalid", default="nan", choices=ON_INVALID_CHOICES, help=invalid_help)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default=None, help='"cpu" (default), "cuda", "cuda:1" or "auto"')


def sidecar_path(output: str | Path) -> Path:
    """Where the invalid rows of ``output`` are listed: ``out.csv`` -> ``out.invalid.csv``,
    any other name gets ``.invalid.csv`` appended (``emb.npy`` -> ``emb.npy.invalid.csv``)."""
    out = Path(output)
    if out.suffix.lower() == ".csv":
        return out.with_name(out.name[: -len(out.suffix)] + ".invalid.csv")
    return out.with_name(out.name + ".invalid.csv")


def write_invalid_report(path: str | Path, invalid: Sequence[InvalidRecord]) -> None:
    """``index,smiles,reason`` for every invalid row, written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["index", "smiles", "reason"])
    for rec in invalid:
        writer.writerow([rec.index, rec.smiles.encode("utf-8", "backslashreplace").decode(), rec.reason])
    write_text_atomic(path, buffer.getvalue())


def report_invalid(output: str | Path, invalid: Sequence[InvalidRecord], n: int) -> Path | None:
    """Write the sidecar of ``output`` when rows were invalid, else remove a stale one from an earlier run."""
    sidecar = sidecar_path(output)
    if invalid:
        write_invalid_report(sidecar, invalid)
        log.warning("%d of %d molecules were invalid; see %s", len(invalid), n, sidecar)
        return sidecar
    if sidecar.exists():
        sidecar.unlink()  # a stale report from an earlier run would mislead
    return None


def map_in_chunks(
    fn: Callable[[list[str], str], Any],
    smiles: list[str],
    width: tuple[int, ...],
    on_invalid: str,
    quiet: bool,
    desc: str,
) -> tuple[np.ndarray, list[int], list[InvalidRecord]]:
    """Run a model call over ``smiles`` in chunks; NaN rows for invalid molecules.

    ``fn(chunk, policy)`` is e.g. ``model.embed``/``model.predict`` with ``return_report=True``;
    it is called with ``"raise"`` when ``on_invalid`` is ``raise``, else with ``"nan"``. Returns the
    full ``[n, *width]`` array, the valid row indices and the invalid records (file row numbers).
    """
    from tqdm.auto import tqdm

    n = len(smiles)
    out = np.full((n, *width), np.nan, dtype=np.float32)
    kept: list[int] = []
    invalid: list[InvalidRecord] = []
    policy = "raise" if on_invalid == "raise" else "nan"
    with tqdm(total=n, unit="mol", desc=desc, disable=quiet, dynamic_ncols=True) as bar:
        for lo in range(0, n, CHUNK):
            chunk = smiles[lo : lo + CHUNK]
            part, report = fn(chunk, policy)
            out[lo : lo + len(chunk)] = part
            kept.extend(lo + i for i in report.indices)
            invalid.extend(InvalidRecord(lo + r.index, r.smiles, r.reason) for r in report.invalid)
            bar.update(len(chunk))
    return out, kept, invalid
