"""The ECFP-SVR kernel member (``model.kernel_blend: ecfp_svr``): fit, blend weight, model folder, predict."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import molchannel
from molchannel.api import init_model
from molchannel.ensemble import EnsembleModel
from molchannel.finetune import run_finetune
from molchannel.finetune.baselines import SvmBaselineConfig, select_ecfp_svm
from molchannel.finetune.kernel_blend import fit_kernel_member
from molchannel.kernel_member import SvrTask, ecfp_bits
from molchannel.model_folder import ModelFolderError

REPO = Path(__file__).resolve().parents[2]
LOGP = REPO / "examples" / "zinc_logp.csv"
SMALL_GRID = SvmBaselineConfig(c_grid=(1.0, 10.0), gamma_grid=(1e-3, 1e-2))


@pytest.fixture(scope="module", autouse=True)
def _one_thread_private_cache(one_thread_private_cache: None) -> None:
    """Every test of this module: one torch thread, a graph cache of its own (see conftest)."""


def _logp() -> tuple[list[str], np.ndarray]:
    with open(LOGP, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r["smiles"] for r in rows], np.array([float(r["logp"]) for r in rows])


def test_the_stored_svr_predicts_as_scikit_learns() -> None:
    """Support vectors, dual weights and intercept reproduce scikit-learn's RBF SVR without it."""
    from sklearn.svm import SVR

    smiles, y = _logp()
    bits = ecfp_bits(smiles)
    model, params, _, _ = select_ecfp_svm(bits[:200], y[:200], SMALL_GRID)
    task = SvrTask(bits[:200][model.support_], model.dual_coef_[0], float(model.intercept_[0]),
                   params["gamma"], 1.0, params, 0.0)  # fmt: skip
    reference = SVR(kernel="rbf", C=params["C"], gamma=params["gamma"], epsilon=0.1).fit(bits[:200], y[:200])
    np.testing.assert_allclose(task.predict(bits[200:]), reference.predict(bits[200:]), rtol=1e-6, atol=1e-8)


def test_the_blend_weight_follows_which_model_is_better_on_validation() -> None:
    smiles, y = _logp()
    train, valid = slice(0, 200), slice(200, 260)
    targets = y[:, None]
    rng = np.random.default_rng(0)
    # a network that is exact on validation keeps all the weight ...
    _, record, _ = fit_kernel_member(smiles[train], targets[train], smiles[valid], targets[valid],
                                  targets[valid].copy(), SMALL_GRID)  # fmt: skip
    assert record["tasks"][0]["network_weight"] == 1.0
    # ... one that is pure noise hands it to the SVR, which is then better than the network alone
    noise = targets[valid] + rng.normal(0, 5.0, size=targets[valid].shape)
    member, record, valid_blend = fit_kernel_member(
        smiles[train], targets[train], smiles[valid], targets[valid], noise, SMALL_GRID
    )
    task = record["tasks"][0]
    assert task["network_weight"] <= 0.2
    assert task["valid_rmse_blend"] < task["valid_rmse_network"]
    assert member.network_weights == [task["network_weight"]]
    valid_rmse = float(np.sqrt(np.mean((valid_blend[:, 0] - targets[valid, 0]) ** 2)))
    assert valid_rmse == pytest.approx(task["valid_rmse_blend"], rel=1e-5)
    assert task["n_refit"] == 260  # the kept SVR is refit on training + validation molecules
    # tasks without enough labels keep the network alone (weight 1, NaN SVR predictions)
    sparse = np.column_stack([targets[train, 0], np.full(200, np.nan)])
    member, record, _ = fit_kernel_member(smiles[train], sparse, smiles[valid],
                                       np.column_stack([targets[valid, 0]] * 2), np.hstack([noise, noise]),
                                       SMALL_GRID)  # fmt: skip
    assert record["tasks"][1] is None and member.network_weights[1] == 1.0
    svr = member.svr_predictions(smiles[valid])
    assert np.isnan(svr[:, 1]).all()
    network = np.hstack([noise, noise]).astype(np.float32)
    np.testing.assert_array_equal(member.blend(network, svr)[:, 1], network[:, 1])


