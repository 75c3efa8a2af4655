"""On-disk cache of featurized graphs.

A dataset's graphs are stored as one ``.safetensors`` file of concatenated tensors (every field
of the featurizer's ``Data`` objects, e.g. ``x``, ``edge_index``, ``edge_attr``, ``pe``, each with a
``<field>.offsets`` array marking where each graph starts) plus a small JSON manifest. Nothing is
pickled, so a cache never runs code when read and survives library upgrades.

The cache is keyed on everything that changes the graphs: the featurizer's spec key, the sha256
of the source data, the cache format, and the molchannel, torch-geometric and RDKit versions. The
key's digest is part of the file name, so a changed key simply builds a new file. The manifest
records the sha256 of the tensor file: a corrupt or truncated file (or one that fails to load) is
reported with a warning and rebuilt, never reused. Files are written to a temporary name and
moved into place with ``os.replace``, so readers never see a half-written cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import rdkit
import torch
from safetensors.torch import load_file, save_file

import molchannel
from molchannel.atomic import atomic_path, write_text_atomic
from molchannel.chem.base import FeaturizerSpec
from molchannel.chem.smiles import InvalidRecord, InvalidSmilesError, parse_smiles
from molchannel.data.datasets import MoleculeTable
from molchannel.data.paths import sha256_of_file

if TYPE_CHECKING:  # PyG is imported when graphs are cached or read, not with the data layer
    from torch_geometric.data import Data

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
_ROW_INDEX = "row_index"
_OFFSETS = ".offsets"
_CHUNK_GRAPHS = 4096  # graphs gathered before concatenating, to keep per-tensor overhead low


class GraphFeaturizer(Protocol):
    spec: FeaturizerSpec

    def featurize_mol(self, mol: Any) -> Data: ...


@dataclass(frozen=True)
class _Field:
    cat_dim: int  # dimension along which graphs are concatenated (edge_index: 1, others: 0)
    dtype: str  # dtype of the featurizer's tensor; storage may be narrower


class GraphStore:
    """Featurized graphs of the parseable rows of a table, read from concatenated tensors.

    ``store[i]`` is the ``i``-th graph (a fresh copy: modifying it never touches the store);
    ``row_index[i]`` is its row in the source table. Rows without a graph (unparseable SMILES)
    have ``graph_of_row[row] == -1`` and are listed in ``invalid``.
    """

    def __init__(
        self,
        tensors: dict[str, torch.Tensor],
        fields: dict[str, _Field],
        n_rows: int,
        invalid: list[InvalidRecord],
        key: dict[str, Any],
        path: Path | None = None,
    ) -> None:
        self._tensors = tensors
        self._fields = fields
        self.row_index = tensors[_ROW_INDEX].numpy()
        self.n_rows = n_rows
        self.invalid = invalid
        self.key = key
        self.path = path
        self.graph_of_row = np.full(n_rows, -1, dtype=np.int64)
        self.graph_of_row[self.row_index] = np.arange(len(self.row_index))
        self._offsets = {name: tensors[name + _OFFSETS].numpy() for name in fields}
        self._dtypes = {name: getattr(torch, f.dtype) for name, f in fields.items()}

    def __len__(self) -> int:
        return len(self.row_index)

    def __getitem__(self, i: int) -> Data:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"graph index {i} out of range for a store of {n} graphs")
        i %= n
        parts = {}
        for name, f in self._fields.items():
            start, stop = int(self._offsets[name][i]), int(self._offsets[name][i + 1])
            piece = self._tensors[name].narrow(f.cat_dim, start, stop - start)
            parts[name] = piece.to(self._dtypes[name], copy=True)
        from torch_geometric.data import Data

        return Data(**parts)

    def positions_for_rows(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Store positions of the graphs of ``rows`` (e.g. a split's train rows).

        Rows without a graph are dropped.
        """
        positions = self.graph_of_row[np.asarray(rows, dtype=np.int64)]
        return positions[positions >= 0]

    def __repr__(self) -> str:
        return (
            f"GraphStore({len(self)} graphs of {self.n_rows} rows, {len(self.invalid)} invalid, "
            f"fields={list(self._fields)}, featurizer={self.key.get('featurizer')})"
        )


# ---- key and file names --------------------------------------------------------------------
def graph_cache_key(featurizer_key: str, source_sha256: str, n_rows: int) -> dict[str, Any]:
    """Everything the cached graphs depend on."""
    import torch_geometric

    return {
        "format": CACHE_FORMAT_VERSION,
        "featurizer": featurizer_key,
        "source_sha256": source_sha256,
        "n_rows": n_rows,
        "molchannel": molchannel.__version__,
        "torch_geometric": torch_geometric.__version__,
        "rdkit": rdkit.__version__,
    }


def _cache_paths(cache_dir: Path, name: str, key: dict[str, Any]) -> tuple[Path, Path]:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "graphs"
    base = cache_dir / f"{stem}-{digest}"
    return base.with_suffix(".safetensors"), base.with_suffix(".json")


