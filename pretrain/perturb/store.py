"""Reading a precompute back: random access to each corpus row's stored positives, with checks.

:func:`load_perturbations` opens a folder written by :func:`precompute_perturbations` as a
:class:`PerturbationStore`, which verifies every shard it reads and, given the corpus, proves that each
row's perturbations belong to that row's molecule.
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from molchannel.pretrain.perturb.base import PerturbationRecord
from molchannel.pretrain.perturb.corpus_io import _as_corpus, corpus_sha256
from molchannel.pretrain.perturb.shards import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    PerturbationAlignmentError,
    ShardError,
    _shard_bounds,
    read_shard,
    shard_path,
    verify_shard_rows,
)


class PerturbationStore:
    """Random access to precomputed positives by corpus row, with alignment checks.

    Shards are read on first use and kept (``max_cached_shards`` bounds how many). Every shard read is
    verified: consecutive row indices, ``n_keep`` perturbations each, and, when the corpus is given,
    each stored anchor equal to the corpus row; any mismatch raises :class:`PerturbationAlignmentError`
    or :class:`ShardError` with the row and what to do.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        corpus: str | os.PathLike[str] | Sequence[str] | None = None,
        max_cached_shards: int | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        manifest_path = self.out_dir / MANIFEST_NAME
        if not manifest_path.is_file():
            raise FileNotFoundError(
                f"{str(self.out_dir)!r} holds no precomputed perturbations ({MANIFEST_NAME} is missing)"
            )
        self.manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported perturbation format {self.manifest.get('format_version')!r}")
        self.n_keep: int = self.manifest["n_keep"]
        self.shard_size: int = self.manifest["shard_size"]
        self._n_rows: int = self.manifest["n_rows"]
        self._corpus: list[str] | None = None
        if corpus is not None:
            smiles = _as_corpus(corpus)
            if len(smiles) != self._n_rows or corpus_sha256(smiles) != self.manifest["corpus_sha256"]:
                raise PerturbationAlignmentError(
                    f"the corpus given ({len(smiles)} rows) is not the one these perturbations were "
                    f"computed for ({self._n_rows} rows, sha256 {self.manifest['corpus_sha256'][:12]}...); "
                    "pass the same corpus or rerun the precompute for this one"
                )
            self._corpus = smiles
        self.max_cached_shards = max_cached_shards
        self._shards: collections.OrderedDict[int, list[dict[str, Any]]] = collections.OrderedDict()

    def __len__(self) -> int:
        return self._n_rows

    def __getitem__(self, row: int) -> PerturbationRecord:
        if not -self._n_rows <= row < self._n_rows:
            raise IndexError(f"row {row} out of range for {self._n_rows} rows")
        row %= self._n_rows
        shard, offset = divmod(row, self.shard_size)
        data = self._shard(shard)[offset]
        return PerturbationRecord(
            row=data["row"],
            anchor=data["anchor"],
            perturbations=tuple(data["perturbations"]),
            n_real=data["n_real"],
            error=data.get("error"),
        )

    def perturbations(self, row: int) -> list[str]:
        return list(self[row].perturbations)

    def __iter__(self) -> Iterator[PerturbationRecord]:
        for row in range(self._n_rows):
            yield self[row]

    def _shard(self, shard: int) -> list[dict[str, Any]]:
        if shard in self._shards:
            self._shards.move_to_end(shard)
            return self._shards[shard]
        start, stop = _shard_bounds(shard, self.shard_size, self._n_rows)
        try:
            rows = read_shard(shard_path(self.out_dir, shard))
            anchors = [r.get("anchor") for r in rows] if self._corpus is None else self._corpus[start:stop]
            verify_shard_rows(rows, start, anchors, self.n_keep)
        except ShardError as exc:
            raise type(exc)(
                f"{exc}. Rerun precompute_perturbations with the same arguments to repair it."
            ) from exc
        self._shards[shard] = rows
        if self.max_cached_shards is not None and len(self._shards) > self.max_cached_shards:
            self._shards.popitem(last=False)
        return rows


def load_perturbations(
    out_dir: str | os.PathLike[str],
    corpus: str | os.PathLike[str] | Sequence[str] | None = None,
    max_cached_shards: int | None = None,
) -> PerturbationStore:
    """Open a precompute folder; pass the corpus to have every row checked against it."""
    return PerturbationStore(out_dir, corpus, max_cached_shards)
