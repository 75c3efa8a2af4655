"""Ensembles of fine-tuned models: one folder, N members, predictions with their spread.

An ensemble folder holds ``ensemble.json`` and ``members/0 .. N-1``, each a complete model folder (the
members of ``molchannel finetune --ensemble-size N``: one per seed, on the same split).
:func:`molchannel.load_ensemble` loads such a folder as an :class:`EnsembleModel`::

    model = molchannel.load_ensemble("runs/finetune/logp/model")
    mean, std = model.predict(smiles, return_std=True)   # [N, T] each: mean and spread over members

The molecules are featurized once and every member's network runs on the same batch. The spread is the
standard deviation over members (population, ``ddof=0``) of their predictions: probabilities for
classification tasks, original units for regression. A regression ensemble fine-tuned with validation rows
also carries a conformal calibration: ``model.predict_interval(smiles, coverage=0.9)`` gives intervals.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from molchannel.api import (
    EmbedReport,
    MolChannelModel,
    head_predictions_with_std,
    load_single,
    resolve_model_path,
)
from molchannel.atomic import write_text_atomic
from molchannel.chem.smiles import OnInvalid
from molchannel.model_folder import ModelFolderError

ENSEMBLE_FILE = "ensemble.json"
ENSEMBLE_FORMAT = 1


def _signature(model: MolChannelModel) -> tuple[Any, ...]:
    """What members must share to be averaged."""
    head = model.config.get("head") or {}
    member = model.kernel_member  # members share one SVR (same training split), each with its own weight
    svr = None if member is None else [t and (t.support.tobytes(), t.dual.tobytes()) for t in member.tasks]
    return (
        model.tasks, model.featurizer.spec.key(), model.net.extra_features, head.get("task_type"),
        bool(head.get("variance")), svr,
    )  # fmt: skip


def is_ensemble_folder(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / ENSEMBLE_FILE).is_file()


class EnsembleModel:
    """N fine-tuned models with the same tasks, featurizer and molecule features, used as one."""

    def __init__(
        self,
        members: Sequence[MolChannelModel],
        path: Path | None = None,
        calibration: ConformalCalibration | None = None,
    ) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        signatures = [_signature(m) for m in members]
        for k, signature in enumerate(signatures[1:], start=1):
            if signature != signatures[0]:
                raise ValueError(
                    f"ensemble member {k} differs from member 0 in tasks, featurizer, molecule features, "
                    "task type or kernel SVR; an ensemble's members must be fine-tuned on the same data and "
                    "settings"
                )
        self.members = list(members)
        self.path = path
        self.calibration = calibration

    @property
    def tasks(self) -> list[str]:
        return self.members[0].tasks

    @property
    def size(self) -> int:
        return len(self.members)

    def info(self) -> dict[str, Any]:
        """Member 0's summary, with the ensemble's size and every member's channel weights."""
        info = dict(self.members[0].info())
        info.update(
            path=str(self.path) if self.path else None,
            ensemble_size=self.size,
            member_channel_weights=[m.info()["channel_weights"] for m in self.members],
        )
        return info

    def __repr__(self) -> str:
        return f"EnsembleModel(size={self.size}, tasks={self.tasks}, path={self.path})"

    def embed(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError(
            "an ensemble's members each have their own embedding: embed with one of them, e.g. "
            "model.members[0].embed(smiles), or with the pre-trained model they started from"
        )

    embed_atoms = embed

    def predict(
        self,
        smiles: str | Iterable[object],
        batch_size: int = 128,
        device: str | torch.device | None = None,
        on_invalid: OnInvalid = "raise",
        progress: bool = False,
        return_std: bool = False,
        return_report: bool = False,
    ) -> Any:
        """Mean prediction over members, ``[N, T]`` (``[T]`` for one SMILES); with ``return_std`` also the
        spread ``(mean, std)``; with ``return_report`` the :class:`~molchannel.api.EmbedReport` last. The
        spread is the members' standard deviation; for members with a mean-variance head, the square root of
        the variance of their means plus the mean of their predicted variances (a Gaussian mixture's).
        Other arguments as :meth:`MolChannelModel.predict`."""
        first = self.members[0]
        heads = [m.config["head"] for m in self.members]
        t = len(self.tasks)
        nets = [m.net for m in self.members]
        members = self.members
        target = torch.device(device) if device is not None else first.device
        for net in nets[1:]:
            net.to(target)

        def both(batch: Any) -> np.ndarray:
            # each member's predictions, blended with the shared kernel SVR by its own weight (if it has one)
            outputs = [
                m._blend(batch, *head_predictions_with_std(net(batch), h))
                for m, net, h in zip(members, nets, heads, strict=True)
            ]
            preds = np.stack([mean for mean, _ in outputs])
            variance = preds.var(0)
            own = [std**2 for _, std in outputs if std is not None]
            if own:  # mean-variance members: their predicted variances add to the spread of their means
                variance = variance + np.stack(own).mean(0)
            return np.concatenate([preds.mean(0), np.sqrt(variance)], axis=-1).astype(np.float32)

        try:
            out, report = first._map_batches(
                smiles, both, (2 * t,), batch_size, device, on_invalid, progress, True, "predicting"
            )
        finally:
            for member in self.members[1:]:
                member.net.to(member.device)
        mean, std = out[..., :t], out[..., t:]
        result: tuple[Any, ...] = (mean, std) if return_std else (mean,)
        if return_report:
            result = (*result, report)
        return result[0] if len(result) == 1 else result

    def predict_interval(
        self,
        smiles: str | Iterable[object],
        coverage: float = 0.9,
        batch_size: int = 128,
        device: str | torch.device | None = None,
        on_invalid: OnInvalid = "raise",
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Conformal prediction intervals of a regression ensemble: ``(mean, lower, upper)``, each ``[N, T]``.

        Split-conformal on the validation rows (:class:`ConformalCalibration`): under exchangeability of
        validation and new molecules, the true value falls inside ``[lower, upper]`` with probability at
        least ``coverage``; intervals are wider where the members disagree more.
        """
        if self.calibration is None:
            raise ValueError(
                "this ensemble has no conformal calibration (made by `molchannel finetune --ensemble-size N` "
                "for regression tasks with validation rows); fine-tune it again with a current molchannel"
            )
        mean, std = self.predict(smiles, batch_size, device, on_invalid, return_std=True)
        half = self.calibration.half_width(std, coverage)
        return mean, mean - half, mean + half

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the ensemble folder: each member's model folder under ``members/`` and ``ensemble.json``."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        for k, member in enumerate(self.members):
            member.save(folder / "members" / str(k))
        extra = {"calibration": self.calibration.to_dict()} if self.calibration is not None else None
        write_ensemble_manifest(folder, self.size, extra)
        return folder


@dataclass
class ConformalCalibration:
    """Normalised split-conformal calibration of a regression ensemble, per task.

    Nonconformity of a validation molecule: ``|y - mean| / (std + beta)``, with ``std`` the spread over
    members and ``beta`` the median validation spread (which keeps molecules on which the members happen
    to agree from getting zero-width intervals). The interval at coverage ``c`` is
    ``mean ± q_c (std + beta)``, with ``q_c`` the ``ceil((n + 1) c)``-th smallest of the n scores
    (infinite when there are too few validation molecules for that coverage).
    """

    scores: list[list[float]]  # per task, sorted ascending
    beta: list[float]  # per task

    @classmethod
    def fit(cls, labels: np.ndarray, mean: np.ndarray, std: np.ndarray) -> ConformalCalibration:
        """From validation labels, mean predictions and spreads ``[n, T]`` (NaN labels skipped)."""
        scores, beta = [], []
        for t in range(labels.shape[1]):
            keep = np.isfinite(labels[:, t]) & np.isfinite(mean[:, t])
            if not keep.any():
                raise ValueError(f"task {t} has no labelled validation molecule to calibrate on")
            b = float(np.median(std[keep, t])) or 1e-6
            residual = np.abs(labels[keep, t] - mean[keep, t]) / (std[keep, t] + b)
            scores.append(sorted(float(v) for v in residual))
            beta.append(b)
        return cls(scores, beta)

    def quantile(self, coverage: float) -> np.ndarray:
        """``q_c`` per task ``[T]``."""
        if not 0 < coverage < 1:
            raise ValueError(f"coverage must be in (0, 1), got {coverage!r}")
        out = []
        for scores in self.scores:
            k = math.ceil((len(scores) + 1) * coverage)
            out.append(scores[k - 1] if k <= len(scores) else math.inf)
        return np.asarray(out)

    def half_width(self, std: np.ndarray, coverage: float) -> np.ndarray:
        return self.quantile(coverage) * (std + np.asarray(self.beta))

    def to_dict(self) -> dict[str, Any]:
        return {"method": "normalised split-conformal", "scores": self.scores, "beta": self.beta}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConformalCalibration:
        return cls([sorted(map(float, s)) for s in d["scores"]], [float(b) for b in d["beta"]])


def write_ensemble_manifest(folder: Path, size: int, extra: dict[str, Any] | None = None) -> None:
    manifest = {"format": ENSEMBLE_FORMAT, "members": [f"members/{k}" for k in range(size)], **(extra or {})}
    write_text_atomic(folder / ENSEMBLE_FILE, json.dumps(manifest, indent=1) + "\n")


def copy_member_folders(
    folder: Path, member_folders: Sequence[Path], extra: dict[str, Any] | None = None
) -> None:
    """Assemble an ensemble folder from finished members' model folders (copied, so it stands alone)."""
    for k, source in enumerate(member_folders):
        target = folder / "members" / str(k)
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target)
    write_ensemble_manifest(folder, len(member_folders), extra)


def load_ensemble(path: str | os.PathLike[str], device: str | torch.device | None = None) -> EnsembleModel:
    folder = resolve_model_path(path)
    try:
        manifest = json.loads((folder / ENSEMBLE_FILE).read_text(encoding="utf-8"))
        members = manifest["members"]
        if manifest.get("format") != ENSEMBLE_FORMAT or not isinstance(members, list) or not members:
            raise ValueError(f"format {manifest.get('format')!r} with members {members!r}")
        calibration = manifest.get("calibration")
        calibration = None if calibration is None else ConformalCalibration.from_dict(calibration)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelFolderError(f"{folder / ENSEMBLE_FILE} does not describe an ensemble: {exc}") from exc
    models = [load_single(folder / m, device=device) for m in members]
    return EnsembleModel(models, path=folder.resolve(), calibration=calibration)


def load_any(path: str | os.PathLike[str], device: str | torch.device | None = None) -> Any:
    """An ensemble folder as :class:`EnsembleModel`, any other model folder as ``MolChannelModel``."""
    folder = resolve_model_path(path)
    return load_ensemble(folder, device) if is_ensemble_folder(folder) else load_single(folder, device=device)


__all__ = [
    "ConformalCalibration",
    "EmbedReport",
    "EnsembleModel",
    "is_ensemble_folder",
    "load_any",
    "load_ensemble",
]