def _smiles_sha256(smiles: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for s in smiles:
        digest.update(str(s).encode("utf-8", "surrogatepass"))
        digest.update(b"\n")
    return digest.hexdigest()


# ---- building ------------------------------------------------------------------------------
def _narrowest_int(t: torch.Tensor) -> torch.Tensor:
    """The tensor in the narrowest of uint8/int16/int32 that holds it (codes and atom indices are small)."""
    if t.dtype not in (torch.int64, torch.int32, torch.int16) or t.numel() == 0:
        return t
    lo, hi = int(t.min()), int(t.max())
    for dtype in (torch.uint8, torch.int16, torch.int32):
        info = torch.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return t.to(dtype)
    return t


class GraphPacker:
    """Concatenates graphs field by field, in chunks (then :meth:`tensors` gives the columns)."""

    def __init__(self) -> None:
        self.fields: dict[str, _Field] | None = None
        self.pending: dict[str, list[torch.Tensor]] = {}
        self.chunks: dict[str, list[torch.Tensor]] = {}
        self.sizes: dict[str, list[int]] = {}

    def add(self, data: Data) -> None:
        items = {k: v for k, v in data.items()}
        if self.fields is None:
            for k, v in items.items():
                if not isinstance(v, torch.Tensor):
                    raise TypeError(
                        f"featurizer output field {k!r} is a {type(v).__name__}; only tensors are cached"
                    )
            self.fields = {
                k: _Field(data.__cat_dim__(k, v) % max(v.dim(), 1), str(v.dtype).removeprefix("torch."))
                for k, v in items.items()
            }
            for k in self.fields:
                self.pending[k], self.chunks[k], self.sizes[k] = [], [], []
        if set(items) != set(self.fields):
            raise ValueError(
                f"featurizer produced fields {sorted(items)}, earlier graphs had {sorted(self.fields)}"
            )
        for k, f in self.fields.items():
            self.pending[k].append(items[k])
            self.sizes[k].append(items[k].size(f.cat_dim))
        if len(self.pending[next(iter(self.fields))]) >= _CHUNK_GRAPHS:
            self._flush()

    def _flush(self) -> None:
        for k, f in (self.fields or {}).items():
            if self.pending[k]:
                self.chunks[k].append(torch.cat(self.pending[k], dim=f.cat_dim))
                self.pending[k] = []

    def tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, _Field]]:
        self._flush()
        out: dict[str, torch.Tensor] = {}
        for k, f in (self.fields or {}).items():
            out[k] = _narrowest_int(torch.cat(self.chunks[k], dim=f.cat_dim)).contiguous()
            offsets = np.zeros(len(self.sizes[k]) + 1, dtype=np.int64)
            np.cumsum(self.sizes[k], out=offsets[1:])
            out[k + _OFFSETS] = torch.from_numpy(offsets)
        return out, dict(self.fields or {})


def build_graphs(
    smiles: Sequence[str], featurizer: GraphFeaturizer, progress: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, _Field], list[InvalidRecord]]:
    """Featurize every parseable SMILES; rows that fail to parse or featurize are reported, not fatal."""
    packer = GraphPacker()
    rows: list[int] = []
    invalid: list[InvalidRecord] = []
    iterator: Any = enumerate(smiles)
    if progress:
        from molchannel.progress import progress as progress_bar

        iterator = progress_bar(iterator, total=len(smiles), desc="featurizing", unit="mol")
    for i, s in iterator:
        try:
            mol = parse_smiles(s, i)
        except InvalidSmilesError as err:
            invalid.append(InvalidRecord(i, str(s), err.reason))
            continue
        try:
            data = featurizer.featurize_mol(mol)
        except Exception as exc:  # one odd molecule must not stop a bulk job; it is reported instead
            invalid.append(InvalidRecord(i, str(s), f"featurization failed: {type(exc).__name__}: {exc}"))
            continue
        packer.add(data)
        rows.append(i)
    tensors, fields = packer.tensors()
    tensors[_ROW_INDEX] = torch.tensor(rows, dtype=torch.int64)
    if invalid:
        logger.warning("%d of %d molecules have no graph (first: row %d, %s)",
                       len(invalid), len(smiles), invalid[0].index, invalid[0].reason)  # fmt: skip
    return tensors, fields, invalid


# ---- saving and loading --------------------------------------------------------------------
def save_graph_store(
    tensors: dict[str, torch.Tensor],
    fields: dict[str, _Field],
    invalid: list[InvalidRecord],
    key: dict[str, Any],
    data_path: Path,
    manifest_path: Path,
) -> None:
    """Write a graph store (tensors + manifest with its sha256), each file atomically."""
    save_tensors_with_manifest(
        tensors, key, data_path, manifest_path,
        fields={k: {"cat_dim": f.cat_dim, "dtype": f.dtype} for k, f in fields.items()},
        invalid=[[r.index, r.smiles, r.reason] for r in invalid],
    )  # fmt: skip


