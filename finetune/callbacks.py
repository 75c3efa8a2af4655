"""Callbacks of fine-tuning runs."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

from molchannel.finetune.report import write_metrics_csv

BEST_CHECKPOINT = "best.ckpt"
LAST_CHECKPOINT = "last.ckpt"


class RunRecorder(L.Callback):
    """After each epoch's evaluation: ``best.ckpt`` when the validation metric improved, then
    ``last.ckpt`` and ``metrics.csv``, each written atomically, so a running job can be watched and
    resumed. (Lightning's ModelCheckpoint writes ``last.ckpt`` only together with a top-k file and
    renames it when one exists already, which resuming cannot rely on.)"""

    def __init__(self, run_dir: str | Path, checkpoint_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = Path(checkpoint_dir)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not getattr(pl_module, "history", None):
            return
        if pl_module.new_best:  # type: ignore[attr-defined]
            trainer.save_checkpoint(self.checkpoint_dir / BEST_CHECKPOINT, weights_only=False)
            pl_module.new_best = False  # type: ignore[attr-defined]
        trainer.save_checkpoint(self.checkpoint_dir / LAST_CHECKPOINT, weights_only=False)
        write_metrics_csv(self.run_dir / "metrics.csv", pl_module.history, pl_module.metric)  # type: ignore[attr-defined]


class EpochProgressBar(TQDMProgressBar):
    """Lightning's progress bar, epochs counted from 1 as in metrics.csv, without the per-epoch
    validation/test bars (their metrics show on the training bar)."""

    def on_train_epoch_start(self, trainer: L.Trainer, *args: object) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")

    def init_validation_tqdm(self):  # noqa: ANN201 - tqdm type of the parent class
        from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

        return Tqdm(disable=True)
