"""Keep downstream evaluation molecules out of the pre-training corpus.

Following Hu et al. (2020), a corpus molecule whose InChIKey equals that of any molecule in the
validation or test split of a downstream benchmark is removed before pre-training, so that no
benchmark figure is inflated by molecules the encoder saw. The held-out keys are computed once
and cached (keyed on the benchmark files' sha256 and the split settings).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from rdkit import Chem
from rdkit.rdBase import BlockLogs

from molchannel.atomic import write_text_atomic
from molchannel.data.datasets import load_dataset
from molchannel.data.paths import resolve_cache_dir
from molchannel.data.registry import list_datasets
from molchannel.data.splits import benchmark_split

log = logging.getLogger(__name__)

LEAKAGE_FORMAT = 1


def inchikey(mol: Chem.Mol) -> str:
    """InChIKey of ``mol`` ("" when InChI cannot describe it, e.g. dummy atoms)."""
    with BlockLogs():
        try:
            return Chem.MolToInchiKey(mol) or ""
        except Exception:  # InChI rejects some exotic inputs; such molecules simply match nothing
            return ""


def heldout_inchikeys(
    datasets: Sequence[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> tuple[set[str], dict[str, int]]:
    """InChIKeys of the validation and test molecules of ``datasets`` (default: every registered one).

    Returns the key set and, per dataset, how many held-out molecules it contributed.
    """
    names = list(datasets) if datasets is not None else list_datasets()
    tables = {name: load_dataset(name, data_dir) for name in names}
    fingerprint = hashlib.sha256(
        json.dumps(
            {n: t.source_sha256 for n, t in sorted(tables.items())} | {"format": LEAKAGE_FORMAT}
        ).encode()
    ).hexdigest()[:16]
    cache = Path(cache_dir) if cache_dir else resolve_cache_dir() / "leakage"
    cache_file = cache / f"heldout-{fingerprint}.json"
    if cache_file.is_file():
        try:
            cached = json.loads(cache_file.read_text())
            return set(cached["keys"]), dict(cached["counts"])
        except (ValueError, KeyError) as exc:
            log.warning("held-out key cache %s is unreadable (%s); recomputing", cache_file, exc)
    keys: set[str] = set()
    counts: dict[str, int] = {}
    items: Iterable = tables.items()
    if progress:
        from molchannel.progress import progress as progress_bar

        items = progress_bar(items, total=len(tables), desc="held-out molecules", unit="dataset")
    for name, table in items:
        split = benchmark_split(table)
        rows = [int(i) for i in split.valid] + [int(i) for i in split.test]
        found = {k for k in (_key_of(table.smiles[i]) for i in rows) if k}
        counts[name] = len(found)
        keys |= found
    cache.mkdir(parents=True, exist_ok=True)
    write_text_atomic(cache_file, json.dumps({"keys": sorted(keys), "counts": counts}))
    return keys, counts


def _key_of(smiles: str) -> str:
    with BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
    return inchikey(mol) if mol is not None else ""


def corpus_filter_keys(
    datasets: Sequence[str] | None, data_dir: str | os.PathLike[str] | None, progress: bool = True
) -> set[str]:
    """InChIKeys to remove from a pre-training corpus: those of :func:`heldout_inchikeys`, logged.

    ``datasets=None`` means every registered benchmark; an empty list switches the filter off.
    """
    if datasets is not None and len(datasets) == 0:
        return set()
    keys, counts = heldout_inchikeys(datasets, data_dir, progress=progress)
    log.info("leakage filter: %d held-out molecules from %d benchmarks", len(keys), len(counts))
    return keys


def write_heldout_keys(path: str | os.PathLike[str], keys: Iterable[str]) -> int:
    """Write ``keys`` to ``path`` (one InChIKey a line, sorted; gzipped when it ends in .gz).

    For machines without the benchmark data: ``molchannel prepare --heldout-keys FILE`` reads it
    back and filters exactly as the data would. Returns the number of keys written.
    """
    lines = sorted({k for k in keys if k})
    text = "".join(f"{k}\n" for k in lines)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".gz":
        import gzip

        out.write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
        write_text_atomic(out, text)
    return len(lines)


def read_heldout_keys(path: str | os.PathLike[str]) -> set[str]:
    """InChIKeys from a file written by :func:`write_heldout_keys` (one a line; blank lines ignored)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"held-out key file {p} does not exist")
    raw = p.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        import gzip

        raw = gzip.decompress(raw)
    keys = {line.strip() for line in raw.decode("ascii", errors="replace").splitlines() if line.strip()}
    bad = sorted(k for k in keys if len(k) != 27 or k.count("-") != 2)
    if bad:
        raise ValueError(f"{p} is not a list of InChIKeys, one a line: {len(bad)} bad lines, e.g. {bad[0]!r}")
    log.info("leakage filter: %d held-out molecules from %s", len(keys), p)
    return keys
