"""Molecule-level features that fine-tuning can concatenate with the channel mixture.

Each generator turns one RDKit molecule into a fixed-length ``float32`` vector; its name selects
it in ``model.extra_features`` (several names concatenate in the order given)::

    molecule_features(["CCO", "c1ccccc1O"], ["rdkit2d"])   # -> float32 [2, 216] (RDKit 2026.09)

Generators:

* ``rdkit2d``: every RDKit 2D descriptor of ``Descriptors.descList`` except ``Ipc`` (values up to
  1e30; ``AvgIpc`` carries the same information), in descList order: 216 with RDKit 2026.09 (the
  count follows the RDKit version, and a model folder records it);
* ``morgan_counts`` / ``morgan_bits``: Morgan fingerprint radius 2, 2,048 counts or bits (ECFP4).

Values are raw. A descriptor RDKit cannot compute for a molecule (an exception, or a non-finite
value such as Gasteiger charges of unusual elements) is NaN; fine-tuning standardises the features
with the training rows' statistics and replaces NaN by the training mean
(:class:`molchannel.nn.model.FeatureScaler`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import Descriptors, rdFingerprintGenerator

from molchannel.chem.smiles import InvalidSmilesError, parse_smiles
from molchannel.registry import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MolFeatureGenerator:
    """A named molecule -> vector function with its width and feature names."""

    name: str
    names: tuple[str, ...]
    compute: Callable[[Chem.Mol], np.ndarray]

    @property
    def dim(self) -> int:
        return len(self.names)


MOL_FEATURES: Registry[MolFeatureGenerator] = Registry("molecule feature generator")


def register_mol_feature(generator: MolFeatureGenerator) -> MolFeatureGenerator:
    return MOL_FEATURES.add(generator.name, generator)


def descriptor_values(mol: Chem.Mol, functions: Sequence[Callable[[Chem.Mol], float]]) -> np.ndarray:
    """``float64 [len(functions)]``: each RDKit descriptor function on ``mol``; NaN where it fails.

    RDKit raises assorted errors on odd valences: one NaN, not a lost molecule.
    """
    values = np.empty(len(functions), dtype=np.float64)
    for k, fn in enumerate(functions):
        try:
            values[k] = fn(mol)
        except Exception:
            values[k] = np.nan
    values[~np.isfinite(values)] = np.nan
    return values


_RDKIT2D = tuple((name, fn) for name, fn in Descriptors.descList if name != "Ipc")
_RDKIT2D_FUNCTIONS = tuple(fn for _, fn in _RDKIT2D)
register_mol_feature(
    MolFeatureGenerator(
        "rdkit2d",
        tuple(name for name, _ in _RDKIT2D),
        lambda mol: descriptor_values(mol, _RDKIT2D_FUNCTIONS).astype(np.float32),
    )
)

MORGAN_RADIUS, MORGAN_BITS = 2, 2048


@lru_cache(maxsize=1)
def _morgan() -> Any:
    return rdFingerprintGenerator.GetMorganGenerator(radius=MORGAN_RADIUS, fpSize=MORGAN_BITS)


register_mol_feature(
    MolFeatureGenerator(
        "morgan_counts",
        tuple(f"morgan_count_{i}" for i in range(MORGAN_BITS)),
        lambda mol: _morgan().GetCountFingerprintAsNumPy(mol).astype(np.float32),
    )
)
register_mol_feature(
    MolFeatureGenerator(
        "morgan_bits",
        tuple(f"morgan_bit_{i}" for i in range(MORGAN_BITS)),
        lambda mol: _morgan().GetFingerprintAsNumPy(mol).astype(np.float32),
    )
)


def mol_feature_names() -> tuple[str, ...]:
    """The registered generator names."""
    return MOL_FEATURES.names()


def check_mol_features(names: Sequence[str]) -> list[str]:
    """``names`` as a list, after checking each is a registered generator (``ValueError`` otherwise)."""
    if isinstance(names, str):
        raise ValueError(f"extra features must be a list of names, e.g. [{names!r}], not a string")
    names = list(names)
    for name in names:
        MOL_FEATURES.lookup(name)
    if len(set(names)) != len(names):
        raise ValueError(f"extra features {names} name a generator twice")
    return names


def mol_features_dim(names: Sequence[str]) -> int:
    """Width of the concatenated features of ``names``."""
    return sum(MOL_FEATURES.lookup(name).dim for name in names)


def feature_column_names(names: Sequence[str]) -> list[str]:
    """One name per column of :func:`molecule_features` (generator order, then its own order)."""
    return [column for name in names for column in MOL_FEATURES.lookup(name).names]


def molecule_features(molecules: Sequence[object], names: Sequence[str]) -> np.ndarray:
    """``float32 [N, mol_features_dim(names)]`` raw features of SMILES strings or RDKit molecules.

    A molecule that does not parse gives a row of NaN (callers drop invalid rows before, as the
    featurizers do); a descriptor that fails gives one NaN.
    """
    generators = [MOL_FEATURES.lookup(name) for name in check_mol_features(names)]
    out = np.full((len(molecules), sum(g.dim for g in generators)), np.nan, dtype=np.float32)
    # some descriptors make RDKit log a warning per molecule (e.g. on lone hydrogens): keep them quiet
    with rdBase.BlockLogs():
        _fill(out, molecules, generators)
    return out


def _fill(out: np.ndarray, molecules: Sequence[object], generators: list[MolFeatureGenerator]) -> None:
    for i, item in enumerate(molecules):
        mol = item if isinstance(item, Chem.Mol) else _parse(item)
        if mol is None:
            continue
        start = 0
        for generator in generators:
            out[i, start : start + generator.dim] = generator.compute(mol)
            start += generator.dim


def _parse(smiles: object) -> Chem.Mol | None:
    try:
        return parse_smiles(smiles)
    except InvalidSmilesError:
        return None


def cached_molecule_features(
    smiles: Sequence[str], names: Sequence[str], cache_dir: Path | None, progress_label: str = ""
) -> np.ndarray:
    """:func:`molecule_features` of a dataset's SMILES, kept in ``cache_dir`` as ``.npy``.

    The cache key is the SMILES list, the generator names and the RDKit version, so a new RDKit
    (whose descriptors may change) computes afresh. ``cache_dir=None`` computes without caching.
    """
    names = check_mol_features(names)
    path = None
    if cache_dir is not None:
        digest = hashlib.sha256()
        digest.update(f"{','.join(names)}|rdkit {rdBase.rdkitVersion}|{len(smiles)}".encode())
        for s in smiles:
            digest.update(str(s).encode("utf-8", "surrogateescape") + b"\n")
        path = Path(cache_dir) / f"molfeatures-{digest.hexdigest()[:20]}.npy"
        if path.is_file():
            try:
                cached = np.load(path)
                if cached.shape == (len(smiles), mol_features_dim(names)):
                    return cached
            except (OSError, ValueError):
                pass  # a torn or foreign file: compute again
    if progress_label:
        log.info("computing %s for %d molecules (%s)", "+".join(names), len(smiles), progress_label)
    features = molecule_features(smiles, names)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, features)
        tmp.replace(path)
    return features


__all__ = [
    "MOL_FEATURES",
    "MolFeatureGenerator",
    "cached_molecule_features",
    "check_mol_features",
    "descriptor_values",
    "feature_column_names",
    "mol_feature_names",
    "mol_features_dim",
    "molecule_features",
    "register_mol_feature",
]
