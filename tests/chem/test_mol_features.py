"""Molecule-level extra features: generators, the scaler the model keeps, and fine-tuning that uses them.

The learning test trains the head of a tiny random-init model (backbone frozen) on a target that is a
molecular descriptor (Crippen logP): with ``model.extra_features: [rdkit2d]`` the head reads that descriptor
and the validation error must fall far below that of the head on the graph embedding alone.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import Crippen, Descriptors

import molchannel
from molchannel.api import init_model
from molchannel.chem.mol_features import (
    cached_molecule_features,
    check_mol_features,
    feature_column_names,
    mol_feature_names,
    mol_features_dim,
    molecule_features,
)
from molchannel.finetune import run_finetune
from molchannel.model_folder import ModelFolderError
from molchannel.nn.model import FeatureScaler, HeadConfig

REPO = Path(__file__).resolve().parents[2]


def test_generators_compute_what_their_names_say() -> None:
    assert {"rdkit2d", "morgan_counts", "morgan_bits"} <= set(mol_feature_names())
    smiles = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1"]
    x = molecule_features(smiles, ["rdkit2d", "morgan_counts", "morgan_bits"])
    names = feature_column_names(["rdkit2d", "morgan_counts", "morgan_bits"])
    assert x.shape == (3, mol_features_dim(["rdkit2d", "morgan_counts", "morgan_bits"])) == (3, len(names))
    assert x.dtype == np.float32
    rdkit2d = mol_features_dim(["rdkit2d"])
    assert rdkit2d == len(Descriptors.descList) - 1  # every descriptor but Ipc
    logp = names.index("MolLogP")
    expected = [Crippen.MolLogP(Chem.MolFromSmiles(s)) for s in smiles]
    np.testing.assert_allclose(x[:, logp], expected, rtol=1e-5)
    counts, bits = x[:, rdkit2d : rdkit2d + 2048], x[:, rdkit2d + 2048 :]
    np.testing.assert_array_equal(bits, (counts > 0).astype(np.float32))
    assert counts.max() > 1  # counts, not bits: paracetamol's aromatic CH occurs 4 times


def test_invalid_molecules_give_nan_rows_and_names_are_checked() -> None:
    x = molecule_features(["CCO", "not a smiles", Chem.MolFromSmiles("c1ccccc1")], ["rdkit2d"])
    assert np.isfinite(x[0]).sum() > 200 and np.isnan(x[1]).all() and np.isfinite(x[2]).sum() > 200
    with pytest.raises(ValueError, match="unknown molecule feature generator 'rdkit'; choose one of"):
        check_mol_features(["rdkit"])
    with pytest.raises(ValueError, match="list of names"):
        check_mol_features("rdkit2d")
    with pytest.raises(ValueError, match="twice"):
        check_mol_features(["rdkit2d", "rdkit2d"])


def test_feature_cache_is_keyed_by_the_molecules(tmp_path: Path) -> None:
    a = cached_molecule_features(["CCO", "CCN"], ["rdkit2d"], tmp_path)
    assert len(list(tmp_path.glob("molfeatures-*.npy"))) == 1
    again = cached_molecule_features(["CCO", "CCN"], ["rdkit2d"], tmp_path)
    np.testing.assert_array_equal(a, again)
    other = cached_molecule_features(["CCO", "CCCl"], ["rdkit2d"], tmp_path)
    assert len(list(tmp_path.glob("molfeatures-*.npy"))) == 2 and not np.array_equal(a[1], other[1])


def test_scaler_uses_finite_training_values_and_maps_nan_to_the_mean() -> None:
    train = np.array([[1.0, 5.0, np.nan], [3.0, 5.0, 2.0], [np.inf, 5.0, 4.0]], dtype=np.float32)
    scaler = FeatureScaler(3, clip=6.0)
    counts = scaler.fit(train)
    assert counts == {"nonfinite_columns": 2, "constant_columns": 1}
    np.testing.assert_allclose(scaler.mean.numpy(), [2.0, 5.0, 3.0])
    np.testing.assert_allclose(scaler.std.numpy(), [1.0, 1.0, 1.0])  # constant column: std 1
    z = scaler(torch.tensor([[2.0, 5.0, float("nan")], [100.0, 6.0, 1.0]]))
    np.testing.assert_allclose(z.numpy(), [[0.0, 0.0, 0.0], [6.0, 1.0, -2.0]])  # NaN -> mean, clipped
    with pytest.raises(ValueError, match="disagree"):
        HeadConfig(num_tasks=1, extra_features=["rdkit2d"], extra_dim=0)


@pytest.fixture(scope="module")
def logp_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SMILES with a Crippen logP target and a fixed train / valid split (first 80% train)."""
    smiles = (REPO / "examples" / "zinc_sample.smi").read_text().split()[:150]
    path = tmp_path_factory.mktemp("data") / "logp.csv"
    cut = int(0.8 * len(smiles))
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["smiles", "logp", "split"])
        for i, s in enumerate(smiles):
            writer.writerow([s, Crippen.MolLogP(Chem.MolFromSmiles(s)), "train" if i < cut else "valid"])
    return path


