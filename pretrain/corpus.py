"""The pre-training corpus, featurized once into memory-mapped shards.

``prepare_corpus`` reads any SMILES file (``.smi``/``.csv``, gzipped or not: the MOSES ZINC15 files,
ZINC250k, or Hu et al.'s ``zinc_standard_agent`` CSV), drops unparseable molecules and molecules
held out by downstream benchmarks (see :mod:`molchannel.pretrain.leakage`), and writes for every
kept molecule everything pre-training needs, so the training loop never touches RDKit:

* the anchor graph (featurizer output) with per-atom ``context_label`` (shard-local token ids,
  mapped to the corpus vocabulary on read) and ``scaffold_mask``, and per-molecule packed Morgan
  fingerprints of the molecule (``fp``) and of its Murcko scaffold (``scaffold_fp``), raw motif
  targets (``motif``: 85 RDKit fragment counts + QED), raw knowledge-term descriptors
  (``descriptors``: 118 RDKit descriptors, when ``CorpusConfig.descriptors``) and ``n_real`` (real
  perturbations);
* ``n_stored`` scaffold-invariant perturbations per molecule, as graphs (SCD positives), padded
  with the anchor itself where fewer exist.

Each molecule is one record (:mod:`molchannel.pretrain.records`), compressed in blocks of 32 with
zstd (format 3): about 300 bytes for a ZINC molecule with 10 positives and descriptors, against 439
in format 2 (each record alone with zlib) and 3,437 in format 1 (one column per field); corpora of
formats 1 and 2 are still read.

Shards are independent, written atomically and skipped when already complete, so an interrupted
prepare resumes where it stopped, and they are built in parallel processes. Preparing again with a
larger ``limit`` grows a corpus: the shards already complete are kept. Each shard records
the corpus rows it holds, so perturbations and targets cannot drift from their molecules. Readers
memory-map the shards: RAM use does not grow with the corpus.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from molchannel import __version__
from molchannel.atomic import write_text_atomic
from molchannel.chem.featurizers import FeaturizerSpec, get_featurizer
from molchannel.chem.smiles import InvalidSmilesError, parse_smiles
from molchannel.data.cache import GraphStore, open_graph_store
from molchannel.data.paths import sha256_of_file
from molchannel.data.smiles_file import read_smiles_file
from molchannel.pretrain.leakage import inchikey
from molchannel.pretrain.perturb import make_perturber, perturbation_row
from molchannel.pretrain.records import Record, RecordCodec, RecordStore, write_records
from molchannel.pretrain.targets import (
    DescriptorNormalizer,
    MotifNormalizer,
    TargetNormalizer,
    descriptor_targets,
    morgan_fp,
    motif_targets,
    scaffold_atom_mask,
    scaffold_fp,
)
from molchannel.pretrain.views import ContextVocab, atom_context_token

log = logging.getLogger(__name__)

CORPUS_FORMAT = 3
"""The format prepare writes: 3, molecule records compressed in blocks with zstd (2, each record alone
with zlib, and 1, a column per field, are still read)."""
READ_FORMATS = (1, 2, 3)
MANIFEST = "corpus.json"


@dataclass
class CorpusConfig:
    """How a corpus is prepared (plain values; saved in the corpus manifest)."""

    featurizer: str = "basic"
    n_stored: int = 5
    """perturbations stored per molecule (>= the SCD positives used per step)."""
    perturb_method: str = "sidechain"
    """``sidechain`` (fast, no database), ``crem`` (the reference; needs ``crem_db``) or ``none``."""
    crem_db: str | None = None
    fp_radius: int = 2
    fp_bits: int = 512
    shard_size: int = 20000
    seed: int = 0
    vocab_min_count: int = 1
    vocab_max_size: int | None = None
    motif_fit_molecules: int = 50000
    descriptors: bool = True
    """store the 118 RDKit descriptors the knowledge term regresses (about 14 ms per molecule)."""
    descriptor_bits: int = 8
    """8: the descriptors as 8-bit codes (counts exact, others off by <= 0.03 std); 16: float16."""

    def __post_init__(self) -> None:
        if self.descriptor_bits not in (8, 16):
            raise ValueError(f"descriptor_bits must be 8 or 16, got {self.descriptor_bits}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CorpusConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown corpus option(s) {unknown}; known: {sorted(known)}")
        return cls(**d)


@dataclass
class _ShardTask:
    index: int
    rows: tuple[int, int]
    smiles: list[str]
    config: CorpusConfig
    heldout: frozenset[str]
    out_dir: Path


@dataclass
class ShardSummary:
    index: int
    rows: tuple[int, int]
    kept: int
    invalid: int
    removed_heldout: int
    mean_real_perturbations: float
    tokens: list[str] = field(default_factory=list)
    token_counts: list[int] = field(default_factory=list)


def _shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def _packed(bits: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.packbits(bits.astype(bool)))[None]


def _annotate(data: Data, mol: Any, token_ids: dict[str, int], counts: Counter, cfg: CorpusConfig) -> None:
    """Attach every pre-training target of ``mol`` to its anchor graph ``data``."""
    tokens = [atom_context_token(mol, i) for i in range(mol.GetNumAtoms())]
    counts.update(tokens)
    data.context_label = torch.tensor([token_ids.setdefault(t, len(token_ids)) for t in tokens])
    data.scaffold_mask = scaffold_atom_mask(mol).to(torch.uint8)
    data.fp = _packed(morgan_fp(mol, cfg.fp_radius, cfg.fp_bits))
    data.scaffold_fp = _packed(scaffold_fp(mol, cfg.fp_radius, cfg.fp_bits))
    data.motif = torch.from_numpy(motif_targets(mol)).to(torch.float16)[None]  # counts and QED fit float16
    if cfg.descriptors:  # raw values are clipped to float16's range; normalised on read
        data.descriptors = torch.from_numpy(descriptor_targets(mol)).to(torch.float16)[None]


def _build_shard(task: _ShardTask) -> ShardSummary:
    cfg = task.config
    featurizer = get_featurizer(cfg.featurizer)
    perturber = None
    if cfg.perturb_method != "none":
        options: dict[str, Any] = {"seed": cfg.seed}
        if cfg.perturb_method == "crem":
            options["db_path"] = cfg.crem_db
        perturber = make_perturber(cfg.perturb_method, **options)
    anchors: list[Data] = []
    positives: list[list[Data]] = []
    token_ids: dict[str, int] = {}
    counts: Counter = Counter()
    rows: list[int] = []
    invalid = removed = real = 0
    first_row = task.rows[0]
    for offset, smiles in enumerate(task.smiles):
        row = first_row + offset
        try:
            mol = parse_smiles(smiles, row)
            if task.heldout and inchikey(mol) in task.heldout:
                removed += 1
                continue
            data = featurizer.featurize_mol(mol)
            _annotate(data, mol, token_ids, counts, cfg)
        except InvalidSmilesError:
            invalid += 1
            continue
        except Exception as exc:  # one odd molecule must not end a multi-hour job; it is counted
            log.warning("row %d (%s) skipped: %s: %s", row, smiles, type(exc).__name__, exc)
            invalid += 1
            continue
        pos_graphs, n_real = _perturbation_graphs(perturber, featurizer, data, smiles, row, cfg)
        data.n_real = torch.tensor([n_real])
        real += n_real
        anchors.append(data)
        positives.append(pos_graphs)
        rows.append(row)
    summary = ShardSummary(
        index=task.index,
        rows=task.rows,
        kept=len(rows),
        invalid=invalid,
        removed_heldout=removed,
        mean_real_perturbations=real / max(len(rows), 1),
        tokens=list(token_ids),
        token_counts=[counts[t] for t in token_ids],
    )
    quantize = task.config.descriptor_bits == 8
    _save_shard(task.out_dir, task.index, anchors, positives, rows, summary, quantize)
    return summary


def _perturbation_graphs(
    perturber: Any, featurizer: Any, anchor: Data, smiles: str, row: int, cfg: CorpusConfig
) -> tuple[list[Data], int]:
    """``n_stored`` positive graphs of one molecule (the anchor's own graph pads missing ones)."""
    plain = Data(x=anchor.x, edge_index=anchor.edge_index, edge_attr=anchor.edge_attr)
    if anchor.get("pe") is not None:
        plain.pe = anchor.pe
    if perturber is None:
        return [plain] * cfg.n_stored, 0
    record = perturbation_row(perturber, row, smiles, cfg.n_stored, cfg.seed)
    graphs: list[Data] = []
    n_real = 0
    for k, candidate in enumerate(record["perturbations"]):
        if k < record["n_real"]:
            try:
                graphs.append(featurizer.featurize_mol(parse_smiles(candidate)))
                n_real += 1
                continue
            except InvalidSmilesError:
                pass
        graphs.append(plain)
    # real perturbations first, so readers can take the first n_real as the real ones
    return graphs, n_real


def _save_shard(
    out_dir: Path,
    index: int,
    anchors: list[Data],
    positives: list[list[Data]],
    rows: list[int],
    summary: ShardSummary,
    quantize: bool = True,
) -> None:
    name = _shard_name(index)
    # a summary left from an earlier attempt must not mark a half-rebuilt shard complete: remove it
    # before touching the records
    (out_dir / f"{name}.summary.json").unlink(missing_ok=True)
    if anchors:
        codec = RecordCodec.fit(anchors, positives, quantize)
        records = [codec.raw(a, p) for a, p in zip(anchors, positives, strict=True)]
    else:  # an empty shard (every molecule invalid or held out)
        codec, records = RecordCodec.empty(), []
    key = {"format": CORPUS_FORMAT, "shard": index, "n_rows": summary.rows[1]}
    write_records(
        out_dir / f"{name}.records.safetensors", out_dir / f"{name}.records.json", codec, records, rows, key
    )
    # the summary is written last: its presence marks the shard complete
    write_text_atomic(out_dir / f"{name}.summary.json", json.dumps(asdict(summary)))


def _read_summary(out_dir: Path, index: int) -> ShardSummary | None:
    path = out_dir / f"{_shard_name(index)}.summary.json"
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text())
        d["rows"] = tuple(d["rows"])
        summary = ShardSummary(**d)
        _open_records(out_dir, index)
        return summary
    except Exception as exc:  # an unreadable shard is rebuilt
        log.warning("shard %d in %s is incomplete or corrupt (%s); rebuilding it", index, out_dir, exc)
        return None


