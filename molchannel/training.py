"""Helpers both training applications share (``molchannel.pretrain`` and ``molchannel.finetune``).

Imports Lightning, so the inference path (``molchannel.load``, ``embed``, ``predict``) never
imports this module.
"""

from __future__ import annotations

import os
import re
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from lightning.pytorch.plugins.io import TorchCheckpointIO

from molchannel.atomic import atomic_path
from molchannel.progress import progress_backend, rich_bar_is_live


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
    """``torch.load`` with ``weights_only=True``: tensors and plain values only, nothing that runs code.

    A file that needs more (a pickled object or function: possibly a planted payload) or that is not
    a checkpoint at all is refused with a ``ValueError`` that says which.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        message = str(exc)
        # torch's own message advises weights_only=False, which is exactly what must not be done here
        refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", message)
        if refused:
            raise ValueError(
                f"{path} was refused: it references {refused.group(1)}, which no molchannel checkpoint does, "
                "and unpickling it could run code from the file. molchannel loads checkpoints with "
                "weights_only=True only; if the file is yours, recreate it with molchannel."
            ) from exc
        detail = re.search(r"WeightsUnpickler error:\s*([^\n]+)", message)
        lines = message.strip().splitlines()
        short = detail.group(1) if detail else (lines[0] if lines else type(exc).__name__)
        raise ValueError(
            f"{path} is not a molchannel training checkpoint that loads safely (weights_only): {short}"
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


def tensorboard_logger(save_dir: str | os.PathLike[str], name: str, version: str | None = None) -> Any:
    """Lightning's TensorBoardLogger, with an install hint when tensorboard is not installed."""
    from lightning.pytorch.loggers import TensorBoardLogger

    try:
        return TensorBoardLogger(save_dir=str(save_dir), name=name, version=version, default_hp_metric=False)
    except ModuleNotFoundError as exc:
        raise RuntimeError(
            f"TensorBoard logging was asked for but cannot be written ({exc}): pip install tensorboard"
        ) from exc


def _epoch_label(trainer: L.Trainer, epoch: int) -> str:
    last = trainer.max_epochs
    return f"Epoch {epoch + 1}/{last}" if last is not None and last > 0 else f"Epoch {epoch + 1}"


class EpochProgressBar(TQDMProgressBar):
    """Lightning's progress bar, epochs counted from 1 as in metrics.csv, without the per-epoch
    validation/test bars (their metrics show on the training bar)."""

    def on_train_epoch_start(self, trainer: L.Trainer, *args: object) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(_epoch_label(trainer, trainer.current_epoch))

    def init_validation_tqdm(self):  # noqa: ANN201 - tqdm type of the parent class
        from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

        return Tqdm(disable=True)


class RichEpochProgressBar(RichProgressBar):
    """Lightning's rich progress bar with epochs counted from 1, as in metrics.csv."""

    # Lightning names the training bar with this (private) hook; only the numbering changes.
    def _get_train_description(self, current_epoch: int) -> str:
        return _epoch_label(self.trainer, current_epoch)


def epoch_progress_bar() -> L.Callback:
    """A rich bar in an interactive terminal, tqdm elsewhere (see :mod:`molchannel.progress`).

    Inside a molchannel rich bar (a benchmark's) Lightning's own rich display would clash with it
    (rich draws one live display at a time), so runs there get the tqdm bar.
    """
    if progress_backend() == "rich" and not rich_bar_is_live():
        return RichEpochProgressBar()
    return EpochProgressBar()


def use_epoch_progress_bar(trainer: L.Trainer) -> None:
    """Swap the Trainer's default tqdm bar for :func:`epoch_progress_bar` (no bar stays no bar)."""
    callbacks: list[Any] = trainer.callbacks  # type: ignore[attr-defined]  # set in Trainer.__init__
    for i, callback in enumerate(callbacks):
        if type(callback) is TQDMProgressBar:
            callbacks[i] = epoch_progress_bar()
