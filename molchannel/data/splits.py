"""Train/valid/test splits: scaffold (deterministic and seeded), random, and MoleculeACE's official one.

``scaffold_split`` reproduces DeepChem's ``ScaffoldSplitter`` and Hu et al.'s ``scaffold_split``
exactly (same groups, same order, same cutoffs), so its test sets are the literature's:

* molecules are grouped by Murcko scaffold SMILES (``include_chirality=True`` as in Hu et al. and
  METHOD.md; DeepChem uses ``False``);
* groups are ordered by ``(size, smallest index)`` **descending**: largest group first, and among
  groups of equal size the one whose first molecule comes *later* goes first (both references sort
  with ``reverse=True`` on that key);
* each group in turn goes to train if train stays within ``frac_train * n`` molecules, else to valid
  if train+valid stays within ``(frac_train + frac_valid) * n``, else to test. A later, smaller group
  can still go to train after a larger one was turned away.

Rows whose SMILES RDKit cannot parse have no scaffold. Like DeepChem, they are put in no subset
(they are listed in ``Split.excluded``) but still counted in ``n`` for the cutoffs, so that the
subsets equal DeepChem's index for index. ``count_invalid=False`` computes cutoffs from the
parseable rows only, which is what Hu et al. get (their datasets drop such molecules beforehand).
One difference remains: DeepChem treats an empty SMILES (RDKit parses it to a molecule with no
atoms) as valid with scaffold ``""``; here it is invalid. No registered dataset has one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from molchannel.chem.scaffold import murcko_scaffold_smiles
from molchannel.chem.smiles import InvalidRecord, InvalidSmilesError, parse_smiles
from molchannel.data.datasets import MoleculeTable
from molchannel.data.registry import get_dataset_spec

Fractions = tuple[float, float, float]


def _index_array(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).reshape(-1)


@dataclass(frozen=True, eq=False)
class Split:
    """Row indices of each subset. ``excluded`` holds rows in no subset (unparseable SMILES).

    ``method`` and ``params`` record how the split was made, so a saved split documents itself.
    """

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    excluded: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    method: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("train", "valid", "test", "excluded"):
            object.__setattr__(self, name, _index_array(getattr(self, name)))
        everything = np.concatenate([self.train, self.valid, self.test, self.excluded])
        if len(np.unique(everything)) != len(everything):
            raise ValueError("a row index appears twice across train/valid/test/excluded")

    @property
    def sizes(self) -> tuple[int, int, int]:
        return len(self.train), len(self.valid), len(self.test)

    def to_json(self) -> str:
        return json.dumps(
            {
                "method": self.method,
                "params": self.params,
                "train": self.train.tolist(),
                "valid": self.valid.tolist(),
                "test": self.test.tolist(),
                "excluded": self.excluded.tolist(),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Split:
        d = json.loads(text)
        return cls(
            train=d["train"],
            valid=d["valid"],
            test=d["test"],
            excluded=d.get("excluded", []),
            method=d.get("method", ""),
            params=d.get("params", {}),
        )

    def __repr__(self) -> str:
        return (
            f"Split(method={self.method!r}, train={len(self.train)}, valid={len(self.valid)}, "
            f"test={len(self.test)}, excluded={len(self.excluded)})"
        )


def _check_fractions(frac: Sequence[float]) -> Fractions:
    if len(frac) != 3 or any(f < 0 for f in frac) or not math.isclose(sum(frac), 1.0, abs_tol=1e-6):
        raise ValueError(f"frac must be three non-negative fractions summing to 1, got {tuple(frac)}")
    return float(frac[0]), float(frac[1]), float(frac[2])


def scaffold_groups(
    smiles: Sequence[str], include_chirality: bool = True
) -> tuple[list[list[int]], list[InvalidRecord]]:
    """Row indices grouped by Murcko scaffold, groups in order of first appearance; plus unparseable rows."""
    groups: dict[str, list[int]] = {}
    invalid: list[InvalidRecord] = []
    for i, s in enumerate(smiles):
        try:
            mol = parse_smiles(s, i)
        except InvalidSmilesError as err:
            invalid.append(InvalidRecord(i, str(s), err.reason))
            continue
        groups.setdefault(murcko_scaffold_smiles(mol, include_chirality), []).append(i)
    return list(groups.values()), invalid


def scaffold_split(
    smiles: Sequence[str],
    frac: Sequence[float] = (0.8, 0.1, 0.1),
    include_chirality: bool = True,
    count_invalid: bool = True,
) -> Split:
    """Deterministic scaffold split, identical to DeepChem's ``ScaffoldSplitter`` (see module docstring).

    With ``frac_test == 0`` the test set is empty (every group that train turns away validates).
    """
    f_train, f_valid, f_test = _check_fractions(frac)
    groups, invalid = scaffold_groups(smiles, include_chirality)
    n = len(smiles) if count_invalid else len(smiles) - len(invalid)
    train_cutoff = f_train * n
    valid_cutoff = (f_train + f_valid) * n if f_test > 0 else math.inf  # no test set: the rest validates
    ordered = sorted(groups, key=lambda g: (len(g), g[0]), reverse=True)
    train: list[int] = []
    valid: list[int] = []
    test: list[int] = []
    for group in ordered:
        if len(train) + len(group) <= train_cutoff:
            train += group
        elif len(train) + len(valid) + len(group) <= valid_cutoff:
            valid += group
        else:
            test += group
    return Split(
        train=np.asarray(train, dtype=np.int64),
        valid=np.asarray(valid, dtype=np.int64),
        test=np.asarray(test, dtype=np.int64),
        excluded=np.asarray([rec.index for rec in invalid], dtype=np.int64),
        method="scaffold",
        params={"frac": list(frac), "include_chirality": include_chirality, "count_invalid": count_invalid},
    )


def random_scaffold_split(
    smiles: Sequence[str],
    frac: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    include_chirality: bool = True,
    count_invalid: bool = True,
) -> Split:
    """Scaffold groups in a seeded random order (Hu et al.'s ``random_scaffold_split``).

    Groups (in first-appearance order) are permuted with ``np.random.RandomState(seed)``; each goes
    to valid while valid stays within ``floor(frac_valid * n)``, else to test while test stays within
    ``floor(frac_test * n)``, else to train.
    """
    _, f_valid, f_test = _check_fractions(frac)
    groups, invalid = scaffold_groups(smiles, include_chirality)
    n = len(smiles) if count_invalid else len(smiles) - len(invalid)
    n_valid = int(np.floor(f_valid * n))
    n_test = int(np.floor(f_test * n))
    order = np.random.RandomState(seed).permutation(len(groups))
    train: list[int] = []
    valid: list[int] = []
    test: list[int] = []
    for g in order:
        group = groups[g]
        if len(valid) + len(group) <= n_valid:
            valid += group
        elif len(test) + len(group) <= n_test:
            test += group
        else:
            train += group
    return Split(
        train=np.asarray(train, dtype=np.int64),
        valid=np.asarray(valid, dtype=np.int64),
        test=np.asarray(test, dtype=np.int64),
        excluded=np.asarray([rec.index for rec in invalid], dtype=np.int64),
        method="random_scaffold",
        params={"frac": list(frac), "seed": seed, "include_chirality": include_chirality,
                "count_invalid": count_invalid},
    )  # fmt: skip


def random_split(
    n: int, frac: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, valid_mask: np.ndarray | None = None
) -> Split:
    """Seeded random split of ``n`` rows.

    ``int(frac_train * m)`` rows go to train, ``int(frac_valid * m)`` to valid and the rest to test,
    where ``m`` counts the rows not excluded: rows where ``valid_mask`` is False go to ``excluded``.
    With ``frac_test == 0`` the test set is empty: the rest go to train instead.
    """
    f_train, f_valid, f_test = _check_fractions(frac)
    rows = np.arange(n, dtype=np.int64)
    mask = np.ones(n, dtype=bool) if valid_mask is None else np.asarray(valid_mask, dtype=bool)
    if mask.shape != (n,):
        raise ValueError(f"valid_mask has shape {mask.shape}, expected ({n},)")
    usable = np.random.default_rng(seed).permutation(rows[mask])
    n_valid = int(f_valid * len(usable))
    n_train = int(f_train * len(usable)) if f_test > 0 else len(usable) - n_valid
    return Split(
        train=usable[:n_train],
        valid=usable[n_train : n_train + n_valid],
        test=usable[n_train + n_valid :],
        excluded=rows[~mask],
        method="random",
        params={"frac": list(frac), "seed": seed},
    )


def official_split(
    split_column: Sequence[str] | np.ndarray,
    valid_frac: float = 0.0,
    seed: int = 0,
    valid_mask: np.ndarray | None = None,
) -> Split:
    """The split a dataset ships with (MoleculeACE's ``split`` column of ``train``/``test``).

    MoleculeACE defines no validation set. ``valid_frac > 0`` moves ``round(valid_frac * n_train)``
    training rows, drawn with ``np.random.default_rng(seed)``, to valid; the test set is never touched,
    so results stay comparable with the literature. The default 0 keeps the official split as is.
    Rows where ``valid_mask`` is False (unparseable SMILES) go to ``excluded``.
    """
    if not 0.0 <= valid_frac < 1.0:
        raise ValueError(f"valid_frac must be in [0, 1), got {valid_frac}")
    labels = np.array([str(v).strip().lower() for v in split_column])
    unknown = sorted(set(labels.tolist()) - {"train", "test"})
    if unknown:
        raise ValueError(f"split column may only hold 'train' and 'test'; found {unknown[:10]}")
    usable = np.ones(len(labels), dtype=bool) if valid_mask is None else np.asarray(valid_mask, dtype=bool)
    if usable.shape != labels.shape:
        raise ValueError(f"valid_mask has shape {usable.shape}, expected {labels.shape}")
    train = np.flatnonzero((labels == "train") & usable)
    test = np.flatnonzero((labels == "test") & usable)
    valid = np.empty(0, dtype=np.int64)
    n_valid = int(round(valid_frac * len(train)))
    if n_valid:
        picked = np.random.default_rng(seed).permutation(len(train))[:n_valid]
        chosen = np.zeros(len(train), dtype=bool)
        chosen[picked] = True
        valid, train = train[chosen], train[~chosen]
    return Split(train=train, valid=valid, test=test, excluded=np.flatnonzero(~usable), method="official",
                 params={"valid_frac": valid_frac, "seed": seed})  # fmt: skip


#: Values of a split column (``column_split``), case-insensitive, and the subset each one names.
SPLIT_VALUES: dict[str, str] = {
    "train": "train",
    "valid": "valid",
    "val": "valid",
    "validation": "valid",
    "test": "test",
}


def column_split(
    split_column: Sequence[object] | np.ndarray, column: str = "split", valid_mask: np.ndarray | None = None
) -> Split:
    """The split a user gives as a column of their file: ``train``, ``valid`` or ``test`` per row.

    Values are case-insensitive, surrounding spaces ignored; ``val`` and ``validation`` mean
    ``valid``. Any other value, or an empty cell, is a ``ValueError`` naming the rows (0-based data
    rows, as elsewhere in molchannel). Rows where ``valid_mask`` is False (unparseable SMILES) go to
    ``excluded``. Any subset may be empty here; fine-tuning needs train and valid rows.
    """
    labels = [str(v).strip().lower() for v in split_column]
    bad = [(i, v) for i, (v, label) in enumerate(zip(split_column, labels, strict=True))
           if label not in SPLIT_VALUES]  # fmt: skip
    if bad:
        shown = "; ".join(f"row {i}: {str(v)!r}" for i, v in bad[:10])
        raise ValueError(
            f"split column {column!r} holds {len(bad)} value(s) that are not a subset name ({shown}"
            f"{'; ...' if len(bad) > 10 else ''}); give every row one of {sorted(SPLIT_VALUES)} "
            "(case-insensitive; val and validation mean valid)"
        )
    subset = np.array([SPLIT_VALUES[label] for label in labels], dtype=object)
    usable = np.ones(len(labels), dtype=bool) if valid_mask is None else np.asarray(valid_mask, dtype=bool)
    if usable.shape != subset.shape:
        raise ValueError(f"valid_mask has shape {usable.shape}, expected {subset.shape}")
    return Split(
        train=np.flatnonzero((subset == "train") & usable),
        valid=np.flatnonzero((subset == "valid") & usable),
        test=np.flatnonzero((subset == "test") & usable),
        excluded=np.flatnonzero(~usable),
        method="column",
        params={"column": column},
    )


def benchmark_split(table: MoleculeTable, valid_frac: float = 0.1, seed: int = 0) -> Split:
    """The split a registered benchmark is evaluated on (METHOD.md section 7).

    MoleculeNet: the deterministic scaffold split 80/10/10 with chirality in the scaffold key (Hu et
    al.). MoleculeACE: the official ``split`` column; ``valid_frac`` of its training rows (seeded)
    become the validation set used for model selection, the test set is untouched.
    """
    spec = get_dataset_spec(table.name)
    if spec.split == "official":
        return official_split(
            table.extra["split"], valid_frac=valid_frac, seed=seed, valid_mask=table.valid_mask
        )
    return scaffold_split(table.smiles, include_chirality=True)
