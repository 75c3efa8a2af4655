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

__all__ = ["InvalidSmilesError", "__version__", "load", "load_ensemble"]


def load(
    path: str | os.PathLike[str] = "default", device: str | torch.device | None = None
) -> MolChannelModel:
    """Load a model folder (or ``"default"``, the model shipped with the package).

    Returns a :class:`molchannel.api.MolChannelModel`; see :func:`molchannel.api.load`. An ensemble
    folder is loaded with :func:`load_ensemble`.
    """
    from molchannel.api import load as _load  # imported on first use, so ``import molchannel`` stays light

    return _load(path, device=device)


def load_ensemble(path: str | os.PathLike[str], device: str | torch.device | None = None) -> EnsembleModel:
    """Load an ensemble folder (``molchannel finetune --ensemble-size N``): its ``predict`` also gives the
    spread over members (``return_std=True``) and conformal intervals (``predict_interval``)."""
    from molchannel.ensemble import load_ensemble as _load_ensemble

    return _load_ensemble(path, device=device)
