"""molchannel: prompt-guided multi-channel molecular representation learning (MCL).

Quick start::

    import molchannel
    model = molchannel.load("default")
    emb = model.embed(["CCO", "c1ccccc1O"])          # (2, D) mixed embedding
    per_channel = model.embed(["CCO"], channel="all")  # (1, K, D)

Importing this package stays light: Lightning and the training applications are only
imported by the ``pretrain`` / ``finetune`` commands.
"""

from molchannel.chem.smiles import InvalidSmilesError

__version__ = "0.1.0"

__all__ = ["InvalidSmilesError", "__version__", "load"]


def load(path: str = "default", device: str | None = None):  # noqa: ANN201 - see molchannel.api
    """Load a model folder (or ``"default"``, the model shipped with the package).

    Returns a :class:`molchannel.api.MolChannelModel`.
    """
    from molchannel.api import load as _load

    return _load(path, device=device)