def prepare_corpus(
    source: str | os.PathLike[str] | Sequence[str],
    out_dir: str | os.PathLike[str],
    config: CorpusConfig | None = None,
    heldout_keys: set[str] | None = None,
    processes: int = 1,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Featurize ``source`` into ``out_dir`` (resumable; see module docstring). Returns the manifest."""
    cfg = config or CorpusConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(source, str | os.PathLike):
        smiles = read_smiles_file(source).smiles
        source_id: dict[str, str | None] = {"path": Path(source).name, "sha256": sha256_of_file(source)}
    else:
        smiles = [str(s) for s in source]
        source_id = {"path": None, "sha256": hashlib.sha256("\n".join(smiles).encode()).hexdigest()}
    if limit is not None:
        smiles = smiles[:limit]
    heldout = frozenset(heldout_keys or ())
    settings = {
        "format": CORPUS_FORMAT,
        "config": asdict(cfg),
        "source": source_id,
        "n_rows": len(smiles),
        "heldout_sha256": hashlib.sha256("\n".join(sorted(heldout)).encode()).hexdigest(),
    }
    settings_file = out / "settings.json"
    if settings_file.exists():
        # a different --limit only grows (or trims) the corpus: shards whose rows are unchanged are kept
        before = {k: v for k, v in json.loads(settings_file.read_text()).items() if k != "n_rows"}
        if before != {k: v for k, v in settings.items() if k != "n_rows"}:
            raise ValueError(
                f"{out} holds a corpus prepared from another source, with other settings or by an older "
                "release; use a new output folder (or delete this one)"
            )
    write_text_atomic(settings_file, json.dumps(settings, indent=1))
    n_shards = (len(smiles) + cfg.shard_size - 1) // cfg.shard_size
    summaries: dict[int, ShardSummary] = {}
    todo: list[_ShardTask] = []
    for s in range(n_shards):
        lo, hi = s * cfg.shard_size, min((s + 1) * cfg.shard_size, len(smiles))
        done = _read_summary(out, s)
        if done is not None and done.rows == (lo, hi):
            summaries[s] = done
        else:
            todo.append(_ShardTask(s, (lo, hi), smiles[lo:hi], cfg, heldout, out))
    if summaries:
        log.info("resuming: %d of %d shards already prepared", len(summaries), n_shards)
    if processes > 1 and len(todo) < processes:
        # shards are the unit of parallel work: fewer shards than processes leaves processes idle
        log.warning(
            "%d shard(s) to prepare for %d processes: only %d will work. For a corpus of %d molecules, a "
            "shard size of %d (prepare --shard-size, data.prepare.shard_size) keeps every process busy",
            len(todo), processes, len(todo), len(smiles), max(1, -(-len(smiles) // (2 * processes))),
        )  # fmt: skip
    from molchannel.progress import progress as progress_bar

    rows_done = sum(s.rows[1] - s.rows[0] for s in summaries.values())
    with progress_bar(
        total=len(smiles), desc="preparing corpus", unit="mol", disable=not progress, initial=rows_done
    ) as bar:
        if processes <= 1 or len(todo) <= 1:  # one shard: no pool to start
            for task in todo:
                summaries[task.index] = _build_shard(task)
                bar.update(task.rows[1] - task.rows[0])
        else:
            import multiprocessing as mp

            with ProcessPoolExecutor(processes, mp_context=mp.get_context("spawn")) as pool:
                for summary in pool.map(_build_shard, todo):
                    summaries[summary.index] = summary
                    bar.update(summary.rows[1] - summary.rows[0])
    return _write_manifest(out, cfg, [summaries[s] for s in range(n_shards)], settings)


def _write_manifest(
    out: Path, cfg: CorpusConfig, shards: list[ShardSummary], settings: dict
) -> dict[str, Any]:
    counts: Counter = Counter()
    for s in shards:
        counts.update(dict(zip(s.tokens, s.token_counts, strict=True)))
    vocab = ContextVocab.build_from_counts(counts, min_count=cfg.vocab_min_count, max_size=cfg.vocab_max_size)
    normalizer = _fit_normalizer(MotifNormalizer, "motif", out, shards, cfg.motif_fit_molecules)
    kept = sum(s.kept for s in shards)
    manifest = {
        "format": CORPUS_FORMAT,
        "molchannel_version": __version__,
        "featurizer": get_featurizer(cfg.featurizer).spec.to_dict(),
        "settings": settings,
        "n_molecules": kept,
        "n_invalid": sum(s.invalid for s in shards),
        "n_removed_heldout": sum(s.removed_heldout for s in shards),
        "mean_real_perturbations": sum(s.mean_real_perturbations * s.kept for s in shards) / max(kept, 1),
        "shards": [{"index": s.index, "rows": list(s.rows), "kept": s.kept} for s in shards],
        "vocab": vocab.to_dict(),
        "motif_normalizer": normalizer.to_dict(),
    }
    if cfg.descriptors:
        descriptor_normalizer = _fit_normalizer(
            DescriptorNormalizer, "descriptors", out, shards, cfg.motif_fit_molecules
        )
        manifest["descriptor_normalizer"] = descriptor_normalizer.to_dict()
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1))
    log.info(
        "corpus %s: %d molecules kept, %d invalid, %d held-out removed, vocabulary %d",
        out,
        kept,
        manifest["n_invalid"],
        manifest["n_removed_heldout"],
        len(vocab),
    )
    return manifest


def _fit_normalizer(
    kind: type[TargetNormalizer], field_name: str, out: Path, shards: list[ShardSummary], limit: int
) -> TargetNormalizer:
    """Fit ``kind`` on the raw ``field_name`` targets of the first ``limit`` corpus molecules."""
    parts, n = [], 0
    for s in shards:
        if n >= limit or s.kept == 0:
            continue
        values = _open_records(out, s.index).anchor_field(field_name, limit - n).astype(np.float32)
        parts.append(values)
        n += len(values)
    width = len(kind.NAMES)
    sample = np.concatenate(parts) if parts else np.zeros((1, width), np.float32)
    return kind.fit(sample, clip=getattr(kind, "DEFAULT_CLIP", None))


def _open_records(out: Path, index: int) -> RecordStore:
    name = _shard_name(index)
    return RecordStore(out / f"{name}.records.safetensors", out / f"{name}.records.json")


def _open_part(out: Path, index: int, part: str) -> GraphStore:
    """A part (``anchors`` / ``positives``) of a format-1 shard."""
    return open_graph_store(
        out / f"{_shard_name(index)}.{part}.safetensors", out / f"{_shard_name(index)}.{part}.json", mmap=True
    )


class _ColumnShard:
    """A format-1 shard: anchors and positives in two column stores, positive ``j`` of molecule ``i`` at
    ``i * n_stored + j``; read like a :class:`RecordStore`."""

    def __init__(self, out: Path, index: int, n_stored: int) -> None:
        self.anchors = _open_part(out, index, "anchors")
        self.positives = _open_part(out, index, "positives")
        self.row_index = self.anchors.row_index
        self.n_stored = n_stored

    def molecule(self, i: int) -> tuple[Data, Sequence[Data]]:
        return self.anchors[i], _StoredPositives(self.positives, i * self.n_stored, self.n_stored)


class _StoredPositives(Sequence[Data]):
    def __init__(self, store: GraphStore, start: int, n: int) -> None:
        self.store, self.start, self.n = store, start, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, j):  # noqa: ANN001, ANN204 - Sequence's overloads
        if isinstance(j, slice):
            return [self[k] for k in range(self.n)[j]]
        if not -self.n <= j < self.n:
            raise IndexError(j)
        return self.store[self.start + j % self.n]


@dataclass
class CorpusItem:
    """One molecule of a prepared corpus, ready for view generation."""

    anchor: Data
    """graph with ``context_label`` (vocabulary ids), ``scaffold_mask``, ``fp``, ``scaffold_fp``, ``motif``"""
    positives: Sequence[Data]
    """the ``n_stored`` positive graphs, real perturbations first (decoded when accessed)"""
    n_real: int
    row: int


class PretrainCorpus:
    """Read-only, memory-mapped view of a prepared corpus (``len`` and ``corpus[i]``)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        manifest_file = self.path / MANIFEST
        if not manifest_file.is_file():
            raise FileNotFoundError(
                f"{self.path} is not a prepared corpus (no {MANIFEST}); "
                "prepare it first with `molchannel prepare -i SMILES_FILE -o FOLDER`"
            )
        self.manifest = json.loads(manifest_file.read_text())
        self.format = self.manifest.get("format")
        if self.format not in READ_FORMATS:
            raise ValueError(
                f"{self.path} was prepared with corpus format {self.format}, this release reads "
                f"{', '.join(map(str, READ_FORMATS))}; prepare it again with `molchannel prepare`"
            )
        self.featurizer_spec = FeaturizerSpec.from_dict(self.manifest["featurizer"])
        self.vocab = ContextVocab.from_dict(self.manifest["vocab"])
        self.motif_normalizer = MotifNormalizer.from_dict(self.manifest["motif_normalizer"])
        saved = self.manifest.get("descriptor_normalizer")
        self.descriptor_normalizer = DescriptorNormalizer.from_dict(saved) if saved else None
        self.n_stored = int(self.manifest["settings"]["config"]["n_stored"])
        shards = [s for s in self.manifest["shards"] if s["kept"] > 0]
        self._shard_ids = [s["index"] for s in shards]
        self._starts = np.cumsum([0] + [s["kept"] for s in shards])
        self._stores: dict[
            int, tuple[RecordStore | _ColumnShard, torch.Tensor, torch.Tensor, torch.Tensor]
        ] = {}

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def has_descriptors(self) -> bool:
        """Whether the corpus stores the knowledge-term descriptors (``prepare.descriptors``)."""
        return self.descriptor_normalizer is not None

    def _shard(self, k: int) -> tuple[RecordStore | _ColumnShard, torch.Tensor, torch.Tensor, torch.Tensor]:
        # opened lazily, per process: DataLoader workers each map the files themselves
        if k not in self._stores:
            index = self._shard_ids[k]
            summary = json.loads((self.path / f"{_shard_name(index)}.summary.json").read_text())
            remap = torch.tensor([self.vocab.encode(t) for t in summary["tokens"]] or [0], dtype=torch.long)
            mean = torch.as_tensor(self.motif_normalizer.mean, dtype=torch.float32)
            std = torch.as_tensor(self.motif_normalizer.std, dtype=torch.float32)
            store = (
                _open_records(self.path, index)
                if self.format in (2, 3)
                else _ColumnShard(self.path, index, self.n_stored)
            )
            self._stores[k] = (store, remap, mean, std)
        return self._stores[k]

    def __getitem__(self, i: int) -> CorpusItem:
        if not 0 <= i < len(self):
            raise IndexError(f"corpus index {i} out of range ({len(self)} molecules)")
        k = int(np.searchsorted(self._starts, i, side="right") - 1)
        local = i - int(self._starts[k])
        store, remap, mean, std = self._shard(k)
        if isinstance(store, RecordStore):
            record: Record = store.open(local)
            anchor, positives = record.anchor(), record
        else:
            anchor, positives = store.molecule(local)
        anchor.context_label = remap[anchor.context_label]
        anchor.scaffold_mask = anchor.scaffold_mask.bool()
        anchor.motif = (anchor.motif.float() - mean) / std
        if self.descriptor_normalizer is not None:
            anchor.descriptors = self.descriptor_normalizer.transform(anchor.descriptors.float())
        n_real = int(anchor.n_real)
        del anchor.n_real
        return CorpusItem(anchor, positives, n_real, int(store.row_index[local]))
