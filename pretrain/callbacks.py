"""Callbacks for pre-training runs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import lightning as L

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
