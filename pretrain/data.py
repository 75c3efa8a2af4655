"""Views and batches for pre-training, and the LightningDataModule that serves them.

Every anchor molecule contributes, per step (METHOD.md section 4):

* the anchor itself (read out by every channel),
* ``n_mcd`` subgraph-masked views (MCD positives),
* ``n_scd`` scaffold-invariant perturbations (SCD positives, from the prepared corpus),
* one context-masked view (CP input).

Views are drawn from a generator seeded by ``(seed, epoch, corpus index)``, so they do not depend
on the worker, the batch or the number of processes, and a resumed run sees the same views.
All graphs of a batch go through the encoder in one pass; :class:`PretrainBatch` says which
slice is which.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler
from torch_geometric.data import Batch, Data

from molchannel.pretrain.corpus import MANIFEST, CorpusConfig, CorpusItem, PretrainCorpus, prepare_corpus
from molchannel.pretrain.views import context_mask, subgraph_mask

log = logging.getLogger(__name__)

_GRAPH_FIELDS = ("x", "edge_index", "edge_attr", "pe")


def _plain(data: Data) -> Data:
    """Only the encoder's inputs (so graphs with different extra fields batch together)."""
    return Data(**{k: data[k] for k in _GRAPH_FIELDS if data.get(k) is not None})


@dataclass
class MoleculeViews:
    index: int
    anchor: Data
    mcd: list[Data]
    scd: list[Data]
    scd_real: int
    context: Data


class ViewDataset(Dataset):
    """Corpus molecules ``indices`` turned into :class:`MoleculeViews`."""

    def __init__(
        self,
        corpus: PretrainCorpus,
        indices: np.ndarray,
        n_mcd: int = 5,
        n_scd: int = 5,
        mask_fraction: float = 0.15,
        context_fraction: float = 0.15,
        seed: int = 0,
        fixed_epoch: int | None = None,
    ) -> None:
        if n_scd > corpus.n_stored:
            raise ValueError(
                f"n_scd={n_scd} positives per step, but the corpus stores only {corpus.n_stored} "
                "per molecule; "
                "prepare it with a larger n_stored or lower n_scd"
            )
        self.corpus = corpus
        self.indices = np.asarray(indices, dtype=np.int64)
        self.n_mcd, self.n_scd = n_mcd, n_scd
        self.mask_fraction, self.context_fraction = mask_fraction, context_fraction
        self.seed = seed
        self.epoch = 0
        self.fixed_epoch = fixed_epoch  # validation always draws the same views

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> MoleculeViews:
        index = int(self.indices[i])
        item: CorpusItem = self.corpus[index]
        epoch = self.epoch if self.fixed_epoch is None else self.fixed_epoch
        gen = torch.Generator().manual_seed(
            int(np.random.SeedSequence([self.seed, epoch, index]).generate_state(1)[0])
        )
        anchor = item.anchor
        plain = _plain(anchor)
        mcd = [subgraph_mask(plain, self.mask_fraction, generator=gen) for _ in range(self.n_mcd)]
        # real perturbations come first in the store; draw among them when more are stored than used
        real = item.n_real
        if real > self.n_scd:
            order = torch.randperm(real, generator=gen)[: self.n_scd].tolist()
        else:
            order = list(range(self.n_scd))
        scd = [_plain(item.positives[j]) for j in order]
        context = context_mask(plain, anchor.context_label, self.context_fraction, generator=gen)
        return MoleculeViews(index, anchor, mcd, scd, min(real, self.n_scd), context)


