"""molchannel: prompt-guided multi-channel molecular representation learning (MCL).

Quick start::

    import molchannel
    model = molchannel.load("default")
    emb = model.embed(["CCO", "c1ccccc1O"])          # (2, D) mixed embedding
    per_channel = model.embed(["CCO"], channel="all")  # (1, K, D)

Importing this package stays light: Lightning and the training applications are only
imported by the ``pretrain`` / ``finetune`` commands.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from molchannel.chem.smiles import InvalidSmilesError

if TYPE_CHECKING:  # the API module imports torch: only read by type checkers here
    import torch

    from molchannel.api import MolChannelModel
    from molchannel.ensemble import EnsembleModel

__version__ = "0.1.0"

__all__ = ["InvalidSmilesError", "__version__", "load"]


def load(
    path: str | os.PathLike[str] = "default", device: str | torch.device | None = None
) -> MolChannelModel | EnsembleModel:
    """Load a model folder (or ``"default"``, the model shipped with the package).

    Returns a :class:`molchannel.api.MolChannelModel`, or a :class:`molchannel.ensemble.EnsembleModel`
    for an ensemble folder; see :func:`molchannel.api.load`.
    """
    from molchannel.api import load as _load  # imported on first use, so ``import molchannel`` stays light

    return _load(path, device=device)
