"""Shared by the file commands (``embed``, ``predict``): chunked model calls, the invalid-row report;
and by the YAML commands (``pretrain``, ``finetune``): the check of their ``--config`` files."""

from __future__ import annotations

import argparse
import csv
import io
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from molchannel.atomic import write_text_atomic
from molchannel.chem.smiles import ON_INVALID_CHOICES, InvalidRecord
from molchannel.progress import progress

log = logging.getLogger("molchannel.cli")
CHUNK = 8192  # rows per model call, so the progress bar moves and memory stays bounded


def add_input_arguments(p: argparse.ArgumentParser, invalid_help: str) -> None:
    """Input file, SMILES column, invalid-row policy, batch size and device of a file command."""
    p.add_argument("-i", "--input", required=True, help="input .smi/.txt/.csv/.tsv (optionally .gz)")
    p.add_argument("--smiles-col", default=None, help="SMILES column of a CSV (default: smiles/SMILES/...)")
    p.add_argument("--on-invalid", default="nan", choices=ON_INVALID_CHOICES, help=invalid_help)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default=None, help='"cpu" (default), "cuda", "cuda:1" or "auto"')


def check_config_files(args: Sequence[str]) -> None:
    """``ValueError`` naming a ``-c/--config`` file that is not UTF-8 text or not YAML: jsonargparse reports
    those without the file's name (or, undecodable, as a bare ``UnicodeDecodeError``)."""
    import yaml

    for i, arg in enumerate(args):
        if arg in ("-c", "--config") and i + 1 < len(args):
            path = Path(args[i + 1])
        elif arg.startswith("--config="):
            path = Path(arg.split("=", 1)[1])
        else:
            continue
        if not path.is_file():
            continue  # a missing file, or YAML text given inline: jsonargparse's to report
        try:
            yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"config file {path} is not YAML text (byte {exc.start} is not UTF-8); give --config "
                "a YAML file, e.g. one of configs/finetune/ or configs/pretrain/"
            ) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or exc
            raise ValueError(f"config file {path} is not valid YAML{where}: {problem}") from None


def sidecar_path(output: str | Path) -> Path:
    """Where the invalid rows of ``output`` are listed: ``out.csv`` -> ``out.invalid.csv``,
    any other name gets ``.invalid.csv`` appended (``emb.npy`` -> ``emb.npy.invalid.csv``)."""
    out = Path(output)
    if out.suffix.lower() == ".csv":
        return out.with_name(out.name[: -len(out.suffix)] + ".invalid.csv")
    return out.with_name(out.name + ".invalid.csv")


def escape_undecodable(text: str) -> str:
    """Input text as read, with bytes that were not UTF-8 (kept as surrogate escapes) written as
    ``\\xff``: the same in every output (predictions, parquet, the invalid-row report)."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no file byte produces (text made in Python)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def csv_text(rows: Iterable[Sequence[object]], delimiter: str = ",") -> str:
    """Rows as CSV/TSV text with ``\\n`` line ends.

    Python's writer quotes a field holding ``\\n`` but not one holding a bare ``\\r`` when the
    line terminator is ``\\n``; readers then split that row in two. Rows with a ``\\r`` anywhere
    are therefore written with every field quoted.
    """
    buffer = io.StringIO()
    plain = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    quoted = csv.writer(buffer, delimiter=delimiter, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in rows:
        (quoted if any(isinstance(v, str) and "\r" in v for v in row) else plain).writerow(row)
    return buffer.getvalue()


def write_invalid_report(path: str | Path, invalid: Sequence[InvalidRecord]) -> None:
    """``index,smiles,reason`` for every invalid row, written atomically."""
    rows = [[rec.index, escape_undecodable(rec.smiles), rec.reason] for rec in invalid]
    write_text_atomic(path, csv_text([["index", "smiles", "reason"], *rows]))


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
    n = len(smiles)
    out = np.full((n, *width), np.nan, dtype=np.float32)
    kept: list[int] = []
    invalid: list[InvalidRecord] = []
    policy = "raise" if on_invalid == "raise" else "nan"
    with progress(total=n, unit="mol", desc=desc, disable=quiet) as bar:
        for lo in range(0, n, CHUNK):
            chunk = smiles[lo : lo + CHUNK]
            part, report = fn(chunk, policy)
            out[lo : lo + len(chunk)] = part
            kept.extend(lo + i for i in report.indices)
            invalid.extend(InvalidRecord(lo + r.index, r.smiles, r.reason) for r in report.invalid)
            bar.update(len(chunk))
    return out, kept, invalid
