"""Scaffold-invariant perturbations: the positives of the scaffold-distancing (SCD) channel.

METHOD section 4: for every anchor molecule, molecules with the *identical* Bemis-Murcko scaffold that
differ outside it. Two generators are offered, both filtered by exact scaffold equality:

- :class:`CremPerturber`, as in the reference: CReM fragment replacement (fragments of at most 5 heavy
  atoms among the non-scaffold atoms and their neighbours) from a database built from the corpus with
  CReM's own tools (:func:`build_crem_db`).
- :class:`SideChainPerturber`: single edits of the side chains (change an element, add or delete a
  terminal atom, lengthen or shorten a chain). It needs no database and is much faster (see
  BENCHMARKS.md).

Perturbations are a precompute step (:func:`precompute_perturbations`): the corpus is split into shards
by row index, shards are computed in parallel processes and written atomically, a rerun skips every
shard that exists and verifies, and every stored row carries its row index and anchor SMILES so that
:func:`load_perturbations` can prove that each molecule's perturbations belong to that molecule. (The
reference precompute loses exactly this alignment.) The positives drawn for a molecule depend only on
``(seed, row index)``, never on the shard size or the number of processes.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import hashlib
import io
import json
import logging
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rdkit import Chem
from rdkit.rdBase import BlockLogs

from molchannel.atomic import atomic_path, write_text_atomic
from molchannel.chem.scaffold import murcko_scaffold_smiles, scaffold_atom_indices
from molchannel.chem.smiles import InvalidSmilesError, parse_smiles
from molchannel.data.paths import sha256_of_file
from molchannel.data.smiles_file import read_smiles_file
from molchannel.progress import progress as progress_bar

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
METHODS: tuple[str, ...] = ("crem", "sidechain")


# --------------------------------------------------------------------------------------------------
# Scaffolds
# --------------------------------------------------------------------------------------------------
def scaffold_key(mol: Chem.Mol) -> str:
    """The scaffold two molecules must share: Murcko scaffold SMILES without stereo ('' if acyclic),
    as in the scaffold split the field uses (DeepChem's ``includeChirality=False``)."""
    return murcko_scaffold_smiles(mol, include_chirality=False)


def _canonical_with_scaffold(smiles: str) -> tuple[str, str] | None:
    """(canonical SMILES, scaffold SMILES) of a generated product, or None if RDKit rejects it.

    Products are re-parsed from their SMILES, so the scaffold is checked on exactly what gets stored.
    """
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None
    return Chem.MolToSmiles(mol), scaffold_key(mol)


# --------------------------------------------------------------------------------------------------
# Perturbers
# --------------------------------------------------------------------------------------------------
class ScaffoldInvariantPerturber(ABC):
    """Generates molecules with the anchor's exact Murcko scaffold, changed outside it.

    Subclasses implement :meth:`candidates` (every distinct valid product, sorted) and may override
    :meth:`sample` when drawing a few products is cheaper than enumerating all of them. Molecules
    without a scaffold (acyclic) get no perturbations, as in the reference.
    """

    def __init__(self, max_per_molecule: int = 100, seed: int = 0) -> None:
        if max_per_molecule < 1:
            raise ValueError(f"max_per_molecule must be >= 1, got {max_per_molecule}")
        self.max_per_molecule = max_per_molecule
        self.seed = seed

    @abstractmethod
    def candidates(self, smiles: str) -> list[str]:
        """All distinct perturbations of ``smiles`` (canonical SMILES, sorted, input excluded)."""

    def perturb(self, smiles: str) -> list[str]:
        """At most ``max_per_molecule`` perturbations: a subset fixed by ``seed`` and the input."""
        found = self.candidates(smiles)
        if len(found) <= self.max_per_molecule:
            return found
        rng = np.random.default_rng([self.seed, zlib.crc32(smiles.encode())])
        keep = rng.choice(len(found), size=self.max_per_molecule, replace=False)
        return [found[i] for i in sorted(keep)]

    def sample(self, smiles: str, n: int, rng: np.random.Generator) -> list[str]:
        """Up to ``n`` distinct perturbations drawn uniformly with ``rng`` (fewer if fewer exist)."""
        found = self.candidates(smiles)
        if len(found) <= n:
            return found
        return [found[i] for i in rng.choice(len(found), size=n, replace=False)]

    def options(self) -> dict[str, Any]:
        """Plain-value settings that determine the output (stored in the precompute manifest)."""
        return {"max_per_molecule": self.max_per_molecule, "seed": self.seed}


class CremPerturber(ScaffoldInvariantPerturber):
    """CReM fragment replacement restricted to the side chains, as in the reference precompute.

    Fragments of at most ``max_size`` heavy atoms made of non-scaffold atoms (and, with
    ``include_scaffold_neighbours``, the scaffold atoms bonded to them, as METHOD states) are replaced by
    fragments from the database that occur in the same ``radius``-bond environment; mutants whose Murcko
    scaffold differs from the anchor's are dropped. The reference used radius 2.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        max_size: int = 5,
        radius: int = 2,
        max_per_molecule: int = 100,
        seed: int = 0,
        include_scaffold_neighbours: bool = True,
    ) -> None:
        super().__init__(max_per_molecule, seed)
        self.db_path = Path(db_path)
        self.max_size = max_size
        self.radius = radius
        self.include_scaffold_neighbours = include_scaffold_neighbours
        _check_crem_db(self.db_path, radius)

    def candidates(self, smiles: str) -> list[str]:
        from crem.crem import mutate_mol  # optional dependency (molchannel[train])

        mol = parse_smiles(smiles)
        scaffold = scaffold_key(mol)
        if not scaffold:
            return []
        side_chain = set(range(mol.GetNumAtoms())) - set(scaffold_atom_indices(mol))
        if not side_chain:  # nothing outside the scaffold (and an empty replace_ids would mean "all atoms")
            return []
        replaceable = set(side_chain)
        if self.include_scaffold_neighbours:
            for idx in side_chain:
                replaceable.update(n.GetIdx() for n in mol.GetAtomWithIdx(idx).GetNeighbors())
        own = Chem.MolToSmiles(mol)
        found: set[str] = set()
        with BlockLogs():
            products = mutate_mol(
                mol,
                str(self.db_path),
                radius=self.radius,
                max_size=self.max_size,
                replace_ids=sorted(replaceable),
            )
            for product in products:
                checked = _canonical_with_scaffold(product)
                if checked is not None and checked[1] == scaffold and checked[0] != own:
                    found.add(checked[0])
        return sorted(found)

    def options(self) -> dict[str, Any]:
        return {
            **super().options(),
            "max_size": self.max_size,
            "radius": self.radius,
            "include_scaffold_neighbours": self.include_scaffold_neighbours,
            "db_sha256": sha256_of_file(self.db_path),
        }


def _check_crem_db(db_path: Path, radius: int) -> None:
    if not db_path.is_file():
        raise FileNotFoundError(
            f"CReM fragment database {str(db_path)!r} does not exist; build one from your corpus with "
            "molchannel.pretrain.perturb.build_crem_db (CLI: --build-crem-db N) or use method='sidechain'"
        )
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if f"radius{radius}" not in tables:
        have = sorted(t for t in tables if t.startswith("radius"))
        raise ValueError(
            f"CReM database {str(db_path)!r} has no table for radius {radius} (it has {have}); "
            f"rebuild it with build_crem_db(..., radius={radius}) or pick one of those radii"
        )


_SINGLE = Chem.BondType.SINGLE
# Elements a side-chain atom may become or that may be attached (C, N, O, F, Cl), with the valence
# each can take without a charge.
_EDIT_ELEMENTS: dict[int, int] = {6: 4, 7: 3, 8: 2, 9: 1, 17: 1}
_CARBON = 6

Edit = tuple[str, int, int]
"""(kind, atom or bond index, atomic number): one single-step change of a molecule."""


class SideChainPerturber(ScaffoldInvariantPerturber):
    """Fast scaffold-invariant perturbations by single side-chain edits; needs no database.

    Edits, applied one at a time to the anchor:

    - ``swap``: a side-chain atom becomes another of C/N/O/F/Cl that fits its bonds;
    - ``add``: a terminal C/N/O/F/Cl is bonded to a side-chain atom that carries a hydrogen
      (a heteroatom only on a carbon without heteroatom neighbours); with ``decorate_scaffold`` also
      to scaffold atoms;
    - ``delete``: a terminal side-chain atom is removed;
    - ``contract``: a two-connected side-chain atom is removed and its neighbours bonded;
    - ``insert``: a CH2 is inserted into an acyclic single bond that touches the side chain (not
      between two heteroatoms).

    No heteroatom-heteroatom bond and no carbon with two heteroatoms is created, charged atoms and
    their neighbours are left alone, stereo tags of the atoms whose neighbours change are cleared,
    every product is sanitised, and only products whose Murcko scaffold SMILES equals the anchor's
    are kept. A molecule without side chains (benzene) therefore gets no perturbations unless
    ``decorate_scaffold`` is set, which matches what CReM restricted to side chains can do.
    """

    def __init__(self, max_per_molecule: int = 100, seed: int = 0, decorate_scaffold: bool = False) -> None:
        super().__init__(max_per_molecule, seed)
        self.decorate_scaffold = decorate_scaffold

    def options(self) -> dict[str, Any]:
        return {**super().options(), "decorate_scaffold": self.decorate_scaffold}

    def candidates(self, smiles: str) -> list[str]:
        return sorted(self._products(smiles, order=None, limit=None))

    def sample(self, smiles: str, n: int, rng: np.random.Generator) -> list[str]:
        """Apply edits in a random order until ``n`` distinct valid products exist.

        Cheaper than :meth:`candidates` because only a handful of the edits are carried out.
        """
        return self._products(smiles, order=rng, limit=n)

    def _products(self, smiles: str, order: np.random.Generator | None, limit: int | None) -> list[str]:
        mol = parse_smiles(smiles)
        scaffold = scaffold_key(mol)
        if not scaffold:
            return []
        edits = self.enumerate_edits(mol, set(scaffold_atom_indices(mol)))
        if order is not None:
            edits = [edits[i] for i in order.permutation(len(edits))]
        own = Chem.MolToSmiles(mol)
        found: dict[str, None] = {}  # insertion-ordered set
        has_stereo = _has_stereo(mol)
        with BlockLogs():
            for edit in edits:
                product = _apply_edit(mol, edit, has_stereo)
                if product is None:
                    continue
                checked = _canonical_with_scaffold(product)
                if checked is None or checked[1] != scaffold or checked[0] == own:
                    continue
                found[checked[0]] = None
                if limit is not None and len(found) >= limit:
                    break
        return list(found)

    def enumerate_edits(self, mol: Chem.Mol, scaffold_ids: set[int]) -> list[Edit]:
        """Every edit this perturber may try on ``mol``, in a fixed order."""
        edits: list[Edit] = []
        for atom in mol.GetAtoms():
            idx = atom.GetIdx()
            if _touches_charge(atom):
                continue
            on_side_chain = idx not in scaffold_ids
            if atom.GetTotalNumHs() > 0 and (on_side_chain or self.decorate_scaffold):
                takes_heteroatom = _accepts_heteroatom(atom, None)
                for element in _EDIT_ELEMENTS:
                    if element == _CARBON or takes_heteroatom:
                        edits.append(("add", idx, element))
            if not on_side_chain:
                continue
            edits.extend(("swap", idx, element) for element in _swap_elements(atom))
            if atom.GetDegree() == 1:
                edits.append(("delete", idx, 0))
            elif atom.GetDegree() == 2 and _contractible(atom):
                edits.append(("contract", idx, 0))
        for bond in mol.GetBonds():
            begin, end = bond.GetBeginAtom(), bond.GetEndAtom()
            if (
                bond.GetBondType() == _SINGLE
                and not bond.IsInRing()
                and (begin.GetIdx() not in scaffold_ids or end.GetIdx() not in scaffold_ids)
                and not (_touches_charge(begin) or _touches_charge(end))
                and _CARBON in (begin.GetAtomicNum(), end.GetAtomicNum())
            ):
                edits.append(("insert", bond.GetIdx(), _CARBON))
        return edits


def _touches_charge(atom: Chem.Atom) -> bool:
    return atom.GetFormalCharge() != 0 or any(n.GetFormalCharge() != 0 for n in atom.GetNeighbors())


def _bond_valence(atom: Chem.Atom) -> int:
    return int(sum(bond.GetBondTypeAsDouble() for bond in atom.GetBonds()))


def _accepts_heteroatom(atom: Chem.Atom, ignoring: Chem.Atom | None) -> bool:
    """Whether ``atom`` may carry one more heteroatom: it is a carbon with no heteroatom neighbour
    (other than ``ignoring``). Keeps edits away from N-O, O-O, aminals, acyl halides and the like."""
    return atom.GetAtomicNum() == _CARBON and all(
        n.GetAtomicNum() == _CARBON or (ignoring is not None and n.GetIdx() == ignoring.GetIdx())
        for n in atom.GetNeighbors()
    )


def _swap_elements(atom: Chem.Atom) -> list[int]:
    """Elements the side-chain ``atom`` may become: its bonds fit, and a heteroatom only between
    carbons that carry no other heteroatom."""
    valence = _bond_valence(atom)
    if atom.GetAtomicNum() == _CARBON:
        hetero_ok = all(_accepts_heteroatom(n, atom) for n in atom.GetNeighbors())
    else:  # one heteroatom for another (ester O -> amide N) leaves the neighbours' heteroatom count alone
        hetero_ok = all(n.GetAtomicNum() == _CARBON for n in atom.GetNeighbors())
    return [
        element
        for element, max_valence in _EDIT_ELEMENTS.items()
        if element != atom.GetAtomicNum() and valence <= max_valence and (element == _CARBON or hetero_ok)
    ]


def _contractible(atom: Chem.Atom) -> bool:
    """A chain atom whose removal may bond its two neighbours directly: both bonds single, and no
    heteroatom-heteroatom bond or carbon with two heteroatoms results."""
    if any(bond.GetBondType() != _SINGLE for bond in atom.GetBonds()):
        return False
    left, right = atom.GetNeighbors()
    if left.GetAtomicNum() == _CARBON and right.GetAtomicNum() == _CARBON:
        return True
    if left.GetAtomicNum() != _CARBON and right.GetAtomicNum() != _CARBON:
        return False
    carbon = left if left.GetAtomicNum() == _CARBON else right
    return _accepts_heteroatom(carbon, atom)


def _has_stereo(mol: Chem.Mol) -> bool:
    return any(a.GetChiralTag() != Chem.ChiralType.CHI_UNSPECIFIED for a in mol.GetAtoms()) or any(
        b.GetStereo() != Chem.BondStereo.STEREONONE for b in mol.GetBonds()
    )


def _give_hydrogens(atom: Chem.Atom, count: int) -> None:
    """Keep ``atom``'s valence filled after it loses a bond where RDKit will not add implicit Hs itself
    (aromatic heteroatoms such as the n of N-methylpyrrole, bracket atoms)."""
    if atom.GetNoImplicit() or (atom.GetIsAromatic() and atom.GetAtomicNum() != _CARBON):
        atom.SetNumExplicitHs(atom.GetNumExplicitHs() + count)


def _clear_chirality_around(rw: Chem.RWMol, edit: Edit) -> None:
    """Unset the chiral tags of the atoms whose neighbours an edit changes: the old tag would name an
    arbitrary configuration of the new centre."""
    kind, index, _ = edit
    if kind == "insert":
        bond = rw.GetBondWithIdx(index)
        touched = [bond.GetBeginAtom(), bond.GetEndAtom()]
    else:
        atom = rw.GetAtomWithIdx(index)
        touched = [atom] if kind in ("swap", "add") else list(atom.GetNeighbors())
    for atom in touched:
        atom.SetChiralTag(Chem.ChiralType.CHI_UNSPECIFIED)


def _apply_edit(mol: Chem.Mol, edit: Edit, has_stereo: bool) -> str | None:
    """SMILES of ``mol`` after ``edit``, or None when the product does not sanitise."""
    kind, index, element = edit
    rw = Chem.RWMol(mol)
    if has_stereo:
        _clear_chirality_around(rw, edit)
    if kind == "insert":
        bond = rw.GetBondWithIdx(index)
        begin, end = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        rw.RemoveBond(begin, end)
        new = rw.AddAtom(Chem.Atom(element))
        rw.AddBond(begin, new, _SINGLE)
        rw.AddBond(new, end, _SINGLE)
    else:
        atom = rw.GetAtomWithIdx(index)
        if kind == "add":
            if atom.GetNumExplicitHs() > 0:
                atom.SetNumExplicitHs(atom.GetNumExplicitHs() - 1)
            new = rw.AddAtom(Chem.Atom(element))
            rw.AddBond(index, new, _SINGLE)
        elif kind == "swap":
            atom.SetAtomicNum(element)
            atom.SetNumExplicitHs(0)
            atom.SetNoImplicit(False)
        elif kind == "delete":
            (bond,) = atom.GetBonds()
            _give_hydrogens(bond.GetOtherAtom(atom), int(bond.GetBondTypeAsDouble()))
            rw.RemoveAtom(index)
        elif kind == "contract":
            left, right = (n.GetIdx() for n in atom.GetNeighbors())
            rw.AddBond(left, right, _SINGLE)
            rw.RemoveAtom(index)
        else:
            raise ValueError(f"unknown edit kind {kind!r}")
    try:
        Chem.SanitizeMol(rw)
    except Exception:  # RDKit raises several sanitisation exception types; an invalid product is skipped
        return None
    if has_stereo:
        Chem.AssignStereochemistry(rw, cleanIt=True, force=True)
    return Chem.MolToSmiles(rw)


def make_perturber(method: str, **options: Any) -> ScaffoldInvariantPerturber:
    """Build a perturber by name: ``"crem"`` (needs ``db_path``) or ``"sidechain"``."""
    if method == "crem":
        if "db_path" not in options or options["db_path"] is None:
            raise ValueError("method 'crem' needs a fragment database: pass db_path (CLI: --crem-db)")
        return CremPerturber(**options)
    if method == "sidechain":
        return SideChainPerturber(**options)
    raise ValueError(f"unknown perturbation method {method!r}; choose one of {METHODS}")


# --------------------------------------------------------------------------------------------------
# CReM fragment database
# --------------------------------------------------------------------------------------------------
def build_crem_db(
    smiles: Iterable[str] | str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    radius: int | Sequence[int] = 2,
    max_heavy_atoms: int = 5,
    processes: int = 1,
    work_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Build a CReM fragment-replacement SQLite database from a corpus with CReM's own tools.

    Runs CReM's ``fragmentation`` -> ``frag_to_env`` (one per radius) -> count identical lines (what
    ``sort | uniq -c`` does in CReM's recipe) -> ``env_to_db``, each as ``python -m crem....`` so that
    they use the interpreter of this environment. ``smiles`` is a list of SMILES or a corpus file (see
    :func:`read_smiles`). The database appears at ``out_path`` only when complete (written next to it
    and renamed). Intermediate files go to a temporary folder (or ``work_dir``, kept for inspection);
    a failing step raises with the tail of its output.

    Cost measured here (2,000 ZINC molecules, one core of a busy machine): radius 2 only, 102 s and
    1.2 MB; radii 1-3, about 2.3 minutes and 4 MB.
    """
    radii = [radius] if isinstance(radius, int) else list(radius)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    corpus = read_smiles(smiles) if isinstance(smiles, str | os.PathLike) else list(smiles)
    if not corpus:
        raise ValueError("cannot build a CReM database from an empty corpus")
    keep = work_dir is not None
    work = Path(work_dir) if keep else Path(tempfile.mkdtemp(prefix="crem-db-", dir=out.parent))
    work.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    ncpu = str(max(1, processes))
    frags = work / "frags.txt"
    try:
        (work / "corpus.smi").write_text("".join(f"{s}\tm{i}\n" for i, s in enumerate(corpus)))
        _run_crem("crem.fragmentation", ["-i", work / "corpus.smi", "-o", frags, "-c", ncpu])
        for r in radii:
            env, counted = work / f"r{r}.txt", work / f"r{r}_c.txt"
            _run_crem(
                "crem.frag_to_env_mp", ["-i", frags, "-o", env, "-r", r, "-a", max_heavy_atoms, "-c", ncpu]
            )
            _count_lines(env, counted)
            _run_crem("crem.import_env_to_db", ["-i", counted, "-o", partial, "-r", r, "-c"])
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return out


def _run_crem(module: str, args: Sequence[object]) -> None:
    """Run one CReM tool; its stderr (RDKit warns once per fragment) is read and only the tail kept."""
    command = [sys.executable, "-m", module, *map(str, args)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    tail = collections.deque(process.stderr, maxlen=30)
    if process.wait() != 0:
        raise RuntimeError(
            f"CReM step {' '.join(command)} failed with exit code {process.returncode}; "
            "last lines of its output:\n" + "".join(tail)
        )


def _count_lines(src: Path, dst: Path) -> None:
    """Write ``count line`` for each distinct line, the input format of ``env_to_db --counts``."""
    with src.open() as fh:
        counts = collections.Counter(line.rstrip("\n") for line in fh if line.strip())
    with dst.open("w") as fh:
        fh.writelines(f"{n} {line}\n" for line, n in sorted(counts.items()))


# --------------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------------
def read_smiles(path: str | os.PathLike[str]) -> list[str]:
    """SMILES of a corpus file, one per row, in file order (see :func:`read_smiles_file`)."""
    return read_smiles_file(path).smiles


def corpus_sha256(smiles: Sequence[str]) -> str:
    """Fingerprint of a corpus (its rows, in order): tells a precompute which corpus it belongs to."""
    digest = hashlib.sha256()
    for s in smiles:
        digest.update(s.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _as_corpus(corpus: str | os.PathLike[str] | Sequence[str]) -> list[str]:
    return read_smiles(corpus) if isinstance(corpus, str | os.PathLike) else list(corpus)


# --------------------------------------------------------------------------------------------------
# Precompute: shards
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PerturbationRecord:
    """The stored positives of one corpus row."""

    row: int
    anchor: str
    perturbations: tuple[str, ...]
    n_real: int
    error: str | None = None


class ShardError(ValueError):
    """A shard file is missing, unreadable or does not match its corpus rows."""


class PerturbationAlignmentError(ShardError):
    """Stored perturbations do not belong to the corpus rows they are asked for."""


def shard_path(out_dir: str | os.PathLike[str], shard: int) -> Path:
    return Path(out_dir) / f"shard-{shard:05d}.jsonl.gz"


def _shard_bounds(shard: int, shard_size: int, n_rows: int) -> tuple[int, int]:
    return shard * shard_size, min((shard + 1) * shard_size, n_rows)


def _row_rng(seed: int, row: int) -> np.random.Generator:
    """The random stream of one corpus row: the same whatever shard or process computes it."""
    return np.random.default_rng([seed, row])


def perturbation_row(
    perturber: ScaffoldInvariantPerturber, row: int, anchor: str, n_keep: int, seed: int
) -> dict[str, Any]:
    """One output row: ``n_keep`` perturbations (padded with the anchor) and how many are real.

    A molecule that cannot be parsed or perturbed does not stop the precompute: it is padded, with
    ``n_real = 0`` and the reason in ``error``.
    """
    record: dict[str, Any] = {"row": row, "anchor": anchor}
    try:
        found = perturber.sample(anchor, n_keep, _row_rng(seed, row))
        error = None
    except InvalidSmilesError as exc:
        found, error = [], f"invalid SMILES: {exc.reason}"
    except Exception as exc:  # a failure inside RDKit/CReM on one molecule must not end a bulk job
        found, error = [], f"{type(exc).__name__}: {exc}"
    record["perturbations"] = found + [anchor] * (n_keep - len(found))
    record["n_real"] = len(found)
    if error is not None:
        record["error"] = error
    return record


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


# --------------------------------------------------------------------------------------------------
# Reading the precompute back
# --------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="molchannel perturb",
        description="Precompute scaffold-invariant perturbations (SCD positives) for a pre-training corpus.",
    )
    parser.add_argument("input", help="corpus: CSV with a 'smiles' column or one SMILES per line (.gz ok)")
    parser.add_argument("out_dir", help="output folder (manifest.json + shard files); rerun to resume")
    parser.add_argument("--method", choices=METHODS, default="sidechain")
    parser.add_argument("--n-keep", type=int, default=5, help="positives stored per molecule (default: 5)")
    parser.add_argument("--shard-size", type=int, default=10_000, help="rows per shard (default 10000)")
    parser.add_argument("--processes", type=int, default=1, help="worker processes (default: 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-per-molecule", type=int, default=100)
    crem = parser.add_argument_group("CReM")
    crem.add_argument("--crem-db", help="CReM fragment database (SQLite)")
    crem.add_argument("--crem-radius", type=int, default=2, help="context radius (default 2, as reference)")
    crem.add_argument("--crem-max-size", type=int, default=5, help="largest replaced fragment, heavy atoms")
    crem.add_argument(
        "--build-crem-db",
        type=int,
        metavar="N",
        help="if --crem-db does not exist, build it from N corpus molecules drawn with --seed",
    )
    parser.add_argument(
        "-q", "--quiet", "--no-progress", dest="no_progress", action="store_true", help="quiet: warnings only"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``molchannel perturb``."""
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.no_progress else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    corpus = read_smiles(args.input)
    options: dict[str, Any] = {"max_per_molecule": args.max_per_molecule, "seed": args.seed}
    if args.method == "crem":
        if not args.crem_db:
            raise SystemExit("--method crem needs --crem-db PATH (add --build-crem-db N to build it)")
        if args.build_crem_db and not Path(args.crem_db).exists():
            rng = np.random.default_rng(args.seed)
            pick = rng.choice(len(corpus), size=min(args.build_crem_db, len(corpus)), replace=False)
            logger.info("building CReM database %s from %d molecules", args.crem_db, len(pick))
            build_crem_db(
                [corpus[i] for i in sorted(pick)],
                args.crem_db,
                radius=args.crem_radius,
                max_heavy_atoms=args.crem_max_size,
                processes=args.processes,
            )
        options.update(db_path=args.crem_db, radius=args.crem_radius, max_size=args.crem_max_size)
    report = precompute_perturbations(
        corpus,
        args.out_dir,
        method=args.method,
        n_keep=args.n_keep,
        shard_size=args.shard_size,
        processes=args.processes,
        seed=args.seed,
        perturber_options=options,
        progress=not args.no_progress,
    )
    summary = asdict(report)
    summary["molecules_per_second_per_process"] = report.molecules_per_second_per_process
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
