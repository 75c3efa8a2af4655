"""Crash-safe checkpoints and their conversion into model folders.

``AtomicCheckpointIO`` writes every checkpoint to a temporary file in the same folder, flushes it
to disk and renames it over the old one: a run killed while saving leaves the previous
checkpoint intact (``last.ckpt`` is never half-written). Checkpoints hold only plain values and
tensors, so they load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from pathlib import Path

# The checkpoint writer and the safe loader live in molchannel.training (fine-tuning uses them too);
# they are re-exported here for existing imports.
from molchannel.training import AtomicCheckpointIO, load_checkpoint_safely

__all__ = ["AtomicCheckpointIO", "find_checkpoint", "load_checkpoint_safely"]


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
