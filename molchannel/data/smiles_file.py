"""Reading molecules from the files people actually have.

``.smi``/``.txt`` (one SMILES per line, optional name after whitespace, optional ``smiles``
header) and ``.csv``/``.tsv`` with a SMILES column, each optionally gzipped. Bytes that are not
valid UTF-8 do not stop the read: they are kept (as surrogate escapes) so that the row is
reported as invalid instead of the whole file failing.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SMILES_COLUMN_NAMES = ("smiles", "canonical_smiles", "smi", "mol")


@dataclass
class SmilesTable:
    """SMILES of a file plus, for tables, every other column (as text) in input order."""

    smiles: list[str]
    smiles_col: str | None = None
    columns: dict[str, list[str]] = field(default_factory=dict)
    header: list[str] = field(default_factory=list)
    """All column names in file order, the SMILES column included (empty for .smi files)."""

    def __len__(self) -> int:
        return len(self.smiles)


def _strip_suffixes(path: Path) -> str:
    name = path.name.lower()
    return name[:-3] if name.endswith(".gz") else name


def _open_text(path: Path) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")  # noqa: SIM115
    return io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")


def csv_rows(
    fh: io.TextIOBase, delimiter: str, path: str | os.PathLike[str]
) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of each row of a CSV/TSV, read strictly.

    Malformed CSV becomes a ``ValueError`` naming the file and line instead of ``csv.Error``: an
    unterminated quote (which a lenient reader would let swallow every later row into one cell),
    text after a closing quote, or a field longer than ``csv.field_size_limit()`` characters.
    """
    reader = csv.reader(fh, delimiter=delimiter, strict=True)
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as exc:
        raise ValueError(
            f"{path} line {reader.line_num}: malformed CSV ({exc}); check the quoting of that row"
        ) from exc


def pick_smiles_column(header: list[str], smiles_col: str | None = None) -> str:
    """The SMILES column of ``header``: ``smiles_col`` if given, else a conventional name."""
    if smiles_col is not None:
        if smiles_col not in header:
            raise ValueError(f"column {smiles_col!r} not found; the file has columns {header}")
        return smiles_col
    lowered = {h.strip().lower(): h for h in header}
    for name in SMILES_COLUMN_NAMES:
        if name in lowered:
            return lowered[name]
    raise ValueError(f"no SMILES column found among {header}; name it with smiles_col (--smiles-col)")


def iter_smi_lines(path: str | os.PathLike[str]) -> Iterator[str]:
    """SMILES of a ``.smi`` file: first token of each non-blank line, header line skipped."""
    with _open_text(Path(path)) as fh:
        for lineno, line in enumerate(fh):
            token = line.strip().split(maxsplit=1)[0] if line.strip() else ""
            if not token:
                continue
            if lineno == 0 and token.lower() in SMILES_COLUMN_NAMES:
                continue
            yield token


def read_smiles_file(path: str | os.PathLike[str], smiles_col: str | None = None) -> SmilesTable:
    """Read a ``.smi``/``.txt``/``.csv``/``.tsv`` file (optionally ``.gz``).

    Every row is kept, duplicates and invalid SMILES included (blank lines are skipped). Raises
    ``ValueError`` naming the file when it holds no molecules at all (empty, blank or header
    only), so that no command silently writes an empty result, when a table has no SMILES
    column (see :func:`pick_smiles_column`) and when its header names a column twice. Short rows
    of a table are padded with empty cells.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"input file {p} {'is a folder' if p.is_dir() else 'does not exist'}")
    table = _read_table(p, smiles_col)
    if not table.smiles:
        raise ValueError(f"{p} holds no molecules (the file is empty, blank or has only a header)")
    return table


def _read_table(p: Path, smiles_col: str | None) -> SmilesTable:
    kind = _strip_suffixes(p)
    if kind.endswith((".smi", ".txt", ".smiles")):
        return SmilesTable(list(iter_smi_lines(p)))
    if not kind.endswith((".csv", ".tsv")):
        raise ValueError(f"cannot tell the format of {p.name}: use .smi, .txt, .csv or .tsv (optionally .gz)")
    with _open_text(p) as fh:
        reader = (row for _, row in csv_rows(fh, "\t" if kind.endswith(".tsv") else ",", p))
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{p} is empty") from None
        try:
            col = pick_smiles_column(header, smiles_col)
        except ValueError as exc:
            raise ValueError(f"{p}: {exc}") from None
        duplicated = sorted({h for h in header if header.count(h) > 1})
        if duplicated:  # columns are kept by name: a repeated name would interleave two columns' cells
            raise ValueError(f"{p}: column(s) {duplicated} appear more than once in the header {header}")
        columns: dict[str, list[str]] = {h: [] for h in header}
        for row in reader:
            if not row:
                continue
            row = row + [""] * (len(header) - len(row))
            for h, v in zip(header, row, strict=False):
                columns[h].append(v)
    smiles = columns.pop(col)
    return SmilesTable(smiles, col, columns, list(header))
