"""The side-chain perturber: scaffold-invariant positives by single edits outside the scaffold.

:class:`SideChainPerturber` (method ``"sidechain"``) changes an element, adds or deletes a terminal
atom, or lengthens or shortens a chain, one edit at a time, and keeps the products whose Murcko
scaffold equals the anchor's. It needs no database and is much faster than CReM (see BENCHMARKS.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rdkit import Chem
from rdkit.rdBase import BlockLogs

from molchannel.chem.scaffold import scaffold_atom_indices
from molchannel.chem.smiles import parse_smiles
from molchannel.pretrain.perturb.base import (
    ScaffoldInvariantPerturber,
    _canonical_with_scaffold,
    scaffold_key,
)
from molchannel.pretrain.perturb.registry import register_perturber

_SINGLE = Chem.BondType.SINGLE
# Elements a side-chain atom may become or that may be attached (C, N, O, F, Cl), with the valence
# each can take without a charge.
_EDIT_ELEMENTS: dict[int, int] = {6: 4, 7: 3, 8: 2, 9: 1, 17: 1}
_CARBON = 6

Edit = tuple[str, int, int]
"""(kind, atom or bond index, atomic number): one single-step change of a molecule."""


@register_perturber("sidechain")
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
