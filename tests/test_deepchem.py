"""DeepChem featurizer: equal to the Python API, DeepChem's failure convention, and a DeepChem model
trained on the features beating the mean predictor on ESOL."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

logging.getLogger("deepchem").setLevel(logging.ERROR)  # its import lists optional backends it lacks
dc = pytest.importorskip("deepchem", reason="DeepChem is not installed (pip install 'molchannel[deepchem]')")
pytestmark = pytest.mark.requires_deepchem

from rdkit import Chem  # noqa: E402
from sample_molecules import SAMPLE_SMILES  # noqa: E402

import molchannel  # noqa: E402
from molchannel.deepchem import MolChannelFeaturizer  # noqa: E402

SMILES = [SAMPLE_SMILES[i] for i in (0, 1, 2, 3, 4, 7)]


@pytest.fixture(scope="module")
def model() -> molchannel.api.MolChannelModel:
    return molchannel.load("default")


def test_featurize_equals_embed(model) -> None:
    featurizer = MolChannelFeaturizer()
    assert isinstance(featurizer, dc.feat.MolecularFeaturizer)
    X = featurizer.featurize(SMILES)
    assert X.dtype == np.float32 and X.shape == (len(SMILES), model.embedding_dim)
    np.testing.assert_array_equal(X, model.embed(SMILES))
    np.testing.assert_array_equal(featurizer(SMILES), X)  # Featurizer.__call__
    np.testing.assert_array_equal(featurizer.featurize("CCO"), model.embed(["CCO"]))
    every = MolChannelFeaturizer(channel="all").featurize(SMILES)
    np.testing.assert_array_equal(every, model.embed(SMILES, channel="all").reshape(len(SMILES), -1))
    # RDKit molecules (written as canonical SMILES, so the atom order differs: rounding only)
    mols = [Chem.AddHs(Chem.MolFromSmiles(s)) for s in SMILES]
    np.testing.assert_allclose(featurizer.featurize(mols), X, atol=1e-5)
    np.testing.assert_allclose(featurizer._featurize(mols[2]), X[2], atol=1e-5)
    with pytest.raises(ValueError, match="channel must be"):
        MolChannelFeaturizer(channel="nope").featurize(SMILES)


def test_failures_follow_deepchem(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    smiles = ["CCO", "not a smiles", "c1ccccc1"]
    with caplog.at_level(logging.WARNING, logger="molchannel.deepchem"):
        X = MolChannelFeaturizer().featurize(smiles)
    assert "Failed to featurize datapoint 1, not a smiles. Appending empty array" in caplog.text
    reference = dc.feat.CircularFingerprint(size=64).featurize(smiles)  # DeepChem's own convention
    assert X.dtype == reference.dtype == object and X.shape == reference.shape == (3,)
    assert [x.size == 0 for x in X] == [x.size == 0 for x in reference] == [False, True, False]
    # DeepChem's loaders drop the failed rows
    csv = tmp_path / "mols.csv"
    csv.write_text("smiles,y\nCCO,1.0\nnot a smiles,2.0\nc1ccccc1,3.0\n")
    loader = dc.data.CSVLoader(tasks=["y"], feature_field="smiles", featurizer=MolChannelFeaturizer())
    dataset = loader.create_dataset(str(csv), data_dir=str(tmp_path / "disk"))
    assert dataset.X.shape == (2, X[0].size) and list(dataset.ids) == ["CCO", "c1ccccc1"]
    np.testing.assert_allclose(dataset.y[:, 0], [1.0, 3.0])


@pytest.mark.data
@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad:UserWarning")  # DeepChem's own
def test_deepchem_models_learn_esol_from_the_features(data_dir: Path) -> None:
    from sklearn.linear_model import Ridge

    from molchannel.data import load_dataset

    table = load_dataset("esol", data_dir, download=False)
    X = MolChannelFeaturizer().featurize(table.smiles)
    dataset = dc.data.NumpyDataset(X, table.targets, ids=np.array(table.smiles))
    train, test = dc.splits.RandomSplitter().train_test_split(dataset, frac_train=0.8, seed=0)
    metric = dc.metrics.Metric(dc.metrics.rms_score)
    baseline = float(np.sqrt(np.mean((test.y - train.y.mean()) ** 2)))  # predict the training mean

    ridge = dc.models.SklearnModel(Ridge(alpha=1.0))
    ridge.fit(train)
    ridge_rmse = ridge.evaluate(test, [metric])["rms_score"]
    assert ridge_rmse < 0.7 * baseline, (ridge_rmse, baseline)  # about 0.57 x at this split

    torch.manual_seed(0)
    net = dc.models.MultitaskRegressor(
        n_tasks=1, n_features=X.shape[1], layer_sizes=[64], dropouts=0.0, learning_rate=1e-3, batch_size=64
    )
    net.fit(train, nb_epoch=30)
    net_rmse = net.evaluate(test, [metric])["rms_score"]
    assert net_rmse < 0.8 * baseline, (net_rmse, baseline)  # about 0.62 x


def test_pickled_featurizer_reloads(model) -> None:
    import pickle

    featurizer = MolChannelFeaturizer()
    X = featurizer.featurize(SMILES)
    restored = pickle.loads(pickle.dumps(featurizer))
    assert restored._model is None
    np.testing.assert_array_equal(restored.featurize(SMILES), X)
