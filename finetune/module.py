"""The fine-tuning LightningModule: multi-channel encoder + prompt selection + prediction head.

Three parameter groups with their own learning rates (backbone, prompt logits ``w``, head),
Adam with weight decay (its own for ``w``), cosine annealing per epoch and optional gradient
clipping (set on the Trainer). The pre-trained aggregators are frozen by default;
``freeze_backbone`` gives a linear probe, ``freeze_backbone_epochs`` one for the first epochs only
(then the backbone trains too). Frozen parts stay in eval mode, so their BatchNorm statistics do not
move either.

Each epoch the module evaluates the validation and the test set (its metric is NaN without one)
and appends a row to ``history`` (saved in checkpoints, so a resumed run keeps its earlier epochs).
The global torch RNG (dropout) is seeded from ``(seed, epoch)`` at the start of every training
epoch, so a run resumed from a checkpoint draws the same dropout masks as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from typing import Any, cast

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from molchannel.api import head_predictions, split_head_outputs
from molchannel.finetune.config import OptimConfig
from molchannel.finetune.metrics import (
    is_better,
    masked_bce_loss,
    masked_gaussian_nll,
    masked_mse_loss,
    score,
)
from molchannel.nn.model import MolChannelNet, NetConfig

GROUPS = ("backbone", "prompt", "head")


class FinetuneModule(L.LightningModule):
    """Args are plain values (checkpoints load with ``weights_only=True``).

    Args:
        network: :class:`~molchannel.nn.model.NetConfig` as a dict, with a head.
        head: the model folder's ``head`` section (tasks, task_type, metric); the regression target
            scaler is the network's ``target_scaler`` buffers (set before training, saved in checkpoints).
        optim: :class:`~molchannel.finetune.config.OptimConfig` as a dict.
        seed: the run's seed; with the epoch it seeds the dropout of each training epoch.
    """

    def __init__(
        self, network: dict[str, Any], head: dict[str, Any], optim: dict[str, Any], seed: int = 0
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = MolChannelNet(NetConfig.from_dict(network))
        if self.net.head is None:
            raise ValueError("the fine-tuning network needs a head (network.head is null)")
        self.head_config = head
        self.task_type: str = head["task_type"]
        self.metric: str = head["metric"]
        self.optim_config = OptimConfig(**optim)
        self.seed = int(seed)
        self.history: list[dict[str, float]] = []
        self.new_best = False
        self._freeze()
        self._reset_epoch_state()

    # ---- parameters --------------------------------------------------------------------------
    def always_frozen_modules(self) -> list[nn.Module]:
        """Modules that never train in this run (their parameters are in no optimizer group)."""
        frozen: list[nn.Module] = []
        if self.optim_config.freeze_aggregators:
            frozen.append(self.net.encoder.aggregators)
        if self.optim_config.freeze_backbone:
            frozen.append(self.net.encoder.backbone)
        return frozen

    def backbone_warming_up(self) -> bool:
        """Whether this epoch is one of the first ``freeze_backbone_epochs`` (backbone fixed)."""
        return self.current_epoch < self.optim_config.freeze_backbone_epochs

    def frozen_modules(self) -> list[nn.Module]:
        """Modules fixed in the current epoch."""
        frozen = self.always_frozen_modules()
        if self.backbone_warming_up() and not self.optim_config.freeze_backbone:
            frozen.append(self.net.encoder.backbone)
        return frozen

    def _freeze(self) -> None:
        """requires_grad of the encoder for the current epoch (Adam skips parameters without grads)."""
        self.net.encoder.requires_grad_(True)
        for module in self.frozen_modules():
            module.requires_grad_(False)

    def train(self, mode: bool = True) -> FinetuneModule:
        super().train(mode)
        if mode:
            self._frozen_to_eval()
        return self

    def _frozen_to_eval(self) -> None:
        """Frozen parts run in eval mode: no dropout, and BatchNorm keeps its running statistics."""
        for module in self.frozen_modules():
            module.eval()

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by group: backbone (+ unfrozen aggregators), prompt logits, head."""
        assert self.net.head is not None
        fixed = {id(p) for module in self.always_frozen_modules() for p in module.parameters()}
        encoder = [p for p in self.net.encoder.parameters() if id(p) not in fixed]
        return {
            "backbone": encoder,
            "prompt": [self.net.mixing.weights],
            "head": list(self.net.head.parameters()),
        }

    def configure_optimizers(self) -> Any:  # Lightning's optimizer + scheduler dict
        o = self.optim_config
        lrs = {"backbone": o.lr_backbone, "prompt": o.lr_prompt, "head": o.lr_head}
        prompt_decay = o.weight_decay if o.weight_decay_prompt is None else o.weight_decay_prompt
        decays = {"backbone": o.weight_decay, "prompt": prompt_decay, "head": o.weight_decay}
        groups = [
            {"params": params, "lr": lrs[name], "weight_decay": decays[name], "name": name}
            for name, params in self.parameter_groups().items()
            if params
        ]
        optimizer = torch.optim.Adam(groups)
        # a backbone held fixed for its first epochs (LP-FT) starts its cosine when it starts to train
        starts = {"backbone": 0 if o.freeze_backbone else o.freeze_backbone_epochs}
        lambdas = [_cosine(g["lr"], o.eta_min, o.epochs, starts.get(g["name"], 0)) for g in groups]
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    # ---- steps -------------------------------------------------------------------------------
    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Loss of raw (training-mode) outputs against targets in their units (standardised here)."""
        scaler = self.net.target_scaler
        if scaler is not None:
            means, variance = split_head_outputs(outputs, self.head_config)
            scaled = scaler.transform(targets)
            if variance is not None:
                return masked_gaussian_nll(means, variance, scaled)
            return masked_mse_loss(means, scaled)
        return masked_bce_loss(outputs, targets)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        outputs = self.net(batch).float()
        loss = self.loss(outputs, batch.y)
        size = int(batch.num_graphs)
        self.log("train/loss", loss.detach(), on_step=True, on_epoch=False, prog_bar=True, batch_size=size)
        self._train_loss_sum += float(loss.detach()) * size
        self._train_count += size
        return loss

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        predictions = head_predictions(self.net(batch).float(), self.head_config)  # eval mode
        self._eval[dataloader_idx][0].append(batch.y.cpu().numpy())
        self._eval[dataloader_idx][1].append(predictions.cpu().numpy())

    # ---- epoch bookkeeping -------------------------------------------------------------------
    def _reset_epoch_state(self) -> None:
        self._train_loss_sum = 0.0
        self._train_count = 0
        self._epoch_start: float | None = None
        self._epoch_t0: float | None = None
        self._train_time = math.nan
        self._eval: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {0: ([], []), 1: ([], [])}
        self._epoch_lrs: dict[str, float] = {}

    def on_train_epoch_start(self) -> None:
        self._freeze()  # the backbone's warm-up epochs end here
        # Lightning restores per-module modes after validation, but does not call train() itself: a
        # backbone that was frozen in the last epoch would stay in eval mode
        self.net.train()
        self._frozen_to_eval()
        self._reset_epoch_state()
        # Lightning checkpoints do not hold the RNG state, so a resumed run would draw other dropout
        # masks than an uninterrupted one: every epoch starts from a state given by (seed, epoch) instead.
        torch.manual_seed(epoch_seed(self.seed, self.current_epoch))
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "set_epoch"):
            datamodule.set_epoch(self.current_epoch)
        # Lightning steps epoch schedulers after the last batch, before the evaluation: record the
        # learning rates this epoch trains with now
        optimizer = cast(torch.optim.Optimizer, self.optimizers(use_pl_optimizer=False))  # one optimizer
        self._epoch_lrs = {f"lr_{g['name']}": float(g["lr"]) for g in optimizer.param_groups}
        self._epoch_start = self._epoch_t0 = time.perf_counter()

    def on_validation_epoch_start(self) -> None:
        if self._epoch_start is not None:
            self._train_time = time.perf_counter() - self._epoch_start
            self._epoch_start = None
        self._eval = {0: ([], []), 1: ([], [])}

    def _collected(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        targets, predictions = self._eval[idx]
        return np.concatenate(targets), np.concatenate(predictions)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self._eval[0][0]:
            return
        valid = score(self.metric, *self._collected(0))
        test = score(self.metric, *self._collected(1)) if self._eval[1][0] else math.nan
        best = self.best_row()
        self.new_best = is_better(self.metric, valid, None if best is None else best["valid_metric"])
        row: dict[str, float] = {
            "epoch": float(self.current_epoch + 1),
            "train_loss": self._train_loss_sum / self._train_count if self._train_count else math.nan,
            "valid_metric": valid,
            "test_metric": test,
            "train_time_s": self._train_time,
            "epoch_time_s": time.perf_counter() - self._epoch_t0 if self._epoch_t0 is not None else math.nan,
            "train_molecules": float(self._train_count),
        }
        row.update(self._epoch_lrs)
        for name, p in zip(self.net.channel_names, self.net.mixing.probabilities().tolist(), strict=True):
            row[f"weight_{name}"] = float(p)
        self.history.append(row)
        self.log(f"valid/{self.metric}", valid, prog_bar=True)
        self.log(f"test/{self.metric}", test)

    def best_row(self) -> dict[str, float] | None:
        """The history row of the best validation epoch so far (first one on ties)."""
        best: dict[str, float] | None = None
        for row in self.history:
            if is_better(self.metric, row["valid_metric"], None if best is None else best["valid_metric"]):
                best = row
        return best

    def epochs_without_improvement(self) -> int:
        """Epochs since the validation metric last improved (every epoch when it never did), counted as
        Lightning's EarlyStopping counts them: strict improvement, and a NaN epoch never improves."""
        best: float | None = None
        wait = 0
        for row in self.history:
            value = row["valid_metric"]
            if not math.isnan(value) and is_better(self.metric, value, best):
                best, wait = value, 0
            else:
                wait += 1
        return wait

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["finetune_history"] = [dict(row) for row in self.history]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = [dict(row) for row in checkpoint.get("finetune_history", [])]


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of the global torch RNG (dropout) for training epoch ``epoch`` (from 0) of a run."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _cosine(base_lr: float, eta_min: float, epochs: int, start: int = 0) -> Any:
    """LambdaLR factor of cosine annealing from ``base_lr`` to ``min(eta_min, base_lr)`` over epochs
    ``start`` to ``epochs`` (``base_lr`` before ``start``)."""
    floor = min(eta_min, base_lr)
    span = max(epochs - start, 1)

    def factor(epoch: int) -> float:
        if base_lr <= 0:
            return 1.0
        progress = min(max(epoch - start, 0), span) / span
        return (floor + (base_lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))) / base_lr

    return factor
