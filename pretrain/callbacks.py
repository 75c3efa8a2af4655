"""Callbacks for pre-training runs."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info

from molchannel.atomic import write_text_atomic


class RankAudit(L.Callback):
    """Records, per process, which corpus molecules it trained on and a hash of its final weights.

    Writes ``rank-<r>.json`` into ``output_dir`` at the end of fit. Useful to check a distributed
    run: ranks must see disjoint molecules within an epoch and end with identical weights.
    """

    def __init__(self, output_dir: str) -> None:
        self.output_dir = output_dir
        self.seen: dict[int, list[int]] = {}

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.seen.setdefault(trainer.current_epoch, []).extend(int(i) for i in batch.index)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        digest = hashlib.sha256()
        for name, tensor in sorted(pl_module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        out = Path(self.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "pid": os.getpid(),
            "seen": {str(k): v for k, v in self.seen.items()},
            "weights_sha256": digest.hexdigest(),
        }
        write_text_atomic(out / f"rank-{trainer.global_rank}.json", json.dumps(record))


class LinearProbe(L.Callback):
    """At the end of pre-training: export the final weights and linear-probe them (``benchmark probe``).

    Writes ``<run>/model`` (a model folder) and ``<run>/probe`` (``probe.md``, ``results.csv``,
    ``probe.png``): frozen embeddings of each channel, the mixture and all channels concatenated, beside
    a random-init copy of the architecture and ECFP4, on the given MoleculeNet sets. Enable it in a
    recipe under ``trainer.callbacks``, or on the command line with
    ``--trainer.callbacks+=molchannel.pretrain.callbacks.LinearProbe``. It is off in the shipped recipes
    (a probe costs minutes). Needs the benchmark data (``$MOLCHANNEL_DATA_DIR`` or ``data_dir``); without
    it the probe is skipped with a warning.

    Args:
        datasets: MoleculeNet names (default: the small ones, a few minutes on a CPU).
        data_dir: benchmark data folder (default ``$MOLCHANNEL_DATA_DIR``).
        max_tasks: tasks probed per dataset at most (ToxCast has 617).
    """

    DEFAULT_DATASETS = ("bbbp", "bace", "clintox", "sider", "tox21", "esol", "freesolv", "lipophilicity")

    def __init__(
        self, datasets: list[str] | None = None, data_dir: str | None = None, max_tasks: int | None = 32
    ) -> None:
        self.datasets = list(datasets) if datasets is not None else list(self.DEFAULT_DATASETS)
        self.data_dir = data_dir
        self.max_tasks = max_tasks

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import logging

        log = logging.getLogger(__name__)
        if trainer.global_rank != 0 or trainer.sanity_checking or getattr(trainer, "fast_dev_run", False):
            return
        data_dir = self.data_dir or os.environ.get("MOLCHANNEL_DATA_DIR")
        if not data_dir or not Path(data_dir).is_dir():
            log.warning("linear probe skipped: no benchmark data (set MOLCHANNEL_DATA_DIR)")
            return
        from molchannel.finetune.probe import run_probe
        from molchannel.pretrain.export import export_checkpoint

        run = Path(trainer.default_root_dir)
        final = run / "checkpoints" / "final.ckpt"
        trainer.save_checkpoint(final)
        model = export_checkpoint(final, run / "model")
        previous = os.environ.get("MOLCHANNEL_DATA_DIR")
        os.environ["MOLCHANNEL_DATA_DIR"] = str(data_dir)
        try:
            result = run_probe(
                model,
                self.datasets,
                run / "probe",
                max_tasks=self.max_tasks,
                quiet=not trainer.progress_bar_callback,
            )
        finally:
            if previous is None:
                os.environ.pop("MOLCHANNEL_DATA_DIR", None)
            else:
                os.environ["MOLCHANNEL_DATA_DIR"] = previous
        log.info("linear probe of the final weights: %s", result.files.get("markdown", run / "probe"))


class ThroughputMonitor(L.Callback):
    """Training throughput in anchor molecules per second, written as JSON at the end of fit.

    The timed part runs from the end of the first ``warmup_steps`` training steps (CUDA context,
    kernel selection, the first DataLoader workers; fewer when the run is short) to the end of the
    last one, without the validation passes in between. ``data_wait_s`` is the part of it the loop
    spent waiting for the next batch: a large ``data_wait_fraction`` means the DataLoader, not the
    model, sets the pace (add ``data.num_workers``). Also recorded: steps, epochs, the device, the
    precision and the last logged ``train/*`` and ``val/*`` losses. Written by global rank 0 to
    ``output`` (default: ``<default_root_dir>/throughput.json``); anchors are counted per process,
    ``anchors_per_s_global`` multiplies by the number of processes. With ``log_every_s > 0`` it
    also logs one line (step, epoch, anchors/s, loss) that often, for runs without a progress bar.
    """

    def __init__(self, output: str | None = None, warmup_steps: int = 20, log_every_s: float = 0.0) -> None:
        self.output = output
        self.warmup_steps = max(0, int(warmup_steps))
        self.log_every_s = float(log_every_s)
        self._reset()

    def _reset(self) -> None:
        self._fit_start = 0.0
        self._train_start: float | None = None
        self._last_end: float | None = None
        self._val_started: float | None = None
        self._val_total = 0.0
        self._wait_total = 0.0
        # one entry per training step: (end time, anchors, validation and wait time so far)
        self._steps: list[tuple[float, int, float, float]] = []
        self._last_log = 0.0

    def _sync(self, trainer: L.Trainer) -> None:
        device = trainer.strategy.root_device
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._reset()
        self._fit_start = self._last_log = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._train_start = time.perf_counter()

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._last_end is not None:
            self._wait_total += time.perf_counter() - self._last_end

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if len(self._steps) + 1 == self.warmup_steps:
            self._sync(trainer)  # the timed part starts when the warm-up steps have really finished
        now = time.perf_counter()
        anchors = int(getattr(batch, "num_anchors", 0) or 0)
        self._steps.append((now, anchors, self._val_total, self._wait_total))
        self._last_end = now
        if self.log_every_s > 0 and now - self._last_log >= self.log_every_s:
            self._last_log = now
            self._log_progress(trainer)

    def _log_progress(self, trainer: L.Trainer) -> None:
        s = self.summary(trainer)
        loss = trainer.callback_metrics.get("train/loss_step", trainer.callback_metrics.get("train/loss"))
        rank_zero_info(
            f"step {s['steps']}, epoch {trainer.current_epoch + 1}: {s['anchors_per_s']:.0f} anchors/s, "
            f"data wait {100 * s['data_wait_fraction']:.0f}%"
            + (f", train/loss {float(loss):.4f}" if loss is not None else "")
        )

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val_started = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._val_started is not None:
            elapsed = time.perf_counter() - self._val_started
            self._val_total += elapsed
            if self._last_end is not None:
                self._last_end += elapsed  # validation between two steps is no wait for data
            self._val_started = None

    def summary(self, trainer: L.Trainer) -> dict[str, Any]:
        """The figures written at the end of fit (also available before, for the steps so far)."""
        steps = self._steps
        n = len(steps)
        # leave the warm-up out only when enough steps remain to time
        warmup = self.warmup_steps if n > 2 * self.warmup_steps else min(1, max(n - 1, 0))
        if warmup > 0:
            t0, _, val0, wait0 = steps[warmup - 1]
        else:
            t0, val0, wait0 = self._train_start or self._fit_start, 0.0, 0.0
        timed = steps[warmup:]
        anchors = sum(s[1] for s in timed)
        if timed:
            t1, _, val1, wait1 = timed[-1]
            seconds = max((t1 - t0) - (val1 - val0), 1e-9)
            wait = wait1 - wait0
        else:
            seconds, wait = 0.0, 0.0
        device = trainer.strategy.root_device
        per_epoch = trainer.num_training_batches
        epochs = n / per_epoch if per_epoch and math.isfinite(per_epoch) else None
        losses = {
            k: float(v)
            for k, v in sorted(trainer.callback_metrics.items())
            if k.startswith(("train/", "val/"))
            and "diag/" not in k
            and not k.endswith("_epoch")  # the same value as the name without the suffix
            and (not k.endswith("_step") or k == "train/loss_step")
            and torch.is_tensor(v)
            and v.numel() == 1
        }
        world = max(int(trainer.world_size), 1)
        return {
            "anchors_per_s": anchors / seconds if seconds > 0 else 0.0,
            "anchors_per_s_global": world * anchors / seconds if seconds > 0 else 0.0,
            "steps_per_s": len(timed) / seconds if seconds > 0 else 0.0,
            "timed_steps": len(timed),
            "timed_anchors": anchors,
            "timed_s": seconds,
            "warmup_steps": warmup,
            "data_wait_s": wait,
            "data_wait_fraction": wait / seconds if seconds > 0 else 0.0,
            "validation_s": self._val_total,
            "fit_s": time.perf_counter() - self._fit_start,
            "steps": int(trainer.global_step),
            "train_batches": n,
            "anchors_seen": sum(s[1] for s in steps),
            "epochs_completed": int(trainer.fit_loop.epoch_progress.current.completed),
            "epochs": epochs,
            "world_size": world,
            "device": str(device),
            "device_name": _device_name(device),
            "precision": str(trainer.precision),
            "num_workers": _num_workers(trainer),
            "losses": losses,
        }

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        out = Path(self.output) if self.output else Path(trainer.default_root_dir) / "throughput.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, json.dumps(self.summary(trainer), indent=1))


def _num_workers(trainer: L.Trainer) -> int | None:
    loader = getattr(trainer.fit_loop, "_combined_loader", None)
    flat = getattr(loader, "flattened", None) or []
    return int(flat[0].num_workers) if flat and hasattr(flat[0], "num_workers") else None


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or device.type
