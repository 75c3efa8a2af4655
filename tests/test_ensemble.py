"""Ensembles: N fine-tuning members on one split, one model folder, predictions with their spread."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import molchannel
from molchannel.api import init_model
from molchannel.cli.main import main
from molchannel.ensemble import EnsembleModel
from molchannel.finetune.ensemble import run_ensemble
from molchannel.finetune.metrics import score

REPO = Path(__file__).resolve().parents[1]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory: pytest.TempPathFactory):
    base = init_model({"num_layers": 2, "hidden_dim": 32, "aggregator_heads": 4}, seed=3)
    base_dir = base.save(tmp_path_factory.mktemp("models") / "tiny")
    config = {
        "data": {"path": str(REPO / "examples" / "zinc_logp.csv"), "targets": ["logp"],
                 "task_type": "regression", "split": "random", "limit": 120},
        "model": {"pretrained": str(base_dir), "head_hidden": 32},
        "optim": {"epochs": 2},
    }  # fmt: skip
    return run_ensemble(config, tmp_path_factory.mktemp("runs") / "logp", size=3, quiet=True)


def test_members_share_one_split_and_the_folder_holds_them(ensemble_run) -> None:
    run = ensemble_run
    assert run.seeds == [0, 1, 2] and run.size == 3
    splits = [json.loads((m.run_dir / "split.json").read_text()) for m in run.members]
    assert all(s["test"] == splits[0]["test"] and s["train"] == splits[0]["train"] for s in splits)
    # the members differ (seeds), so the spread is not zero
    assert len({round(m.test_metric, 6) for m in run.members}) == 3 and run.test_std.mean() > 0
    manifest = json.loads((run.model_dir / "ensemble.json").read_text())
    assert manifest["members"] == ["members/0", "members/1", "members/2"] and manifest["seeds"] == [0, 1, 2]
    result = json.loads((run.run_dir / "result.json").read_text())
    assert result["test_metric"] == pytest.approx(run.test_metric) and result["n_test"] == len(
        run.test_indices
    )


def test_loaded_ensemble_predicts_the_mean_and_spread_of_its_members(ensemble_run) -> None:
    model = molchannel.load_ensemble(ensemble_run.model_dir)
    assert isinstance(model, EnsembleModel) and model.size == 3 and model.tasks == ["logp"]
    smiles = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1"]
    each = np.stack([m.predict(smiles) for m in model.members])
    mean, std = model.predict(smiles, return_std=True)
    np.testing.assert_allclose(mean, each.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, each.std(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.predict(smiles), mean)
    assert model.predict("CCO").shape == (1,)
    # invalid rows stay aligned as NaN
    mixed, mixed_std = model.predict(["CCO", "not a smiles"], on_invalid="nan", return_std=True)
    assert (
        mixed[0, 0] == pytest.approx(mean[0, 0], rel=1e-5)
        and np.isnan(mixed[1]).all()
        and np.isnan(mixed_std[1]).all()
    )
    with pytest.raises(ValueError, match="members\\[0\\].embed"):
        model.embed(smiles)
    with pytest.raises(molchannel.model_folder.ModelFolderError, match="load_ensemble"):
        molchannel.load(ensemble_run.model_dir)


def test_the_ensemble_test_metric_is_that_of_the_mean_prediction(ensemble_run) -> None:
    run = ensemble_run
    rows = _rows(run.run_dir / "test_predictions.csv")
    assert len(rows) == len(run.test_indices)
    labels = np.array([[float(r["logp"])] for r in rows])
    model = molchannel.load_ensemble(run.model_dir)
    again = model.predict([r["smiles"] for r in rows])
    np.testing.assert_allclose(again, run.test_predictions, rtol=1e-4, atol=1e-5)
    assert score("rmse", labels, again) == pytest.approx(run.test_metric, rel=1e-4)
    np.testing.assert_allclose([float(r["std logp"]) for r in rows], run.test_std[:, 0], rtol=1e-6)


def test_predict_command_writes_the_spread(ensemble_run, tmp_path: Path) -> None:
    src = tmp_path / "in.smi"
    src.write_text("CCO\nc1ccccc1O\n")
    out = tmp_path / "out.csv"
    assert main(["predict", "-q", "-m", str(ensemble_run.model_dir), "-i", str(src), "-o", str(out)]) == 0
    rows = _rows(out)
    assert list(rows[0]) == ["smiles", "logp", "logp_std", "valid"]
    ensemble = molchannel.load_ensemble(ensemble_run.model_dir)
    mean, std = ensemble.predict(["CCO", "c1ccccc1O"], return_std=True)
    assert float(rows[1]["logp"]) == pytest.approx(float(mean[1, 0]), rel=1e-5)
    assert float(rows[1]["logp_std"]) == pytest.approx(float(std[1, 0]), rel=1e-4)


def test_ensemble_size_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        run_ensemble({"data": {"dataset": "esol"}}, tmp_path, size=0)


def test_conformal_intervals_cover_at_the_chosen_rate_on_exchangeable_data() -> None:
    from molchannel.ensemble import ConformalCalibration

    rng = np.random.default_rng(0)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        std = rng.uniform(0.1, 2.0, size=(n, 1))  # the members' spread, here the true noise scale
        mean = rng.normal(size=(n, 1))
        return mean + std * rng.normal(size=(n, 1)), mean, std

    calibration = ConformalCalibration.fit(*draw(2000))  # coverage given the draw: sd about 0.011
    labels, mean, std = draw(20_000)
    for coverage in (0.5, 0.8, 0.9, 0.95):
        half = calibration.half_width(std, coverage)
        inside = float((np.abs(labels - mean) <= half).mean())
        assert abs(inside - coverage) <= 0.04, (coverage, inside)
    # adaptive: wider where the spread is larger
    assert calibration.half_width(np.array([[2.0]]), 0.9) > calibration.half_width(np.array([[0.1]]), 0.9)
    assert np.isinf(ConformalCalibration.fit(*draw(5)).quantile(0.9)).all()  # too few rows for 90%
    with pytest.raises(ValueError, match="coverage"):
        calibration.quantile(1.0)


def test_ensemble_run_calibrates_and_reports_test_coverage(ensemble_run) -> None:
    run = ensemble_run
    assert set(run.uncertainty) == {"coverage_90", "mean_interval_width_90", "spearman_abs_error_std"}
    assert 0.0 <= run.uncertainty["coverage_90"] <= 1.0 and run.uncertainty["mean_interval_width_90"] > 0
    model = molchannel.load_ensemble(run.model_dir)
    mean, lower, upper = model.predict_interval(["CCO", "c1ccccc1O"], coverage=0.9)
    assert mean.shape == lower.shape == upper.shape == (2, 1)
    assert (lower < mean).all() and (mean < upper).all()
    narrow = model.predict_interval(["CCO"], coverage=0.5)
    assert (narrow[2] - narrow[1]).item() < (upper - lower)[0, 0]
    assert json.loads((run.model_dir / "ensemble.json").read_text())["calibration"]["beta"][0] > 0
