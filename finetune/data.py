"""Labelled molecules for fine-tuning: the table, its split and the Lightning data module.

Graphs come from the on-disk graph cache (:func:`molchannel.data.load_or_build_graphs`), so a
dataset is featurized once per featurizer. Training batches are shuffled by a sampler seeded with
``(seed, epoch)``: a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from molchannel.data import (
    GraphStore,
    MissingColumnError,
    MoleculeTable,
    load_csv,
    load_dataset,
    resolve_cache_dir,
)
from molchannel.data.splits import (
    Split,
    benchmark_split,
    column_split,
    random_scaffold_split,
    random_split,
    scaffold_split,
)
from molchannel.finetune.config import DataConfig, FinetuneConfig

log = logging.getLogger(__name__)


def load_table(config: DataConfig) -> MoleculeTable:
    """The registered dataset or the user's CSV, cut to the first ``limit`` rows when set.

    With ``split: column`` the user's split column is read too (into ``extra``), and is not a target.
    """
    if config.dataset is not None:
        table = load_dataset(config.dataset)
        if config.task_type is not None and config.task_type != table.task_type:
            raise ValueError(
                f"data.task_type={config.task_type!r} contradicts {table.name}, a {table.task_type} "
                "benchmark; leave data.task_type null for registered datasets"
            )
    else:
        assert config.path is not None and config.task_type is not None  # checked by FinetuneConfig
        split_cols = (config.split_col,) if config.split == "column" else ()
        try:
            table = load_csv(
                config.path,
                smiles_col=config.smiles_col,
                target_cols=config.targets,
                task_type=config.task_type,  # type: ignore[arg-type]
                extra_cols=split_cols,
            )
        except MissingColumnError as exc:
            if config.split_col not in split_cols or config.split_col not in exc.missing:
                raise
            raise MissingColumnError(
                f"{exc}. data.split: column reads each row's subset (train/valid/test) from the column "
                f"data.split_col={config.split_col!r}: set data.split_col to your split column's name",
                missing=exc.missing,
                columns=exc.columns,
            ) from exc
    return head_rows(table, config.limit) if config.limit is not None else table


def head_rows(table: MoleculeTable, limit: int) -> MoleculeTable:
    """The first ``limit`` rows of ``table`` (the graph cache keys on the row count, so this is safe)."""
    if limit >= len(table):
        return table
    return replace(
        table,
        smiles=table.smiles[:limit],
        targets=table.targets[:limit],
        extra={k: v[:limit] for k, v in table.extra.items()},
        invalid=[r for r in table.invalid if r.index < limit],
    )


def make_split(table: MoleculeTable, config: FinetuneConfig) -> Split:
    """``data.split`` applied to ``table`` (see :class:`DataConfig`); seeded splits use ``seed``.

    The split has training and validation rows (a ``ValueError`` says what to change otherwise); its
    test set may be empty (``split: column`` without test rows, ``test_frac: 0``): the run's test
    metric is then NaN.
    """
    split = _split(table, config)
    d = config.data
    if d.split == "column":
        for name in ("train", "valid"):
            if not len(getattr(split, name)):
                raise ValueError(
                    f"the split column {d.split_col!r} of {table.name} marks no {name} rows with a valid "
                    f"SMILES (train {len(split.train)}, valid {len(split.valid)}, test {len(split.test)}); "
                    "fine-tuning trains on the train rows and picks the best epoch on the valid rows: mark "
                    f"some rows {name!r}"
                )
    if not len(split.test):
        benchmark_split_used = d.split == "auto" and d.dataset is not None
        if d.split == "column" or (d.test_frac == 0 and not benchmark_split_used):
            log.info("%s: no test set (%r): the test metric is reported as NaN", table.name, split)
        else:
            log.warning(
                "%s: the split left no test molecules (%r); the test metric is reported as NaN (use more "
                "rows, data.limit, or a larger data.test_frac for a test set)", table.name, split,
            )  # fmt: skip
    return split


def _split(table: MoleculeTable, config: FinetuneConfig) -> Split:
    d = config.data
    if d.split == "column":
        return column_split(table.extra[d.split_col], column=d.split_col, valid_mask=table.valid_mask)
    frac = (1.0 - d.valid_frac - d.test_frac, d.valid_frac, d.test_frac)
    if d.split == "auto":
        if d.dataset is not None:
            return benchmark_split(table, valid_frac=d.valid_frac, seed=config.seed)
        return scaffold_split(table.smiles, frac=frac)
    if d.split == "scaffold":
        return scaffold_split(table.smiles, frac=frac)
    if d.split == "random_scaffold":
        return random_scaffold_split(table.smiles, frac=frac, seed=config.seed)
    return random_split(len(table), frac=frac, seed=config.seed, valid_mask=table.valid_mask)


def graph_cache_dir(config: DataConfig) -> Path:
    return Path(config.cache_dir).expanduser() if config.cache_dir else resolve_cache_dir() / "graphs"


class LabelledGraphs(Dataset):
    """The graphs of some table rows, each with its labels ``y`` ``[1, T]`` (NaN = missing) and ``row``;
    with ``features`` (``[table rows, F]``), also its raw molecule features ``mol_features`` ``[1, F]``."""

    def __init__(
        self, store: GraphStore, rows: np.ndarray, targets: np.ndarray, features: np.ndarray | None = None
    ) -> None:
        self.store = store
        self.positions = store.positions_for_rows(rows)
        self.rows = store.row_index[self.positions]
        self.targets = targets
        self.features = features

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> Data:
        graph = self.store[int(self.positions[i])]
        row = int(self.rows[i])
        graph.y = torch.from_numpy(np.ascontiguousarray(self.targets[row], dtype=np.float32)).view(1, -1)
        graph.row = torch.tensor([row], dtype=torch.long)
        if self.features is not None:
            graph.mol_features = torch.from_numpy(np.ascontiguousarray(self.features[row])).view(1, -1)
        return graph


class EpochShuffle(Sampler[int]):
    """A permutation drawn from ``(seed, epoch)`` only, independent of any global random state."""

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())

    def __len__(self) -> int:
        return self.n


class FinetuneDataModule(L.LightningDataModule):
    """Train (shuffled per epoch), and validation = [valid, test] loaders of a split ([valid] alone when
    the test set is empty)."""

    def __init__(
        self,
        store: GraphStore,
        split: Split,
        targets: np.ndarray,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        features: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.train_set = LabelledGraphs(store, split.train, targets, features)
        self.valid_set = LabelledGraphs(store, split.valid, targets, features)
        self.test_set = LabelledGraphs(store, split.test, targets, features)
        for name, subset in (("train", self.train_set), ("valid", self.valid_set)):
            if len(subset) == 0:
                raise ValueError(
                    f"the split left no {name} molecules with a graph ({split!r}); use more rows "
                    "(data.limit), other fractions (data.valid_frac / data.test_frac) or another data.split"
                )
        if len(split.test) and not len(self.test_set):
            log.warning("none of the %d test rows has a graph: the test metric is reported as NaN",
                        len(split.test))  # fmt: skip
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.sampler = EpochShuffle(len(self.train_set), seed)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def _loader(self, dataset: LabelledGraphs, sampler: Sampler[int] | None = None,
                drop_last: bool = False) -> DataLoader:  # fmt: skip
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            shuffle=False,
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        # BatchNorm cannot train on a last batch of one single-atom molecule: drop a lone last molecule
        # (a different one each epoch, as the order is reshuffled)
        lone_last = len(self.train_set) % self.batch_size == 1 and len(self.train_set) > 1
        return self._loader(self.train_set, self.sampler, drop_last=lone_last)

    def val_dataloader(self) -> list[DataLoader]:
        loaders = [self.valid_loader()]
        test = self.test_loader()
        return loaders if test is None else [*loaders, test]

    def valid_loader(self) -> DataLoader:
        """The validation set's loader alone."""
        return self._loader(self.valid_set)

    def test_loader(self) -> DataLoader | None:
        """The test set's loader (evaluated each epoch after the validation set); None when it is empty."""
        return self._loader(self.test_set) if len(self.test_set) else None
