"""Featurize many SMILES under an explicit policy for invalid ones.

``on_invalid`` (see :mod:`molchannel.chem.smiles`):

* ``"raise"`` (default): stop at the first invalid SMILES with an :class:`InvalidSmilesError`
  that names its index and the reason;
* ``"nan"``: keep one output row per input row, ``None`` where the input was invalid;
* ``"skip"``: drop invalid rows; ``indices`` says which input row each graph came from.

Either way ``invalid`` lists every rejected row, and bulk jobs log how many they dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING

from molchannel.chem.base import Featurizer
from molchannel.chem.graph_batch import GraphArrays
from molchannel.chem.smiles import InvalidRecord, InvalidSmilesError, OnInvalid, check_on_invalid

if TYPE_CHECKING:
    from torch_geometric.data import Data

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 10_000


@dataclass
class FeaturizedSmiles:
    """Graphs of a bulk call, their input rows, and the rows that were rejected.

    ``graphs[k]`` is the graph of input row ``indices[k]``. With ``on_invalid="nan"`` both cover
    every input row (``None`` for invalid ones); with ``"skip"`` only the valid ones. Graphs are
    PyG ``Data``, or :class:`~molchannel.chem.graph_batch.GraphArrays` where the caller asked for
    arrays (``featurize_block(..., arrays=True)``) and the featurizer has an array form.
    """

    graphs: list[Data | GraphArrays | None] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    invalid: list[InvalidRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.graphs)

    def extend(self, other: FeaturizedSmiles) -> None:
        self.graphs += other.graphs
        self.indices += other.indices
        self.invalid += other.invalid


def featurize_smiles(
    smiles: Sequence[object], featurizer: Featurizer, on_invalid: OnInvalid = "raise"
) -> FeaturizedSmiles:
    """Featurize ``smiles`` with ``featurizer``; rows are handled as ``on_invalid`` says."""
    result = FeaturizedSmiles()
    for chunk in iter_featurized(smiles, featurizer, on_invalid, log=False):
        result.extend(chunk)
    _log_rejected(len(result.invalid), len(smiles), on_invalid)
    return result


def featurize_block(
    smiles: Sequence[object],
    featurizer: Featurizer,
    on_invalid: OnInvalid = "raise",
    start: int = 0,
    arrays: bool = False,
) -> FeaturizedSmiles:
    """One block of inputs, without logging; its ``indices`` and invalid records count from ``start``.

    What :func:`iter_featurized` does per chunk, for callers that cut the blocks themselves (the
    inference workers of :mod:`molchannel.parallel`). ``arrays=True`` returns
    :class:`~molchannel.chem.graph_batch.GraphArrays` where the featurizer can (``basic``), for
    :class:`~molchannel.chem.graph_batch.GraphBatch`, which needs no PyG.
    """
    check_on_invalid(on_invalid)
    return _featurize_chunk(list(smiles), start, featurizer, on_invalid, arrays)


def iter_featurized(
    smiles: Iterable[object],
    featurizer: Featurizer,
    on_invalid: OnInvalid = "raise",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    *,
    log: bool = True,
) -> Iterator[FeaturizedSmiles]:
    """Stream over ``smiles`` (any iterable, e.g. the lines of a large file) in chunks.

    Yields one :class:`FeaturizedSmiles` per ``chunk_size`` inputs; its ``indices`` and the
    ``index`` of its invalid records count from the start of the whole stream, so chunks can be
    written out and concatenated without bookkeeping.
    """
    check_on_invalid(on_invalid)  # here, not in the generator, so that a bad argument fails at once
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    return _iter_chunks(iter(smiles), featurizer, on_invalid, chunk_size, log)


def _iter_chunks(
    iterator: Iterator[object], featurizer: Featurizer, on_invalid: OnInvalid, chunk_size: int, log: bool
) -> Iterator[FeaturizedSmiles]:
    start = rejected = 0
    while chunk := list(islice(iterator, chunk_size)):
        result = _featurize_chunk(chunk, start, featurizer, on_invalid)
        rejected += len(result.invalid)
        start += len(chunk)
        yield result
    if log:
        _log_rejected(rejected, start, on_invalid)


def _featurize_chunk(
    chunk: list[object], start: int, featurizer: Featurizer, on_invalid: OnInvalid, arrays: bool = False
) -> FeaturizedSmiles:
    result = FeaturizedSmiles()
    graph: Data | GraphArrays | InvalidSmilesError | None
    for i, graph in enumerate(_graphs_or_errors(chunk, start, featurizer, arrays), start):
        if isinstance(graph, InvalidSmilesError):
            if on_invalid == "raise":
                raise graph
            result.invalid.append(InvalidRecord(i, _as_text(chunk[i - start]), graph.reason))
            if on_invalid == "skip":
                continue
            graph = None
        result.graphs.append(graph)
        result.indices.append(i)
    return result


def _graphs_or_errors(
    chunk: list[object], start: int, featurizer: Featurizer, arrays: bool = False
) -> Sequence[Data | GraphArrays | InvalidSmilesError]:
    """One graph or error per input; uses the featurizer's ``featurize_batch`` where it has one."""
    batch = getattr(featurizer, "featurize_batch_arrays" if arrays else "featurize_batch", None)
    if batch is None and arrays:
        batch = getattr(featurizer, "featurize_batch", None)
    if batch is not None:
        return batch(chunk, start)  # type: ignore[no-any-return]  # a featurizer's optional method
    out: list[Data | InvalidSmilesError] = []
    for i, s in enumerate(chunk, start):
        try:
            out.append(featurizer(s))  # type: ignore[arg-type]  # non-strings are rejected inside
        except InvalidSmilesError as err:
            out.append(InvalidSmilesError(err.smiles, err.reason, i))
    return out


def _as_text(smiles: object) -> str:
    return smiles if isinstance(smiles, str) else repr(smiles)


def _log_rejected(rejected: int, total: int, on_invalid: OnInvalid) -> None:
    if rejected:
        action = "dropped" if on_invalid == "skip" else "kept as empty rows"
        logger.warning(
            "%d of %d SMILES were invalid and %s (see .invalid for the reasons)", rejected, total, action
        )
