"""DeepChem featurizer that turns molecules into molchannel embeddings.

:class:`MolChannelFeaturizer` is a ``dc.feat.MolecularFeaturizer``, so it works wherever DeepChem
takes one (``featurizer.featurize(smiles)``, ``dc.data.CSVLoader(..., featurizer=...)``,
MoleculeNet loaders)::

    import deepchem as dc
    from molchannel.deepchem import MolChannelFeaturizer

    X = MolChannelFeaturizer().featurize(["CCO", "c1ccccc1O"])  # float32 [2, D]
    dataset = dc.data.NumpyDataset(X, y)

Only importing this module imports DeepChem; ``import molchannel``, ``embed`` and ``predict``
never do.

Failures follow DeepChem's convention: a molecule that cannot be featurized is logged as a
warning ("Failed to featurize datapoint i, ...") and gets an empty array in its place, and the
result is then a 1-D object array of per-molecule arrays (which ``dc.data.CSVLoader`` filters out).
With every molecule valid the result is a float32 ``[N, D]`` array.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

try:
    from deepchem.feat import MolecularFeaturizer
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "molchannel.deepchem needs DeepChem: pip install 'molchannel[deepchem]' (or pip install deepchem)"
    ) from exc
from rdkit import Chem

from molchannel.api import MolChannelModel, load
from molchannel.chem.smiles import OnInvalid

logger = logging.getLogger(__name__)

__all__ = ["MolChannelFeaturizer"]


class MolChannelFeaturizer(MolecularFeaturizer):
    """molchannel embeddings as DeepChem features.

    SMILES strings are embedded as given, so ``featurize(smiles)`` equals
    ``molchannel.load(model).embed(smiles, channel=channel)`` exactly (DeepChem's own featurizers
    first renumber the atoms canonically; the embedding does not depend on atom order beyond
    floating-point rounding, so this step is skipped). RDKit molecules are written as SMILES
    first, so hydrogens added with ``AddHs`` do not become graph nodes, as in training.

    ``featurize`` embeds in batches of ``batch_size``; ``_featurize`` (one molecule) is what
    DeepChem calls when per-datapoint keyword arguments are passed.

    Args:
        model: ``"default"`` (the model shipped with molchannel) or a model-folder path.
        channel: ``"mix"`` (prompt-weighted mixture), a channel name, or ``"all"`` (every channel,
            concatenated in the model's channel order: ``K*D`` features).
        batch_size: molecules per forward pass (changes the result only by float rounding).
        device: ``None``/``"cpu"``, ``"cuda"``, ``"auto"``, ...
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "default",
        channel: str = "mix",
        batch_size: int = 128,
        device: str | None = None,
    ) -> None:
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.model = model
        self.channel = channel
        self.batch_size = batch_size
        self.device = device
        self._model: MolChannelModel | None = None

    @property
    def molchannel_model(self) -> MolChannelModel:
        """The loaded molchannel model (loaded on first use, then kept)."""
        if self._model is None:
            model = load(self.model, device=self.device)
            if self.channel not in ("mix", "all", *model.channels):
                raise ValueError(
                    f"channel must be 'mix', 'all' or one of the model's channels {model.channels}, "
                    f"got {self.channel!r}"
                )
            self._model = model
        return self._model

    @property
    def n_features(self) -> int:
        """Features per molecule: ``D``, or ``K*D`` for ``channel="all"``."""
        model = self.molchannel_model
        return model.embedding_dim * (len(model.channels) if self.channel == "all" else 1)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_model"] = None  # reloaded from ``model`` on first use
        return state

    def _embed(self, smiles: list[object], on_invalid: OnInvalid) -> tuple[np.ndarray, list[Any]]:
        emb, report = self.molchannel_model.embed(
            smiles,
            channel=self.channel,
            batch_size=self.batch_size,
            device=self.device,
            on_invalid=on_invalid,
            return_report=True,
        )
        return emb.reshape(len(smiles), -1), report.invalid

    def _featurize(self, datapoint: Any, **kwargs: Any) -> np.ndarray:
        """Embed one molecule (an RDKit Mol or a SMILES string): float32 ``[n_features]``.

        Args:
            datapoint: the molecule.
            kwargs: ignored.

        Raises:
            molchannel.InvalidSmilesError: the molecule cannot be featurized (DeepChem's
                ``featurize`` turns this into an empty array and a logged warning).
        """
        emb, _ = self._embed([_as_smiles(datapoint)], on_invalid="raise")
        return emb[0]

    def featurize(self, datapoints: Any, log_every_n: int = 1000, **kwargs: Any) -> np.ndarray:
        """Embed molecules in batches.

        Args:
            datapoints: a SMILES string or RDKit Mol, or an iterable of them.
            log_every_n: log progress every this many molecules (as DeepChem does).
            kwargs: per-datapoint keyword arguments; when given, molecules are featurized one by one
                through DeepChem's own loop.

        Returns:
            float32 ``[N, n_features]`` when every molecule could be featurized; otherwise a 1-D
            object array of length N with an empty array for each failed molecule (each failure is
            logged as a warning, as DeepChem does).
        """
        if kwargs:
            return super().featurize(datapoints, log_every_n=log_every_n, **kwargs)
        if isinstance(datapoints, (str, Chem.Mol)):
            datapoints = [datapoints]
        items = list(datapoints) if isinstance(datapoints, Iterable) else [datapoints]
        smiles = [_as_smiles(item) for item in items]
        n = len(smiles)
        step = max(1, int(log_every_n))
        features = np.empty((n, self.n_features), dtype=np.float32)
        failed: list[int] = []
        for start in range(0, n, step):
            logger.info("Featurizing datapoint %i", start)
            emb, invalid = self._embed(smiles[start : start + step], on_invalid="nan")
            features[start : start + step] = emb
            for record in invalid:
                index = start + record.index
                failed.append(index)
                logger.warning(
                    "Failed to featurize datapoint %d, %s. Appending empty array", index, items[index]
                )
                logger.warning("Exception message: %s", record.reason)
        if not failed:
            return features
        out = np.empty(n, dtype=object)
        for i in range(n):
            out[i] = features[i]
        for i in failed:
            out[i] = np.array([])
        return out


def _as_smiles(item: Any) -> Any:
    """A SMILES string stays as it is, an RDKit Mol becomes its SMILES; anything else is passed on
    (and reported as invalid by the embedding)."""
    if isinstance(item, Chem.Mol):
        try:
            return Chem.MolToSmiles(item)
        except Exception:  # RDKit raises several exception types for broken molecules
            return None
    return item
