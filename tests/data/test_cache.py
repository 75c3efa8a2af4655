"""The on-disk graph cache: round trip, keying, corruption handling, invalid rows."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from molchannel.chem import BasicFeaturizer, FeaturizerSpec, parse_smiles
from molchannel.data import MoleculeTable, load_or_build_graphs

SMILES = ["CCO", "C1CC(", "c1ccccc1O", "[Na+].[Cl-]", "C[C@H](N)C(=O)O", ""]
VALID_ROWS = [0, 2, 3, 4]


class CountingFeaturizer:
    """The basic featurizer plus an optional float field, counting how often it runs."""

    def __init__(self, version: int = 1, with_pe: bool = False) -> None:
        self.spec = FeaturizerSpec("counting", version, {"pe": with_pe})
        self.with_pe = with_pe
        self.calls = 0
        self._basic = BasicFeaturizer()

    def featurize_mol(self, mol: object) -> Data:
        self.calls += 1
        data = self._basic.featurize_mol(mol)
        if self.with_pe:
            data.pe = torch.arange(data.num_nodes * 3, dtype=torch.float32).reshape(-1, 3) / 7
        return data


def _assert_same_graph(a: Data, b: Data) -> None:
    assert sorted(a.keys()) == sorted(b.keys())
    for key, value in a.items():
        assert value.dtype == b[key].dtype, key
        assert torch.equal(value, b[key]), key


def test_round_trip_gives_identical_tensors(tmp_path: Path) -> None:
    featurizer = CountingFeaturizer(with_pe=True)
    built = load_or_build_graphs(SMILES, featurizer, tmp_path)
    assert featurizer.calls == 4
    loaded = load_or_build_graphs(SMILES, featurizer, tmp_path)
    assert featurizer.calls == 4  # served from disk
    assert len(loaded) == 4
    reference = CountingFeaturizer(with_pe=True)
    basic = BasicFeaturizer()
    for pos, row in enumerate(VALID_ROWS):
        expected = reference.featurize_mol(parse_smiles(SMILES[row]))
        _assert_same_graph(loaded[pos], expected)
        _assert_same_graph(built[pos], expected)
    # hand-checked: ethanol has 3 heavy atoms and 4 directed bonds; NaCl two atoms and no bonds
    assert loaded[0].x.tolist() == [[5, 0], [5, 0], [7, 0]]
    assert loaded[0].edge_index.shape == (2, 4)
    assert loaded[2].edge_index.shape == (2, 0) and loaded[2].x[:, 0].tolist() == [10, 16]
    assert basic.featurize_mol(parse_smiles("CCO")).x.dtype == torch.long


def test_files_are_safetensors_plus_manifest(tmp_path: Path) -> None:
    load_or_build_graphs(SMILES, CountingFeaturizer(), tmp_path, name="toy set")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 2
    assert names[0].startswith("toy_set-") and names[0].endswith(".json")
    assert names[1].endswith(".safetensors")
    manifest = json.loads((tmp_path / names[0]).read_text())
    assert manifest["key"]["featurizer"] == "counting-v1[pe=False]"
    assert set(manifest["key"]) >= {"source_sha256", "molchannel", "torch_geometric", "rdkit", "format"}
    assert [entry[0] for entry in manifest["invalid"]] == [1, 5]


def test_invalid_rows_are_absent_and_mapped(tmp_path: Path) -> None:
    store = load_or_build_graphs(SMILES, CountingFeaturizer(), tmp_path)
    assert store.n_rows == 6
    assert store.row_index.tolist() == VALID_ROWS
    assert store.graph_of_row.tolist() == [0, -1, 1, 2, 3, -1]
    assert [r.index for r in store.invalid] == [1, 5]
    assert store.positions_for_rows([5, 4, 1, 0]).tolist() == [3, 0]
    with pytest.raises(IndexError):
        store[4]
    assert store[-1].x.shape[0] == 6  # alanine's heavy atoms


def test_changed_featurizer_key_rebuilds(tmp_path: Path) -> None:
    first = CountingFeaturizer(version=1)
    load_or_build_graphs(SMILES, first, tmp_path)
    second = CountingFeaturizer(version=2)
    load_or_build_graphs(SMILES, second, tmp_path)
    assert second.calls == 4
    assert len(list(tmp_path.glob("*.safetensors"))) == 2
    changed_source = CountingFeaturizer(version=1)
    load_or_build_graphs(SMILES, changed_source, tmp_path, source_sha256="0" * 64)
    assert changed_source.calls == 4


@pytest.mark.parametrize("damage", ["garbage", "truncate", "manifest"])
def test_corrupt_cache_is_detected_and_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    featurizer = CountingFeaturizer()
    original = load_or_build_graphs(SMILES, featurizer, tmp_path)
    data_file = next(tmp_path.glob("*.safetensors"))
    if damage == "garbage":
        blob = bytearray(data_file.read_bytes())
        blob[len(blob) // 2 : len(blob) // 2 + 16] = b"\xff" * 16  # same size, damaged payload
        data_file.write_bytes(bytes(blob))
    elif damage == "truncate":
        data_file.write_bytes(data_file.read_bytes()[:100])
    else:
        next(tmp_path.glob("*.json")).write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="molchannel.data.cache"):
        rebuilt = load_or_build_graphs(SMILES, featurizer, tmp_path)
    assert featurizer.calls == 8
    assert "unusable" in caplog.text and "rebuilding" in caplog.text
    for pos in range(len(original)):
        _assert_same_graph(rebuilt[pos], original[pos])
    again = load_or_build_graphs(SMILES, featurizer, tmp_path)  # the rebuilt cache is now trusted
    assert featurizer.calls == 8
    _assert_same_graph(again[1], original[1])


def test_graphs_are_copies(tmp_path: Path) -> None:
    store = load_or_build_graphs(SMILES, CountingFeaturizer(), tmp_path)
    graph = store[1]
    graph.x[:, 0] = 119  # e.g. masking atoms for pre-training
    assert store[1].x[0, 0].item() == 5


def test_table_input_uses_the_source_checksum_and_name(tmp_path: Path) -> None:
    table = MoleculeTable(
        name="mine",
        smiles=["CCO", "CCN"],
        targets=np.zeros((2, 1), np.float32),
        target_names=("y",),
        task_type="regression",
        metric="rmse",
        source_sha256="ab" * 32,
    )
    store = load_or_build_graphs(table, CountingFeaturizer(), tmp_path)
    assert store.key["source_sha256"] == "ab" * 32
    assert store.path is not None and store.path.name.startswith("mine-")


def test_no_cache_dir_builds_in_memory(tmp_path: Path) -> None:
    store = load_or_build_graphs(["CCO"], CountingFeaturizer(), None)
    assert len(store) == 1 and store.path is None


@pytest.mark.data
def test_zinc_sample_round_trip(zinc_smiles: list[str], tmp_path: Path) -> None:
    smiles = zinc_smiles[:300]
    featurizer = BasicFeaturizer()
    load_or_build_graphs(smiles, featurizer, tmp_path)
    store = load_or_build_graphs(smiles, featurizer, tmp_path)
    assert len(store) == 300
    for i in (0, 137, 299):
        _assert_same_graph(store[i], featurizer(smiles[i]))
