"""Masked views of a molecule graph for pre-training (METHOD section 4).

* :func:`subgraph_mask` makes the MCD positives: one connected region (grown by BFS from a
  random atom) covering a fraction of the atoms is replaced by mask tokens.
* :func:`context_mask` makes the CP input: stars (an atom and its 1-hop neighbours) are masked
  until a fraction of the atoms is hidden, and every star centre is labelled with its
  atom-context token (:func:`atom_context_token`, encoded by a :class:`ContextVocab`).

The functions work on both featurization schemes and tell them apart by the dtype of ``x``:

* ``basic`` (long features): masked atoms get ``x = [ATOM_MASK, 0]`` and masked bonds
  ``edge_attr = [BOND_MASK, 0]``;
* ``rich`` (float features): the feature vector of a masked atom or bond is zeroed and its last
  entry, the "masked" flag of the rich scheme, is set to 1.

Inputs are never modified; every call returns a new :class:`~torch_geometric.data.Data`. All
randomness comes from the ``torch.Generator`` passed in, so a seeded generator reproduces a view.
"""

from __future__ import annotations

import json
import math
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from rdkit import Chem
from torch import Tensor
from torch_geometric.data import Data

from molchannel.chem.featurizers import ATOM_MASK, BOND_MASK
from molchannel.chem.smiles import parse_smiles

DEFAULT_MASK_FRACTION = 0.15


class ContextMaskedData(Data):
    """A :class:`Data` whose ``masked_centers`` (atom indices) are shifted when graphs are batched.

    PyG only offsets attributes whose name contains ``index``; without this override the centre
    indices of the second molecule of a batch would point into the first one.
    """

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "masked_centers":
            return self.num_nodes
        return super().__inc__(key, value, *args, **kwargs)


# ---- masking primitives ---------------------------------------------------------------------


