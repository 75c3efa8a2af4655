"""Bemis-Murcko scaffolds, computed exactly as the scaffold splits of the literature do.

DeepChem's ``ScaffoldSplitter`` and Hu et al.'s ``scaffold_split`` both call RDKit's
``MurckoScaffold.MurckoScaffoldSmiles`` (DeepChem with ``includeChirality=False``, Hu et al. with
``True``); :func:`murcko_scaffold_smiles` calls the same function so that scaffold groups, and hence
split membership, are identical. Note that ``includeChirality`` is passed on to RDKit as
``isomericSmiles``, so ``False`` also drops double-bond stereo and isotopes from the scaffold key.
"""

from __future__ import annotations

from rdkit import Chem
from rdkit.Chem.Scaffolds import MurckoScaffold

from molchannel.chem.smiles import parse_smiles

_ORIGINAL_INDEX_PROP = "molchannel_original_index"


def _as_mol(mol_or_smiles: Chem.Mol | str) -> Chem.Mol:
    if isinstance(mol_or_smiles, Chem.Mol):
        return mol_or_smiles
    return parse_smiles(mol_or_smiles)


def murcko_scaffold_smiles(mol_or_smiles: Chem.Mol | str, include_chirality: bool = True) -> str:
    """Canonical SMILES of the Bemis-Murcko scaffold; ``""`` for a molecule without rings.

    Raises :class:`~molchannel.chem.smiles.InvalidSmilesError` for a SMILES RDKit cannot parse.
    """
    mol = _as_mol(mol_or_smiles)
    scaffold = MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=include_chirality)
    return scaffold or ""


def scaffold_mol(mol_or_smiles: Chem.Mol | str) -> Chem.Mol:
    """The Bemis-Murcko scaffold as a molecule (ring systems, linkers and their exocyclic double bonds).

    A molecule without rings gives a molecule with no atoms.
    """
    return MurckoScaffold.GetScaffoldForMol(_as_mol(mol_or_smiles))


def scaffold_atom_indices(mol_or_smiles: Chem.Mol | str) -> list[int]:
    """Indices, in the input molecule, of the atoms that belong to its Murcko scaffold (sorted).

    Needed where a per-atom quantity is restricted to the scaffold (e.g. the scaffold channel's
    attention target). Computed by tagging atoms before decomposition rather than by substructure
    matching, which could pick a symmetric copy in the wrong place.
    """
    tagged = Chem.Mol(_as_mol(mol_or_smiles))
    for atom in tagged.GetAtoms():
        atom.SetIntProp(_ORIGINAL_INDEX_PROP, atom.GetIdx())
    scaffold = MurckoScaffold.GetScaffoldForMol(tagged)
    return sorted(atom.GetIntProp(_ORIGINAL_INDEX_PROP) for atom in scaffold.GetAtoms())