def save_tensors_with_manifest(
    tensors: dict[str, torch.Tensor], key: dict[str, Any], data_path: Path, manifest_path: Path, **extra: Any
) -> None:
    """Write ``tensors`` (safetensors) and a JSON manifest (key, file, sha256, size, ``extra``) atomically."""
    with atomic_path(data_path) as tmp:
        save_file(tensors, str(tmp))
        checksum = sha256_of_file(tmp)
        size = os.path.getsize(tmp)
    manifest = {"key": key, "file": data_path.name, "sha256": checksum, "size": size, **extra}
    write_text_atomic(manifest_path, json.dumps(manifest, indent=1))


_SAFETENSORS_DTYPES = {
    "BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "I16": np.int16, "I32": np.int32, "I64": np.int64,
    "F16": np.float16, "F32": np.float32, "F64": np.float64,
}  # fmt: skip


def load_safetensors_mmap(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file as copy-on-write memory maps: nothing is read until sliced.

    This keeps a large corpus on disk (the page cache holds what is used), shared by every
    process that opens it.
    """
    with open(path, "rb") as fh:
        header_len = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(header_len))
    base = 8 + header_len
    out: dict[str, torch.Tensor] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        if end == begin:
            out[name] = torch.from_numpy(np.zeros(shape, dtype=dtype))
            continue
        out[name] = torch.from_numpy(np.memmap(path, dtype=dtype, mode="c", offset=base + begin, shape=shape))
    return out


def open_graph_store(
    data_path: Path, manifest_path: Path, key: dict[str, Any] | None = None, mmap: bool = False
) -> GraphStore:
    """Open a saved store, checking it against its manifest; raises ``ValueError`` when it cannot be trusted.

    With ``mmap=True`` the tensors stay on disk and only the file size is checked (hashing a
    multi-GB corpus on every start would cost more than it protects: the writer verified it).
    """
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if key is not None and manifest.get("key") != key:
        raise ValueError("its manifest describes a different cache key")
    if mmap:
        size = os.path.getsize(data_path)
        if size != manifest["size"]:
            raise ValueError(f"size {size} differs from the recorded {manifest['size']} (truncated?)")
        tensors = load_safetensors_mmap(data_path)
    else:
        actual = sha256_of_file(data_path)
        if actual != manifest["sha256"]:
            raise ValueError(
                f"sha256 {actual} differs from the recorded {manifest['sha256']} (corrupt or truncated)"
            )
        tensors = load_file(data_path)
    fields = {k: _Field(int(v["cat_dim"]), str(v["dtype"])) for k, v in manifest["fields"].items()}
    invalid = [InvalidRecord(int(i), str(s), str(r)) for i, s, r in manifest["invalid"]]
    return GraphStore(tensors, fields, int(manifest["key"]["n_rows"]), invalid, manifest["key"], data_path)


def _load(data_path: Path, manifest_path: Path, key: dict[str, Any]) -> GraphStore | None:
    """The cached store, or None (with a warning when a cache exists but cannot be trusted)."""
    if not data_path.exists() and not manifest_path.exists():
        return None
    try:
        return open_graph_store(data_path, manifest_path, key)
    except Exception as exc:  # any unreadable cache is rebuilt, whatever the reason
        logger.warning(
            "graph cache %s is unusable (%s: %s); rebuilding it", data_path, type(exc).__name__, exc
        )
        return None


def load_or_build_graphs(
    table_or_smiles: MoleculeTable | Sequence[str],
    featurizer: GraphFeaturizer,
    cache_dir: str | os.PathLike[str] | None,
    source_sha256: str | None = None,
    name: str | None = None,
    progress: bool = False,
) -> GraphStore:
    """Graphs of a table (or SMILES list), from the cache when it is valid, else built and cached.

    ``source_sha256`` defaults to the table's ``source_sha256``, or to a hash of the SMILES list.
    ``cache_dir=None`` builds in memory without caching. A cache directory that cannot be written
    only costs a warning.
    """
    if isinstance(table_or_smiles, MoleculeTable):
        smiles: Sequence[str] = table_or_smiles.smiles
        source_sha256 = source_sha256 or table_or_smiles.source_sha256
        name = name or table_or_smiles.name
    else:
        smiles = list(table_or_smiles)
    key = graph_cache_key(featurizer.spec.key(), source_sha256 or _smiles_sha256(smiles), len(smiles))
    paths = _cache_paths(Path(cache_dir), name or "graphs", key) if cache_dir is not None else None
    if paths is not None:
        cached = _load(*paths, key)
        if cached is not None:
            logger.info("loaded %d graphs from %s", len(cached), paths[0])
            return cached
    tensors, fields, invalid = build_graphs(smiles, featurizer, progress)
    if paths is None:
        return GraphStore(tensors, fields, len(smiles), invalid, key)
    try:
        save_graph_store(tensors, fields, invalid, key, *paths)
    except OSError as exc:
        logger.warning("could not write graph cache %s (%s); continuing without it", paths[0], exc)
        return GraphStore(tensors, fields, len(smiles), invalid, key)
    return GraphStore(tensors, fields, len(smiles), invalid, key, paths[0])