def _target_count(num_atoms: int, fraction: float) -> int:
    """Smallest atom count that covers at least ``fraction`` of the molecule (at least one atom).

    The reference floors ``num_atoms * fraction``, which masks nothing in molecules of fewer than
    seven atoms; rounding up keeps "at least 15 %" true for every size.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"mask fraction must be in (0, 1], got {fraction}")
    return min(num_atoms, max(1, math.ceil(num_atoms * fraction - 1e-9)))


def _neighbour_lists(edge_index: Tensor, num_atoms: int) -> list[list[int]]:
    neighbours: list[list[int]] = [[] for _ in range(num_atoms)]
    for src, dst in edge_index.t().tolist():
        if src != dst:
            neighbours[src].append(dst)
    return neighbours


def _random_index(n: int, generator: torch.Generator) -> int:
    return int(torch.randint(n, (1,), generator=generator).item())


def _mask_atoms_and_bonds(data: Data, atom_mask: Tensor, bond_mask: Tensor) -> Data:
    """Copy of ``data`` with the selected atom rows and bond rows set to the mask token."""
    masked = data.clone()
    x, edge_attr = masked.x, masked.edge_attr
    if x.dtype.is_floating_point:  # rich scheme: zero the vector, raise the "masked" flag
        x[atom_mask] = 0
        x[atom_mask, -1] = 1
    else:
        x[atom_mask, 0] = ATOM_MASK
        x[atom_mask, 1] = 0
    if edge_attr is not None and edge_attr.numel():
        if edge_attr.dtype.is_floating_point:
            edge_attr[bond_mask] = 0
            edge_attr[bond_mask, -1] = 1
        else:
            edge_attr[bond_mask, 0] = BOND_MASK
            edge_attr[bond_mask, 1] = 0
    return masked


def subgraph_mask_atoms(
    edge_index: Tensor, num_atoms: int, fraction: float = DEFAULT_MASK_FRACTION, *, generator: torch.Generator
) -> Tensor:
    """Bool ``[num_atoms]`` mask of a BFS-grown region covering ``ceil(fraction * num_atoms)`` atoms.

    BFS starts from a random atom and visits neighbours in a random order (one random priority
    per atom), so where the target count cuts through a BFS layer the kept atoms are random too.
    When the start atom's component is used up before the target is reached (salts, mixtures),
    growth continues from a new random unmasked atom.
    """
    if num_atoms == 0:
        return torch.zeros(0, dtype=torch.bool)
    target = _target_count(num_atoms, fraction)
    neighbours = _neighbour_lists(edge_index, num_atoms)
    priority = torch.randperm(num_atoms, generator=generator).tolist()
    masked = [False] * num_atoms  # plain list: element access on a tensor is slow in Python loops
    covered = 0
    while covered < target:
        unmasked = [i for i in range(num_atoms) if not masked[i]]
        start = unmasked[_random_index(len(unmasked), generator)]
        masked[start] = True
        covered += 1
        queue = deque([start])
        while queue and covered < target:
            atom = queue.popleft()
            for nb in sorted(neighbours[atom], key=priority.__getitem__):
                if covered == target:
                    break
                if not masked[nb]:
                    masked[nb] = True
                    covered += 1
                    queue.append(nb)
    return torch.tensor(masked, dtype=torch.bool)


def subgraph_mask(data: Data, fraction: float = DEFAULT_MASK_FRACTION, *, generator: torch.Generator) -> Data:
    """MCD positive view: mask a connected region of at least ``fraction`` of the atoms.

    Bonds with both ends inside the region are masked as well; bonds leaving the region keep
    their features. See :func:`subgraph_mask_atoms` for how the region is grown.
    """
    num_atoms = int(data.num_nodes)
    atom_mask = subgraph_mask_atoms(data.edge_index, num_atoms, fraction, generator=generator)
    src, dst = data.edge_index
    bond_mask = atom_mask[src] & atom_mask[dst]
    return _mask_atoms_and_bonds(data, atom_mask, bond_mask)


# ---- atom-context tokens --------------------------------------------------------------------


def atom_context_token(mol: Chem.Mol, atom_idx: int) -> str:
    """Atom-context token of one atom: its symbol and the counts of its (neighbour symbol, bond type).

    Format: ``<symbol>`` then, for each distinct ``<neighbour symbol>-<RDKit bond type name>``
    key in plain ascending string order (Python ``sorted``, so upper case before lower case and
    ``Br`` before ``C``), ``_<key><count>``. Implicit hydrogens are not neighbours. Examples:
    the ipso carbon of phenol is ``C_C-AROMATIC2_O-SINGLE1``; a lone atom is just its symbol.
    """
    atom = mol.GetAtomWithIdx(atom_idx)
    counts: Counter[str] = Counter()
    for bond in atom.GetBonds():
        other = bond.GetOtherAtom(atom)
        counts[f"{other.GetSymbol()}-{bond.GetBondType().name}"] += 1
    return atom.GetSymbol() + "".join(f"_{key}{counts[key]}" for key in sorted(counts))


class ContextVocab:
    """Atom-context token <-> class index, built from a corpus; index 0 is ``<other>``.

    Tokens are ordered by corpus frequency (most frequent first, ties by token string), so the
    vocabulary built from the same corpus is always the same. Saved with a model as JSON.
    """

    OTHER = "<other>"
    FORMAT_VERSION = 1

    def __init__(self, tokens: Iterable[str]) -> None:
        tokens = list(tokens)
        if self.OTHER in tokens:
            raise ValueError(f"{self.OTHER!r} is reserved for index 0; do not pass it among the tokens")
        if len(set(tokens)) != len(tokens):
            raise ValueError("context vocabulary tokens must be unique")
        self.itos: list[str] = [self.OTHER, *tokens]
        self.stoi: dict[str, int] = {tok: i for i, tok in enumerate(self.itos)}

    @classmethod
    def build(
        cls, mols_or_smiles: Iterable[Chem.Mol | str], min_count: int = 1, max_size: int | None = None
    ) -> ContextVocab:
        """Count the tokens of every atom of the corpus and keep those seen ``min_count`` times or more.

        ``max_size`` caps the number of real tokens (``<other>`` not counted), keeping the most
        frequent. Invalid SMILES raise :class:`~molchannel.chem.smiles.InvalidSmilesError`.
        """
        counts: Counter[str] = Counter()
        for index, item in enumerate(mols_or_smiles):
            mol = parse_smiles(item, index) if isinstance(item, str) else item
            counts.update(atom_context_token(mol, i) for i in range(mol.GetNumAtoms()))
        return cls.build_from_counts(counts, min_count, max_size)

    @classmethod
    def build_from_counts(
        cls, counts: Mapping[str, int], min_count: int = 1, max_size: int | None = None
    ) -> ContextVocab:
        """The vocabulary of tokens counted elsewhere (e.g. merged over corpus shards); see :meth:`build`."""
        ranked = sorted((tok for tok, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[:max_size]
        return cls(ranked)

    def encode(self, token: str) -> int:
        """Class index of ``token``; 0 (``<other>``) when it is not in the vocabulary."""
        return self.stoi.get(token, 0)

    def decode(self, index: int) -> str:
        return self.itos[index]

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ContextVocab) and self.itos == other.itos

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={len(self)})"

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": self.FORMAT_VERSION, "tokens": self.itos[1:]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ContextVocab:
        version = d.get("format_version")
        if version != cls.FORMAT_VERSION:
            raise ValueError(
                f"context vocabulary format version {version!r} is not supported "
                f"(expected {cls.FORMAT_VERSION}); rebuild the vocabulary with this release"
            )
        return cls(d["tokens"])

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> ContextVocab:
        return cls.from_dict(json.loads(text))


# ---- context-masked view --------------------------------------------------------------------


def context_atom_labels(mol: Chem.Mol, vocab: ContextVocab) -> Tensor:
    """``[N]`` vocabulary index of every atom's context token (what CP predicts for a masked centre)."""
    return torch.tensor(
        [vocab.encode(atom_context_token(mol, i)) for i in range(mol.GetNumAtoms())], dtype=torch.long
    )


