"""Sharded, resumable precompute of perturbations to files, and the shard file format.

:func:`precompute_perturbations` splits the corpus into shards by row index, computes them in this
process or in spawned worker processes, and writes each atomically as ``shard-NNNNN.jsonl.gz`` next to a
``manifest.json`` of the settings. A rerun skips every shard that exists and verifies
(:func:`verify_shard_rows`) and recomputes the others; different settings in an existing folder raise.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import multiprocessing
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from molchannel.atomic import atomic_path, write_text_atomic
from molchannel.pretrain.perturb.base import ScaffoldInvariantPerturber, perturbation_row
from molchannel.pretrain.perturb.corpus_io import _as_corpus, corpus_sha256
from molchannel.pretrain.perturb.registry import make_perturber
from molchannel.progress import progress as progress_bar

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"


class ShardError(ValueError):
    """A shard file is missing, unreadable or does not match its corpus rows."""


class PerturbationAlignmentError(ShardError):
    """Stored perturbations do not belong to the corpus rows they are asked for."""


def shard_path(out_dir: str | os.PathLike[str], shard: int) -> Path:
    return Path(out_dir) / f"shard-{shard:05d}.jsonl.gz"


def _shard_bounds(shard: int, shard_size: int, n_rows: int) -> tuple[int, int]:
    return shard * shard_size, min((shard + 1) * shard_size, n_rows)


def _write_shard_atomically(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    with (
        atomic_path(path) as tmp,
        tmp.open("wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz,
    ):
        text = io.TextIOWrapper(gz, encoding="utf-8")
        for row in rows:
            text.write(json.dumps(row, separators=(",", ":")) + "\n")
        text.flush()
        text.detach()


def read_shard(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of one shard file; raises :class:`ShardError` if it is truncated or corrupt."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return [json.loads(line) for line in fh]
    except FileNotFoundError as exc:
        raise ShardError(f"shard file {str(path)!r} is missing") from exc
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShardError(f"shard file {str(path)!r} is corrupt ({type(exc).__name__}: {exc})") from exc


def verify_shard_rows(
    rows: Sequence[Mapping[str, Any]], start: int, anchors: Sequence[str], n_keep: int
) -> None:
    """Check that ``rows`` are exactly corpus rows ``start ..`` with ``anchors``; raise ShardError if not."""
    if len(rows) != len(anchors):
        raise ShardError(f"shard starting at row {start} holds {len(rows)} rows, expected {len(anchors)}")
    for offset, (row, anchor) in enumerate(zip(rows, anchors, strict=True)):
        expected = start + offset
        try:
            index, stored = row["row"], row["anchor"]
            perturbations, n_real = row["perturbations"], row["n_real"]
        except (KeyError, TypeError) as exc:
            raise ShardError(f"row {expected}: malformed record ({exc!r})") from exc
        if index != expected:
            raise ShardError(f"row {expected}: the record says row {index}")
        if stored != anchor:
            raise PerturbationAlignmentError(
                f"row {expected}: stored anchor {stored!r} is not the corpus molecule {anchor!r}"
            )
        if len(perturbations) != n_keep or not 0 <= n_real <= n_keep:
            raise ShardError(
                f"row {expected}: {len(perturbations)} perturbations and n_real={n_real}, but n_keep={n_keep}"
            )


@dataclass(frozen=True)
class _ShardTask:
    shard: int
    start: int
    anchors: list[str]
    path: str
    n_keep: int
    seed: int


@dataclass(frozen=True)
class _ShardResult:
    shard: int
    rows: int
    n_real: int
    n_failed: int
    seconds: float


_worker_perturber: ScaffoldInvariantPerturber | None = None  # one per worker process, set by _init_worker


def _init_worker(method: str, options: dict[str, Any]) -> None:
    global _worker_perturber
    _worker_perturber = make_perturber(method, **options)


def _compute_shard(task: _ShardTask, perturber: ScaffoldInvariantPerturber | None = None) -> _ShardResult:
    perturber = perturber or _worker_perturber
    if perturber is None:
        raise RuntimeError("worker process was started without a perturber")
    began = time.perf_counter()
    rows = [
        perturbation_row(perturber, task.start + i, anchor, task.n_keep, task.seed)
        for i, anchor in enumerate(task.anchors)
    ]
    _write_shard_atomically(Path(task.path), rows)
    return _ShardResult(
        shard=task.shard,
        rows=len(rows),
        n_real=sum(r["n_real"] for r in rows),
        n_failed=sum("error" in r for r in rows),
        seconds=time.perf_counter() - began,
    )


@dataclass
class PrecomputeReport:
    """What a precompute run did. Rates count only the shards computed in this run."""

    out_dir: str
    n_rows: int
    n_shards: int
    computed_shards: list[int] = field(default_factory=list)
    skipped_shards: list[int] = field(default_factory=list)
    recomputed_shards: dict[int, str] = field(default_factory=dict)  # shard -> why its file was rejected
    rows_computed: int = 0
    rows_failed: int = 0
    mean_n_real: float = float("nan")
    worker_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def molecules_per_second_per_process(self) -> float:
        return self.rows_computed / self.worker_seconds if self.worker_seconds > 0 else float("nan")


def _manifest(
    method: str, options: Mapping[str, Any], n_keep: int, seed: int, shard_size: int, corpus: Sequence[str]
) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "method": method,
        "options": dict(options),
        "n_keep": n_keep,
        "seed": seed,
        "shard_size": shard_size,
        "n_rows": len(corpus),
        "n_shards": -(-len(corpus) // shard_size),
        "corpus_sha256": corpus_sha256(corpus),
    }


def _write_or_check_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    path = out_dir / MANIFEST_NAME
    if path.exists():
        existing = json.loads(path.read_text())
        differ = sorted(k for k in set(existing) | set(manifest) if existing.get(k) != manifest.get(k))
        if differ:
            details = "; ".join(f"{k}: stored {existing.get(k)!r}, now {manifest.get(k)!r}" for k in differ)
            raise ValueError(
                f"{str(out_dir)!r} holds perturbations computed with other settings ({details}). "
                "Use a new output folder, or delete this one to start over."
            )
        return
    write_text_atomic(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def precompute_perturbations(
    corpus: str | os.PathLike[str] | Sequence[str],
    out_dir: str | os.PathLike[str],
    method: str = "sidechain",
    n_keep: int = 5,
    shard_size: int = 10_000,
    processes: int = 1,
    seed: int = 0,
    perturber_options: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> PrecomputeReport:
    """Precompute ``n_keep`` scaffold-invariant positives for every corpus row, sharded and restartable.

    Args:
        corpus: SMILES list or corpus file (:func:`read_smiles`).
        out_dir: receives ``manifest.json`` and ``shard-NNNNN.jsonl.gz``; each shard file holds rows
            ``{"row", "anchor", "perturbations" (n_keep SMILES), "n_real"}`` (plus ``"error"`` for a
            molecule that could not be processed) for corpus rows ``[k * shard_size, (k + 1) * shard_size)``.
        method: ``"crem"`` or ``"sidechain"``.
        n_keep: positives stored per molecule (reference: 5); padded with the anchor when fewer exist.
        shard_size: corpus rows per shard file.
        processes: worker processes (spawned; 1 computes in this process).
        seed: the positives of row ``i`` are drawn with a generator seeded from ``(seed, i)``.
        perturber_options: keyword arguments of the perturber (``db_path`` for CReM, ...).
        progress: show a progress bar over shards.

    A rerun with the same arguments skips every shard whose file exists and verifies (right rows, right
    anchors, readable), and recomputes the others; different settings in an existing folder raise.
    """
    if n_keep < 1 or shard_size < 1 or processes < 1:
        raise ValueError(
            f"n_keep, shard_size and processes must be >= 1 (got {n_keep}, {shard_size}, {processes})"
        )
    began = time.perf_counter()
    smiles = _as_corpus(corpus)
    options = dict(perturber_options or {})
    template = make_perturber(method, **options)  # fails early on a bad method or a missing database
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(method, template.options(), n_keep, seed, shard_size, smiles)
    _write_or_check_manifest(out, manifest)
    report = PrecomputeReport(out_dir=str(out), n_rows=len(smiles), n_shards=manifest["n_shards"])
    for stale in out.glob("shard-*.jsonl.gz.tmp-*"):  # left by an interrupted run; never read
        stale.unlink(missing_ok=True)

    tasks: list[_ShardTask] = []
    for shard in range(report.n_shards):
        start, stop = _shard_bounds(shard, shard_size, len(smiles))
        path = shard_path(out, shard)
        if path.exists():
            try:
                verify_shard_rows(read_shard(path), start, smiles[start:stop], n_keep)
                report.skipped_shards.append(shard)
                continue
            except ShardError as exc:  # includes PerturbationAlignmentError
                logger.warning("recomputing shard %d: %s", shard, exc)
                report.recomputed_shards[shard] = str(exc)
        tasks.append(_ShardTask(shard, start, smiles[start:stop], str(path), n_keep, seed))

    results: list[_ShardResult] = []
    with progress_bar(
        total=report.n_shards,
        desc=f"perturb ({method})",
        unit="shard",
        disable=not progress,
        initial=len(report.skipped_shards),
    ) as bar:
        for result in _run_tasks(tasks, method, options, template, processes):
            results.append(result)
            bar.update(1)

    results.sort(key=lambda r: r.shard)
    report.computed_shards = [r.shard for r in results]
    report.rows_computed = sum(r.rows for r in results)
    report.rows_failed = sum(r.n_failed for r in results)
    report.worker_seconds = sum(r.seconds for r in results)
    if report.rows_computed:
        report.mean_n_real = sum(r.n_real for r in results) / report.rows_computed
    if report.rows_failed:
        logger.warning(
            "%d of %d molecules could not be perturbed (padded; reasons in the rows' 'error')",
            report.rows_failed,
            report.rows_computed,
        )
    report.wall_seconds = time.perf_counter() - began
    return report


def _run_tasks(
    tasks: list[_ShardTask],
    method: str,
    options: dict[str, Any],
    template: ScaffoldInvariantPerturber,
    processes: int,
) -> Iterator[_ShardResult]:
    if processes == 1 or len(tasks) <= 1:
        for task in tasks:
            yield _compute_shard(task, template)
        return
    context = multiprocessing.get_context("spawn")  # safe with RDKit/SQLite/threads on every platform
    workers = min(processes, len(tasks))
    with context.Pool(workers, initializer=_init_worker, initargs=(method, options)) as pool:
        yield from pool.imap_unordered(_compute_shard, tasks)
