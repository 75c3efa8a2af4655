"""Compact per-molecule records: how a prepared corpus stores each molecule (corpus formats 2 and 3).

One record holds everything pre-training reads about a molecule: its anchor graph with the
pre-training targets (context tokens, scaffold mask, fingerprints, motif and descriptor targets,
``n_real``) and its ``n_stored`` SCD positives, as the bytes of those arrays one after the other.
What makes it small (BENCHMARKS.md, "Corpus format 2" and "Corpus format 3"):

* each bond is stored once, not once per direction: a coalesced ``edge_index`` with symmetric
  bond features is rebuilt exactly on read (graphs where that does not hold keep both directions);
* the positives of a molecule are near-copies of it (same scaffold, edited side chains), and
  integer columns (atom and bond codes, atom indices) are narrowed to the smallest integer type that
  holds the shard's values, so compression finds long repeats;
* the knowledge-term descriptors (118 floats, the largest part) are stored as 8-bit codes: per column
  and shard, counts exactly, other columns as 254 levels over the shard's range cut to the mean +- 8
  standard deviations, so a value is off by at most 0.03 standard deviations (plus float16 rounding
  on read); code 255 is NaN (:func:`_quantizer`);
* compression. Format 3 (what ``prepare`` writes): :data:`BLOCK_RECORDS` consecutive records are
  compressed together with zstd and a dictionary trained on the shard's first records (none for
  shards of fewer than 64 molecules), so what
  molecules share is paid for once per shard and what neighbours share once per block; a read
  decompresses its block (~60 kB, about 0.1 ms). Format 2 (still read): each record alone with zlib
  and a preset dictionary of the shard's first records.

A shard's records are concatenated in one memory-mapped ``.safetensors`` file (``blob`` bytes,
``offsets`` of records (format 2) or blocks (format 3), ``row_index``, ``zdict``: the dictionary);
its JSON sidecar holds the layout: each field's name, level (one value per node, per edge or per
graph), stored and original dtype and shape, and (format 3) the compression. Reading a record costs
a decompression and a few array views, no RDKit.
"""

from __future__ import annotations

import json
import math
import os
import threading
import zlib
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch
from torch_geometric.data import Data

from molchannel.data.cache import load_safetensors_mmap, save_tensors_with_manifest

GRAPH_LEVEL_FIELDS = frozenset({"fp", "scaffold_fp", "motif", "descriptors", "n_real"})
"""Anchor fields with one value (row) per molecule; every other non-edge field has one per atom."""
ANCHOR_TARGETS = GRAPH_LEVEL_FIELDS | {"context_label", "scaffold_mask"}
"""Fields only the anchor has; the rest are the featurizer's and every graph has them."""

_COUNT = np.dtype("<u2")  # atoms, stored bonds and the directed flag of a graph: 65,535 atoms at most
_INT_TYPES = (np.uint8, np.int16, np.int32, np.int64)
_ZDICT_RECORDS, _ZDICT_BYTES = 64, 32768  # zlib's window: a longer dictionary is not used
BLOCK_RECORDS = 32
"""Records compressed together in format 3 (more: smaller, but each read decompresses more)."""
ZSTD_LEVEL = 19
ZSTD_DICT_BYTES = 65536
_ZSTD_DICT_SAMPLES = 2000  # the shard's first records, the dictionary's training set
_ZSTD_MIN_SAMPLES = 64  # fewer (tiny shards): the first records themselves are the dictionary
QUANTIZED_FIELDS = frozenset({"descriptors"})
"""Float fields stored as 8-bit codes when a codec is fitted with ``quantize=True``."""
_Q_SPAN = 8.0  # standard deviations kept each side of the mean
_Q_TOP = 254  # codes 0..254 are values, 255 is NaN
_Q_NAN = 255


