"""Scaffolds and splits, including index-for-index parity with DeepChem's ScaffoldSplitter."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest

from molchannel.chem import InvalidSmilesError, murcko_scaffold_smiles, scaffold_atom_indices, scaffold_mol
from molchannel.data import (
    Split,
    load_dataset,
    official_split,
    random_scaffold_split,
    random_split,
    scaffold_split,
)

# index: scaffold -> groups {benzene: [0, 1, 3], cyclohexane: [2, 7], acyclic "": [4, 6],
# pyridine: [5], naphthalene: [8], cyclopropane: [9]}
TOY = [
    "c1ccccc1C",
    "c1ccccc1CC",
    "C1CCCCC1O",
    "c1ccccc1O",
    "CCO",
    "c1ccncc1C",
    "CCCC",
    "C1CCCCC1N",
    "c1ccc2ccccc2c1",
    "C1CC1",
]


# ---- scaffolds -------------------------------------------------------------------------------
def test_murcko_scaffold_hand_checked() -> None:
    assert murcko_scaffold_smiles("Cc1cc(Oc2nccc(CCC)c2)ccc1") == "c1ccc(Oc2ccccn2)cc1"  # RDKit's own example
    assert murcko_scaffold_smiles("CCO") == ""
    chiral = "C[C@H](N)c1ccccc1C[C@@H]1CCCN1"
    assert murcko_scaffold_smiles(chiral) == "c1ccc(C[C@@H]2CCCN2)cc1"
    assert murcko_scaffold_smiles(chiral, include_chirality=False) == "c1ccc(CC2CCCN2)cc1"
    with pytest.raises(InvalidSmilesError):
        murcko_scaffold_smiles("C1CC")


def test_scaffold_mol_and_atoms_keep_exocyclic_double_bonds() -> None:
    from rdkit import Chem

    assert Chem.MolToSmiles(scaffold_mol("CCC1CCCCC1=O")) == "O=C1CCCCC1"
    assert scaffold_mol("CCO").GetNumAtoms() == 0
    # ethyl (atoms 0, 1) and the carbonyl oxygen of the ester side chain (8, 9, 10) are not scaffold
    assert scaffold_atom_indices("CCc1ccccc1C(=O)OC") == [2, 3, 4, 5, 6, 7]
    assert scaffold_atom_indices("CC(=O)NC") == []


# ---- deterministic scaffold split ------------------------------------------------------------
def test_scaffold_split_hand_checked() -> None:
    # groups ordered by (size, first index) descending: benzene (3, 0), acyclic (2, 4), cyclohexane
    # (2, 2), cyclopropane (1, 9), naphthalene (1, 8), pyridine (1, 5). Cutoffs 8 and 9 molecules:
    # 3 + 2 + 2 + 1 = 8 fill train, naphthalene fits valid, pyridine goes to test.
    split = scaffold_split(TOY)
    assert split.train.tolist() == [0, 1, 3, 4, 6, 2, 7, 9]
    assert split.valid.tolist() == [8]
    assert split.test.tolist() == [5]
    assert split.excluded.tolist() == []


def test_a_smaller_later_group_still_fills_train() -> None:
    # five benzenes (rows 0-4), four cyclohexanes (5-8), one pyridine (9); n = 10, cutoffs 8 and 9.
    # benzene -> train (5); cyclohexane: 5 + 4 > 8, fits valid (4 <= 9); pyridine: 5 + 1 <= 8 -> train.
    smiles = ["c1ccccc1", "Cc1ccccc1", "CCc1ccccc1", "Oc1ccccc1", "Nc1ccccc1",
              "C1CCCCC1", "CC1CCCCC1", "OC1CCCCC1", "NC1CCCCC1", "c1ccncc1"]  # fmt: skip
    split = scaffold_split(smiles, frac=(0.8, 0.1, 0.1))
    assert split.train.tolist() == [0, 1, 2, 3, 4, 9]
    assert split.valid.tolist() == [5, 6, 7, 8]
    assert split.test.tolist() == []


def test_invalid_rows_are_excluded_but_counted() -> None:
    smiles = [*TOY, "C1CC(", ""]
    split = scaffold_split(smiles)
    assert split.excluded.tolist() == [10, 11]
    # n = 12: cutoffs 9.6 and 10.8. 3 + 2 + 2 + 1 + 1 (naphthalene) = 9 train, pyridine -> 10 valid
    assert split.train.tolist() == [0, 1, 3, 4, 6, 2, 7, 9, 8]
    assert split.valid.tolist() == [5]
    assert split.test.tolist() == []
    hu_style = scaffold_split(smiles, count_invalid=False)  # n = 10: the same as without the bad rows
    assert hu_style.train.tolist() == [0, 1, 3, 4, 6, 2, 7, 9]


def test_fractions_are_checked() -> None:
    with pytest.raises(ValueError, match="fractions"):
        scaffold_split(TOY, frac=(0.8, 0.1, 0.2))


def _check_scaffold_partition(split: Split, smiles: list[str], include_chirality: bool) -> None:
    parts = [split.train, split.valid, split.test, split.excluded]
    everything = np.sort(np.concatenate(parts))
    np.testing.assert_array_equal(everything, np.arange(len(smiles)))  # covering and disjoint
    owner: dict[str, int] = {}
    for k, part in enumerate(parts[:3]):
        for i in part:
            scaffold = murcko_scaffold_smiles(smiles[i], include_chirality)
            assert owner.setdefault(scaffold, k) == k, f"scaffold {scaffold!r} in two subsets"


@pytest.mark.data
def test_scaffold_split_properties_on_bbbp(data_dir: Path) -> None:
    table = load_dataset("bbbp", data_dir)
    split = scaffold_split(table.smiles)
    _check_scaffold_partition(split, table.smiles, include_chirality=True)
    # cutoffs 0.8 * 2050 = 1640 and 0.9 * 2050 = 1845 are met exactly (singleton scaffolds top them up);
    # the 11 unparseable rows count in n but sit in no subset, so test gets 2039 - 1845 = 194
    assert split.sizes == (1640, 205, 194)
    assert sorted(split.excluded.tolist()) == sorted(r.index for r in table.invalid)
    again = scaffold_split(table.smiles)
    assert again.to_json() == split.to_json()


# ---- random scaffold and random splits -------------------------------------------------------
@pytest.mark.data
def test_random_scaffold_split_is_seeded_and_scaffold_disjoint(zinc_smiles: list[str]) -> None:
    smiles = zinc_smiles[:600]
    a = random_scaffold_split(smiles, seed=1)
    assert a.to_json() == random_scaffold_split(smiles, seed=1).to_json()
    assert a.to_json() != random_scaffold_split(smiles, seed=2).to_json()
    _check_scaffold_partition(a, smiles, include_chirality=True)
    assert len(a.valid) <= 60 and len(a.test) <= 60
    assert len(a.valid) >= 55 and len(a.test) >= 55  # ZINC has many singleton scaffolds to top up with


def test_random_scaffold_split_hand_checked() -> None:
    # groups in first-appearance order: benzene [0,1,3], cyclohexane [2,7], acyclic [4,6], pyridine [5],
    # naphthalene [8], cyclopropane [9]; RandomState(0).permutation(6) = [5, 2, 1, 3, 0, 4].
    # valid <= 1, test <= 1: cyclopropane -> valid, acyclic (2) -> train, cyclohexane -> train,
    # pyridine -> test, benzene -> train, naphthalene -> train.
    assert np.random.RandomState(0).permutation(6).tolist() == [5, 2, 1, 3, 0, 4]
    split = random_scaffold_split(TOY, seed=0)
    assert split.valid.tolist() == [9]
    assert split.test.tolist() == [5]
    assert sorted(split.train.tolist()) == [0, 1, 2, 3, 4, 6, 7, 8]


def test_random_split_sizes_seed_and_mask() -> None:
    split = random_split(101, seed=3)
    assert split.sizes == (80, 10, 11)
    assert split.to_json() == random_split(101, seed=3).to_json()
    assert split.train.tolist() != random_split(101, seed=4).train.tolist()
    mask = np.ones(101, dtype=bool)
    mask[[5, 50]] = False
    masked = random_split(101, seed=3, valid_mask=mask)
    assert masked.excluded.tolist() == [5, 50]
    assert masked.sizes == (79, 9, 11)
    assert not {5, 50} & set(np.concatenate([masked.train, masked.valid, masked.test]).tolist())


# ---- official split --------------------------------------------------------------------------
def test_official_split_and_carved_validation() -> None:
    column = ["train", "test", "train", "train", "Train ", "test", "train", "train", "train", "train"]
    split = official_split(column)
    assert split.train.tolist() == [0, 2, 3, 4, 6, 7, 8, 9]
    assert split.test.tolist() == [1, 5]
    assert split.valid.tolist() == []
    carved = official_split(column, valid_frac=0.25, seed=0)
    assert len(carved.valid) == 2
    assert sorted([*carved.train.tolist(), *carved.valid.tolist()]) == split.train.tolist()
    assert carved.test.tolist() == [1, 5]
    with pytest.raises(ValueError, match="valid"):
        official_split(["train", "valid"])


def _moleculeace_official_counts(data_dir: Path) -> dict[str, tuple[int, int]]:
    with open(data_dir / "moleculeace" / "metadata_datasets.csv", newline="") as fh:
        return {
            r["Dataset"]: (int(r["Train compounds"]), int(r["Test compounds"])) for r in csv.DictReader(fh)
        }


# MoleculeACE 3.0.0's data files and its metadata_datasets.csv disagree for these six datasets (the
# table describes an earlier release of the data: CHEMBL219_Ki and CHEMBL237_Ki even have other row
# counts, and the cliff counts differ for all 30). The split column of the data file is the official split.
METADATA_DISAGREES = {
    "CHEMBL234_Ki": (2924, 733),
    "CHEMBL219_Ki": (1491, 374),
    "CHEMBL237_Ki": (2081, 522),
    "CHEMBL239_EC50": (1374, 347),
    "CHEMBL3979_EC50": (899, 226),
    "CHEMBL235_EC50": (1877, 472),
}


@pytest.mark.data
def test_moleculeace_official_split_counts_match_metadata(data_dir: Path) -> None:
    expected = _moleculeace_official_counts(data_dir)
    assert len(expected) == 30
    for name, counts in expected.items():
        with open(data_dir / "moleculeace" / f"{name}.csv", newline="") as fh:
            column = [row["split"] for row in csv.DictReader(fh)]
        split = official_split(column)
        assert len(split.train) + len(split.test) == len(column)
        assert (len(split.train), len(split.test)) == METADATA_DISAGREES.get(name, counts), name


# ---- Split object ----------------------------------------------------------------------------
def test_split_json_round_trip_and_overlap_check() -> None:
    split = scaffold_split(TOY)
    back = Split.from_json(split.to_json())
    for name in ("train", "valid", "test", "excluded"):
        np.testing.assert_array_equal(getattr(back, name), getattr(split, name))
        assert getattr(back, name).dtype == np.int64
    assert back.method == "scaffold" and back.params["include_chirality"] is True
    with pytest.raises(ValueError, match="twice"):
        Split(train=[0, 1], valid=[1], test=[2])


# ---- DeepChem parity -------------------------------------------------------------------------
PARITY_DATASETS = ("bbbp", "bace", "clintox", "esol", "freesolv", "lipophilicity", "sider", "tox21")


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.requires_deepchem
def test_scaffold_split_equals_deepchem(data_dir: Path) -> None:
    """Index-for-index equality with deepchem.splits.ScaffoldSplitter (which uses includeChirality=False).

    HIV, MUV and ToxCast are left out to keep this test near 30 s.
    """
    logging.getLogger("deepchem").setLevel(logging.ERROR)
    dc = pytest.importorskip("deepchem")
    from rdkit.rdBase import BlockLogs

    splitter = dc.splits.ScaffoldSplitter()
    for name in PARITY_DATASETS:
        table = load_dataset(name, data_dir)
        dataset = dc.data.NumpyDataset(X=np.zeros((len(table), 1)), ids=np.array(table.smiles, dtype=object))
        with BlockLogs():
            train, valid, test = splitter.split(dataset, frac_train=0.8, frac_valid=0.1, frac_test=0.1)
        ours = scaffold_split(table.smiles, frac=(0.8, 0.1, 0.1), include_chirality=False)
        assert ours.train.tolist() == list(train), name
        assert ours.valid.tolist() == list(valid), name
        assert ours.test.tolist() == list(test), name
