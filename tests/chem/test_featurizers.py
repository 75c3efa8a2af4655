"""Featurizers (basic and rich) and bulk featurization, on hand-checked molecules and real data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rdkit import Chem
from torch_geometric.data import Batch, Data
from torch_geometric.transforms import AddRandomWalkPE
from torch_geometric.utils import coalesce

from molchannel.chem import (
    BasicFeaturizer,
    FeaturizedSmiles,
    InvalidSmilesError,
    RichFeaturizer,
    describe_rich_features,
    featurize_smiles,
    get_featurizer,
    iter_featurized,
    parse_smiles,
)
from molchannel.chem.base import FEATURIZERS, Featurizer, FeaturizerSpec, register_featurizer
from molchannel.chem.featurizers import ATOM_UNKNOWN, BOND_UNKNOWN, featurizer_names, new_graph
from molchannel.chem.rich import ATOM_DIM, BOND_DIM

BASIC = BasicFeaturizer()
RICH = RichFeaturizer()
NAMES = describe_rich_features()
ATOM_NAMES = [n.removeprefix("atom:") for n in NAMES[:ATOM_DIM]]
BOND_NAMES = [n.removeprefix("bond:") for n in NAMES[ATOM_DIM:]]

UNUSUAL = [
    "*",
    "[*]CC",
    "[U]",
    "[Og]",
    "[2H]C",
    "[CH3]",
    "[CH2]C",
    "[Fe+5]",
    "C[N+](C)(C)C",
    "F[S](F)(F)(F)(F)F",
    "F[Re](F)(F)(F)(F)(F)F",
    "[NH3]->[Cu+2]",
    "CN(C)(C)[Pt]",
    "[Mo]$[Mo]",
    "[H][H]",
    "[He]",
    "F[Pt@SP1](Cl)(Br)I",
    "C=C=C",
    "[Na+].[Cl-]",
    "C[13CH2]O",
    "[O-][n+]1ccccc1",
]


def atom_features(graph: Data, atom: int) -> set[str]:
    return {ATOM_NAMES[j] for j in torch.nonzero(graph.x[atom]).flatten().tolist()}


def bond_features(graph: Data, src: int, dst: int) -> set[str]:
    column = ((graph.edge_index[0] == src) & (graph.edge_index[1] == dst)).nonzero().item()
    return {BOND_NAMES[j] for j in torch.nonzero(graph.edge_attr[column]).flatten().tolist()}


def same_graph(a: Data, b: Data) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a.keys())  # noqa: SIM118 (Data is no dict)


# ---- basic scheme ---------------------------------------------------------------------------


def test_basic_ethanol_by_hand():
    graph = BASIC("CCO")
    assert graph.x.tolist() == [[5, 0], [5, 0], [7, 0]]  # atomic numbers 6, 6, 8 minus one
    assert graph.edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]  # 2 bonds, both directions
    assert graph.edge_attr.tolist() == [[0, 0]] * 4  # single, no direction
    assert graph.x.dtype == graph.edge_index.dtype == graph.edge_attr.dtype == torch.long


@pytest.mark.parametrize("featurize", [BASIC, lambda s: BASIC.featurize_mol(parse_smiles(s))])
def test_basic_chirality_of_alanine(featurize):
    # L-alanine written with @@: RDKit's tag is CW (index 1); @ flips it to CCW (2). Other atoms: 0.
    assert featurize("N[C@@H](C)C(=O)O").x[:, 1].tolist() == [0, 1, 0, 0, 0, 0]
    assert featurize("N[C@H](C)C(=O)O").x[:, 1].tolist() == [0, 2, 0, 0, 0, 0]
    assert featurize("NC(C)C(=O)O").x[:, 1].tolist() == [0] * 6


@pytest.mark.parametrize("smiles", ["c1ccccc1", "C1=CC=CC=C1"])
def test_basic_benzene_bonds_are_aromatic(smiles):
    graph = BASIC(smiles)
    assert graph.edge_index.shape == (2, 12)
    assert graph.edge_attr[:, 0].tolist() == [3] * 12


def test_basic_bond_types_and_directions():
    assert BASIC("C=C").edge_attr[:, 0].tolist() == [1, 1]
    assert BASIC("C#N").edge_attr[:, 0].tolist() == [2, 2]
    assert BASIC("[Mo]$[Mo]").edge_attr[:, 0].tolist() == [BOND_UNKNOWN] * 2  # quadruple
    assert BASIC("[NH3]->[Cu+2]").edge_attr[:, 0].tolist() == [BOND_UNKNOWN] * 2  # dative
    assert BASIC("CN(C)(C)[Pt]").edge_attr[:, 0].tolist().count(BOND_UNKNOWN) == 2  # dative after sanitising
    # F/C=C/F: the two single bonds carry directions (ENDUPRIGHT = 1), the double bond none
    directions = BASIC("F/C=C/F").edge_attr[:, 1].tolist()
    assert sorted(directions) == [0, 0, 1, 1, 1, 1]


def test_basic_dummy_and_unusual_atoms():
    assert BASIC("*").x.tolist() == [[ATOM_UNKNOWN, 0]]
    assert BASIC("[*]CC").x[:, 0].tolist() == [ATOM_UNKNOWN, 5, 5]
    assert BASIC("[U]").x.tolist() == [[91, 0]]
    assert BASIC("[Og]").x.tolist() == [[117, 0]]
    assert BASIC("[2H]C").x[:, 0].tolist() == [0, 5]  # the isotope label is kept as an atom
    for smiles in UNUSUAL:
        graph = BASIC(smiles)
        assert graph.x.shape == (graph.num_nodes, 2) and graph.edge_attr.shape == (graph.num_edges, 2)


def test_basic_single_atom_has_empty_edges():
    graph = BASIC("C")
    assert graph.x.tolist() == [[5, 0]]
    assert graph.edge_index.shape == (2, 0) and graph.edge_index.dtype == torch.long
    assert graph.edge_attr.shape == (0, 2) and graph.edge_attr.dtype == torch.long


TRICKY = UNUSUAL + [
    "CCO",
    " CCO ",
    "OCC\t",
    "c1cc[nH]c1",
    "C%10CC%10",
    "C1CC2CC1CC2",
    "O=[N+]([O-])c1ccccc1",
    "O=N(=O)c1ccccc1",
    "ClCBr",
    "[Cl-].[NH4+]",
    "Sc1ccccc1",
    "C[Se]C",
    "c1cc[se]c1",
    "[13C@@H](N)(C)C(=O)O",
    "C/C=C\\C",
    "[H]C([H])([H])O",
    "CCO |$;;$|",
    "C.C",
]


@pytest.mark.parametrize("smiles", TRICKY)
def test_basic_fast_route_equals_general_route(smiles):
    """``__call__`` takes shortcuts for plain SMILES; they must not change a single number."""
    assert same_graph(BASIC(smiles), BASIC.featurize_mol(parse_smiles(smiles)))


def test_basic_featurize_batch_matches_single_calls():
    smiles = TRICKY + ["not a smiles", "C1CC", "", None] + ["CCO"] * 70  # more than one block
    out = BASIC.featurize_batch(smiles, start=100)
    assert len(out) == len(smiles)
    for i, (s, got) in enumerate(zip(smiles, out, strict=True)):
        if isinstance(got, InvalidSmilesError):
            assert got.index == 100 + i
            with pytest.raises(InvalidSmilesError):
                BASIC(s)
        else:
            assert same_graph(got, BASIC(s))


@pytest.mark.parametrize("featurizer", [BASIC, RICH], ids=["basic", "rich"])
@pytest.mark.parametrize("smiles", ["", "   ", "C1CC", "c1cccc1", "CN(C)(C)(C)C", None, float("nan"), 3])
def test_invalid_smiles_raise(featurizer, smiles):
    with pytest.raises(InvalidSmilesError):
        featurizer(smiles)


@pytest.mark.parametrize("featurizer", [BASIC, RICH], ids=["basic", "rich"])
def test_edges_are_coalesced_and_batch(featurizer):
    graphs = [featurizer(s) for s in ("CC(=O)Nc1ccc(O)cc1", "C", "CCO")]
    assert all(torch.equal(coalesce(g.edge_index, num_nodes=g.num_nodes), g.edge_index) for g in graphs)
    batch = Batch.from_data_list(graphs)
    assert batch.num_nodes == 11 + 1 + 3 and batch.edge_index.max().item() == 14


def test_new_graph_equals_data_constructor():
    tensors = {"x": torch.ones(3, 2), "edge_index": torch.tensor([[0, 1], [1, 0]]), "pe": torch.zeros(3, 4)}
    fast, reference = new_graph(**tensors), Data(**tensors)
    assert same_graph(fast, reference) and fast.num_nodes == 3 and fast.num_edges == 2
    assert same_graph(Batch.from_data_list([fast, fast]), Batch.from_data_list([reference, reference]))


# ---- rich scheme ----------------------------------------------------------------------------


def test_rich_dimensions_and_names():
    graph = RICH("CC(=O)Nc1ccc(O)cc1")
    assert graph.x.shape == (11, ATOM_DIM) and graph.edge_attr.shape == (22, BOND_DIM)
    assert graph.pe.shape == (11, 20)
    assert graph.x.dtype == graph.edge_attr.dtype == graph.pe.dtype == torch.float32
    assert (RICH.atom_dim, RICH.bond_dim, RICH.pe_dim) == (ATOM_DIM, BOND_DIM, 20)
    assert len(NAMES) == len(set(NAMES)) == ATOM_DIM + BOND_DIM
    assert NAMES[ATOM_DIM - 1] == "atom:masked" and NAMES[-1] == "bond:masked"
    assert graph.x[:, -1].sum() == 0 and graph.edge_attr[:, -1].sum() == 0  # real atoms are not masked
    assert "atomic_num=unknown" in ATOM_NAMES and "stereo=unknown" in BOND_NAMES


def test_rich_spec_follows_options():
    assert RICH.spec.to_dict() == {"name": "rich", "version": 1, "options": {"walk_length": 20}}
    short = get_featurizer({"name": "rich", "version": 1, "options": {"walk_length": 8}})
    assert short.spec.key() == "rich-v1[walk_length=8]" and short("CCO").pe.shape == (3, 8)
    assert get_featurizer("rich").spec == RICH.spec
    with pytest.raises(ValueError, match="walk_length"):
        RichFeaturizer(walk_length=0)


def test_get_featurizer_reads_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    assert featurizer_names() == ("basic", "rich") and FEATURIZERS["basic"] is BasicFeaturizer
    assert type(get_featurizer({"name": "basic", "version": 1})) is BasicFeaturizer

    class Atoms:
        """A toy scheme: one float feature per atom, its atomic number times ``scale``."""

        def __init__(self, scale: float = 1.0) -> None:
            self.scale = scale
            self.spec = FeaturizerSpec("atoms", 1, {"scale": scale})

        def featurize_mol(self, mol: Chem.Mol) -> Data:
            z = [self.scale * a.GetAtomicNum() for a in mol.GetAtoms()]
            return new_graph(x=torch.tensor(z)[:, None], edge_index=torch.zeros(2, 0, dtype=torch.long))

        def __call__(self, smiles: str) -> Data:
            return self.featurize_mol(parse_smiles(smiles))

    monkeypatch.setitem(FEATURIZERS._entries, "atoms", Atoms)  # undone after the test
    featurizer = get_featurizer({"name": "atoms", "options": {"scale": 0.5}})
    assert featurizer("CO").x.flatten().tolist() == [3.0, 4.0]
    assert featurize_smiles(["CO", "bad(("], featurizer, "skip").indices == [0]
    assert isinstance(featurizer, Featurizer)


def test_get_featurizer_rejects_unknown_schemes_options_and_versions() -> None:
    with pytest.raises(ValueError, match=r"unknown featurizer 'fancy'; choose one of \('basic', 'rich'\)"):
        get_featurizer("fancy")
    with pytest.raises(ValueError, match="unknown featurizer"):
        get_featurizer({"name": "fancy"})
    with pytest.raises(ValueError, match="'rich' does not take options"):
        get_featurizer({"name": "rich", "options": {"walk_lenght": 8}})
    with pytest.raises(ValueError, match="'basic' does not take options"):
        get_featurizer({"name": "basic", "options": {"walk_length": 8}})
    with pytest.raises(ValueError, match="version 2 is not produced by this release"):
        get_featurizer(FeaturizerSpec("basic", 2))
    with pytest.raises(ValueError, match="already registered"):
        register_featurizer("basic")(RichFeaturizer)


def _one_hot_groups(names: list[str]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        if "=" in name and not name.startswith("ring_size"):
            groups.setdefault(name.split("=")[0], []).append(i)
    return groups


@pytest.mark.parametrize("smiles", ["CC(=O)Nc1ccc(O)cc1", "N[C@@H](C)C(=O)O", "F/C=C/F", *UNUSUAL])
def test_rich_one_hot_groups_sum_to_one(smiles):
    graph = RICH(smiles)
    atom_groups, bond_groups = _one_hot_groups(ATOM_NAMES), _one_hot_groups(BOND_NAMES)
    assert set(atom_groups) == {
        "atomic_num", "degree", "formal_charge", "chirality", "num_hs", "hybridization", "implicit_valence"
    }  # fmt: skip
    assert set(bond_groups) == {"type", "stereo"}
    for columns in atom_groups.values():
        assert graph.x[:, columns].sum(dim=1).tolist() == [1.0] * graph.num_nodes
    for columns in bond_groups.values():
        assert graph.edge_attr[:, columns].sum(dim=1).tolist() == [1.0] * graph.num_edges
    assert torch.isfinite(graph.x).all() and torch.isfinite(graph.pe).all()


def test_rich_ethanol_by_hand():
    graph = RICH("CCO")
    assert atom_features(graph, 2) == {
        "atomic_num=O", "degree=2", "formal_charge=0", "chirality=unspecified", "num_hs=1",
        "hybridization=SP3", "implicit_valence=1", "mass/100", "hbond_donor", "hbond_acceptor",
    }  # fmt: skip
    assert atom_features(graph, 0) == {
        "atomic_num=C", "degree=4", "formal_charge=0", "chirality=unspecified", "num_hs=3",
        "hybridization=SP3", "implicit_valence=3", "mass/100",
    }  # fmt: skip
    assert graph.x[2, ATOM_NAMES.index("mass/100")].item() == pytest.approx(0.15999, abs=1e-4)
    assert bond_features(graph, 1, 2) == bond_features(graph, 2, 1) == {"type=single", "stereo=none"}


def test_rich_chirality_of_alanine():
    cw, ccw = RICH("N[C@@H](C)C(=O)O"), RICH("N[C@H](C)C(=O)O")
    assert "chirality=CW" in atom_features(cw, 1) and "chirality=CCW" in atom_features(ccw, 1)
    assert "chirality=unspecified" in atom_features(cw, 0)


def test_rich_charged_atoms():
    ammonium = RICH("[NH4+]")
    assert {"formal_charge=1", "num_hs=4", "degree=4", "basic"} <= atom_features(ammonium, 0)
    quaternary = RICH("C[N+](C)(C)C")
    assert {"formal_charge=1", "num_hs=0", "degree=4", "basic"} <= atom_features(quaternary, 1)
    assert "formal_charge=unknown" in atom_features(RICH("[Fe+5]"), 0)
    assert "formal_charge=-1" in atom_features(RICH("CC(=O)[O-]"), 3)


def test_rich_unusual_atoms_land_in_unknown_slots():
    assert {"atomic_num=unknown", "hybridization=unknown"} <= atom_features(RICH("*"), 0)
    assert "atomic_num=U" in atom_features(RICH("[U]"), 0)
    assert "atomic_num=Og" in atom_features(RICH("[Og]"), 0)
    assert "chirality=unknown" in atom_features(RICH("F[Pt@SP1](Cl)(Br)I"), 1)  # square planar
    assert "type=unknown" in bond_features(RICH("[NH3]->[Cu+2]"), 0, 1)
    assert "degree=unknown" in atom_features(RICH("F[Re](F)(F)(F)(F)(F)F"), 1)  # 7 neighbours
    for smiles in UNUSUAL:
        RICH(smiles)


def test_rich_aromatic_ring_and_bond_flags():
    graph = RICH("c1ccccc1C1CC1")
    assert {"aromatic", "ring_size=6"} <= atom_features(graph, 0)
    assert "ring_size=3" in atom_features(graph, 7) and "aromatic" not in atom_features(graph, 7)
    assert bond_features(graph, 0, 1) == {"type=aromatic", "stereo=none", "conjugated", "in_ring"}
    assert bond_features(graph, 5, 6) == {"type=single", "stereo=none"}  # ring atoms, chain bond
    assert "stereo=E" in bond_features(RICH("F/C=C/F"), 1, 2)
    assert "stereo=Z" in bond_features(RICH("F/C=C\\F"), 1, 2)


def test_rich_acid_and_base_flags():
    acid = RICH("CC(=O)O")
    assert [("acidic" in atom_features(acid, i)) for i in range(4)] == [False, True, True, True]
    amide = RICH("CC(=O)NC")
    assert "basic" not in atom_features(amide, 3)
    assert "basic" in atom_features(RICH("CCN(C)C"), 2)
    assert "basic" not in atom_features(RICH("Nc1ccccc1"), 0)  # aniline


def test_rich_single_atom_and_isolated_atoms():
    graph = RICH("C")
    assert graph.edge_index.shape == (2, 0) and graph.edge_attr.shape == (0, BOND_DIM)
    assert graph.pe.shape == (1, 20) and torch.equal(graph.pe, torch.zeros(1, 20))
    salt = RICH("[Na+].[Cl-]")
    assert torch.equal(salt.pe, torch.zeros(2, 20))


@pytest.mark.parametrize("smiles", ["CC(C)c1ccc(O)cc1", "C1CC2CC1CC2", "CCO.[Na+]", "C#N"])
def test_rich_pe_equals_pyg_random_walk_pe(smiles):
    graph = RICH(smiles)
    reference = AddRandomWalkPE(walk_length=20, attr_name="rwpe")(
        Data(edge_index=graph.edge_index, num_nodes=graph.num_nodes)
    )
    torch.testing.assert_close(graph.pe, reference.rwpe, atol=1e-5, rtol=1e-4)


def test_rich_ring_membership_matches_rdkit():
    mol = parse_smiles("c1ccc2c(c1)CC1CC2C1")  # fused 6-6-4 system
    graph = RICH.featurize_mol(mol)
    ring_info = mol.GetRingInfo()
    for atom in range(mol.GetNumAtoms()):
        for size in range(3, 9):
            expected = ring_info.IsAtomInRingOfSize(atom, size)
            assert (f"ring_size={size}" in atom_features(graph, atom)) == expected


# ---- bulk -----------------------------------------------------------------------------------

ROWS = ["CCO", "not a smiles", "c1ccccc1", None, "C"]


@pytest.mark.parametrize("featurizer", [BASIC, RICH], ids=["basic", "rich"])
def test_bulk_nan_keeps_rows_aligned(featurizer):
    result = featurize_smiles(ROWS, featurizer, on_invalid="nan")
    assert isinstance(result, FeaturizedSmiles) and len(result) == 5
    assert result.indices == [0, 1, 2, 3, 4]
    assert [g is None for g in result.graphs] == [False, True, False, True, False]
    assert [g.num_nodes for g in result.graphs if g is not None] == [3, 6, 1]
    assert [(r.index, r.smiles) for r in result.invalid] == [(1, "not a smiles"), (3, "None")]
    assert "RDKit" in result.invalid[0].reason and "string" in result.invalid[1].reason


def test_bulk_skip_drops_rows_and_reports_them(caplog):
    result = featurize_smiles(ROWS, BASIC, on_invalid="skip")
    assert result.indices == [0, 2, 4]
    assert [g.num_nodes for g in result.graphs] == [3, 6, 1]
    assert [r.index for r in result.invalid] == [1, 3]
    assert "2 of 5 SMILES were invalid and dropped" in caplog.text


def test_bulk_raise_names_the_first_bad_row():
    with pytest.raises(InvalidSmilesError, match="at index 1") as info:
        featurize_smiles(ROWS, RICH)
    assert info.value.index == 1 and info.value.smiles == "not a smiles"
    with pytest.raises(ValueError, match="on_invalid"):
        featurize_smiles(ROWS, BASIC, on_invalid="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_invalid"):
        iter_featurized(ROWS, BASIC, on_invalid="ignore")  # type: ignore[arg-type]  # fails before iterating


def test_bulk_works_with_featurizers_without_batch_method():
    class PerCall:
        spec = BASIC.spec

        def featurize_mol(self, mol: Chem.Mol) -> Data:
            return BASIC.featurize_mol(mol)

        def __call__(self, smiles: str) -> Data:
            return BASIC(smiles)

    result = featurize_smiles(ROWS, PerCall(), on_invalid="skip")
    assert result.indices == [0, 2, 4] and [r.index for r in result.invalid] == [1, 3]


def test_iter_featurized_streams_with_global_indices():
    lines = iter(["C", "CC", "bad", "CCC", "CCCC", "", "CCCCC"])  # a one-pass iterator, like a file
    chunks = list(iter_featurized(lines, BASIC, on_invalid="skip", chunk_size=3))
    assert [c.indices for c in chunks] == [[0, 1], [3, 4], [6]]
    assert [r.index for c in chunks for r in c.invalid] == [2, 5]
    assert [g.num_nodes for c in chunks for g in c.graphs] == [1, 2, 3, 4, 5]


# ---- real data ------------------------------------------------------------------------------


def test_zinc_basic_fast_route_matches_general_route(zinc_smiles):
    fast = BASIC.featurize_batch(zinc_smiles)
    for smiles, graph in zip(zinc_smiles, fast, strict=True):
        assert same_graph(graph, BASIC.featurize_mol(parse_smiles(smiles))), smiles


def test_zinc_featurizes_with_both_schemes_without_nan(zinc_smiles):
    for featurizer in (BASIC, RICH):
        result = featurize_smiles(zinc_smiles, featurizer)
        assert len(result.graphs) == len(zinc_smiles) and not result.invalid
        for graph in result.graphs:
            assert graph.num_nodes > 0 and graph.edge_index.shape[1] == graph.edge_attr.shape[0]
            for key in ("x", "edge_attr", "pe"):
                if key in graph:
                    assert torch.isfinite(graph[key].float()).all()
    graphs = featurize_smiles(zinc_smiles[:50], RICH).graphs
    atoms = np.concatenate([g.x.numpy() for g in graphs])
    assert atoms[:, ATOM_NAMES.index("aromatic")].any() and atoms[:, ATOM_NAMES.index("hbond_acceptor")].any()
