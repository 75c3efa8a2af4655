"""The ``basic`` featurization (Hu et al. 2020, the GIN baselines): small integer vocabularies.

* atoms (``x``, int64 ``[N, 2]``): ``x[:, 0]`` = atomic-number index (Z-1 for Z in 1..118,
  :data:`ATOM_UNKNOWN` for dummy atoms, :data:`ATOM_MASK` for the mask token) and ``x[:, 1]`` =
  chirality tag;
* bonds (``edge_attr``, int64 ``[E, 2]``): ``edge_attr[:, 0]`` = bond type (single, double,
  triple, aromatic, :data:`BOND_SELF_LOOP`, :data:`BOND_MASK`, :data:`BOND_UNKNOWN`) and
  ``edge_attr[:, 1]`` = bond direction.

Every bond appears twice in ``edge_index`` (both directions), as PyG expects.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING

import numpy as np
from rdkit import Chem
from rdkit.Chem import rdqueries
from rdkit.rdBase import BlockLogs

from molchannel.chem.base import BATCH_BLOCK, FeaturizerSpec, register_featurizer
from molchannel.chem.graph_batch import GraphArrays, graph_from_arrays
from molchannel.chem.smiles import InvalidSmilesError, parse_smiles

if TYPE_CHECKING:
    from torch_geometric.data import Data

# ---- basic scheme vocabulary --------------------------------------------------------------
NUM_ELEMENTS = 118
ATOM_UNKNOWN = 118  # dummy atoms (`*`, atomic number 0) and anything outside 1..118
ATOM_MASK = 119
NUM_ATOM_TYPES = 120

CHIRALITY_TAGS = (
    Chem.ChiralType.CHI_UNSPECIFIED,
    Chem.ChiralType.CHI_TETRAHEDRAL_CW,
    Chem.ChiralType.CHI_TETRAHEDRAL_CCW,
)
CHIRALITY_OTHER = 3
NUM_CHIRALITY_TAGS = 4

BOND_TYPES = (Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE, Chem.BondType.AROMATIC)
BOND_SELF_LOOP = 4
BOND_MASK = 5
BOND_UNKNOWN = 6  # dative, quadruple, ... (rare; kept apart instead of crashing)
NUM_BOND_TYPES = 7

BOND_DIRS = (Chem.BondDir.NONE, Chem.BondDir.ENDUPRIGHT, Chem.BondDir.ENDDOWNRIGHT)
BOND_DIR_OTHER = 3
NUM_BOND_DIRS = 4

_CHIRALITY_INDEX = {tag: i for i, tag in enumerate(CHIRALITY_TAGS)}
_BOND_TYPE_INDEX = {bt: i for i, bt in enumerate(BOND_TYPES)}
_BOND_DIR_INDEX = {d: i for i, d in enumerate(BOND_DIRS)}


@register_featurizer("basic")
class BasicFeaturizer:
    """Hu et al. (2020) integer featurization (see the module docstring).

    ``edge_index`` is coalesced: every bond appears once per direction and the columns are sorted
    by (source, target), the order ``torch_geometric.utils.coalesce`` produces.

    ``featurize_mol`` reads every feature from RDKit atom by atom. ``__call__``, the hot path of
    bulk featurization, takes a shortcut for SMILES written without stereo marks, dative bonds,
    explicit hydrogen atoms or CXSMILES extensions (nearly every SMILES of a screening library):
    see :func:`_parse_plain_smiles` and :func:`_plain_arrays`. Both routes give identical graphs
    (tests/chem/test_featurizers.py checks them against each other on real data).

    Every method has an array twin (``mol_arrays``, ``arrays``, ``featurize_batch_arrays``) that
    returns :class:`~molchannel.chem.graph_batch.GraphArrays` instead of a PyG ``Data``: the form
    inference batches without PyG (:class:`~molchannel.chem.graph_batch.GraphBatch`). The ``Data``
    methods are built on the array ones, so a subclass that changes the features overrides
    ``mol_arrays`` (and ``arrays`` for the fast route), not ``featurize_mol``.
    """

    spec = FeaturizerSpec("basic", 1)
    atom_feature_sizes = (NUM_ATOM_TYPES, NUM_CHIRALITY_TAGS)
    bond_feature_sizes = (NUM_BOND_TYPES, NUM_BOND_DIRS)

    def featurize_mol(self, mol: Chem.Mol) -> Data:
        return graph_from_arrays(self.mol_arrays(mol))

    def __call__(self, smiles: str) -> Data:
        return graph_from_arrays(self.arrays(smiles))

    def featurize_batch(self, smiles: Sequence[object], start: int = 0) -> list[Data | InvalidSmilesError]:
        """Featurize many SMILES; invalid ones come back as their :class:`InvalidSmilesError`.

        Errors carry ``start + position`` as their index. Parsing a block of molecules before
        featurizing them keeps each phase's code in the CPU caches, which makes this 10-30 %
        faster than calling the featurizer once per SMILES (benchmarks/bench_featurize.py).
        """
        return [
            graph if isinstance(graph, InvalidSmilesError) else graph_from_arrays(graph)
            for graph in self.featurize_batch_arrays(smiles, start)
        ]

    def mol_arrays(self, mol: Chem.Mol) -> GraphArrays:
        """The graph of an RDKit molecule as arrays (:meth:`featurize_mol` without the ``Data``)."""
        # GetAtomWithIdx/GetBondWithIdx: half the cost of iterating GetAtoms()/GetBonds() in RDKit 2026
        atom_at, bond_at = mol.GetAtomWithIdx, mol.GetBondWithIdx
        x = np.zeros((mol.GetNumAtoms(), 2), dtype=np.int64)
        x[:, 0] = _ATOM_TYPE_OF_Z[[atom_at(i).GetAtomicNum() for i in range(len(x))]]
        for atom in mol.GetAtomsMatchingQuery(_HAS_CHIRAL_TAG):  # usually none: spares a call per atom
            x[atom.GetIdx(), 1] = _CHIRALITY_INDEX.get(atom.GetChiralTag(), CHIRALITY_OTHER)
        btype, bdir = _BOND_TYPE_INDEX, _BOND_DIR_INDEX
        bonds = [
            (
                b.GetBeginAtomIdx(),
                b.GetEndAtomIdx(),
                btype.get(b.GetBondType(), BOND_UNKNOWN),
                bdir.get(b.GetBondDir(), BOND_DIR_OTHER),
            )
            for b in map(bond_at, range(mol.GetNumBonds()))
        ]
        table = np.array(bonds, dtype=np.int64).reshape(-1, 4)
        src = np.concatenate((table[:, 0], table[:, 1]))
        dst = np.concatenate((table[:, 1], table[:, 0]))
        order = np.lexsort((dst, src))
        edge_attr = np.concatenate((table[:, 2:], table[:, 2:]))[order]
        return GraphArrays(x, np.stack((src[order], dst[order])), edge_attr)

    def arrays(self, smiles: str) -> GraphArrays:
        """The graph of one SMILES as arrays (:meth:`__call__` without the ``Data``)."""
        plain = _parse_plain_smiles(smiles)
        graph = _plain_arrays(*plain) if plain is not None else None
        return graph if graph is not None else self.mol_arrays(parse_smiles(smiles))

    def featurize_batch_arrays(
        self, smiles: Sequence[object], start: int = 0
    ) -> list[GraphArrays | InvalidSmilesError]:
        """:meth:`featurize_batch` with each graph as arrays."""
        out: list[GraphArrays | InvalidSmilesError] = []
        for block_start in range(0, len(smiles), BATCH_BLOCK):
            block = smiles[block_start : block_start + BATCH_BLOCK]
            with BlockLogs():
                parsed = [_parse_plain_smiles(s, block_logs=False) for s in block]
            for i, (s, plain) in enumerate(zip(block, parsed, strict=True), start + block_start):
                graph = _plain_arrays(*plain) if plain is not None else None
                if graph is None:
                    try:
                        graph = self.mol_arrays(parse_smiles(s, i))
                    except InvalidSmilesError as err:
                        out.append(err)
                        continue
                out.append(graph)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(spec={self.spec.key()})"


# ---- BasicFeaturizer internals --------------------------------------------------------------

_ATOM_TYPE_OF_Z = np.array([ATOM_UNKNOWN, *range(NUM_ELEMENTS)], dtype=np.int64)  # Z = 0..118
_HAS_CHIRAL_TAG = rdqueries.HasChiralTagQueryAtom()
_DATIVE_BOND = Chem.MolFromSmarts("*->*")

# A "plain" SMILES: organic-subset atoms, bracket atoms that are not hydrogen and carry no
# chirality, bonds without direction, branches, ring closures and dots. Nothing else (no '@',
# '/', '\\', '->', CXSMILES '|...|', whitespace or names) can appear in it.
_PLAIN_SMILES = re.compile(r"(?:Cl|Br|[BCNOPSFIbcnops*]|\[(?!\d*H(?![efgos]))[^\][@]*\]|[-=#$:.()%0-9])+")
_ATOM_TOKEN = re.compile(r"Cl|Br|[BCNOPSFIbcnops*]|\[[^\]]*\]")
_ORGANIC_Z = {"B": 5, "C": 6, "N": 7, "O": 8, "P": 15, "S": 16, "F": 9, "Cl": 17, "Br": 35, "I": 53}
_AROMATIC_ORGANIC = ("b", "c", "n", "o", "p", "s")
_ATOM_TYPE_OF_TOKEN = {
    "*": ATOM_UNKNOWN,
    **{symbol: z - 1 for symbol, z in _ORGANIC_Z.items()},
    **{symbol: _ORGANIC_Z[symbol.upper()] - 1 for symbol in _AROMATIC_ORGANIC},
}

# twice the bond order in RDKit's adjacency matrix (so that aromatic 1.5 is an integer) -> bond
# features (type, direction); orders above 6 do not exist in RDKit
_BOND_FEATURES_OF_DOUBLE_ORDER = np.zeros((13, 2), dtype=np.int64)
_BOND_FEATURES_OF_DOUBLE_ORDER[:, 0] = BOND_UNKNOWN
_BOND_FEATURES_OF_DOUBLE_ORDER[[2, 4, 6, 3], 0] = [0, 1, 2, 3]  # single, double, triple, aromatic
_ATOM_FEATURES_OF_TYPE = np.zeros((NUM_ATOM_TYPES, 2), dtype=np.int64)  # (type, chirality unspecified)
_ATOM_FEATURES_OF_TYPE[:, 0] = np.arange(NUM_ATOM_TYPES)


def _parse_plain_smiles(smiles: object, block_logs: bool = True) -> tuple[str, Chem.Mol] | None:
    """Parse a plain SMILES (see ``_PLAIN_SMILES``) for :func:`_plain_arrays`; ``None`` for anything else.

    A plain SMILES has no stereo marks, so RDKit's stereo perception, about a fifth of
    ``MolFromSmiles``, has nothing to do and is skipped; the rest of sanitisation runs in full.
    Explicit hydrogen atoms, which ``MolFromSmiles`` would remove, cannot occur. Invalid input
    returns ``None`` so that the general route (``parse_smiles``) raises its usual error.
    RDKit's log lines are blocked during the call unless the caller already blocks them
    (``block_logs=False``; a ``BlockLogs`` costs as much as a tenth of a parse).
    """
    if not isinstance(smiles, str):
        return None
    text = smiles.strip()
    if not _PLAIN_SMILES.fullmatch(text):
        return None
    with BlockLogs() if block_logs else nullcontext():
        mol = Chem.MolFromSmiles(text, sanitize=False)
        if mol is None:
            return None
        try:
            Chem.SanitizeMol(mol)
        except Exception:  # RDKit raises several sanitisation exception types
            return None
    return text, mol


def _plain_arrays(text: str, mol: Chem.Mol) -> GraphArrays | None:
    """The basic graph of a molecule parsed by :func:`_parse_plain_smiles`, with no per-atom calls.

    Calls into RDKit per atom or per bond cost about a microsecond each, more than parsing, and
    each shortcut taken instead is exact for a plain SMILES: chirality tags and bond directions
    only ever come from '@', '/', '\\' or CXSMILES, so all are zero; atoms are numbered in the
    order they are written, so organic-subset atoms are read from the text; bond types are read
    after sanitisation (aromaticity included) from the bond-order matrix. That matrix cannot
    tell dative from single bonds (sanitisation creates dative bonds next to metals, which are
    only written in brackets, so bracketed SMILES are checked for them) and leaves out bonds of
    order zero (the bond count check). ``None`` sends the molecule to ``featurize_mol``.
    """
    tokens = _ATOM_TOKEN.findall(text)
    if not tokens or len(tokens) != mol.GetNumAtoms():
        return None
    if "[" in text:
        if mol.HasSubstructMatch(_DATIVE_BOND):
            return None
        atom_at = mol.GetAtomWithIdx
        atom_types = [
            _ATOM_TYPE_OF_TOKEN[token] if token[0] != "[" else _ATOM_TYPE_OF_Z[atom_at(i).GetAtomicNum()]
            for i, token in enumerate(tokens)
        ]
    else:
        atom_types = [_ATOM_TYPE_OF_TOKEN[token] for token in tokens]
    double_orders = (Chem.GetAdjacencyMatrix(mol, useBO=True) * 2).astype(np.intp)
    bonded = np.nonzero(double_orders)  # row-major, so already coalesced
    if len(bonded[0]) != 2 * mol.GetNumBonds():  # a bond of order 0 would be invisible here
        return None
    edge_attr = _BOND_FEATURES_OF_DOUBLE_ORDER[double_orders[bonded]]
    return GraphArrays(_ATOM_FEATURES_OF_TYPE[atom_types], np.array(bonded), edge_attr)
