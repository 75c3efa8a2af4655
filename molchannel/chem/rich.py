"""The ``rich`` featurization (GraphGPS backbone, METHOD.md section 2).

Float features, every categorical one a one-hot with an explicit "unknown" slot, so that no
molecule can make the featurizer raise (dummy atoms, uranium, oganesson, isotopes, radicals,
charges beyond +-2 and hypervalent atoms land in unknown slots or in their element's slot):

* atoms (``x``, float32 ``[N, ATOM_DIM]``): atomic number (1..118), total degree, formal charge,
  chirality tag, total hydrogen count, hybridisation, implicit valence (one-hots); aromatic;
  mass / 100; H-bond donor and acceptor (RDKit's Lipinski definitions), acidic group and basic
  nitrogen (after RDKit's ``BaseFeatures.fdef`` families); membership in a ring of size 3..8;
  and, **last**, a "masked" flag: 0 for real atoms, 1 for the mask token that pre-training puts
  in place of an atom (all other entries zero).
* bonds (``edge_attr``, float32 ``[E, BOND_DIM]``): bond type, stereo (one-hots); conjugated; in
  a ring; and, **last**, the "masked" flag.
* ``pe`` (float32 ``[N, walk_length]``): random-walk positional encoding, entry ``k-1`` of atom
  ``i`` being the probability that a ``k``-step random walk from ``i`` ends at ``i`` (PyG's
  ``AddRandomWalkPE``; atoms without bonds get zeros).

``edge_index`` is coalesced, as in the basic scheme: each bond once per direction, columns sorted
by (source, target). :func:`describe_rich_features` names every dimension.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from rdkit import Chem
from rdkit.Chem.Lipinski import HAcceptorSmarts, HDonorSmarts

from molchannel.chem.base import BATCH_BLOCK, FeaturizerSpec, new_graph, register_featurizer
from molchannel.chem.smiles import InvalidSmilesError, parse_smiles

if TYPE_CHECKING:
    from torch_geometric.data import Data

DEFAULT_WALK_LENGTH = 20
DENSE_PE_MAX_ATOMS = 500  # larger molecules get the sparse random-walk computation


@dataclass(frozen=True)
class _OneHot:
    """A categorical feature: its known values, then one "unknown" slot."""

    name: str
    values: tuple[Any, ...]
    labels: tuple[str, ...]

    @property
    def width(self) -> int:
        return len(self.values) + 1

    def names(self) -> list[str]:
        return [f"{self.name}={label}" for label in self.labels] + [f"{self.name}=unknown"]


def _one_hot(name: str, values: Sequence[Any], labels: Sequence[str] | None = None) -> _OneHot:
    return _OneHot(
        name, tuple(values), tuple(labels) if labels is not None else tuple(str(v) for v in values)
    )


_PERIODIC_TABLE = Chem.GetPeriodicTable()
_CT, _HT, _BT, _BS = Chem.ChiralType, Chem.HybridizationType, Chem.BondType, Chem.BondStereo

ATOM_ONE_HOTS = (
    _one_hot("atomic_num", range(1, 119), [_PERIODIC_TABLE.GetElementSymbol(z) for z in range(1, 119)]),
    _one_hot("degree", range(7)),
    _one_hot("formal_charge", range(-2, 3)),
    _one_hot(
        "chirality",
        (_CT.CHI_UNSPECIFIED, _CT.CHI_TETRAHEDRAL_CW, _CT.CHI_TETRAHEDRAL_CCW, _CT.CHI_OTHER),
        ("unspecified", "CW", "CCW", "other"),
    ),
    _one_hot("num_hs", range(5)),
    _one_hot(
        "hybridization",
        (_HT.S, _HT.SP, _HT.SP2, _HT.SP3, _HT.SP3D, _HT.SP3D2),
        ("S", "SP", "SP2", "SP3", "SP3D", "SP3D2"),
    ),
    _one_hot("implicit_valence", range(7)),
)
ATOM_FLAGS = ("aromatic", "mass/100", "hbond_donor", "hbond_acceptor", "acidic", "basic")
RING_SIZES = tuple(range(3, 9))

BOND_ONE_HOTS = (
    _one_hot(
        "type", (_BT.SINGLE, _BT.DOUBLE, _BT.TRIPLE, _BT.AROMATIC), ("single", "double", "triple", "aromatic")
    ),
    _one_hot(
        "stereo",
        (_BS.STEREONONE, _BS.STEREOANY, _BS.STEREOZ, _BS.STEREOE, _BS.STEREOCIS, _BS.STEREOTRANS),
        ("none", "any", "Z", "E", "cis", "trans"),
    ),
)
BOND_FLAGS = ("conjugated", "in_ring")


def _offsets(groups: Sequence[_OneHot]) -> list[int]:
    starts, start = [], 0
    for group in groups:
        starts.append(start)
        start += group.width
    return starts


_ATOM_STARTS = _offsets(ATOM_ONE_HOTS)
_ATOM_FLAGS_START = sum(g.width for g in ATOM_ONE_HOTS)
_AROMATIC, _MASS, _DONOR, _ACCEPTOR, _ACIDIC, _BASIC = range(_ATOM_FLAGS_START, _ATOM_FLAGS_START + 6)
_RING_START = _ATOM_FLAGS_START + len(ATOM_FLAGS)
ATOM_MASK_DIM = _RING_START + len(RING_SIZES)
ATOM_DIM = ATOM_MASK_DIM + 1

_BOND_STARTS = _offsets(BOND_ONE_HOTS)
_CONJUGATED = sum(g.width for g in BOND_ONE_HOTS)
_IN_RING = _CONJUGATED + 1
BOND_MASK_DIM = _IN_RING + 1
BOND_DIM = BOND_MASK_DIM + 1


class _ColumnOf(dict):
    """``value -> column`` of one one-hot group; any value not listed maps to its unknown slot."""

    def __init__(self, group: _OneHot, start: int) -> None:
        super().__init__((value, start + i) for i, value in enumerate(group.values))
        self.unknown = start + len(group.values)

    def __missing__(self, key: object) -> int:
        return self.unknown


_Z, _DEGREE, _CHARGE, _CHIRALITY, _NUM_HS, _HYBRIDIZATION, _IMPLICIT_VALENCE = (
    _ColumnOf(group, start) for group, start in zip(ATOM_ONE_HOTS, _ATOM_STARTS, strict=True)
)
_BOND_TYPE, _BOND_STEREO = (
    _ColumnOf(group, start) for group, start in zip(BOND_ONE_HOTS, _BOND_STARTS, strict=True)
)

# Compiled once. Donor/acceptor: the definitions behind RDKit's Lipinski NumHDonors/NumHAcceptors.
# Acidic: every atom of a carboxylic, sulfonic or phosphonic acid group (or its anion); basic: an
# amine nitrogen bonded only to carbons that carry no double bond and are not aromatic (no amides,
# anilines, imines), or a cationic nitrogen other than a nitro/N-oxide one; both after the
# NegIonizable/PosIonizable families of RDKit's BaseFeatures.fdef.
_PATTERNS = (
    (_DONOR, HDonorSmarts),
    (_ACCEPTOR, HAcceptorSmarts),
    (_ACIDIC, Chem.MolFromSmarts("[C,S,P](=[O,S])-[O;H1,-1]")),
    (
        _BASIC,
        Chem.MolFromSmarts(
            "[$([NX3;+0;!$(N~[!#6;!#1]);!$(N-a);!$(N-[#6]=,#*)]),$([#7;+;!$([#7+]-[O-]);!$([#7+]=O)])]"
        ),
    ),
)
_VALENCE_IMPLICIT = Chem.ValenceType.IMPLICIT


def describe_rich_features() -> list[str]:
    """Names of every dimension: ``ATOM_DIM`` names prefixed ``atom:``, then ``BOND_DIM`` ``bond:``."""
    atom = [name for group in ATOM_ONE_HOTS for name in group.names()]
    atom += list(ATOM_FLAGS) + [f"ring_size={n}" for n in RING_SIZES] + ["masked"]
    bond = [name for group in BOND_ONE_HOTS for name in group.names()] + list(BOND_FLAGS) + ["masked"]
    return [f"atom:{n}" for n in atom] + [f"bond:{n}" for n in bond]


def random_walk_pe(edge_index: np.ndarray, num_nodes: int, walk_length: int) -> np.ndarray:
    """Return-probabilities of random walks of 1..``walk_length`` steps, float32 ``[N, walk_length]``.

    Entry ``(i, k-1)`` is ``(P^k)_ii`` for the walk matrix ``P = D^-1 A``, computed as PyG's
    ``AddRandomWalkPE`` does for small graphs (dense powers); rows of atoms without bonds stay
    zero instead of dividing by a zero degree. Molecules of more than :data:`DENSE_PE_MAX_ATOMS`
    atoms (polymers, proteins) use sparse powers instead: the dense ones cost ``N^3`` time and
    ``N^2`` memory (a 20,000-atom chain would need GBs), the sparse ones stay near ``N``.
    """
    if num_nodes > DENSE_PE_MAX_ATOMS:
        return _sparse_random_walk_pe(edge_index, num_nodes, walk_length)
    walk = np.zeros((num_nodes, num_nodes))
    walk[edge_index[0], edge_index[1]] = 1.0
    degree = walk.sum(axis=1, keepdims=True)
    np.divide(walk, degree, out=walk, where=degree > 0)
    pe = np.empty((num_nodes, walk_length), dtype=np.float32)
    power = walk
    pe[:, 0] = power.diagonal()
    for k in range(1, walk_length):
        power = power @ walk
        pe[:, k] = power.diagonal()
    return pe


def _sparse_random_walk_pe(edge_index: np.ndarray, num_nodes: int, walk_length: int) -> np.ndarray:
    """:func:`random_walk_pe` with sparse matrix powers (equal up to float rounding)."""
    src, dst = torch.from_numpy(np.ascontiguousarray(edge_index, dtype=np.int64))
    degree = torch.bincount(src, minlength=num_nodes).double()
    walk = torch.sparse_coo_tensor(
        torch.stack((src, dst)), 1.0 / degree[src], (num_nodes, num_nodes), check_invariants=True
    ).coalesce()
    pe = np.zeros((num_nodes, walk_length), dtype=np.float32)
    power = walk
    with warnings.catch_warnings():
        # torch routes sparse @ sparse through its CSR kernels and says once that they are "in beta"
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        for k in range(walk_length):
            if k:
                power = torch.sparse.mm(power, walk).coalesce()
            (rows, cols), values = power.indices(), power.values()
            on_diagonal = rows == cols
            pe[rows[on_diagonal].numpy(), k] = values[on_diagonal].numpy()
    return pe


def _atom_features(mol: Chem.Mol) -> np.ndarray:
    num_atoms = mol.GetNumAtoms()
    x = np.zeros((num_atoms, ATOM_DIM), dtype=np.float32)
    columns: list[int] = []
    masses: list[float] = []
    aromatic: list[bool] = []
    # GetAtomWithIdx/GetBondWithIdx: half the cost of iterating GetAtoms()/GetBonds() in RDKit 2026
    for atom in map(mol.GetAtomWithIdx, range(num_atoms)):
        columns += (
            _Z[atom.GetAtomicNum()],
            _DEGREE[atom.GetTotalDegree()],
            _CHARGE[atom.GetFormalCharge()],
            _CHIRALITY[atom.GetChiralTag()],
            _NUM_HS[atom.GetTotalNumHs()],
            _HYBRIDIZATION[atom.GetHybridization()],
            _IMPLICIT_VALENCE[atom.GetValence(_VALENCE_IMPLICIT)],
        )
        masses.append(atom.GetMass())
        aromatic.append(atom.GetIsAromatic())
    x[np.repeat(np.arange(num_atoms), len(ATOM_ONE_HOTS)), columns] = 1.0
    x[:, _AROMATIC] = aromatic
    x[:, _MASS] = np.asarray(masses) * 0.01
    for column, pattern in _PATTERNS:
        x[[i for match in mol.GetSubstructMatches(pattern) for i in match], column] = 1.0
    for ring in mol.GetRingInfo().AtomRings():
        if RING_SIZES[0] <= len(ring) <= RING_SIZES[-1]:
            x[list(ring), _RING_START + len(ring) - RING_SIZES[0]] = 1.0
    return x


def _bond_features(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray]:
    """Coalesced ``edge_index`` (int64 ``[2, E]``) and ``edge_attr`` (float32 ``[E, BOND_DIM]``)."""
    bonds = [
        (
            b.GetBeginAtomIdx(),
            b.GetEndAtomIdx(),
            _BOND_TYPE[b.GetBondType()],
            _BOND_STEREO[b.GetStereo()],
            b.GetIsConjugated(),
            b.IsInRing(),
        )
        for b in map(mol.GetBondWithIdx, range(mol.GetNumBonds()))
    ]
    table = np.array(bonds, dtype=np.int64).reshape(-1, 6)
    both_directions = np.concatenate((table, table[:, [1, 0, 2, 3, 4, 5]]))
    both_directions = both_directions[np.lexsort((both_directions[:, 1], both_directions[:, 0]))]
    edge_attr = np.zeros((len(both_directions), BOND_DIM), dtype=np.float32)
    rows = np.arange(len(both_directions))
    edge_attr[rows, both_directions[:, 2]] = 1.0
    edge_attr[rows, both_directions[:, 3]] = 1.0
    edge_attr[:, _CONJUGATED] = both_directions[:, 4]
    edge_attr[:, _IN_RING] = both_directions[:, 5]
    return np.ascontiguousarray(both_directions[:, :2].T), edge_attr


@register_featurizer("rich")
class RichFeaturizer:
    """Float one-hot atom/bond features plus random-walk positional encoding (see module docstring)."""

    atom_dim = ATOM_DIM
    bond_dim = BOND_DIM

    def __init__(self, walk_length: int = DEFAULT_WALK_LENGTH) -> None:
        if isinstance(walk_length, bool) or not isinstance(walk_length, int) or walk_length < 1:
            raise ValueError(f"walk_length must be a positive integer, got {walk_length!r}")
        self.walk_length = walk_length
        self.spec = FeaturizerSpec("rich", 1, options={"walk_length": walk_length})

    @property
    def pe_dim(self) -> int:
        return self.walk_length

    def featurize_mol(self, mol: Chem.Mol) -> Data:
        edge_index, edge_attr = _bond_features(mol)
        return new_graph(
            x=torch.from_numpy(_atom_features(mol)),
            edge_index=torch.from_numpy(edge_index),
            edge_attr=torch.from_numpy(edge_attr),
            pe=torch.from_numpy(random_walk_pe(edge_index, mol.GetNumAtoms(), self.walk_length)),
        )

    def __call__(self, smiles: str) -> Data:
        return self.featurize_mol(parse_smiles(smiles))

    def featurize_batch(self, smiles: Sequence[object], start: int = 0) -> list[Data | InvalidSmilesError]:
        """Featurize many SMILES; invalid ones come back as their :class:`InvalidSmilesError`.

        Errors carry ``start + position`` as their index. Parsing a block of molecules before
        featurizing them keeps each phase's code in the CPU caches (measurably faster).
        """
        out: list[Data | InvalidSmilesError] = []
        for block_start in range(0, len(smiles), BATCH_BLOCK):
            block: list[Chem.Mol | InvalidSmilesError] = []
            for i, s in enumerate(smiles[block_start : block_start + BATCH_BLOCK], start + block_start):
                try:
                    block.append(parse_smiles(s, i))
                except InvalidSmilesError as err:
                    block.append(err)
            out += [m if isinstance(m, InvalidSmilesError) else self.featurize_mol(m) for m in block]
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(walk_length={self.walk_length})"