@dataclass
class PretrainBatch:
    """One pre-training step's graphs, concatenated in the order anchors | MCD | SCD | context.

    ``graphs`` holds every graph (B + B*n_mcd + B*n_scd + B of them). Per-anchor targets are
    stacked: ``fp``/``scaffold_fp`` as unpacked 0/1 float [B, bits], ``motif`` [B, 86] and, when the
    corpus stores them, the normalised knowledge ``descriptors`` [B, 118] (else None).
    ``scaffold_mask`` covers the anchors' atoms (the first atoms of ``graphs``);
    ``context_centers`` are atom indices into ``graphs`` and ``context_labels`` their classes.
    """

    graphs: Batch
    num_anchors: int
    n_mcd: int
    n_scd: int
    fp: Tensor
    scaffold_fp: Tensor
    motif: Tensor
    scaffold_mask: Tensor
    context_centers: Tensor
    context_labels: Tensor
    scd_real: Tensor
    index: Tensor
    descriptors: Tensor | None = None

    def to(self, device: torch.device | str) -> PretrainBatch:
        return PretrainBatch(**{k: v.to(device) if hasattr(v, "to") else v for k, v in vars(self).items()})

    @property
    def num_anchor_atoms(self) -> int:
        return int(self.graphs.ptr[self.num_anchors])


def collate_views(items: list[MoleculeViews]) -> PretrainBatch:
    b = len(items)
    n_mcd = len(items[0].mcd)
    n_scd = len(items[0].scd)
    graphs = [_plain(v.anchor) for v in items]
    graphs += [g for v in items for g in v.mcd]
    graphs += [g for v in items for g in v.scd]
    first_context = len(graphs)
    graphs += [_plain(v.context) for v in items]
    batch = Batch.from_data_list(graphs)
    starts = batch.ptr[first_context : first_context + b]
    centers = torch.cat([v.context.masked_centers + starts[k] for k, v in enumerate(items)])
    labels = torch.cat([v.context.context_labels for v in items])

    def unpack(name: str) -> Tensor:
        packed = torch.cat([v.anchor[name] for v in items]).numpy()
        return torch.from_numpy(np.unpackbits(packed, axis=1).astype(np.float32))

    return PretrainBatch(
        graphs=batch,
        num_anchors=b,
        n_mcd=n_mcd,
        n_scd=n_scd,
        fp=unpack("fp"),
        scaffold_fp=unpack("scaffold_fp"),
        motif=torch.cat([v.anchor.motif for v in items]),
        scaffold_mask=torch.cat([v.anchor.scaffold_mask for v in items]),
        context_centers=centers,
        context_labels=labels,
        scd_real=torch.tensor([v.scd_real for v in items]),
        index=torch.tensor([v.index for v in items]),
        descriptors=(
            torch.cat([v.anchor.descriptors for v in items])
            if items[0].anchor.get("descriptors") is not None
            else None
        ),
    )


