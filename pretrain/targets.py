"""Pre-training targets computed from the molecule (METHOD section 5).

* Morgan fingerprints of the molecule (MCD) and of its Bemis-Murcko scaffold (SCD), and the
  batch distance matrix ``D_ij = 1 - Tanimoto(FP_i, FP_j)`` that sets the adaptive margins;
* motif targets for CP: counts of RDKit's 85 ``fr_*`` fragment descriptors plus QED, normalised
  by a :class:`MotifNormalizer` fitted on a corpus sample;
* :func:`scaffold_atom_mask`, the support of the SCD attention regulariser.

Acyclic molecules have an empty Murcko scaffold: their scaffold fingerprint is all zeros and
their scaffold atom mask is all False. Two empty scaffolds are the same scaffold, so
:func:`tanimoto_distance_matrix` gives them distance 0 (RDKit's Tanimoto of two empty vectors is 0,
i.e. distance 1, which would push acyclic molecules apart in the scaffold channel).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from rdkit import Chem
from rdkit.Chem import QED, Descriptors, rdFingerprintGenerator
from torch import Tensor

from molchannel.chem.scaffold import scaffold_atom_indices, scaffold_mol

DEFAULT_FP_RADIUS = 2
DEFAULT_FP_BITS = 512

# RDKit's fragment-count descriptors, looked up once; their order (RDKit's descList order) is the
# order of the motif target vector, followed by QED.
FRAGMENT_DESCRIPTORS: tuple[tuple[str, Any], ...] = tuple(
    (name, fn) for name, fn in Descriptors.descList if name.startswith("fr_")
)
MOTIF_NAMES: tuple[str, ...] = (*(name for name, _ in FRAGMENT_DESCRIPTORS), "qed")
NUM_MOTIF_TARGETS = len(MOTIF_NAMES)


@lru_cache(maxsize=8)
def _morgan_generator(radius: int, n_bits: int) -> Any:
    return rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)


def morgan_fp(mol: Chem.Mol, radius: int = DEFAULT_FP_RADIUS, n_bits: int = DEFAULT_FP_BITS) -> np.ndarray:
    """Morgan bit fingerprint as a ``uint8`` 0/1 array of length ``n_bits``.

    Same bits as RDKit's legacy ``GetMorganFingerprintAsBitVect(mol, radius, nBits)``, which the
    reference uses.
    """
    return _morgan_generator(radius, n_bits).GetFingerprintAsNumPy(mol).astype(np.uint8, copy=False)


def scaffold_fp(mol: Chem.Mol, radius: int = DEFAULT_FP_RADIUS, n_bits: int = DEFAULT_FP_BITS) -> np.ndarray:
    """Morgan fingerprint of the Murcko scaffold; all zeros when the molecule has no ring."""
    scaffold = scaffold_mol(mol)  # RDKit Murcko scaffold, exocyclic double bonds kept
    if scaffold.GetNumAtoms() == 0:
        return np.zeros(n_bits, dtype=np.uint8)
    return morgan_fp(scaffold, radius, n_bits)


def scaffold_atom_mask(mol: Chem.Mol) -> Tensor:
    """Bool ``[num_atoms]``: True for the atoms of ``mol`` that belong to its Murcko scaffold.

    All False for an acyclic molecule (the SCD attention regulariser then skips it).
    """
    mask = torch.zeros(mol.GetNumAtoms(), dtype=torch.bool)
    mask[scaffold_atom_indices(mol)] = True
    return mask


def tanimoto_distance_matrix(fps: Tensor) -> Tensor:
    """``1 - Tanimoto`` between all rows of a ``[B, n_bits]`` 0/1 (bool, int or float) tensor.

    Returns a float32 ``[B, B]`` tensor on the device of ``fps``. Two all-zero rows are identical,
    hence distance 0 (see the module docstring for why this differs from RDKit).
    """
    if fps.dim() != 2:
        raise ValueError(f"expected fingerprints of shape [B, n_bits], got {tuple(fps.shape)}")
    bits = fps.to(torch.float32)  # counts stay exact in float32 up to 2**24 bits
    shared = bits @ bits.t()
    ones = bits.sum(dim=1)
    union = ones[:, None] + ones[None, :] - shared
    similarity = torch.where(union > 0, shared / union.clamp(min=1.0), torch.ones_like(shared))
    return 1.0 - similarity


def motif_targets(mol: Chem.Mol) -> np.ndarray:
    """``float32 [86]``: the ``fr_*`` fragment counts (:data:`MOTIF_NAMES` order) followed by QED.

    Raw values; normalise them with a :class:`MotifNormalizer` before using them as targets.
    """
    values = [fn(mol) for _, fn in FRAGMENT_DESCRIPTORS]
    values.append(QED.qed(mol))
    return np.asarray(values, dtype=np.float32)


class MotifNormalizer:
    """Per-target standardisation ``(value - mean) / std`` fitted on a corpus sample, saved as JSON.

    Targets that are constant in the sample (std below ``min_std``, e.g. a fragment that never
    occurs) get ``std = 1`` so that they are only centred, never blown up.
    """

    FORMAT_VERSION = 1

    def __init__(self, mean: np.ndarray, std: np.ndarray, names: tuple[str, ...] = MOTIF_NAMES) -> None:
        mean = np.asarray(mean, dtype=np.float32)
        std = np.asarray(std, dtype=np.float32)
        if mean.shape != (len(names),) or std.shape != (len(names),):
            raise ValueError(
                f"mean {mean.shape} and std {std.shape} must both have one entry per target ({len(names)})"
            )
        self.mean, self.std, self.names = mean, std, tuple(names)

    @classmethod
    def fit(cls, targets: np.ndarray, min_std: float = 1e-6) -> MotifNormalizer:
        """Fit on ``[n, 86]`` raw targets (:func:`motif_targets` of a corpus sample); NaNs are ignored."""
        targets = np.asarray(targets, dtype=np.float64)
        if targets.ndim != 2 or targets.shape[1] != NUM_MOTIF_TARGETS or len(targets) == 0:
            raise ValueError(f"expected a non-empty [n, {NUM_MOTIF_TARGETS}] array, got {targets.shape}")
        mean = np.nan_to_num(np.nanmean(targets, axis=0))
        std = np.nan_to_num(np.nanstd(targets, axis=0))
        std = np.where(std < min_std, 1.0, std)
        return cls(mean, std)

    def transform(self, values: np.ndarray | Tensor) -> np.ndarray | Tensor:
        """Normalise raw targets (``[..., 86]``, numpy or torch; the type is kept)."""
        if isinstance(values, Tensor):
            mean = torch.as_tensor(self.mean, device=values.device)
            std = torch.as_tensor(self.std, device=values.device)
            return (values - mean) / std
        return ((np.asarray(values, dtype=np.float32) - self.mean) / self.std).astype(np.float32)

    def inverse_transform(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float32) * self.std + self.mean

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.FORMAT_VERSION,
            "names": list(self.names),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MotifNormalizer:
        if d.get("format_version") != cls.FORMAT_VERSION:
            raise ValueError(f"motif normalizer format version {d.get('format_version')!r} is not supported")
        names = tuple(d["names"])
        if names != MOTIF_NAMES:
            missing = sorted(set(MOTIF_NAMES) - set(names))
            extra = sorted(set(names) - set(MOTIF_NAMES))
            raise ValueError(
                "the saved motif normalizer was fitted on different targets than this RDKit computes "
                f"(missing: {missing}, extra: {extra}, or a different order); refit it on the corpus"
            )
        return cls(np.asarray(d["mean"]), np.asarray(d["std"]), names)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> MotifNormalizer:
        return cls.from_dict(json.loads(text))