@dataclass(frozen=True)
class FieldLayout:
    """How one field of a graph is stored in a record."""

    name: str
    level: str  # "node", "edge" or "graph"
    stored: str  # numpy dtype name in the record
    original: str  # torch dtype name the reader returns
    shape: tuple[int, ...]  # trailing shape per node / edge; the full shape for graph-level fields
    low: tuple[float, ...] | None = None  # 8-bit codes: value = low + code * step, per last-axis column
    step: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "level": self.level, "stored": self.stored, "original": self.original,
             "shape": list(self.shape)}  # fmt: skip
        if self.low is not None and self.step is not None:
            d.update(low=list(self.low), step=list(self.step))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FieldLayout:
        low, step = d.get("low"), d.get("step")
        return cls(d["name"], d["level"], d["stored"], d["original"], tuple(d["shape"]),
                   None if low is None else tuple(low), None if step is None else tuple(step))  # fmt: skip

    def quantize(self, value: np.ndarray) -> np.ndarray:
        """8-bit codes of ``value`` (clipped to the codes' range; NaN -> 255)."""
        assert self.low is not None and self.step is not None
        v = np.asarray(value, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            codes = np.clip(np.rint((v - np.asarray(self.low)) / np.asarray(self.step)), 0, _Q_TOP)
        return np.where(np.isnan(v), _Q_NAN, codes).astype(np.uint8)

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        assert self.low is not None and self.step is not None
        values = np.asarray(self.low) + codes.astype(np.float64) * np.asarray(self.step)
        return np.where(codes == _Q_NAN, np.nan, values)


def _quantizer(values: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(low, step)`` per column of ``[n, C]`` values for 8-bit codes (value = low + code * step).

    A column of whole numbers spanning at most 254 (the counts: rings, donors, fragments) gets step 1
    and is stored exactly. Other columns get 254 levels over their shard's range, cut to the mean +- 8
    standard deviations (taken without the 0.5% tails, as the descriptor normaliser takes them): off by
    at most 8/254 = 0.03 of a standard deviation, and values beyond 8 are clipped, which the normaliser
    (clipping at 5 of its own, corpus-wide, standard deviations) would do anyway.
    """
    v = np.where(np.isfinite(values), values, np.nan).astype(np.float64)
    lows, steps = [], []
    for column in v.T:
        finite = column[np.isfinite(column)]
        if not len(finite):
            lows.append(0.0)
            steps.append(1.0)
            continue
        lo, hi = float(finite.min()), float(finite.max())
        if np.all(finite == np.round(finite)) and hi - lo <= _Q_TOP:
            lows.append(lo)
            steps.append(1.0)
            continue
        kept = finite
        if len(finite) >= 20:
            t_lo, t_hi = np.percentile(finite, [0.5, 99.5])
            kept = finite[(finite >= t_lo) & (finite <= t_hi)]
        mean, std = float(kept.mean()), float(kept.std())
        std = std if std >= 1e-6 else 1.0
        lo, hi = max(lo, mean - _Q_SPAN * std), min(hi, mean + _Q_SPAN * std)
        lows.append(lo)
        steps.append((hi - lo) / _Q_TOP if hi > lo else 1.0)
    return tuple(lows), tuple(steps)


def _level(name: str) -> str:
    if name.startswith("edge_"):
        return "edge"
    return "graph" if name in GRAPH_LEVEL_FIELDS else "node"


def _narrowest(lo: int, hi: int) -> np.dtype:
    for dtype in _INT_TYPES:
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def _layout(graphs: list[Data], names: list[str], quantize: bool = False) -> list[FieldLayout]:
    """The layout of fields ``names`` of ``graphs``: integer columns as narrow as their values allow;
    with ``quantize``, the float fields of :data:`QUANTIZED_FIELDS` as 8-bit codes."""
    first = graphs[0]
    out = []
    for name in names:
        value = first[name]
        level = _level(name)
        shape = tuple(value.shape) if level == "graph" else tuple(value.shape[1:])
        original = str(value.dtype).removeprefix("torch.")
        if quantize and name in QUANTIZED_FIELDS and value.dtype.is_floating_point:
            stacked = np.concatenate([g[name].reshape(-1, value.shape[-1]).float().numpy() for g in graphs])
            out.append(FieldLayout(name, level, "uint8", original, shape, *_quantizer(stacked)))
            continue
        stored = np.dtype(torch.empty(0, dtype=value.dtype).numpy().dtype)
        if not value.dtype.is_floating_point and value.dtype != torch.bool:
            values = [g[name] for g in graphs if g[name].numel()]
            if values:
                lo = min(int(v.min()) for v in values)
                hi = max(int(v.max()) for v in values)
                stored = _narrowest(lo, hi)
        out.append(FieldLayout(name, level, stored.name, original, shape))
    return out


def _edge_layout(graphs: list[Data]) -> FieldLayout:
    most_atoms = max(int(g.num_nodes) for g in graphs)
    return FieldLayout("edge_index", "edge", _narrowest(0, max(most_atoms - 1, 0)).name, "int64", (2,))


def _one_direction(edge_index: np.ndarray, num_nodes: int, edge_attrs: list[np.ndarray]) -> np.ndarray | None:
    """Columns keeping each bond once (``src < dst``) if both directions rebuild from them; else None."""
    keep = np.flatnonzero(edge_index[0] < edge_index[1])
    if 2 * len(keep) != edge_index.shape[1]:
        return None
    picks, src, dst = _both_directions(edge_index[:, keep], num_nodes)
    if not (np.array_equal(src, edge_index[0]) and np.array_equal(dst, edge_index[1])):
        return None
    if any(not np.array_equal(attr[keep][picks], attr) for attr in edge_attrs):
        return None
    return keep


def _both_directions(half: np.ndarray, num_nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bonds ``half`` (stored once) in both directions, coalesced: (index into ``half``, src, dst)."""
    n = half.shape[1]
    src = np.concatenate([half[0], half[1]]).astype(np.int64)
    dst = np.concatenate([half[1], half[0]]).astype(np.int64)
    order = np.argsort(src * max(num_nodes, 1) + dst, kind="stable")
    return np.concatenate([np.arange(n), np.arange(n)])[order], src[order], dst[order]


def _numpy_dtype(torch_name: str) -> np.dtype:
    return torch.empty(0, dtype=getattr(torch, torch_name)).numpy().dtype


class RecordCodec:
    """Encodes a molecule (anchor graph with targets + positive graphs) as one compressed record, and back.

    ``graph_fields`` are the featurizer's fields every graph has (``x``, ``edge_attr``, ...);
    ``anchor_fields`` the targets only the anchor has. Built for a shard by :meth:`fit`, which
    narrows integer columns to what the shard's values need; saved with the shard (:meth:`to_dict`).
    """

    def __init__(
        self,
        edge_index: FieldLayout,
        graph_fields: list[FieldLayout],
        anchor_fields: list[FieldLayout],
        zdict: bytes = b"",
    ) -> None:
        self.edge_index = edge_index
        self.zdict = zdict
        self.graph_fields = graph_fields
        self.anchor_fields = anchor_fields
        self._stored = {f.name: np.dtype(f.stored) for f in [edge_index, *graph_fields, *anchor_fields]}
        self._original = {f.name: _numpy_dtype(f.original) for f in [*graph_fields, *anchor_fields]}
        # bytes each atom and each stored bond take in a graph (anchor targets excluded)
        self._node_bytes = sum(
            self._stored[f.name].itemsize * math.prod(f.shape) for f in graph_fields if f.level == "node"
        )
        self._edge_bytes = 2 * self._stored["edge_index"].itemsize + sum(
            self._stored[f.name].itemsize * math.prod(f.shape) for f in graph_fields if f.level == "edge"
        )

    @classmethod
    def fit(cls, anchors: list[Data], positives: list[list[Data]], quantize: bool = True) -> RecordCodec:
        """The codec for a shard: its fields, integer columns as narrow as the shard's values allow, and
        with ``quantize`` the descriptors as 8-bit codes (:data:`QUANTIZED_FIELDS`)."""
        names = set(anchors[0].keys()) - {"edge_index", "num_nodes"}
        base = sorted(names - ANCHOR_TARGETS)
        graphs = [*anchors, *(g for pos in positives for g in pos)]
        plain = [Data(**{k: g[k] for k in base}, num_nodes=g.num_nodes) for g in graphs]
        targets = sorted(names & ANCHOR_TARGETS)
        extras = [Data(**{k: a[k] for k in targets}) for a in anchors]
        anchor_layout = _layout(extras, targets, quantize) if targets else []
        codec = cls(_edge_layout(graphs), _layout(plain, base), anchor_layout)
        sample = zip(anchors[:_ZDICT_RECORDS], positives[:_ZDICT_RECORDS], strict=True)
        codec.zdict = b"".join(codec.raw(a, p) for a, p in sample)[-_ZDICT_BYTES:]
        return codec

    @classmethod
    def empty(cls) -> RecordCodec:
        """The codec of a shard with no molecules (every one invalid or held out)."""
        return cls(FieldLayout("edge_index", "edge", "uint8", "int64", (2,)), [], [])

    # ---- encoding --------------------------------------------------------------------------------
    def _graph_parts(self, g: Data) -> tuple[list[int], list[bytes]]:
        edge_index = g.edge_index.numpy()
        num_nodes = int(g.num_nodes)
        edge_fields = [f for f in self.graph_fields if f.level == "edge"]
        keep = _one_direction(edge_index, num_nodes, [g[f.name].numpy() for f in edge_fields])
        columns = np.arange(edge_index.shape[1]) if keep is None else keep
        if num_nodes > np.iinfo(_COUNT).max or len(columns) > np.iinfo(_COUNT).max:
            raise ValueError(
                f"a graph of {num_nodes} atoms / {len(columns)} bonds is too large for a corpus record"
            )
        parts = [np.ascontiguousarray(edge_index[:, columns], dtype=self._stored["edge_index"]).tobytes()]
        for f in self.graph_fields:
            value = g[f.name].numpy()
            if f.level == "edge":
                value = value[columns]
            parts.append(np.ascontiguousarray(value, dtype=self._stored[f.name]).tobytes())
        return [num_nodes, len(columns), int(keep is None)], parts

    def encode(self, anchor: Data, positives: list[Data]) -> bytes:
        """One molecule's record compressed alone with zlib (format 2)."""
        return _zlib(self.zdict, self.raw(anchor, positives))

    def raw(self, anchor: Data, positives: list[Data]) -> bytes:
        """One molecule's record, uncompressed (:func:`write_records` compresses them in blocks)."""
        counts: list[int] = [len(positives)]
        body: list[bytes] = []
        for i, g in enumerate([anchor, *positives]):
            header, parts = self._graph_parts(g)
            counts += header
            body += parts
            if i == 0:
                for f in self.anchor_fields:
                    value = anchor[f.name].numpy()
                    if f.low is not None:
                        value = f.quantize(value)
                    body.append(np.ascontiguousarray(value, dtype=self._stored[f.name]).tobytes())
        return np.asarray(counts, dtype=_COUNT).tobytes() + b"".join(body)

    # ---- decoding --------------------------------------------------------------------------------
    def _graph_bytes(self, num_nodes: int, n_edges: int) -> int:
        return num_nodes * self._node_bytes + n_edges * self._edge_bytes

    def _read_graph(
        self, raw: bytes, at: int, num_nodes: int, n_edges: int, directed: int
    ) -> dict[str, np.ndarray]:
        def take(name: str, rows: int, shape: tuple[int, ...]) -> np.ndarray:
            nonlocal at
            dtype = self._stored[name]
            n = rows * math.prod(shape)
            value = np.frombuffer(raw, dtype, n, at).reshape(rows, *shape)
            at += n * dtype.itemsize
            return value

        stored = take("edge_index", 2, (n_edges,))
        fields: dict[str, np.ndarray] = {}
        picks = None
        if directed:
            fields["edge_index"] = stored.astype(np.int64)
        else:
            picks, src, dst = _both_directions(stored, num_nodes)
            edge_index = np.empty((2, len(src)), dtype=np.int64)
            edge_index[0], edge_index[1] = src, dst
            fields["edge_index"] = edge_index
        for f in self.graph_fields:
            value = take(f.name, num_nodes if f.level == "node" else n_edges, f.shape)
            if picks is not None and f.level == "edge":
                value = value[picks]
            fields[f.name] = value.astype(self._original[f.name])
        return fields

    def open_raw(self, raw: bytes) -> Record:
        """A record from its uncompressed bytes (:meth:`raw`)."""
        return Record(self, raw)

    def open(self, record: bytes | memoryview) -> Record:
        """A zlib-compressed record (:meth:`encode`), decompressed: its anchor read now, its positives
        when asked for."""
        return Record(self, self.decompress(record))

    def decompress(self, record: bytes | memoryview) -> bytes:
        """The uncompressed bytes of a zlib-compressed record (format 2)."""
        if not self.zdict:
            return zlib.decompress(record)
        decompressor = zlib.decompressobj(zdict=self.zdict)
        return decompressor.decompress(record) + decompressor.flush()

    def decode(self, record: bytes | memoryview) -> tuple[Data, list[Data]]:
        """The anchor graph (with its targets) and every positive graph of a record."""
        opened = self.open(record)
        return opened.anchor(), list(opened)

    def to_dict(self) -> dict[str, Any]:
        return {
            "edge_index": self.edge_index.to_dict(),
            "graph_fields": [f.to_dict() for f in self.graph_fields],
            "anchor_fields": [f.to_dict() for f in self.anchor_fields],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], zdict: bytes = b"") -> RecordCodec:
        """The codec :meth:`to_dict` described (the dictionary is binary and saved beside it)."""
        return cls(
            FieldLayout.from_dict(d["edge_index"]),
            [FieldLayout.from_dict(f) for f in d["graph_fields"]],
            [FieldLayout.from_dict(f) for f in d["anchor_fields"]],
            zdict,
        )


class Record(SequenceABC[Data]):
    """A decompressed record: ``record.anchor()`` and the positives as a sequence, decoded when accessed.

    Pre-training uses ``n_scd`` of the ``n_stored`` positives per step, so the others are never decoded.
    """

    def __init__(self, codec: RecordCodec, raw: bytes) -> None:
        self._codec, self._raw = codec, raw
        n_pos = int(np.frombuffer(raw, _COUNT, 1)[0])
        counts = np.frombuffer(raw, _COUNT, 1 + 3 * (n_pos + 1)).tolist()[1:]
        graphs = [counts[i : i + 3] for i in range(0, len(counts), 3)]
        at = _COUNT.itemsize * (1 + 3 * (n_pos + 1))
        num_nodes, n_edges, directed = graphs[0]
        self.anchor_arrays = codec._read_graph(raw, at, num_nodes, n_edges, directed)
        at += codec._graph_bytes(num_nodes, n_edges)
        for f in codec.anchor_fields:
            dtype = codec._stored[f.name]
            shape = f.shape if f.level == "graph" else (num_nodes, *f.shape)
            n = math.prod(shape)
            value = np.frombuffer(raw, dtype, n, at).reshape(shape)
            if f.low is not None:
                value = f.dequantize(value)
            self.anchor_arrays[f.name] = value.astype(codec._original[f.name])
            at += n * dtype.itemsize
        self._positives: list[tuple[int, list[int]]] = []
        for num_nodes, n_edges, directed in graphs[1:]:
            self._positives.append((at, [num_nodes, n_edges, directed]))
            at += codec._graph_bytes(num_nodes, n_edges)

    def anchor(self) -> Data:
        return _data(self.anchor_arrays)

    def positive_arrays(self, j: int) -> dict[str, np.ndarray]:
        at, (num_nodes, n_edges, directed) = self._positives[j]
        return self._codec._read_graph(self._raw, at, num_nodes, n_edges, directed)

    def __len__(self) -> int:
        return len(self._positives)

    @overload
    def __getitem__(self, j: int) -> Data: ...
    @overload
    def __getitem__(self, j: slice) -> list[Data]: ...
    def __getitem__(self, j: int | slice) -> Data | list[Data]:
        if isinstance(j, slice):
            return [self[k] for k in range(len(self))[j]]
        return _data(self.positive_arrays(j))


def _data(fields: dict[str, np.ndarray]) -> Data:
    return Data(**{k: torch.from_numpy(v) for k, v in fields.items()})


# ---- a shard's records on disk -----------------------------------------------------------------
def _zstd() -> Any:
    try:
        import zstandard
    except ImportError as exc:  # pragma: no cover - a dependency of molchannel[train]
        raise ImportError(
            "corpus format 3 is zstd-compressed and needs the zstandard package: "
            "pip install zstandard (it comes with molchannel[train])"
        ) from exc
    return zstandard


def _zstd_dictionary(raws: list[bytes]) -> bytes:
    """A shard's dictionary, trained on its first records; empty where they are too few to train on
    (a dictionary of their own bytes would cost a small shard more than it saves)."""
    zstd = _zstd()
    sample = raws[:_ZSTD_DICT_SAMPLES]
    if len(sample) < _ZSTD_MIN_SAMPLES:
        return b""
    try:
        return bytes(zstd.train_dictionary(ZSTD_DICT_BYTES, sample, level=ZSTD_LEVEL).as_bytes())
    except zstd.ZstdError:  # too little variety to train on
        return b""


def _zstd_options(zstd: Any, dictionary: bytes) -> dict[str, Any]:
    if not dictionary:
        return {}
    return {"dict_data": zstd.ZstdCompressionDict(dictionary, dict_type=zstd.DICT_TYPE_FULLDICT)}


def compress_blocks(raws: list[bytes], block: int = BLOCK_RECORDS) -> tuple[list[bytes], bytes]:
    """Format 3: ``raws`` (uncompressed records) in blocks of ``block``, each zstd-compressed with the
    shard's dictionary; a block is its records' lengths (uint32) then their bytes.
    Returns ``(blocks, dictionary)`` (the dictionary empty for shards too small to train one)."""
    zstd = _zstd()
    dictionary = _zstd_dictionary(raws)
    compressor = zstd.ZstdCompressor(
        level=ZSTD_LEVEL, write_checksum=False, write_dict_id=False, **_zstd_options(zstd, dictionary)
    )
    blocks = []
    for start in range(0, len(raws), block):
        chunk = raws[start : start + block]
        lengths = np.asarray([len(r) for r in chunk], dtype="<u4").tobytes()
        blocks.append(compressor.compress(lengths + b"".join(chunk)))
    return blocks, dictionary


def write_records(
    data_path: Path, manifest_path: Path, codec: RecordCodec, raws: list[bytes], rows: list[int],
    key: dict[str, Any], compression: str = "zstd",
) -> None:  # fmt: skip
    """Write a shard's records (a ``.safetensors`` of bytes, offsets and rows, and its JSON), atomically.

    ``raws`` are uncompressed records (:meth:`RecordCodec.raw`). ``compression``: "zstd" (format 3,
    blocks of :data:`BLOCK_RECORDS`) or "zlib" (format 2, each record alone with ``codec.zdict``).
    """
    layout = codec.to_dict()
    if compression == "zstd":
        parts, dictionary = compress_blocks(raws)
        layout["compression"] = {"codec": "zstd", "block": BLOCK_RECORDS}
    elif compression == "zlib":
        parts, dictionary = [_zlib(codec.zdict, r) for r in raws], codec.zdict
    else:
        raise ValueError(f"compression must be 'zstd' or 'zlib', got {compression!r}")
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in parts], out=offsets[1:])
    tensors = {
        "blob": _byte_tensor(b"".join(parts)),
        "zdict": _byte_tensor(dictionary),
        "offsets": torch.from_numpy(offsets),
        "row_index": torch.tensor(rows, dtype=torch.int32),
    }
    save_tensors_with_manifest(tensors, key, data_path, manifest_path, layout=layout)