@pytest.fixture(scope="module")
def blend_run(tmp_path_factory: pytest.TempPathFactory):
    base = init_model({"num_layers": 1, "hidden_dim": 16, "aggregator_heads": 1}, seed=0)
    folder = base.save(tmp_path_factory.mktemp("models") / "tiny")
    config = {
        "data": {"path": str(LOGP), "targets": ["logp"], "task_type": "regression"},
        "model": {
            "pretrained": str(folder),
            "head_hidden": 16,
            "extra_features": [],
            "kernel_blend": "ecfp_svr",
        },
        "optim": {"epochs": 2},
    }
    return run_finetune(config, tmp_path_factory.mktemp("runs") / "blend", quiet=True)


def test_a_blended_model_folder_predicts_what_the_run_reported(blend_run) -> None:
    record = blend_run.kernel_blend
    assert record is not None and record["kind"] == "ecfp_svr"
    weight = record["tasks"][0]["network_weight"]
    assert 0.0 <= weight <= 1.0
    # the run's test metric is the blend's; the network's own is kept beside it
    assert blend_run.test_metric != record["network_test_metric"] or weight == 1.0
    saved = json.loads((blend_run.run_dir / "result.json").read_text())
    assert saved["kernel_blend"]["tasks"][0]["network_weight"] == weight
    model = molchannel.load(blend_run.model_dir)
    assert model.info()["kernel_blend"] == {"kind": "ecfp_svr", "network_weights": [weight]}
    card = (blend_run.model_dir / "README.md").read_text()
    assert f"blended with an ECFP4 support-vector regressor (network weight per task: {weight:.2f})" in card
    smiles, _ = _logp()
    test_smiles = [smiles[i] for i in blend_run.test_indices]
    np.testing.assert_allclose(model.predict(test_smiles), blend_run.test_predictions, rtol=1e-5, atol=1e-5)
    # the same molecules through the network alone differ by exactly the blend
    network = np.asarray(record["network_test_predictions"], dtype=np.float32)
    svr = model.kernel_member.svr_predictions(test_smiles)
    np.testing.assert_allclose(weight * network + (1 - weight) * svr, blend_run.test_predictions, atol=1e-5)
    # invalid rows stay invalid; batch size does not matter
    out = model.predict(["CCO", "not a smiles", "c1ccccc1O"], on_invalid="nan", batch_size=1)
    assert np.isnan(out[1]).all() and np.isfinite(out[[0, 2]]).all()
    np.testing.assert_allclose(out[[0, 2]], model.predict(["CCO", "c1ccccc1O"]), rtol=1e-6)
    # an ensemble of two copies predicts the same, with no spread
    twice = EnsembleModel([model, molchannel.load(blend_run.model_dir)])
    mean, std = twice.predict(test_smiles[:5], return_std=True)
    np.testing.assert_allclose(mean, blend_run.test_predictions[:5], rtol=1e-5, atol=1e-5)
    assert np.allclose(std, 0.0, atol=1e-5)


def test_a_blended_model_folder_is_saved_whole_and_checked_on_load(blend_run, tmp_path: Path) -> None:
    model = molchannel.load(blend_run.model_dir)
    copy = model.save(tmp_path / "copy")
    again = molchannel.load(copy)
    np.testing.assert_allclose(again.predict(["CCO", "CCN"]), model.predict(["CCO", "CCN"]), rtol=1e-6)
    # a config whose kernel member names a task the weights do not hold is refused with the reason
    config = json.loads((copy / "config.json").read_text())
    config["kernel_member"]["tasks"].append(config["kernel_member"]["tasks"][0])
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFolderError, match="kernel_member"):
        molchannel.load(copy)


def _classification_csv(path: Path, n: int) -> Path:
    smiles, y = _logp()
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["smiles", "active"])
        writer.writerows([s, int(v > 2.5)] for s, v in zip(smiles[:n], y[:n], strict=True))
    return path


def test_kernel_blend_kind_must_fit_the_task(tmp_path: Path) -> None:
    data = _classification_csv(tmp_path / "cls.csv", 60)
    base = init_model({"num_layers": 1, "hidden_dim": 16, "aggregator_heads": 1}, seed=0).save(tmp_path / "m")
    config = {
        "data": {"path": str(data), "targets": ["active"], "task_type": "classification"},
        "model": {"pretrained": str(base), "extra_features": [], "kernel_blend": "ecfp_svr"},
    }
    with pytest.raises(ValueError, match="use --model.kernel_blend ecfp_svc"):
        run_finetune(config, tmp_path / "cls-run", quiet=True)
    config["model"]["kernel_blend"] = "tanimoto_gp"
    with pytest.raises(ValueError, match="kernel_blend must be null, 'ecfp_svr'"):
        run_finetune(config, tmp_path / "cls-run2", quiet=True)