@pytest.fixture(scope="module")
def random_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init_model({"num_layers": 2, "hidden_dim": 32, "aggregator_heads": 4}, seed=7).save(
        tmp_path_factory.mktemp("models") / "random"
    )


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _logp_run(csv_path: Path, model: Path, out: Path, extra: list[str]):
    config = {
        "data": {"path": str(csv_path), "targets": ["logp"], "task_type": "regression", "split": "column",
                 "batch_size": 16, "cache_dir": str(out.parent / "cache")},
        "model": {"pretrained": str(model), "head_hidden": 64, "extra_features": extra},
        "optim": {"epochs": 15, "lr_head": 3e-3, "early_stopping": None, "freeze_backbone": True},
    }  # fmt: skip
    return run_finetune(config, out, quiet=True)


@pytest.fixture(scope="module")
def rdkit_run(logp_csv: Path, random_model: Path, tmp_path_factory: pytest.TempPathFactory):
    return _logp_run(logp_csv, random_model, tmp_path_factory.mktemp("runs") / "rdkit2d", ["rdkit2d"])


def test_extra_features_teach_a_descriptor_target_and_travel_with_the_model(
    logp_csv: Path, random_model: Path, rdkit_run, tmp_path: Path
) -> None:
    graph_only = _logp_run(logp_csv, random_model, tmp_path / "graph", [])
    with_rdkit = rdkit_run
    # the head reads logP itself among the descriptors: far below the error of the head on the (frozen,
    # random) graph embedding alone
    assert with_rdkit.valid_metric < 0.6 * graph_only.valid_metric, (
        with_rdkit.valid_metric,
        graph_only.valid_metric,
    )

    model = molchannel.load(with_rdkit.model_dir)
    assert model.info()["extra_features"] == ["rdkit2d"]
    config = json.loads((with_rdkit.model_dir / "config.json").read_text())
    assert config["network"]["head"]["extra_dim"] == mol_features_dim(["rdkit2d"])
    assert config["provenance"]["rdkit_version"]
    # predict computes the features itself; the scaler statistics are in the weights
    rows = _rows(logp_csv)
    valid = [r for r in rows if r["split"] == "valid"]
    pred = model.predict([r["smiles"] for r in valid])[:, 0]
    rmse = float(np.sqrt(np.mean((pred - np.array([float(r["logp"]) for r in valid])) ** 2)))
    assert rmse == pytest.approx(with_rdkit.valid_metric, rel=1e-4)
    assert float(model.net.extra_scaler.std.min()) > 0 and float(model.net.extra_scaler.mean.abs().sum()) > 0
    # an invalid SMILES gives NaN under on_invalid="nan", and the rest are unchanged
    mixed = model.predict(["not a smiles", valid[0]["smiles"]], on_invalid="nan")
    assert np.isnan(mixed[0]).all() and mixed[1, 0] == pytest.approx(pred[0], rel=1e-5)


def test_a_model_whose_feature_width_differs_from_this_rdkit_is_refused(rdkit_run, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(rdkit_run.model_dir, model_dir)
    config_file = model_dir / "config.json"
    config = json.loads(config_file.read_text())
    config["network"]["head"]["extra_dim"] += 1  # as if saved by an RDKit with one more descriptor
    config_file.write_text(json.dumps(config))
    with pytest.raises(ModelFolderError, match="molecule features"):
        molchannel.load(model_dir)


def test_sklearn_regressor_takes_extra_features(logp_csv: Path, random_model: Path) -> None:
    from molchannel.sklearn import MolChannelRegressor

    rows = _rows(logp_csv)
    X, y = [r["smiles"] for r in rows], np.array([float(r["logp"]) for r in rows])
    reg = MolChannelRegressor(model=str(random_model), extra_features=("rdkit2d",), epochs=2, head_hidden=16)
    reg.fit(X, y)
    assert reg.model_.info()["extra_features"] == ["rdkit2d"]
    assert reg.predict(X[:3]).shape == (3,)
    with pytest.raises(ValueError, match="unknown molecule feature generator"):
        MolChannelRegressor(model=str(random_model), extra_features=("nope",), epochs=1).fit(X, y)