def _zlib(zdict: bytes, raw: bytes) -> bytes:
    if not zdict:
        return zlib.compress(raw, 9)
    compressor = zlib.compressobj(9, zdict=zdict)
    return compressor.compress(raw) + compressor.flush()


def _byte_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.zeros(0, dtype=torch.uint8)


class RecordStore:
    """A shard's records, memory-mapped: ``store.open(i)`` decodes the ``i``-th.

    Format 3 keeps the last block it decompressed, so reading a block's records in turn
    decompresses it once. Reads from several threads are serialised (zstd's decompressor is not
    thread-safe); DataLoader workers, being processes, each get their own copy.
    """

    def __init__(self, data_path: Path, manifest_path: Path) -> None:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        size = os.path.getsize(data_path)
        if size != manifest["size"]:
            raise ValueError(
                f"{data_path}: size {size} differs from the recorded {manifest['size']} (truncated?)"
            )
        tensors = load_safetensors_mmap(data_path)
        self.key = manifest["key"]
        dictionary = tensors["zdict"].numpy().tobytes()
        self.compression: dict[str, Any] = manifest["layout"].get("compression") or {"codec": "zlib"}
        codec = self.compression.get("codec")
        if codec not in ("zlib", "zstd") or (codec == "zstd" and int(self.compression.get("block", 0)) < 1):
            raise ValueError(
                f"{manifest_path}: unknown record compression {self.compression!r}; this release reads zlib "
                "records (format 2) and zstd blocks (format 3): prepare the corpus again or update molchannel"
            )
        zlib_dict = dictionary if self.compression["codec"] == "zlib" else b""
        self.codec = RecordCodec.from_dict(manifest["layout"], zlib_dict)
        self._dictionary = dictionary
        self._blob = tensors["blob"].numpy()
        self._offsets = tensors["offsets"].numpy()
        self.row_index = tensors["row_index"].numpy()
        self._decompressor: Any = None
        self._block: tuple[int, bytes, np.ndarray] | None = None  # index, bytes, record offsets
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers: zstd objects and locks do not pickle
        return {**self.__dict__, "_decompressor": None, "_block": None, "_lock": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def __len__(self) -> int:
        return len(self.row_index)

    @property
    def compressed_bytes(self) -> int:
        """Bytes of the records (or blocks) as stored, the dictionary left out."""
        return int(self._offsets[-1])

    def _part(self, k: int) -> bytes:
        return self._blob[int(self._offsets[k]) : int(self._offsets[k + 1])].tobytes()

    def raw(self, i: int) -> bytes:
        """The ``i``-th record, uncompressed."""
        if not 0 <= i < len(self):
            raise IndexError(f"record {i} out of range ({len(self)} records)")
        if self.compression["codec"] == "zlib":
            return self.codec.decompress(self._part(i))
        size = int(self.compression["block"])
        k, j = divmod(i, size)
        with self._lock:
            block = self._block
            if block is None or block[0] != k:
                if self._decompressor is None:
                    zstd = _zstd()
                    self._decompressor = zstd.ZstdDecompressor(**_zstd_options(zstd, self._dictionary))
                data = self._decompressor.decompress(self._part(k))
                n = min(size, len(self) - k * size)
                ends = np.cumsum(np.frombuffer(data, "<u4", n), dtype=np.int64) + 4 * n
                block = self._block = (k, data, np.concatenate([[4 * n], ends]))
        _, data, starts = block
        return data[int(starts[j]) : int(starts[j + 1])]

    def open(self, i: int) -> Record:
        """The ``i``-th record, decompressed (:class:`Record`)."""
        return self.codec.open_raw(self.raw(i))

    def anchor_field(self, name: str, n: int) -> np.ndarray:
        """The graph-level anchor field ``name`` of the first ``n`` records, stacked (fitting normalisers)."""
        return np.concatenate([self.open(i).anchor_arrays[name] for i in range(min(n, len(self)))])
