"""Crash-safe checkpoints and their conversion into model folders.

``AtomicCheckpointIO`` writes every checkpoint to a temporary file in the same folder, flushes it
to disk and renames it over the old one: a run killed while saving leaves the previous
checkpoint intact (``last.ckpt`` is never half-written). Checkpoints hold only plain values and
tensors, so they load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from molchannel.atomic import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO that never exposes a partly written checkpoint file."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike[str], storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


def load_checkpoint_safely(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True`` and a clear error for a non-checkpoint file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"{path} is not a molchannel training checkpoint that loads safely (weights_only): {exc}"
        ) from exc


def find_checkpoint(run: str | os.PathLike[str]) -> Path:
    """A checkpoint file, or the best/last checkpoint of a run folder."""
    p = Path(run)
    if p.is_file():
        return p
    candidates = sorted(p.rglob("*.ckpt"), key=lambda c: (c.name != "last.ckpt", -c.stat().st_mtime))
    best = [c for c in candidates if c.name.startswith("best")]
    if best:
        return best[0]
    if candidates:
        return candidates[0]
    raise FileNotFoundError(f"no checkpoint (*.ckpt) found under {p}")
