"""Loading labelled molecule tables: the registered benchmarks and users' own CSV files.

Rows are never dropped: a SMILES RDKit cannot parse stays in the table (so row ``i`` is always
line ``i`` of the file) and is listed in ``MoleculeTable.invalid``; ``valid_mask`` says which
rows can be featurized. Missing labels are NaN, never zero, so losses and metrics can mask them.
"""

from __future__ import annotations

import gzip
import io
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from molchannel.chem.smiles import InvalidRecord, InvalidSmilesError, parse_smiles
from molchannel.data.paths import fetch_file, sha256_of_file
from molchannel.data.registry import DatasetSpec, Metric, TaskType, get_dataset_spec
from molchannel.data.smiles_file import csv_rows

logger = logging.getLogger(__name__)

_DEFAULT_METRIC: dict[str, Metric] = {"classification": "roc_auc", "regression": "rmse"}


class MissingColumnError(ValueError):
    """A column asked for is not in the file's header.

    Attributes:
        missing: the columns asked for that the header lacks.
        columns: the header's columns.
    """

    def __init__(self, message: str, missing: Sequence[str] = (), columns: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.missing = list(missing)
        self.columns = list(columns)


@dataclass
class MoleculeTable:
    """SMILES with their labels, row-aligned with the source file.

    Attributes:
        name: dataset name (or the file name for a user CSV).
        smiles: one SMILES per row, surrounding whitespace removed.
        targets: float32 ``[n, T]``; NaN where a label is missing.
        target_names: the ``T`` label columns.
        task_type / metric: how the targets are learnt and scored.
        extra: other carried columns, e.g. MoleculeACE's ``cliff_mol`` (int) and ``split`` (str).
        invalid: rows whose SMILES RDKit cannot parse (kept in the table).
        source_sha256: sha256 of the file the table was read from (keys the graph cache).
        n_nonfinite_labels: label cells that held +-inf and were turned into NaN.
    """

    name: str
    smiles: list[str]
    targets: np.ndarray
    target_names: tuple[str, ...]
    task_type: TaskType
    metric: Metric
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    invalid: list[InvalidRecord] = field(default_factory=list)
    source_sha256: str | None = None
    n_nonfinite_labels: int = 0

    def __post_init__(self) -> None:
        n, t = len(self.smiles), len(self.target_names)
        if self.targets.shape != (n, t):
            raise ValueError(f"targets have shape {self.targets.shape}, expected ({n}, {t})")
        for key, values in self.extra.items():
            if len(values) != n:
                raise ValueError(f"extra column {key!r} has {len(values)} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.smiles)

    @property
    def valid_mask(self) -> np.ndarray:
        """Boolean ``[n]``: True where the SMILES parses."""
        mask = np.ones(len(self.smiles), dtype=bool)
        mask[[rec.index for rec in self.invalid]] = False
        return mask

    @property
    def n_missing_labels(self) -> int:
        return int(np.isnan(self.targets).sum())

    def summary(self) -> str:
        return (
            f"{self.name}: {len(self)} molecules, {len(self.target_names)} {self.task_type} target(s), "
            f"{len(self.invalid)} invalid SMILES, {self.n_missing_labels} missing labels"
            + (f", {self.n_nonfinite_labels} non-finite labels set to NaN" if self.n_nonfinite_labels else "")
        )


# ---- reading ------------------------------------------------------------------------------
def _open_text(path: Path) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")  # noqa: SIM115
    # undecodable bytes are kept as surrogate escapes, so the row is reported (an invalid SMILES, a
    # non-numeric label) instead of a UnicodeDecodeError failing the whole file
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _delimiter(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    return "\t" if name.endswith((".tsv", ".tab")) else ","


def _read_columns(
    path: Path, smiles_col: str, target_cols: Sequence[str] | None, extra_cols: Sequence[str]
) -> tuple[list[str], dict[str, list[str]]]:
    """Read the wanted columns as text. ``target_cols=None`` means every column not otherwise named."""
    with _open_text(path) as fh:
        reader = csv_rows(fh, _delimiter(path), path.name)
        _, header = next(reader, (0, None))
        if header is None:
            raise ValueError(f"{path} is empty; expected a header line with a {smiles_col!r} column")
        if target_cols is None:
            target_cols = [h for h in header if h != smiles_col and h not in extra_cols]
        wanted = [smiles_col, *target_cols, *extra_cols]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise MissingColumnError(
                f"{path.name}: column(s) {missing} not found; the file has columns {header}",
                missing=missing,
                columns=header,
            )
        duplicated = sorted({c for c in wanted if header.count(c) > 1})
        if duplicated:
            raise ValueError(f"{path.name}: column(s) {duplicated} appear more than once in the header")
        positions = [header.index(c) for c in wanted]
        columns: list[list[str]] = [[] for _ in wanted]
        for line_num, row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(
                    f"{path.name} line {line_num}: {len(row)} fields, but the header has {len(header)}"
                )
            for out, pos in zip(columns, positions, strict=True):
                out.append(row[pos])
    return list(target_cols), dict(zip(wanted, columns, strict=True))


def _parse_labels(cells: list[str], column: str, file_name: str) -> tuple[np.ndarray, int]:
    """Floats with NaN for empty cells; +-inf become NaN and are counted; text is an error."""
    values = np.empty(len(cells), dtype=np.float64)
    bad: list[str] = []
    n_inf = 0
    for i, cell in enumerate(cells):
        text = cell.strip()
        if not text:
            values[i] = math.nan
            continue
        try:
            v = float(text)
        except ValueError:
            bad.append(f"row {i}: {cell!r}")
            continue
        if math.isinf(v):
            n_inf += 1
            v = math.nan
        values[i] = v
    if bad:
        raise ValueError(
            f"{file_name}: label column {column!r} holds non-numeric values ({'; '.join(bad[:5])}"
            f"{'; ...' if len(bad) > 5 else ''}). Pick numeric target columns (target_cols=...)."
        )
    return values, n_inf


def _convert_extra(cells: list[str]) -> np.ndarray:
    """An extra column as int, else float, else str array."""
    for kind in (int, float):
        try:
            return np.array([kind(c) for c in cells])
        except ValueError:
            continue
    return np.array(cells, dtype=str)


def _find_invalid(smiles: list[str]) -> list[InvalidRecord]:
    invalid = []
    for i, s in enumerate(smiles):
        try:
            parse_smiles(s, i)
        except InvalidSmilesError as err:
            invalid.append(InvalidRecord(i, s, err.reason))
    return invalid


def _build_table(
    path: Path,
    name: str,
    smiles_col: str,
    target_cols: Sequence[str] | None,
    task_type: TaskType,
    metric: Metric,
    extra_cols: Sequence[str],
    source_sha256: str,
) -> MoleculeTable:
    targets, columns = _read_columns(path, smiles_col, target_cols, extra_cols)
    if not targets:
        raise ValueError(f"{path.name}: no target columns (pass target_cols=...)")
    if not columns[smiles_col]:
        raise ValueError(f"{path.name} has a header but no rows of molecules")
    smiles = [s.strip() for s in columns[smiles_col]]
    y = np.empty((len(smiles), len(targets)), dtype=np.float32)
    n_inf = 0
    for j, col in enumerate(targets):
        y[:, j], col_inf = _parse_labels(columns[col], col, path.name)
        n_inf += col_inf
    if task_type == "classification":
        observed = np.unique(y[~np.isnan(y)])
        unexpected = [float(v) for v in observed if v not in (0.0, 1.0)]
        if unexpected:
            raise ValueError(
                f"{path.name}: classification labels must be 0 or 1 (or empty for missing); "
                f"found {unexpected[:10]}. Use task_type='regression' for continuous targets."
            )
    table = MoleculeTable(
        name=name,
        smiles=smiles,
        targets=y,
        target_names=tuple(targets),
        task_type=task_type,
        metric=metric,
        extra={col: _convert_extra(columns[col]) for col in extra_cols},
        invalid=_find_invalid(smiles),
        source_sha256=source_sha256,
        n_nonfinite_labels=n_inf,
    )
    if table.invalid or n_inf:
        logger.warning("%s", table.summary())
    else:
        logger.info("%s", table.summary())
    return table


def load_dataset(
    name: str, data_dir: str | os.PathLike[str] | None = None, download: bool = True
) -> MoleculeTable:
    """Load a registered benchmark (see :func:`molchannel.data.list_datasets`), verified by sha256."""
    spec: DatasetSpec = get_dataset_spec(name)
    path = fetch_file(spec, data_dir, download=download)
    return _build_table(
        path,
        spec.name,
        spec.smiles_col,
        spec.targets or None,
        spec.task_type,
        spec.metric,
        spec.extra_cols,
        spec.sha256,
    )


def load_csv(
    path: str | os.PathLike[str],
    smiles_col: str = "smiles",
    target_cols: Sequence[str] | None = None,
    task_type: TaskType = "regression",
    metric: Metric | None = None,
    extra_cols: Sequence[str] = (),
    name: str | None = None,
) -> MoleculeTable:
    """Load your own CSV/TSV (optionally ``.gz``) with a SMILES column and numeric label columns.

    ``target_cols=None`` takes every column except the SMILES column and ``extra_cols``. Empty
    label cells (and ``nan``) are missing (NaN); ``inf`` labels become NaN and are counted in
    ``n_nonfinite_labels``; any other text in a label column is an error naming the rows.

    Rows are kept as they are: invalid SMILES (including cells with bytes that are not UTF-8)
    are listed in ``invalid``, duplicated rows stay duplicated, and a task whose labels are all
    one class loads as it is (ROC-AUC is undefined for it). Errors (``ValueError``, naming the
    file): an empty or header-only file, a missing SMILES or target column
    (:class:`MissingColumnError`), rows with another number of fields than the header, and
    classification labels other than 0/1.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"input file {p} {'is a folder' if p.is_dir() else 'does not exist'}")
    if task_type not in _DEFAULT_METRIC:
        raise ValueError(f"task_type must be 'classification' or 'regression', got {task_type!r}")
    if isinstance(target_cols, str):
        target_cols = [target_cols]
    return _build_table(
        p,
        name or p.name,
        smiles_col,
        target_cols,
        task_type,
        metric or _DEFAULT_METRIC[task_type],
        tuple(extra_cols),
        sha256_of_file(p),
    )
