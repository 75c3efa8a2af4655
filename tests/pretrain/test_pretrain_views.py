"""Masked views, atom-context tokens and pre-training targets (METHOD sections 4-5)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from rdkit import Chem, DataStructs
from rdkit.Chem import QED, AllChem
from torch_geometric.data import Batch, Data

from molchannel.chem.featurizers import ATOM_MASK, BOND_MASK, BasicFeaturizer
from molchannel.pretrain.targets import (
    MOTIF_NAMES,
    NUM_MOTIF_TARGETS,
    MotifNormalizer,
    morgan_fp,
    motif_targets,
    scaffold_atom_mask,
    scaffold_fp,
    tanimoto_distance_matrix,
)
from molchannel.pretrain.views import (
    ContextVocab,
    atom_context_token,
    context_atom_labels,
    context_mask,
    subgraph_mask,
    subgraph_mask_atoms,
)

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
MOLECULES = [
    ASPIRIN,
    "Cn1cnc2c1c(=O)n(C)c(=O)n2C",  # caffeine
    "CC(C)Cc1ccc(cc1)C(C)C(=O)O",  # ibuprofen
    "CCCCCCCCCCCCCCCCCCCC",  # a long chain: the BFS region is a path
    "CCCS(=O)c1ccc2[nH]c(=NC(=O)OC)[nH]c2c1",
    "O=C1CCC(CC)N1Cc1ccccc1",
]


def _graph(smiles: str) -> tuple[Chem.Mol, Data]:
    mol = Chem.MolFromSmiles(smiles)
    return mol, BasicFeaturizer().featurize_mol(mol)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _is_connected(atoms: set[int], edge_index: torch.Tensor) -> bool:
    """BFS restricted to ``atoms``: do they form one connected piece?"""
    adjacency: dict[int, set[int]] = {a: set() for a in atoms}
    for s, d in edge_index.t().tolist():
        if s in atoms and d in atoms:
            adjacency[s].add(d)
    start = next(iter(atoms))
    seen, frontier = {start}, [start]
    while frontier:
        nxt = [n for a in frontier for n in adjacency[a] if n not in seen]
        seen.update(nxt)
        frontier = nxt
    return seen == atoms


# ---- subgraph masking -------------------------------------------------------------------------


@pytest.mark.parametrize("smiles", MOLECULES)
@pytest.mark.parametrize("fraction", [0.15, 0.5])
def test_subgraph_mask_covers_fraction_with_one_connected_region(smiles: str, fraction: float) -> None:
    mol, data = _graph(smiles)
    n = mol.GetNumAtoms()
    for seed in range(5):
        view = subgraph_mask(data, fraction, generator=_gen(seed))
        masked = set((view.x[:, 0] == ATOM_MASK).nonzero().flatten().tolist())
        assert len(masked) == math.ceil(fraction * n - 1e-9)
        assert len(masked) >= fraction * n
        assert _is_connected(masked, data.edge_index)
        assert (view.x[list(masked), 1] == 0).all()


@pytest.mark.parametrize("smiles", MOLECULES[:3])
def test_subgraph_mask_masks_exactly_the_bonds_inside_the_region(smiles: str) -> None:
    _, data = _graph(smiles)
    view = subgraph_mask(data, 0.3, generator=_gen(3))
    atom_masked = view.x[:, 0] == ATOM_MASK
    src, dst = data.edge_index
    inside = atom_masked[src] & atom_masked[dst]
    assert inside.any()
    assert torch.equal(view.edge_attr[:, 0] == BOND_MASK, inside)
    assert torch.equal(view.edge_attr[~inside], data.edge_attr[~inside])
    assert torch.equal(view.x[~atom_masked], data.x[~atom_masked])
    assert torch.equal(view.edge_index, data.edge_index)


def test_subgraph_mask_leaves_input_untouched() -> None:
    _, data = _graph(ASPIRIN)
    before = data.clone()
    subgraph_mask(data, 0.5, generator=_gen(0))
    assert torch.equal(data.x, before.x) and torch.equal(data.edge_attr, before.edge_attr)


def test_subgraph_mask_is_reproducible_from_the_generator_seed() -> None:
    _, data = _graph(MOLECULES[4])
    first = subgraph_mask(data, generator=_gen(7))
    again = subgraph_mask(data, generator=_gen(7))
    assert torch.equal(first.x, again.x) and torch.equal(first.edge_attr, again.edge_attr)
    masks = {tuple(subgraph_mask(data, generator=_gen(s)).x[:, 0].tolist()) for s in range(6)}
    assert len(masks) > 1  # different seeds give different views


def test_subgraph_mask_continues_in_another_component_when_one_is_used_up() -> None:
    # two 3-atom fragments; 5 of 6 atoms must be masked, so both fragments are used
    _, data = _graph("CCC.CCO")
    mask = subgraph_mask_atoms(data.edge_index, 6, 0.8, generator=_gen(0))
    assert int(mask.sum()) == 5
    assert mask[:3].any() and mask[3:].any()


def test_subgraph_mask_single_atom_and_rich_scheme() -> None:
    _, lone = _graph("C")
    view = subgraph_mask(lone, generator=_gen(0))
    assert view.x.tolist() == [[ATOM_MASK, 0]]

    # rich scheme: float vectors whose last entry is the "masked" flag
    _, basic = _graph(ASPIRIN)
    x = torch.rand(basic.num_nodes, 9)
    x[:, -1] = 0
    edge_attr = torch.rand(basic.edge_index.size(1), 5)
    edge_attr[:, -1] = 0
    rich = Data(x=x, edge_index=basic.edge_index, edge_attr=edge_attr)
    view = subgraph_mask(rich, 0.3, generator=_gen(1))
    atoms = view.x[:, -1] == 1
    assert int(atoms.sum()) == math.ceil(0.3 * basic.num_nodes)
    assert (view.x[atoms, :-1] == 0).all() and torch.equal(view.x[~atoms], x[~atoms])
    bonds = atoms[basic.edge_index[0]] & atoms[basic.edge_index[1]]
    assert torch.equal(view.edge_attr[:, -1] == 1, bonds)
    assert (view.edge_attr[bonds, :-1] == 0).all()
    assert (rich.x[:, -1] == 0).all()  # input untouched


def test_mask_fraction_out_of_range_is_rejected() -> None:
    _, data = _graph("CCO")
    with pytest.raises(ValueError, match="fraction"):
        subgraph_mask(data, 0.0, generator=_gen(0))


# ---- atom-context tokens and vocabulary -------------------------------------------------------


def test_context_tokens_of_ethanol_phenol_and_chloroacetic_acid() -> None:
    ethanol = Chem.MolFromSmiles("CCO")
    assert [atom_context_token(ethanol, i) for i in range(3)] == [
        "C_C-SINGLE1",
        "C_C-SINGLE1_O-SINGLE1",
        "O_C-SINGLE1",
    ]
    phenol = Chem.MolFromSmiles("Oc1ccccc1")
    assert [atom_context_token(phenol, i) for i in range(7)] == [
        "O_C-SINGLE1",
        "C_C-AROMATIC2_O-SINGLE1",
        *["C_C-AROMATIC2"] * 5,
    ]
    # sort order: "C-" before "Cl" ('-' < 'l'); DOUBLE before SINGLE for the same neighbour symbol
    acid = Chem.MolFromSmiles("ClCC(=O)O")
    assert atom_context_token(acid, 1) == "C_C-SINGLE1_Cl-SINGLE1"
    assert atom_context_token(acid, 2) == "C_C-SINGLE1_O-DOUBLE1_O-SINGLE1"
    assert atom_context_token(Chem.MolFromSmiles("[Na+]"), 0) == "Na"


def test_vocab_orders_by_frequency_and_maps_unknown_to_other() -> None:
    vocab = ContextVocab.build(["CCO", "CCO", "Oc1ccccc1"])
    assert vocab.itos == [
        "<other>",
        "C_C-AROMATIC2",  # 5
        "O_C-SINGLE1",  # 3
        "C_C-SINGLE1",  # 2 (ties by token)
        "C_C-SINGLE1_O-SINGLE1",  # 2
        "C_C-AROMATIC2_O-SINGLE1",  # 1
    ]
    assert len(vocab) == 6
    assert vocab.encode("O_C-SINGLE1") == 2 and vocab.decode(2) == "O_C-SINGLE1"
    assert vocab.encode("N_C-TRIPLE1") == 0
    assert len(ContextVocab.build(["CCO", "CCO", "Oc1ccccc1"], min_count=2)) == 5
    assert ContextVocab.build(["CCO", "CCO", "Oc1ccccc1"], max_size=2).itos[1:] == [
        "C_C-AROMATIC2",
        "O_C-SINGLE1",
    ]


def test_vocab_json_round_trip_and_version_check() -> None:
    vocab = ContextVocab.build([Chem.MolFromSmiles(s) for s in MOLECULES])
    again = ContextVocab.from_json(vocab.to_json())
    assert again == vocab and again.stoi == vocab.stoi
    bad = json.loads(vocab.to_json()) | {"format_version": 99}
    with pytest.raises(ValueError, match="format version"):
        ContextVocab.from_dict(bad)
    with pytest.raises(ValueError, match="reserved"):
        ContextVocab(["<other>", "C"])


# ---- context masking --------------------------------------------------------------------------


@pytest.mark.parametrize("smiles", MOLECULES)
def test_context_mask_masks_stars_and_labels_centres(smiles: str) -> None:
    mol, data = _graph(smiles)
    vocab = ContextVocab.build(MOLECULES[:2])
    view = context_mask(data, context_atom_labels(mol, vocab), generator=_gen(11))
    masked = view.x[:, 0] == ATOM_MASK
    n = mol.GetNumAtoms()
    assert int(masked.sum()) >= 0.15 * n
    centres = view.masked_centers.tolist()
    assert len(set(centres)) == len(centres) >= 1
    for c in centres:
        assert masked[c]
        assert all(masked[nb.GetIdx()] for nb in mol.GetAtomWithIdx(c).GetNeighbors())
    # masking stopped as soon as the target was reached: without the last star it was not
    earlier = {c for c in centres[:-1]}
    earlier.update(nb.GetIdx() for c in centres[:-1] for nb in mol.GetAtomWithIdx(c).GetNeighbors())
    assert len(earlier) < 0.15 * n
    assert view.context_labels.tolist() == [vocab.encode(atom_context_token(mol, c)) for c in centres]
    src, dst = data.edge_index
    touches_centre = torch.zeros(n, dtype=torch.bool)
    touches_centre[view.masked_centers] = True
    assert torch.equal(view.edge_attr[:, 0] == BOND_MASK, touches_centre[src] | touches_centre[dst])
    assert not (data.x[:, 0] == ATOM_MASK).any()  # input untouched


def test_context_mask_is_reproducible_and_batches_centre_indices() -> None:
    mol, data = _graph(ASPIRIN)
    vocab = ContextVocab.build([ASPIRIN])
    labels = context_atom_labels(mol, vocab)
    a = context_mask(data, labels, generator=_gen(5))
    b = context_mask(data, labels, generator=_gen(5))
    assert torch.equal(a.masked_centers, b.masked_centers) and torch.equal(a.x, b.x)
    assert (a.context_labels > 0).all()  # every token of aspirin is in its own vocabulary
    batch = Batch.from_data_list([a, b])
    shifted = (a.masked_centers + a.num_nodes).tolist()
    assert batch.masked_centers.tolist() == a.masked_centers.tolist() + shifted
    with pytest.raises(ValueError, match="atom labels"):
        context_mask(data, context_atom_labels(Chem.MolFromSmiles("CCO"), vocab), generator=_gen(0))


# ---- fingerprints, distances, scaffolds -------------------------------------------------------


def test_morgan_fp_matches_rdkit_legacy_bits() -> None:
    for smiles in MOLECULES:
        mol = Chem.MolFromSmiles(smiles)
        fp = morgan_fp(mol)
        assert fp.shape == (512,) and fp.dtype == np.uint8
        legacy = AllChem.GetMorganFingerprintAsBitVect(mol, 2, nBits=512)
        assert fp.nonzero()[0].tolist() == list(legacy.GetOnBits())
    assert morgan_fp(Chem.MolFromSmiles(ASPIRIN), radius=1, n_bits=64).shape == (64,)


def test_scaffold_fp_and_atom_mask() -> None:
    ethylbenzene = Chem.MolFromSmiles("CCc1ccccc1")
    assert np.array_equal(scaffold_fp(ethylbenzene), morgan_fp(Chem.MolFromSmiles("c1ccccc1")))
    assert scaffold_atom_mask(ethylbenzene).tolist() == [False, False] + [True] * 6
    acyclic = Chem.MolFromSmiles("CCCCO")
    assert not scaffold_fp(acyclic).any()
    assert not scaffold_atom_mask(acyclic).any()
    # RDKit keeps the exocyclic C=O on the lactam ring and the CH2 linker; the ethyl is a side chain
    lactam = Chem.MolFromSmiles("O=C1CCC(CC)N1Cc1ccccc1")
    assert scaffold_atom_mask(lactam).tolist() == [True] * 5 + [False, False] + [True] * 8


def test_tanimoto_distance_hand_checked() -> None:
    fps = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    expected = torch.tensor(
        [
            [0.0, 2 / 3, 1.0, 0.5],
            [2 / 3, 0.0, 1.0, 0.5],
            [1.0, 1.0, 0.0, 1.0],  # empty vs empty: same (empty) scaffold, distance 0
            [0.5, 0.5, 1.0, 0.0],
        ]
    )
    assert torch.allclose(tanimoto_distance_matrix(fps), expected)


def test_tanimoto_distance_matches_rdkit_bulk_tanimoto() -> None:
    mols = [Chem.MolFromSmiles(s) for s in MOLECULES]
    bit_vects = [AllChem.GetMorganFingerprintAsBitVect(m, 2, nBits=512) for m in mols]
    rdkit_dist = 1 - torch.tensor([DataStructs.BulkTanimotoSimilarity(v, bit_vects) for v in bit_vects])
    ours = tanimoto_distance_matrix(torch.from_numpy(np.stack([morgan_fp(m) for m in mols])))
    assert torch.allclose(ours, rdkit_dist.float(), atol=1e-6)


# ---- motif targets ----------------------------------------------------------------------------


def test_motif_targets_of_aspirin() -> None:
    assert len(MOTIF_NAMES) == NUM_MOTIF_TARGETS == 86
    assert sum(name.startswith("fr_") for name in MOTIF_NAMES) == 85 and MOTIF_NAMES[-1] == "qed"
    mol = Chem.MolFromSmiles(ASPIRIN)
    values = dict(zip(MOTIF_NAMES, motif_targets(mol).tolist(), strict=True))
    assert values["qed"] == pytest.approx(QED.qed(mol), abs=1e-6)
    assert values["fr_benzene"] == 1 and values["fr_ester"] == 1 and values["fr_COO"] == 1
    assert values["fr_C_O"] == 2  # the ester and the acid carbonyl
    assert values["fr_halogen"] == 0


def test_motif_normalizer_fit_transform_and_json() -> None:
    raw = np.stack([motif_targets(Chem.MolFromSmiles(s)) for s in MOLECULES])
    norm = MotifNormalizer.fit(raw)
    scaled = norm.transform(raw)
    varying = raw.std(axis=0) > 0
    assert np.allclose(scaled.mean(axis=0), 0, atol=1e-5)
    assert np.allclose(scaled.std(axis=0)[varying], 1, atol=1e-4)
    assert np.allclose(norm.std[~varying], 1)  # never-seen fragments are centred, not blown up
    assert np.allclose(norm.inverse_transform(scaled), raw, atol=1e-4)
    as_tensor = norm.transform(torch.from_numpy(raw))
    assert isinstance(as_tensor, torch.Tensor)
    assert torch.allclose(as_tensor, torch.from_numpy(scaled), atol=1e-5)

    again = MotifNormalizer.from_json(norm.to_json())
    assert np.array_equal(again.mean, norm.mean) and np.array_equal(again.std, norm.std)
    renamed = json.loads(norm.to_json())
    renamed["names"][0] = "fr_renamed"
    with pytest.raises(ValueError, match="refit"):
        MotifNormalizer.from_dict(renamed)
