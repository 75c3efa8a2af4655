"""Pre-training targets computed from the molecule (METHOD section 5).

* Morgan fingerprints of the molecule (MCD) and of its Bemis-Murcko scaffold (SCD), and the
  batch distance matrix ``D_ij = 1 - Tanimoto(FP_i, FP_j)`` that sets the adaptive margins;
* motif targets for CP: counts of RDKit's 85 ``fr_*`` fragment descriptors plus QED, normalised
  by a :class:`MotifNormalizer` fitted on a corpus sample;
* knowledge targets: :data:`DESCRIPTOR_NAMES`, 118 RDKit molecular descriptors (logP, molar
  refractivity, TPSA, charges, E-state and VSA bins, connectivity indices, ring and atom counts),
  normalised by a robust :class:`TargetNormalizer`;
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

from molchannel.chem.mol_features import descriptor_values
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

# Knowledge-term descriptors: every RDKit descriptor except the fragment counts (already motif
# targets), QED (a motif target too), the BCUT2D eigenvalues, Ipc/AvgIpc (values up to 1e30),
# SPS and BertzCT (slow, redundant with the ring and connectivity counts) and the radical count
# (always 0 in ZINC). 118 descriptors, close to the ~114 of the reference code.
_EXCLUDED_DESCRIPTORS = frozenset({"qed", "Ipc", "AvgIpc", "SPS", "BertzCT", "NumRadicalElectrons"})
KNOWLEDGE_DESCRIPTORS: tuple[tuple[str, Any], ...] = tuple(
    (name, fn)
    for name, fn in Descriptors.descList
    if not name.startswith(("fr_", "BCUT2D")) and name not in _EXCLUDED_DESCRIPTORS
)
DESCRIPTOR_NAMES: tuple[str, ...] = tuple(name for name, _ in KNOWLEDGE_DESCRIPTORS)
NUM_DESCRIPTORS = len(DESCRIPTOR_NAMES)
_KNOWLEDGE_FUNCTIONS = tuple(fn for _, fn in KNOWLEDGE_DESCRIPTORS)


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


def descriptor_targets(mol: Chem.Mol) -> np.ndarray:
    """``float32 [118]``: the knowledge-term descriptors (:data:`DESCRIPTOR_NAMES` order), raw.

    A descriptor RDKit cannot compute for this molecule (an exception or a non-finite value, e.g.
    Gasteiger charges of unusual elements) is NaN; the loss skips NaN targets.
    """
    values = descriptor_values(mol, _KNOWLEDGE_FUNCTIONS)
    # float16 storage: clip to its range (no real descriptor of a drug-like molecule comes near it)
    return np.clip(values, -6.0e4, 6.0e4).astype(np.float32)


class TargetNormalizer:
    """Per-target standardisation ``(value - mean) / std`` fitted on a corpus sample, saved as JSON.

    Targets that are constant in the sample (std below ``min_std``, e.g. a fragment that never
    occurs) get ``std = 1`` so that they are only centred, never blown up. With ``clip`` set,
    normalised values are clipped to ``[-clip, clip]``, and the fit ignores values beyond the
    0.5 / 99.5 percentiles, so that heavy-tailed descriptors (partial charges, VSA bins) neither
    dominate the loss nor squash every other molecule into a narrow band.
    """

    FORMAT_VERSION = 1
    KIND = "target"
    NAMES: tuple[str, ...] = ()

    def __init__(
        self,
        mean: np.ndarray,
        std: np.ndarray,
        names: tuple[str, ...] | None = None,
        clip: float | None = None,
    ) -> None:
        names = tuple(self.NAMES if names is None else names)
        mean = np.asarray(mean, dtype=np.float32)
        std = np.asarray(std, dtype=np.float32)
        if mean.shape != (len(names),) or std.shape != (len(names),):
            raise ValueError(
                f"mean {mean.shape} and std {std.shape} must both have one entry per target ({len(names)})"
            )
        self.mean, self.std, self.names = mean, std, names
        self.clip = None if clip is None else float(clip)

    @classmethod
    def fit(cls, targets: np.ndarray, min_std: float = 1e-6, clip: float | None = None) -> TargetNormalizer:
        """Fit on ``[n, len(NAMES)]`` raw targets of a corpus sample; NaNs are ignored."""
        targets = np.asarray(targets, dtype=np.float64)
        width = len(cls.NAMES)
        if targets.ndim != 2 or targets.shape[1] != width or len(targets) == 0:
            raise ValueError(f"expected a non-empty [n, {width}] array, got {targets.shape}")
        if clip is not None and len(targets) >= 20:
            with np.errstate(all="ignore"):
                lo, hi = np.nanpercentile(targets, [0.5, 99.5], axis=0)
            targets = np.where((targets < lo) | (targets > hi), np.nan, targets)
        with np.errstate(all="ignore"):
            mean = np.nan_to_num(np.nanmean(targets, axis=0))
            std = np.nan_to_num(np.nanstd(targets, axis=0))
        std = np.where(std < min_std, 1.0, std)
        return cls(mean, std, clip=clip)

    def transform(self, values: np.ndarray | Tensor) -> np.ndarray | Tensor:
        """Normalise raw targets (``[..., len(names)]``, numpy or torch; the type is kept)."""
        if isinstance(values, Tensor):
            mean = torch.as_tensor(self.mean, device=values.device)
            std = torch.as_tensor(self.std, device=values.device)
            out = (values - mean) / std
            return out.clamp(-self.clip, self.clip) if self.clip is not None else out
        out = (np.asarray(values, dtype=np.float32) - self.mean) / self.std
        if self.clip is not None:
            out = np.clip(out, -self.clip, self.clip)
        return out.astype(np.float32)

    def inverse_transform(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float32) * self.std + self.mean

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format_version": self.FORMAT_VERSION,
            "names": list(self.names),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }
        if self.clip is not None:
            d["clip"] = self.clip
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TargetNormalizer:
        if d.get("format_version") != cls.FORMAT_VERSION:
            version = d.get("format_version")
            raise ValueError(f"{cls.KIND} normalizer format version {version!r} is not supported")
        names = tuple(d["names"])
        if names != cls.NAMES:
            missing = sorted(set(cls.NAMES) - set(names))
            extra = sorted(set(names) - set(cls.NAMES))
            raise ValueError(
                f"the saved {cls.KIND} normalizer was fitted on different targets than this RDKit computes "
                f"(missing: {missing}, extra: {extra}, or a different order); "
                "refit it: prepare the corpus again"
            )
        return cls(np.asarray(d["mean"]), np.asarray(d["std"]), names, d.get("clip"))

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> TargetNormalizer:
        return cls.from_dict(json.loads(text))


class MotifNormalizer(TargetNormalizer):
    """Standardises the 86 motif targets (:data:`MOTIF_NAMES`); no clipping, as in the reference."""

    KIND = "motif"
    NAMES = MOTIF_NAMES


class DescriptorNormalizer(TargetNormalizer):
    """Standardises the 118 knowledge descriptors (:data:`DESCRIPTOR_NAMES`), clipped to +-5 by default."""

    KIND = "descriptor"
    NAMES = DESCRIPTOR_NAMES
    DEFAULT_CLIP = 5.0