def context_mask(
    data: Data,
    atom_labels: Tensor,
    fraction: float = DEFAULT_MASK_FRACTION,
    *,
    generator: torch.Generator,
) -> ContextMaskedData:
    """CP input view: mask stars (atom + 1-hop neighbours) until ``ceil(fraction * N)`` atoms are hidden.

    Each star centre is a random atom not masked yet; its neighbours may already be masked by an
    earlier star. The bonds from each centre to its neighbours are masked (as in the reference),
    so the centre's bond types cannot be read off the view. ``atom_labels`` (``[N]``, see
    :func:`context_atom_labels`) are precomputed so that no RDKit molecule is needed here. The
    result carries ``masked_centers`` (long ``[M]``, atom indices in draw order, shifted on
    batching) and ``context_labels`` (long ``[M]``, the centres' labels).
    """
    num_atoms = int(data.num_nodes)
    if atom_labels.numel() != num_atoms:
        raise ValueError(
            f"got {atom_labels.numel()} atom labels for a graph of {num_atoms} atoms; "
            "pass the labels of the molecule the graph was featurized from"
        )
    neighbours = _neighbour_lists(data.edge_index, num_atoms)
    masked = [False] * num_atoms
    n_masked = 0
    centers: list[int] = []
    target = _target_count(num_atoms, fraction) if num_atoms else 0
    while n_masked < target:
        unmasked = [i for i in range(num_atoms) if not masked[i]]
        center = unmasked[_random_index(len(unmasked), generator)]
        centers.append(center)
        for atom in (center, *neighbours[center]):
            if not masked[atom]:
                masked[atom] = True
                n_masked += 1
    atom_mask = torch.tensor(masked, dtype=torch.bool)
    center_tensor = torch.tensor(centers, dtype=torch.long)
    src, dst = data.edge_index
    is_center = torch.zeros(num_atoms, dtype=torch.bool)
    is_center[center_tensor] = True
    bond_mask = is_center[src] | is_center[dst]
    view = _mask_atoms_and_bonds(data, atom_mask, bond_mask)
    out = ContextMaskedData(**dict(view))
    out.masked_centers = center_tensor
    out.context_labels = atom_labels.to(torch.long)[center_tensor]
    return out
