"""Mean-variance regression head (``model.variance_head``): loss, unscaling, predict, ensembles, CLI."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

import molchannel
from molchannel.api import MIN_VARIANCE, head_predictions, head_predictions_with_std, init_model
from molchannel.cli.main import main as cli_main
from molchannel.ensemble import EnsembleModel
from molchannel.finetune import run_finetune
from molchannel.finetune.metrics import masked_gaussian_nll
from molchannel.nn.model import HeadConfig, MolChannelNet, NetConfig

REPO = Path(__file__).resolve().parents[2]
LOGP = REPO / "examples" / "zinc_logp.csv"


@pytest.fixture(scope="module", autouse=True)
def _one_thread_private_cache(one_thread_private_cache: None) -> None:
    """Every test of this module: one torch thread, a graph cache of its own (see conftest)."""


def test_gaussian_nll_is_hand_checked_and_skips_missing_labels() -> None:
    mean = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    variance = torch.tensor([[1.0, 4.0], [0.5, 2.0]])
    target = torch.tensor([[1.0, float("nan")], [2.0, 2.0]])
    expected = [0.5 * (0.0 + 1.0), 0.5 * (math.log(0.5) + 0.0), 0.5 * (math.log(2.0) + 4.0 / 2.0)]
    got = masked_gaussian_nll(mean, variance, target)
    assert got.item() == pytest.approx(sum(expected) / 3, rel=1e-6)
    assert masked_gaussian_nll(mean, variance, torch.full_like(target, float("nan"))).item() == 0.0


def test_variance_outputs_are_unscaled_into_target_units() -> None:
    """Eval mode gives the mean and variance in target units, through the network's target scaler
    buffers; ``predictions`` is the transform from the raw (training-mode) outputs."""
    base = init_model({"num_layers": 2, "hidden_dim": 16, "aggregator_heads": 2}, seed=0)
    head_config = HeadConfig(num_tasks=1, hidden_dim=8, variance=True)
    net = MolChannelNet(NetConfig(encoder=base.net.config.encoder, head=head_config)).eval()
    assert net.target_scaler is not None
    raw = torch.tensor([[0.5, -1.0], [1.5, 2.0]])
    variance = torch.nn.functional.softplus(raw[:, 1]) + MIN_VARIANCE
    identity = net.predictions(raw)
    assert identity[:, 0].tolist() == pytest.approx(raw[:, 0].tolist())
    assert identity[:, 1].tolist() == pytest.approx(variance.tolist(), rel=1e-6)

    batch = Batch.from_data_list([base.featurizer("CCO"), base.featurizer("c1ccccc1O")])
    unscaled = net(batch).detach()
    net.target_scaler.mean.fill_(2.0)
    net.target_scaler.std.fill_(3.0)
    scaled = net.predictions(raw)
    assert scaled[:, 0].tolist() == pytest.approx((2.0 + 3.0 * raw[:, 0]).tolist(), rel=1e-6)
    assert scaled[:, 1].tolist() == pytest.approx((9.0 * variance).tolist(), rel=1e-6)

    outputs = net(batch).detach()
    head = {"task_type": "regression", "variance": True}
    mean, std = head_predictions_with_std(outputs, head)
    assert std is not None
    assert mean[:, 0].tolist() == pytest.approx((2.0 + 3.0 * unscaled[:, 0]).tolist(), rel=1e-5)
    assert std[:, 0].tolist() == pytest.approx((3.0 * unscaled[:, 1].sqrt()).tolist(), rel=1e-5)
    assert torch.equal(head_predictions(outputs, head), mean)
    assert head_predictions_with_std(outputs[:, :1], {**head, "variance": False})[1] is None
    # Training mode skips the transform: the loss reads standardised means and raw variances. (Batch
    # norm kept on its running statistics, so that only the mode flag of the network differs.)
    net.train()
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
    assert torch.allclose(net.predictions(net(batch).detach()), outputs, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def variance_run(tmp_path_factory: pytest.TempPathFactory):
    model = init_model({"num_layers": 2, "hidden_dim": 32, "aggregator_heads": 4}, seed=3)
    base = model.save(tmp_path_factory.mktemp("models") / "tiny")
    config = {
        "data": {"path": str(LOGP), "targets": ["logp"], "task_type": "regression"},
        "model": {"pretrained": str(base), "head_hidden": 32, "extra_features": [], "variance_head": True},
        "optim": {"epochs": 3},
    }
    return run_finetune(config, tmp_path_factory.mktemp("runs") / "variance", quiet=True)


def test_variance_head_predicts_a_positive_spread_beside_the_same_means(variance_run) -> None:
    model = molchannel.load(variance_run.model_dir)
    assert model.has_variance_head
    smiles = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1"]
    mean, std = model.predict(smiles, return_std=True)
    assert mean.shape == std.shape == (3, 1)
    assert np.all(np.isfinite(std)) and np.all(std > 0)
    np.testing.assert_allclose(mean, model.predict(smiles), rtol=1e-6)
    assert np.isfinite(variance_run.valid_metric)
    # an ensemble of two identical members: no disagreement, so its spread is the members' own
    twice = EnsembleModel([model, molchannel.load(variance_run.model_dir)])
    _, spread = twice.predict(smiles, return_std=True)
    np.testing.assert_allclose(spread, std, rtol=1e-5)


def test_predict_cli_writes_the_spread_of_a_variance_model(variance_run, tmp_path: Path) -> None:
    smi = tmp_path / "in.smi"
    smi.write_text("CCO\nc1ccccc1O\n")
    out = tmp_path / "pred.csv"
    assert cli_main(["predict", "-m", str(variance_run.model_dir), "-i", str(smi), "-o", str(out), "-q"]) == 0
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and all(float(r["logp_std"]) > 0 for r in rows)


def test_return_std_without_a_spread_and_classification_variance_are_refused(
    variance_run, tmp_path: Path
) -> None:
    plain = init_model({"num_layers": 1, "hidden_dim": 16, "aggregator_heads": 1}, seed=0)
    with pytest.raises(ValueError, match="no prediction head"):
        plain.predict(["CCO"], return_std=True)
    without = molchannel.load(variance_run.model_dir)
    without.config["head"]["variance"] = False  # as a model fine-tuned with the squared error
    with pytest.raises(ValueError, match="variance_head true"):
        without.predict(["CCO"], return_std=True)
    data = tmp_path / "cls.csv"
    with open(LOGP, newline="") as fh:
        rows = list(csv.DictReader(fh))[:60]
    with open(data, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["smiles", "active"])
        for r in rows:
            writer.writerow([r["smiles"], int(float(r["logp"]) > 2.5)])
    config = {
        "data": {"path": str(data), "targets": ["active"], "task_type": "classification"},
        "model": {
            "pretrained": str(plain.save(tmp_path / "plain")),
            "variance_head": True,
            "extra_features": [],
        },
    }
    with pytest.raises(ValueError, match="variance_head"):
        run_finetune(config, tmp_path / "cls-run", quiet=True)


def test_sklearn_regressor_returns_the_predicted_std(tmp_path: Path) -> None:
    from molchannel.sklearn import MolChannelRegressor

    with open(LOGP, newline="") as fh:
        rows = list(csv.DictReader(fh))[:80]
    X, y = [r["smiles"] for r in rows], np.array([float(r["logp"]) for r in rows])
    base = init_model({"num_layers": 1, "hidden_dim": 16, "aggregator_heads": 1}, seed=0).save(tmp_path / "m")
    common = {"model": str(base), "epochs": 2, "head_hidden": 16, "extra_features": ()}
    reg = MolChannelRegressor(**common, config={"model": {"variance_head": True}}).fit(X, y)
    mean, std = reg.predict(X[:4], return_std=True)
    assert mean.shape == std.shape == (4,) and np.all(std > 0)
    np.testing.assert_allclose(mean, reg.predict(X[:4]), rtol=1e-6)
    plain = MolChannelRegressor(**common).fit(X, y)
    with pytest.raises(ValueError, match="variance_head"):
        plain.predict(X[:2], return_std=True)


def test_ensemble_run_scores_the_spread_it_calibrates(tmp_path: Path) -> None:
    """The test-set uncertainty of a mean-variance ensemble uses the members' variances, like predict."""
    from molchannel.finetune.ensemble import run_ensemble

    base = init_model({"num_layers": 1, "hidden_dim": 16, "aggregator_heads": 1}, seed=0).save(tmp_path / "m")
    config = {
        "data": {"path": str(LOGP), "targets": ["logp"], "task_type": "regression"},
        "model": {"pretrained": str(base), "head_hidden": 16, "extra_features": [], "variance_head": True},
        "optim": {"epochs": 2},
    }
    result = run_ensemble(config, tmp_path / "ens", size=2, quiet=True)
    ensemble = molchannel.load_ensemble(result.model_dir)
    with open(LOGP, newline="") as fh:
        smiles = [r["smiles"] for r in csv.DictReader(fh)]
    mean, std = ensemble.predict([smiles[i] for i in result.test_indices], return_std=True)
    np.testing.assert_allclose(result.test_std, std, rtol=1e-5)
    np.testing.assert_allclose(result.test_predictions, mean, rtol=1e-5)
    disagreement = np.stack([m.test_predictions for m in result.members]).std(axis=0)
    assert np.all(result.test_std > disagreement)  # the members' own variances count
    assert 0 <= result.uncertainty["coverage_90"] <= 1