class EpochShuffleSampler(Sampler[int]):
    """A shuffled order of ``n`` items drawn from ``(seed, epoch)`` alone.

    Lightning calls :meth:`set_epoch` before every epoch (as for ``DistributedSampler``), so a run
    resumed from a checkpoint visits the molecules in the same order as an uninterrupted one; torch's
    ``RandomSampler`` would continue from whatever state the global generator happens to be in.
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):  # noqa: ANN204 - an iterator of indices
        state = np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0]
        gen = torch.Generator().manual_seed(int(state))
        return iter(torch.randperm(self.n, generator=gen).tolist())


class PretrainDataModule(L.LightningDataModule):
    """Serves a prepared corpus as view batches, preparing it first when asked to.

    Args:
        corpus: folder of the prepared corpus (see ``molchannel prepare``).
        source: SMILES file to prepare ``corpus`` from when that folder is not prepared yet
            (single-node runs only; on a cluster, run ``molchannel prepare`` once beforehand).
        prepare: :class:`~molchannel.pretrain.corpus.CorpusConfig` options for that preparation.
        prepare_processes: worker processes for the preparation.
        leakage_datasets: benchmarks whose validation/test molecules are removed from the corpus
            (default: every registered benchmark; ``[]`` disables the filter).
        data_dir: where those benchmarks are (default: ``$MOLCHANNEL_DATA_DIR``).
        batch_size: anchor molecules per step and per device (each brings 2 + n_mcd + n_scd graphs).
        val_fraction: share of the corpus held out for the validation loss (seeded choice).
        n_mcd / n_scd: positives per anchor for the two distancing channels.
        mask_fraction / context_fraction: atoms hidden in subgraph- and context-masked views.
        num_workers: DataLoader worker processes building views alongside the model.
        limit: use only the first ``limit`` molecules of the corpus (smoke runs).
        seed: seeds the validation choice and every view.
    """

    @property
    def _hp(self) -> Any:
        """``self.hparams``, Lightning's AttributeDict (typed as a plain mapping), for attribute access."""
        return self.hparams

    def __init__(
        self,
        corpus: str,
        source: str | None = None,
        prepare: dict[str, Any] | None = None,
        prepare_processes: int = 1,
        leakage_datasets: list[str] | None = None,
        data_dir: str | None = None,
        batch_size: int = 256,
        val_fraction: float = 0.01,
        n_mcd: int = 5,
        n_scd: int = 5,
        mask_fraction: float = 0.15,
        context_fraction: float = 0.15,
        num_workers: int = 2,
        limit: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.corpus_path = corpus
        if not (Path(corpus) / MANIFEST).is_file():
            self._prepare_here()
        self.corpus = PretrainCorpus(corpus)
        n = len(self.corpus) if limit is None else min(limit, len(self.corpus))
        order = np.random.default_rng(seed).permutation(n)
        n_val = int(round(val_fraction * n)) if val_fraction > 0 else 0
        if val_fraction > 0 and n > 1:
            n_val = max(n_val, 1)
        self.val_indices = np.sort(order[:n_val])
        self.train_indices = np.sort(order[n_val:])
        view_args: dict[str, Any] = dict(
            n_mcd=n_mcd,
            n_scd=n_scd,
            mask_fraction=mask_fraction,
            context_fraction=context_fraction,
            seed=seed,
        )
        self.train_set = ViewDataset(self.corpus, self.train_indices, **view_args)
        self.val_set = ViewDataset(self.corpus, self.val_indices, fixed_epoch=0, **view_args)

    def _prepare_here(self) -> None:
        hp = self._hp
        if hp.source is None:
            raise FileNotFoundError(
                f"{hp.corpus} is not a prepared corpus; prepare it with `molchannel prepare -i SMILES_FILE "
                f"-o {hp.corpus}` or give data.source so that it is prepared before training"
            )
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 or int(os.environ.get("SLURM_NTASKS", "1")) > 1:
            raise RuntimeError(
                f"{hp.corpus} is not prepared and this is a multi-process job; run `molchannel prepare` once "
                "before launching it, so that processes do not prepare the corpus concurrently"
            )
        from molchannel.pretrain.leakage import corpus_filter_keys

        keys = corpus_filter_keys(hp.leakage_datasets, hp.data_dir)
        prepare_corpus(
            hp.source,
            hp.corpus,
            CorpusConfig.from_dict(dict(hp.prepare or {})),
            keys,
            processes=hp.prepare_processes,
        )

    # Linked into the model's hyper-parameters by the CLI (and used by export).
    @property
    def vocab_size(self) -> int:
        return len(self.corpus.vocab)

    @property
    def featurizer(self) -> str:
        return self.corpus.featurizer_spec.name

    def set_epoch(self, epoch: int) -> None:
        self.train_set.epoch = epoch

    def _loader(self, dataset: ViewDataset, shuffle: bool) -> DataLoader:
        workers = self._hp.num_workers
        # under DDP, Lightning swaps the sampler for a DistributedSampler (seeded the same way)
        sampler = EpochShuffleSampler(len(dataset), self._hp.seed) if shuffle else None
        return DataLoader(
            dataset,
            batch_size=self._hp.batch_size,
            sampler=sampler,
            num_workers=workers,
            collate_fn=collate_views,
            persistent_workers=False,  # workers are re-made each epoch, so they see the new epoch's seed
            prefetch_factor=4 if workers > 0 else None,
            drop_last=shuffle and len(dataset) > self._hp.batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def describe(self) -> dict[str, Any]:
        m = self.corpus.manifest
        return {
            "corpus": os.path.abspath(self.corpus_path)
            if Path(self.corpus_path).exists()
            else self.corpus_path,
            "corpus_source": m["settings"]["source"],
            "n_molecules": m["n_molecules"],
            "n_train": len(self.train_indices),
            "n_val": len(self.val_indices),
            "n_removed_heldout": m["n_removed_heldout"],
            "n_invalid": m["n_invalid"],
        }
