"""An ECFP support-vector machine that a fine-tuned model carries and blends with its network.

Kernel methods on fingerprints are hard to beat on small potency sets, activity cliffs above all
(MoleculeACE: van Tilborg et al., *J. Chem. Inf. Model.* 62:5938, 2022), and their errors differ from a
graph network's, so the average of the two is better than either. ``molchannel finetune
--model.kernel_blend ecfp_svr`` fits one SVR per regression task on the training split (ECFP4 bits, the
MoleculeACE search over ``C`` and ``gamma``, see :mod:`molchannel.finetune.baselines`) and picks, per
task on the validation split, the network's weight ``w`` in ``w * network + (1 - w) * svr``.
For classification, ``--model.kernel_blend ecfp_svc`` fits one SVC per task on a Tanimoto kernel of ECFP4
bits (``C`` by 5-fold cross-validation on the training split), maps its decision value to a probability
with Platt scaling fitted on the validation split, and blends the probabilities the same way.

The fitted SVR travels in the model folder: its support vectors (packed bits), dual coefficients,
intercept and ``gamma`` are tensors of ``model.safetensors`` under ``kernel_member.``; ``config.json``
describes them under ``"kernel_member"``. Prediction needs numpy and RDKit only (no scikit-learn):
``f(x) = sum_i dual_i * k(x, sv_i) + intercept`` with ``k`` the RBF kernel ``exp(-gamma * |x - sv_i|^2)``
(SVR) or the Tanimoto kernel (SVC), scikit-learn's decision function exactly; the SVC's probability is
``sigmoid(a * f(x) + b)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from rdkit import Chem
from rdkit.Chem import rdFingerprintGenerator

PREFIX = "kernel_member."
KIND = "ecfp_svr"  # regression: RBF SVRs
CLASSIFIER_KIND = "ecfp_svc"  # classification: Tanimoto SVCs with Platt-scaled decision values
KINDS = (KIND, CLASSIFIER_KIND)


def ecfp_bits(molecules: Sequence[object], radius: int = 2, n_bits: int = 1024) -> np.ndarray:
    """ECFP bit vectors ``uint8 [n, n_bits]`` of SMILES strings or RDKit molecules (RDKit Morgan bits, no
    chirality, no counts: MoleculeACE's ECFP); raises on a SMILES that does not parse (filter first)."""
    from molchannel.chem.smiles import parse_smiles

    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    out = np.zeros((len(molecules), n_bits), dtype=np.uint8)
    for i, item in enumerate(molecules):
        mol = item if isinstance(item, Chem.Mol) else parse_smiles(item, i)
        out[i] = generator.GetFingerprintAsNumPy(mol)
    return out


def squared_bit_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances of 0/1 rows (the number of differing bits), ``[len(a), len(b)]``."""
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    dot = a64 @ b64.T
    return np.maximum(a64.sum(1)[:, None] + b64.sum(1)[None, :] - 2.0 * dot, 0.0)


def tanimoto_bit_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Tanimoto (Jaccard) similarity of 0/1 rows, ``[len(a), len(b)]``; two empty rows count as 0."""
    # counts of 0/1 bits are integers below 2**24, exact in float32, whose matmul is twice as fast
    a32 = np.asarray(a, dtype=np.float32)
    b32 = np.asarray(b, dtype=np.float32)
    dot = (a32 @ b32.T).astype(np.float64)
    union = a32.sum(1, dtype=np.float64)[:, None] + b32.sum(1, dtype=np.float64)[None, :] - dot
    return np.divide(dot, union, out=np.zeros_like(dot), where=union > 0)


@dataclass
class SvrTask:
    """One task's fitted support-vector machine and its place in the blend: an RBF SVR (regression), or a
    Tanimoto SVC whose decision value ``platt = (a, b)`` turns into a probability (classification)."""

    support: np.ndarray  # uint8 [n_support, n_bits], 0/1
    dual: np.ndarray  # float64 [n_support]
    intercept: float
    gamma: float  # RBF width; NaN for the Tanimoto kernel
    network_weight: float  # w: the blend is w * network + (1 - w) * svr
    params: dict[str, float]  # the chosen C (and gamma), for the record
    cv_rmse: float  # the chosen point's mean cross-validated RMSE (SVR; ROC-AUC for an SVC) on training
    platt: tuple[float, float] | None = None  # SVC: probability = sigmoid(a * decision + b)

    def decision(self, bits: np.ndarray) -> np.ndarray:
        if len(self.dual) == 0:
            return np.full(len(bits), self.intercept)
        if self.platt is None:
            kernel = np.exp(-self.gamma * squared_bit_distances(bits, self.support))
        else:
            kernel = tanimoto_bit_kernel(bits, self.support)
        return kernel @ self.dual + self.intercept

    def predict(self, bits: np.ndarray) -> np.ndarray:
        """SVR values, or SVC probabilities."""
        value = self.decision(bits)
        if self.platt is None:
            return value
        a, b = self.platt
        return 1.0 / (1.0 + np.exp(-(a * value + b)))


class KernelMember:
    """The ECFP SVRs (or SVCs) of a fine-tuned model, one per task (``None``: the network alone)."""

    def __init__(
        self, tasks: list[SvrTask | None], radius: int = 2, n_bits: int = 1024, kind: str = KIND
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kernel_member kind must be one of {KINDS}, got {kind!r}")
        self.tasks = tasks
        self.radius = radius
        self.n_bits = n_bits
        self.kind = kind

    @property
    def network_weights(self) -> list[float]:
        return [1.0 if t is None else t.network_weight for t in self.tasks]

    def svr_predictions(self, molecules: Sequence[object]) -> np.ndarray:
        """float64 ``[n, T]`` SVR predictions or SVC probabilities (NaN for tasks without one)."""
        bits = ecfp_bits(molecules, self.radius, self.n_bits)
        out = np.full((len(molecules), len(self.tasks)), np.nan)
        for j, task in enumerate(self.tasks):
            if task is not None:
                out[:, j] = task.predict(bits)
        return out

    def blend(self, network: np.ndarray, svr: np.ndarray) -> np.ndarray:
        """``w * network + (1 - w) * svr`` per task (``[n, T]``; tasks without an SVR keep the network's)."""
        weights = np.asarray(self.network_weights)
        mixed = weights * network + (1.0 - weights) * np.nan_to_num(svr)
        return np.where(np.isnan(svr), network, mixed).astype(network.dtype, copy=False)

    # ---- persistence (inside a model folder) -------------------------------------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for j, task in enumerate(self.tasks):
            if task is None:
                continue
            out[f"{PREFIX}{j}.support"] = torch.from_numpy(np.packbits(task.support, axis=1))
            out[f"{PREFIX}{j}.dual"] = torch.from_numpy(np.asarray(task.dual, dtype=np.float64))
        return out

    def to_dict(self) -> dict[str, Any]:
        def task_dict(task: SvrTask | None) -> dict[str, Any] | None:
            if task is None:
                return None
            gamma = task.gamma if math.isfinite(task.gamma) else None  # None: Tanimoto kernel
            d: dict[str, Any] = {
                "intercept": task.intercept, "gamma": gamma, "network_weight": task.network_weight,
                "n_support": len(task.dual), "params": task.params,
                # the chosen point's cross-validated score: RMSE (SVR) or ROC-AUC (SVC)
                "cv_rmse" if task.platt is None else "cv_roc_auc": task.cv_rmse,
            }  # fmt: skip
            if task.platt is not None:
                d["platt"] = list(task.platt)
            return d

        return {"kind": self.kind, "radius": self.radius, "n_bits": self.n_bits,
                "tasks": [task_dict(t) for t in self.tasks]}  # fmt: skip

    @classmethod
    def from_folder(cls, description: Mapping[str, Any], weights: dict[str, torch.Tensor]) -> KernelMember:
        """The member ``config.json`` describes, its tensors popped from ``weights``."""
        kind = description.get("kind")
        if kind not in KINDS:
            raise ValueError(f"kernel_member kind must be one of {KINDS}, got {kind!r}")
        n_bits = int(description["n_bits"])
        tasks: list[SvrTask | None] = []
        for j, d in enumerate(description["tasks"]):
            if d is None:
                tasks.append(None)
                continue
            packed = weights.pop(f"{PREFIX}{j}.support").numpy()
            dual = weights.pop(f"{PREFIX}{j}.dual").numpy().astype(np.float64)
            support = np.unpackbits(packed, axis=1, count=n_bits)
            if len(support) != len(dual) or len(dual) != int(d["n_support"]):
                raise ValueError(f"task {j}: {len(support)} support vectors but {len(dual)} dual weights")
            weight = float(d["network_weight"])
            platt = None if kind == KIND else (float(d["platt"][0]), float(d["platt"][1]))
            gamma = math.nan if d.get("gamma") is None else float(d["gamma"])
            if not 0.0 <= weight <= 1.0 or not (math.isfinite(gamma) or platt is not None):
                raise ValueError(
                    f"task {j}: network_weight {weight} or gamma {d.get('gamma')} is out of range"
                )
            cv = float(d.get("cv_rmse", d.get("cv_roc_auc", math.nan)))
            params = dict(d.get("params", {}))
            tasks.append(SvrTask(support, dual, float(d["intercept"]), gamma, weight, params, cv, platt))
        leftover = sorted(k for k in weights if k.startswith(PREFIX))
        if leftover:
            raise ValueError(f"kernel_member tensors not described in config.json: {leftover}")
        return cls(tasks, int(description["radius"]), n_bits, str(kind))
