"""The perturber protocol and the record of one molecule's perturbations.

:class:`ScaffoldInvariantPerturber` is what every perturbation method implements (see ``sidechain.py``
and ``crem.py``); :func:`perturbation_row` turns one anchor into the stored row of ``n_keep`` positives,
and :class:`PerturbationRecord` is that row as read back. :func:`scaffold_key` is the scaffold all
perturbations of a molecule must share.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
from rdkit import Chem

from molchannel.chem.scaffold import murcko_scaffold_smiles
from molchannel.chem.smiles import InvalidSmilesError


def scaffold_key(mol: Chem.Mol) -> str:
    """The scaffold two molecules must share: Murcko scaffold SMILES without stereo ('' if acyclic),
    as in the scaffold split the field uses (DeepChem's ``includeChirality=False``)."""
    return murcko_scaffold_smiles(mol, include_chirality=False)


def _canonical_with_scaffold(smiles: str) -> tuple[str, str] | None:
    """(canonical SMILES, scaffold SMILES) of a generated product, or None if RDKit rejects it.

    Products are re-parsed from their SMILES, so the scaffold is checked on exactly what gets stored.
    """
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None
    return Chem.MolToSmiles(mol), scaffold_key(mol)


class ScaffoldInvariantPerturber(ABC):
    """Generates molecules with the anchor's exact Murcko scaffold, changed outside it.

    Subclasses implement :meth:`candidates` (every distinct valid product, sorted) and may override
    :meth:`sample` when drawing a few products is cheaper than enumerating all of them. Molecules
    without a scaffold (acyclic) get no perturbations, as in the reference. A subclass becomes
    available to :func:`make_perturber` by ``@register_perturber(name)``; it may override
    :meth:`from_options` to check its options before construction.
    """

    def __init__(self, max_per_molecule: int = 100, seed: int = 0) -> None:
        if max_per_molecule < 1:
            raise ValueError(f"max_per_molecule must be >= 1, got {max_per_molecule}")
        self.max_per_molecule = max_per_molecule
        self.seed = seed

    @classmethod
    def from_options(cls, **options: Any) -> ScaffoldInvariantPerturber:
        """Build from keyword options (what :func:`make_perturber` calls)."""
        return cls(**options)

    @abstractmethod
    def candidates(self, smiles: str) -> list[str]:
        """All distinct perturbations of ``smiles`` (canonical SMILES, sorted, input excluded)."""

    def perturb(self, smiles: str) -> list[str]:
        """At most ``max_per_molecule`` perturbations: a subset fixed by ``seed`` and the input."""
        found = self.candidates(smiles)
        if len(found) <= self.max_per_molecule:
            return found
        rng = np.random.default_rng([self.seed, zlib.crc32(smiles.encode())])
        keep = rng.choice(len(found), size=self.max_per_molecule, replace=False)
        return [found[i] for i in sorted(keep)]

    def sample(self, smiles: str, n: int, rng: np.random.Generator) -> list[str]:
        """Up to ``n`` distinct perturbations drawn uniformly with ``rng`` (fewer if fewer exist)."""
        found = self.candidates(smiles)
        if len(found) <= n:
            return found
        return [found[i] for i in rng.choice(len(found), size=n, replace=False)]

    def options(self) -> dict[str, Any]:
        """Plain-value settings that determine the output (stored in the precompute manifest)."""
        return {"max_per_molecule": self.max_per_molecule, "seed": self.seed}


@dataclass(frozen=True)
class PerturbationRecord:
    """The stored positives of one corpus row."""

    row: int
    anchor: str
    perturbations: tuple[str, ...]
    n_real: int
    error: str | None = None


def _row_rng(seed: int, row: int) -> np.random.Generator:
    """The random stream of one corpus row: the same whatever shard or process computes it."""
    return np.random.default_rng([seed, row])


def perturbation_row(
    perturber: ScaffoldInvariantPerturber, row: int, anchor: str, n_keep: int, seed: int
) -> dict[str, Any]:
    """One output row: ``n_keep`` perturbations (padded with the anchor) and how many are real.

    A molecule that cannot be parsed or perturbed does not stop the precompute: it is padded, with
    ``n_real = 0`` and the reason in ``error``.
    """
    record: dict[str, Any] = {"row": row, "anchor": anchor}
    try:
        found = perturber.sample(anchor, n_keep, _row_rng(seed, row))
        error = None
    except InvalidSmilesError as exc:
        found, error = [], f"invalid SMILES: {exc.reason}"
    except Exception as exc:  # a failure inside RDKit/CReM on one molecule must not end a bulk job
        found, error = [], f"{type(exc).__name__}: {exc}"
    record["perturbations"] = found + [anchor] * (n_keep - len(found))
    record["n_real"] = len(found)
    if error is not None:
        record["error"] = error
    return record
