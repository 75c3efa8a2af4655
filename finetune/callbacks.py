"""Callbacks of fine-tuning runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L

from molchannel.finetune.report import write_metrics_csv

BEST_CHECKPOINT = "best.ckpt"
LAST_CHECKPOINT = "last.ckpt"


class RunRecorder(L.Callback):
    """After each epoch's evaluation: ``best.ckpt`` when the validation metric improved, then
    ``last.ckpt`` and ``metrics.csv``, each written atomically, so a running job can be watched and
    resumed. (Lightning's ModelCheckpoint writes ``last.ckpt`` only together with a top-k file and
    renames it when one exists already, which resuming cannot rely on.)

    With ``patience`` it also stops the run after that many epochs without a better validation metric,
    counted from the epoch history that every checkpoint holds, so a resumed run stops where an
    uninterrupted one does. (Lightning's EarlyStopping keeps its own state, updated only after
    ``last.ckpt`` is written, and a run resumed from ``last.ckpt`` replays the epoch's end, where
    EarlyStopping fails for want of the metric that only the previous process logged.)
    """

    def __init__(self, run_dir: str | Path, checkpoint_dir: str | Path, patience: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = Path(checkpoint_dir)
        self.patience = patience

    def _stop_early(self, pl_module: L.LightningModule) -> bool:
        if self.patience is None:
            return False
        return pl_module.epochs_without_improvement() >= self.patience  # type: ignore[attr-defined,operator]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # resumed from the checkpoint of the epoch that stopped the run: stop again rather than train on
        if self._stop_early(pl_module):
            trainer.should_stop = True

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        module: Any = pl_module  # the fine-tuning module: history, metric, new_best
        if trainer.sanity_checking or not getattr(pl_module, "history", None):
            return
        if module.new_best:
            trainer.save_checkpoint(self.checkpoint_dir / BEST_CHECKPOINT, weights_only=False)
            module.new_best = False
        trainer.save_checkpoint(self.checkpoint_dir / LAST_CHECKPOINT, weights_only=False)
        write_metrics_csv(self.run_dir / "metrics.csv", module.history, module.metric)
        # the per-epoch row (loss, learning rates, channel weights) also goes to TensorBoard when enabled
        row = module.history[-1]
        for logger in trainer.loggers:
            logger.log_metrics(
                {f"epoch/{k}": v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"])
            )
        if self._stop_early(pl_module):
            trainer.should_stop = True
