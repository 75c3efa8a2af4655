"""Helpers both training applications share (``molchannel.pretrain`` and ``molchannel.finetune``).

Imports Lightning, so the inference path (``molchannel.load``, ``embed``, ``predict``) never
imports this module.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from molchannel.atomic import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO that never exposes a partly written checkpoint file.

    Every checkpoint is written to a temporary file in the same folder, flushed to disk and renamed
    over the old one: a run killed while saving leaves the previous checkpoint intact.
    """

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


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (plots are files, never windows)."""
    try:
        import matplotlib
    except ImportError as exc:
        raise RuntimeError("plots need matplotlib: pip install 'molchannel[train]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