def test_the_stored_svc_decides_as_scikit_learns_and_its_weight_follows_validation() -> None:
    from sklearn.svm import SVC

    from molchannel.finetune.kernel_blend import fit_classifier_member
    from molchannel.finetune.metrics import mean_roc_auc
    from molchannel.kernel_member import tanimoto_bit_kernel

    smiles, y = _logp()
    labels = (y > 2.5).astype(float)[:, None]
    train, valid = slice(0, 200), slice(200, 280)
    rng = np.random.default_rng(0)
    noise = rng.random(labels[valid].shape)  # a network that knows nothing hands the weight to the SVC
    member, record, blended = fit_classifier_member(
        smiles[train], labels[train], smiles[valid], labels[valid], noise, c_grid=(0.3, 3.0)
    )
    task = member.tasks[0]
    assert member.kind == "ecfp_svc" and task is not None and task.platt is not None and task.platt[0] > 0
    bits = ecfp_bits(smiles, 2, 2048)
    reference = SVC(kernel="precomputed", C=task.params["C"]).fit(
        tanimoto_bit_kernel(bits[train], bits[train]), labels[train, 0]
    )
    np.testing.assert_allclose(
        task.decision(bits[valid]),
        reference.decision_function(tanimoto_bit_kernel(bits[valid], bits[train])),
        rtol=1e-6,
        atol=1e-8,
    )
    info = record["tasks"][0]
    assert info["network_weight"] <= 0.2 and info["valid_roc_auc_blend"] > info["valid_roc_auc_network"] + 0.1
    assert mean_roc_auc(labels[valid], blended[:, None] if blended.ndim == 1 else blended) == pytest.approx(
        info["valid_roc_auc_blend"]
    )
    probabilities = member.svr_predictions(smiles[valid])
    assert ((probabilities > 0) & (probabilities < 1)).all()
    # an exact network keeps the weight
    _, record, _ = fit_classifier_member(
        smiles[train], labels[train], smiles[valid], labels[valid], labels[valid] * 0.8 + 0.1, c_grid=(1.0,)
    )
    assert record["tasks"][0]["network_weight"] >= 0.5


def test_a_blended_classifier_folder_predicts_what_the_run_reported(tmp_path: Path) -> None:
    data = _classification_csv(tmp_path / "cls.csv", 300)
    base = init_model({"num_layers": 1, "hidden_dim": 16, "aggregator_heads": 1}, seed=0).save(tmp_path / "m")
    config = {
        "data": {"path": str(data), "targets": ["active"], "task_type": "classification"},
        "model": {
            "pretrained": str(base),
            "head_hidden": 16,
            "extra_features": [],
            "kernel_blend": "ecfp_svc",
        },  # fmt: skip
        "optim": {"epochs": 2},
    }
    run = run_finetune(config, tmp_path / "run", quiet=True)
    assert run.kernel_blend is not None and run.kernel_blend["kind"] == "ecfp_svc"
    assert run.calibration is not None  # the network is calibrated, then blended
    model = molchannel.load(run.model_dir)
    assert model.info()["kernel_blend"]["kind"] == "ecfp_svc"
    assert "support-vector classifier" in (run.model_dir / "README.md").read_text()
    smiles, _ = _logp()
    test_smiles = [smiles[i] for i in run.test_indices]
    np.testing.assert_allclose(model.predict(test_smiles), run.test_predictions, rtol=1e-5, atol=1e-5)


def test_sklearn_regressor_blends_through_its_config(tmp_path: Path) -> None:
    from molchannel.sklearn import MolChannelRegressor

    smiles, y = _logp()
    base = init_model({"num_layers": 1, "hidden_dim": 16, "aggregator_heads": 1}, seed=0).save(tmp_path / "m")
    blend = {"model": {"kernel_blend": "ecfp_svr"}}
    reg = MolChannelRegressor(model=str(base), epochs=2, head_hidden=16, extra_features=(), config=blend)
    reg.fit(smiles[:120], y[:120])
    assert reg.model_.kernel_member is not None
    assert reg.predict(smiles[120:124]).shape == (4,)
