"""Fine-tuning: losses and metrics, ROGI, configs, and whole runs on a few hundred molecules.

Runs use a 2-layer, 32-dim GIN on the first rows of BBBP / ESOL (benchmark data, skipped without
``MOLCHANNEL_DATA_DIR``) or on a CSV made from the bundled ZINC sample, for 2-3 epochs, with one
torch thread: results are bitwise reproducible only at a fixed thread count.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

import molchannel
from molchannel.api import init_model
from molchannel.cli.main import main
from molchannel.finetune import FinetuneConfig, load_config, run_finetune
from molchannel.finetune.metrics import (
    masked_bce_loss,
    masked_mse_loss,
    mean_roc_auc,
    roc_auc_per_task,
    score,
)
from molchannel.finetune.module import FinetuneModule
from molchannel.finetune.rogi import roughness_index, select_prompt_weights
from molchannel.nn.model import TargetScaler

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs" / "finetune"
RUN_FILES = (
    "config.yaml",
    "split.json",
    "prompt_init.json",
    "metrics.csv",
    "learning_curve.png",
    "channel_weights.png",
    "test_predictions.csv",
    "result.json",
    "checkpoints/last.ckpt",
    "checkpoints/best.ckpt",
    "model/config.json",
    "model/model.safetensors",
)


@pytest.fixture(scope="module", autouse=True)
def _one_thread_private_cache(one_thread_private_cache: None) -> None:
    """Every test of this module: one torch thread, a graph cache of its own (see conftest)."""


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 x 32 GIN standing in for a pre-trained model folder."""
    model = init_model({"num_layers": 2, "hidden_dim": 32, "aggregator_heads": 4}, seed=123)
    model.config["provenance"].update(pretrained=True, description="stand-in for a pre-trained model")
    return model.save(tmp_path_factory.mktemp("models") / "tiny")


def _bbbp_config(model: Path, **optim: object) -> dict:
    return {
        "data": {"dataset": "bbbp", "limit": 200},
        "model": {"pretrained": str(model), "head_hidden": 32},
        "optim": {"epochs": 3, **optim},
    }


@pytest.fixture(scope="module")
def bbbp_run(data_dir: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    return run_finetune(_bbbp_config(tiny_model), tmp_path_factory.mktemp("runs") / "bbbp", quiet=True)


@pytest.fixture(scope="module")
def esol_run(data_dir: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    config = {
        "data": {"dataset": "esol", "limit": 150},
        "model": {"pretrained": str(tiny_model), "head_hidden": 32},
        "prompt": {"init": "rogi", "rogi_candidates": 10},
        "optim": {"epochs": 2},
    }
    return run_finetune(config, tmp_path_factory.mktemp("runs") / "esol", quiet=True)


def _metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as fh:
        return [{k: v for k, v in row.items() if not k.endswith("_time_s")} for row in csv.DictReader(fh)]


# ---- losses, metrics, scaler -----------------------------------------------------------------
def test_masked_losses_ignore_missing_labels() -> None:
    logits = torch.tensor([[0.3, -1.0], [2.0, 0.5], [-0.7, 1.5]], requires_grad=True)
    targets = torch.tensor([[1.0, math.nan], [0.0, 1.0], [math.nan, math.nan]])
    loss = masked_bce_loss(logits, targets)
    picked = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.stack([logits[0, 0], logits[1, 0], logits[1, 1]]), torch.tensor([1.0, 0.0, 1.0])
    )
    assert torch.isclose(loss, picked)
    loss.backward()
    assert logits.grad is not None
    assert (logits.grad[targets.isnan()] == 0).all() and (logits.grad[~targets.isnan()] != 0).all()
    mse = masked_mse_loss(torch.tensor([[1.0], [5.0]]), torch.tensor([[3.0], [math.nan]]))
    assert mse.item() == pytest.approx(4.0)
    assert masked_bce_loss(logits, torch.full_like(targets, math.nan)).item() == 0.0


def test_roc_auc_averages_only_tasks_with_both_classes() -> None:
    targets = np.array([[1, 0, np.nan], [0, 0, 1], [1, 0, np.nan], [0, np.nan, 0]], dtype=float)
    scores = np.array([[0.9, 0.1, 0.2], [0.2, 0.3, 0.8], [0.6, 0.2, 0.1], [0.4, 0.5, 0.3]])
    per_task = roc_auc_per_task(targets, scores)
    assert per_task == [1.0, None, 1.0]  # task 1 has no positive; task 2 is ranked right on its 2 labels
    assert mean_roc_auc(targets, scores) == 1.0
    assert math.isnan(mean_roc_auc(targets[:, 1:2], scores[:, 1:2]))
    assert score(
        "rmse", np.array([[1.0], [np.nan], [3.0]]), np.array([[2.0], [9.0], [3.0]])
    ) == pytest.approx(math.sqrt(0.5))


def test_target_scaler_round_trip() -> None:
    y = np.array([[1.0, 10.0, np.nan], [3.0, np.nan, np.nan], [5.0, 30.0, np.nan]])
    scaler = TargetScaler(3).fit(y)
    assert scaler.mean.tolist() == pytest.approx([3.0, 20.0, 0.0])  # an unlabelled task: mean 0, std 1
    assert scaler.std.tolist() == pytest.approx([math.sqrt(8 / 3), 10.0, 1.0])
    t = torch.tensor([[2.0, 25.0, 7.0]])
    assert torch.allclose(scaler.inverse(scaler.transform(t)), t)
    assert TargetScaler(1).fit(np.array([[4.0], [4.0]])).std.tolist() == [1.0]  # constant: no division by 0
    assert set(scaler.state_dict()) == {"mean", "std"}  # buffers: saved with the weights


# ---- ROGI ------------------------------------------------------------------------------------
def test_rogi_hand_computed_three_points() -> None:
    """Points 0, 0.1, 1 on a line. Complete linkage merges {0, 0.1} at 0.1, everything at 1.

    y = (0, 0, 1): the close pair agrees, sigma stays 2*sqrt(2)/3 until t = 0.1, so
    ROGI = sigma0 - (0.1 * sigma0 + 0.9 * sigma0 / 2) = 0.3 * sqrt(2).
    y = (0, 1, 0): the close pair disagrees, sigma(0.1) = sqrt(2)/3, ROGI = sqrt(2) * (2/3 - 0.2).
    """
    x = np.array([[0.0], [0.1], [1.0]])
    assert roughness_index(x, np.array([0.0, 0.0, 1.0])) == pytest.approx(0.3 * math.sqrt(2))
    assert roughness_index(x, np.array([0.0, 1.0, 0.0])) == pytest.approx(math.sqrt(2) * (2 / 3 - 0.2))


def test_rogi_smooth_property_scores_lower_than_shuffled() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    smooth = np.sin(2 * x[:, 0]) + 0.05 * rng.normal(size=300)
    assert roughness_index(x, smooth) < roughness_index(x, rng.permutation(smooth)) - 0.05
    with_missing = smooth.copy()
    with_missing[::7] = np.nan  # missing labels are left out, not treated as values
    assert abs(roughness_index(x, with_missing) - roughness_index(x, smooth)) < 0.05


def test_rogi_search_prefers_the_channel_that_explains_the_property() -> None:
    rng = np.random.default_rng(1)
    n, d = 200, 8
    signal = rng.normal(size=(n, d))
    y = np.sin(2 * signal[:, 0]) + signal[:, 1]
    stacked = np.stack([rng.normal(size=(n, d)) * 3, signal, rng.normal(size=(n, d)) * 3], axis=1)
    search = select_prompt_weights(stacked, y[:, None], tau=0.5, n_candidates=30, seed=0)
    probs = np.exp(np.array(search.weights) / 0.5)
    probs /= probs.sum()
    assert probs.argmax() == 1 and probs[1] > 0.5
    assert search.rogi < search.scores[0]  # better than the uniform candidate, which comes first
    assert search.candidates[0] == [0.0, 0.0, 0.0] and len(search.scores) == 31


# ---- configs ---------------------------------------------------------------------------------
def test_base_yaml_is_the_defaults_and_dataset_configs_are_current() -> None:
    assert load_config(CONFIGS / "base.yaml") == FinetuneConfig()
    spec = importlib.util.spec_from_file_location(
        "make_finetune_configs", REPO / "scripts/make_finetune_configs.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--check"]) == 0  # committed files equal what the script writes
    names = molchannel.data.list_datasets()
    assert len(names) == 41
    for name in names:
        config = load_config(CONFIGS / f"{name}.yaml")
        assert config.data.dataset == name
    ace = load_config(CONFIGS / "CHEMBL214_Ki.yaml", overrides={"optim": {"epochs": 5}})
    assert (ace.model.tau, ace.optim.lr_backbone, ace.optim.epochs) == (0.5, 1.0e-4, 5)


def test_config_errors_say_what_to_change() -> None:
    with pytest.raises(ValueError, match=r"optim\.epoch"):
        load_config(overrides={"optim": {"epoch": 5}})
    with pytest.raises(ValueError, match="init: given"):
        load_config(overrides={"prompt": {"weights": [0.0, 1.0, 0.0]}})
    with pytest.raises(ValueError, match="task_type"):
        load_config(overrides={"data": {"path": "my.csv"}})
    config = load_config(overrides={"data": {"path": "my.csv", "task_type": "regression"}})
    assert config.data.dataset is None and config.name == "my"  # a file replaces the dataset


def test_comparable_config_ignores_execution_only_keys_and_reports_differences() -> None:
    from molchannel.finetune.config import comparable_config, config_differences

    base = load_config(overrides={"data": {"dataset": "bbbp"}}).to_dict()
    execution = {"data": {"num_workers": 4, "cache_dir": "/tmp/x"}, "trainer": {"tensorboard": True}}
    assert comparable_config(load_config(overrides=execution)) == comparable_config(base)
    assert config_differences(base, load_config(overrides=execution)) == []
    older = {**base, "data": {k: v for k, v in base["data"].items() if k != "split_col"}}  # key added later
    assert config_differences(older, base) == []
    # keys added later whose null is what a config without them did: left out of the comparison (and of
    # the benchmark's hash) at null, compared once set
    older = {**base, "model": {k: v for k, v in base["model"].items() if k != "backbone_dropout"},
             "optim": {k: v for k, v in base["optim"].items() if k != "weight_decay_prompt"}}  # fmt: skip
    assert comparable_config(older) == comparable_config(base)
    assert "backbone_dropout" not in comparable_config(base)["model"]
    assert config_differences(older, {**base, "optim": {**base["optim"], "weight_decay_prompt": 0.0}}) == [
        "optim.weight_decay_prompt: None -> 0.0"
    ]
    assert config_differences(base, {**base, "optim": {**base["optim"], "epochs": 4}}) == [
        "optim.epochs: 100 -> 4"
    ]
    # an unreadable or invalid saved config is a different run; an invalid current config is an error
    for saved in (None, [1, 2], {"optim": {"epochs": 0}}, {"optim": {"epoch": 3}}, {"data": "x"}):
        (difference,) = config_differences(saved, base)
        assert "not a valid fine-tuning config" in difference, saved
    with pytest.raises(ValueError, match="optim.epochs"):
        config_differences(base, {"optim": {"epochs": 0}})


def test_resume_refuses_an_unreadable_or_invalid_config_yaml(tiny_model: Path, tmp_path: Path) -> None:
    cases = [("broken", "data: [\n", "is unreadable"),
             ("invalid", "optim: {epochs: -1}\n", "not a valid fine-tuning config")]  # fmt: skip
    for name, text, message in cases:
        run = tmp_path / name
        (run / "checkpoints").mkdir(parents=True)
        (run / "checkpoints" / "last.ckpt").write_bytes(b"")  # refused before the checkpoint is read
        (run / "config.yaml").write_text(text)
        with pytest.raises(ValueError, match=f"cannot resume .*{message}"):
            run_finetune(_bbbp_config(tiny_model), run, resume=True, quiet=True)


def test_given_prompt_weights_must_match_the_channels() -> None:
    from molchannel.finetune import PromptConfig
    from molchannel.finetune.prompt import initial_weights

    channels = ["molsim", "scaffsim", "context"]
    with pytest.raises(ValueError, match="3 channels"):
        initial_weights(PromptConfig(init="given", weights=[1.0, 0.0]), channels, 1.0, 0)
    weights, record = initial_weights(PromptConfig(init="given", weights=[1, 0, 0]), channels, 1.0, 0)
    assert weights == [1.0, 0.0, 0.0] and record["method"] == "given"


# ---- whole runs ------------------------------------------------------------------------------
def test_run_folder_has_every_file(bbbp_run) -> None:
    run = bbbp_run.run_dir
    missing = [name for name in RUN_FILES if not (run / name).is_file()]
    assert not missing
    assert len(_metrics(run)) == 3
    result = json.loads((run / "result.json").read_text())
    assert result["best_epoch"] == bbbp_run.best_epoch and result["test_metric"] == bbbp_run.test_metric
    split = json.loads((run / "split.json").read_text())
    assert split["method"] == "scaffold" and sorted(split["test"]) == sorted(bbbp_run.test_indices.tolist())
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["limit"] == 200 and config["optim"]["epochs"] == 3
    head = json.loads((run / "model/config.json").read_text())["head"]
    assert head == {"tasks": ["p_np"], "task_type": "classification", "metric": "roc_auc"}


def test_reported_test_metric_is_that_of_the_best_validation_epoch(bbbp_run) -> None:
    rows = _metrics(bbbp_run.run_dir)
    valid = [float(r["valid_roc_auc"]) for r in rows]
    best = int(np.argmax(valid))  # first maximum
    assert bbbp_run.best_epoch == best + 1
    assert bbbp_run.valid_metric == valid[best]
    assert bbbp_run.test_metric == float(rows[best]["test_roc_auc"])
    table = molchannel.data.load_dataset("bbbp")
    recomputed = score("roc_auc", table.targets[bbbp_run.test_indices], bbbp_run.test_predictions)
    assert recomputed == pytest.approx(bbbp_run.test_metric, abs=1e-9)
    assert bbbp_run.test_predictions.shape == (len(bbbp_run.test_indices), 1)
    assert ((bbbp_run.test_predictions > 0) & (bbbp_run.test_predictions < 1)).all()
    assert sum(bbbp_run.channel_weights.values()) == pytest.approx(1.0)
    assert bbbp_run.train_molecules_per_s > 0 and bbbp_run.wall_time_s > 0


def test_probabilities_are_platt_calibrated_on_the_validation_split(tiny_model: Path, tmp_path: Path) -> None:
    config = _bbbp_config(tiny_model)
    config["data"]["limit"] = 600  # enough validation molecules of each class for the Platt step
    run = run_finetune(config, tmp_path / "calibrated", quiet=True)
    record = run.calibration
    assert record is not None and record["method"] == "platt" and record["tasks_fitted"] == 1
    model = molchannel.load(run.model_dir)
    assert model.net.config.head is not None and model.net.config.head.calibration
    calibrator = model.net.calibrator
    assert calibrator is not None and calibrator.scale.tolist() == pytest.approx(record["scale"])
    assert calibrator.scale.item() > 0 and (calibrator.scale.item(), calibrator.shift.item()) != (1.0, 0.0)
    assert record["valid_ece_after"] <= record["valid_ece_before"] + 0.02
    table = molchannel.data.load_dataset("bbbp")
    smiles = [table.smiles[i] for i in run.test_indices]
    np.testing.assert_allclose(model.predict(smiles), run.test_predictions, rtol=1e-5, atol=1e-6)
    # the same run without calibration: the same ranking metric, probabilities before the Platt step
    config["model"]["calibration"] = None
    plain = run_finetune(config, tmp_path / "plain", quiet=True)
    assert plain.calibration is None and plain.test_metric == pytest.approx(run.test_metric, abs=1e-9)
    logits = np.log(plain.test_predictions) - np.log1p(-plain.test_predictions)
    expected = 1 / (1 + np.exp(-(logits * record["scale"][0] + record["shift"][0])))
    np.testing.assert_allclose(run.test_predictions, expected, rtol=1e-4, atol=1e-5)


def test_aggregators_frozen_backbone_and_prompt_trained(bbbp_run, tiny_model: Path) -> None:
    before = load_file(tiny_model / "model.safetensors")
    after = load_file(bbbp_run.model_dir / "model.safetensors")
    aggregators = [k for k in before if k.startswith("encoder.aggregators.")]
    backbone = [k for k in before if k.startswith("encoder.backbone.") and before[k].is_floating_point()]
    assert aggregators and all(torch.equal(before[k], after[k]) for k in aggregators)
    assert any(not torch.equal(before[k], after[k]) for k in backbone)
    assert not torch.equal(after["mixing.weights"], torch.zeros(3))  # the prompt logits were trained
    assert {k for k in after if k.startswith("head.")}


def test_in_memory_finetune_writes_nothing_and_returns_the_selected_model(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The core takes a table and a split held in memory; without run_dir nothing stays on disk, and
    the returned model is the best validation epoch's (its predictions are the reported ones)."""
    from molchannel.data import MoleculeTable, random_split
    from molchannel.finetune import finetune

    with open(REPO / "examples" / "zinc_logp.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))[:120]
    table = MoleculeTable(
        name="logp", smiles=[r["smiles"] for r in rows],
        targets=np.array([[float(r["logp"])] for r in rows], dtype=np.float32),
        target_names=("logp",), task_type="regression", metric="rmse",
    )  # fmt: skip
    split = random_split(len(table), (0.7, 0.15, 0.15), seed=0)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # Lightning's scratch checkpoints land here
    config = {"optim": {"epochs": 3}, "model": {"head_hidden": 16, "extra_features": []}}
    result = finetune(str(tiny_model), table, split, config, quiet=True)
    assert list(tmp_path.iterdir()) == []  # no run folder, scratch removed
    assert result.run_dir is None and result.model_dir is None and result.model is not None
    assert 1 <= result.best_epoch <= 3 and math.isfinite(result.test_metric)
    smiles = [table.smiles[i] for i in result.test_indices]
    np.testing.assert_allclose(result.model.predict(smiles), result.test_predictions, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="run_dir"):
        finetune(str(tiny_model), table, split, config, resume=True)


def test_predict_matches_the_run_and_undoes_the_scaler(bbbp_run, esol_run) -> None:
    for run, name in ((bbbp_run, "bbbp"), (esol_run, "esol")):
        table = molchannel.data.load_dataset(name)
        model = molchannel.load(run.model_dir)
        smiles = [table.smiles[i] for i in run.test_indices]
        np.testing.assert_allclose(model.predict(smiles), run.test_predictions, rtol=1e-5, atol=1e-6)
    esol_model = molchannel.load(esol_run.model_dir)
    assert esol_model.config["head"]["task_type"] == "regression"
    # the scaler is the training rows' label statistics, kept in the weights (not in config.json)
    scaler = esol_model.net.target_scaler
    assert scaler is not None and "target_mean" not in esol_model.config["head"]
    train = json.loads((esol_run.run_dir / "split.json").read_text())["train"]
    labels = molchannel.data.load_dataset("esol").targets[train, 0]
    assert scaler.mean.item() == pytest.approx(labels.mean(), rel=1e-5)
    assert scaler.std.item() == pytest.approx(labels.std(), rel=1e-5)
    # original units: ESOL log-solubilities, not standardised values around 0
    assert -8 < esol_run.test_predictions.mean() < 1 and abs(scaler.mean.item()) > 1
    prompt = json.loads((esol_run.run_dir / "prompt_init.json").read_text())
    assert prompt["method"] == "rogi" and len(prompt["scores"]) == 11


def test_same_seed_and_config_give_identical_metrics(bbbp_run, tiny_model: Path, tmp_path: Path) -> None:
    again = run_finetune(_bbbp_config(tiny_model), tmp_path / "again", quiet=True)
    assert _metrics(again.run_dir) == _metrics(bbbp_run.run_dir)  # every value but timings, as written
    np.testing.assert_array_equal(again.test_predictions, bbbp_run.test_predictions)
    # the exported model is bit-identical too (benchmarks fingerprint a model by this sha256)
    sha = [json.loads((r.model_dir / "config.json").read_text())["weights_sha256"] for r in (again, bbbp_run)]
    assert sha[0] == sha[1]


def test_resume_after_a_crash_continues_to_the_same_result(
    bbbp_run, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = FinetuneModule.on_train_epoch_start

    def crash_in_third_epoch(self: FinetuneModule) -> None:
        if self.current_epoch == 2:
            raise RuntimeError("simulated crash")
        original(self)

    monkeypatch.setattr(FinetuneModule, "on_train_epoch_start", crash_in_third_epoch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_finetune(_bbbp_config(tiny_model), tmp_path / "run", quiet=True)
    assert len(_metrics(tmp_path / "run")) == 2
    with pytest.raises(ValueError, match="resume"):
        run_finetune(_bbbp_config(tiny_model), tmp_path / "run", quiet=True)  # no silent restart
    monkeypatch.setattr(FinetuneModule, "on_train_epoch_start", original)
    # `finetune --resume` with an execution-only setting changed (TensorBoard on) is the same run: it
    # continues, with the same numbers, and config.yaml now says what the resumed part was run with
    args = ["finetune", "--data.dataset", "bbbp", "--data.limit", "200", "--model.head_hidden", "32",
            "--model.pretrained", str(tiny_model), "--optim.epochs", "3", "--output", str(tmp_path / "run"),
            "--quiet", "--resume"]  # fmt: skip
    assert main([*args, "--optim.lr_head", "0.001"]) == 1  # a setting that changes numbers is refused
    assert len(_metrics(tmp_path / "run")) == 2
    assert main([*args, "--trainer.tensorboard", "true"]) == 0
    assert _metrics(tmp_path / "run") == _metrics(bbbp_run.run_dir)
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["test_metric"] == bbbp_run.test_metric
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["trainer"]["tensorboard"] is True
    assert list((tmp_path / "run" / "tensorboard").glob("**/events.out.tfevents.*"))


def test_resume_with_early_stopping_stops_at_the_same_epoch(
    logp_csv: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import molchannel.finetune.run as run_module

    config = {
        "data": {"path": str(logp_csv), "targets": ["logp"], "task_type": "regression"},
        "model": {"pretrained": str(tiny_model), "head_hidden": 32},
        "optim": {"epochs": 8, "early_stopping": 2, "lr_backbone": 0.01, "lr_head": 0.01},
    }
    reference = run_finetune(config, tmp_path / "reference", quiet=True)
    rows = _metrics(reference.run_dir)
    stopped = len(rows)
    assert stopped < 8  # validation RMSE is best in epoch 2 here, so patience 2 stops after epoch 4
    assert stopped == reference.best_epoch + 2
    assert reference.test_metric == float(rows[reference.best_epoch - 1]["test_rmse"])  # the best epoch's

    original = FinetuneModule.on_train_epoch_start

    def crash_before_the_last_epoch(self: FinetuneModule) -> None:
        if self.current_epoch == stopped - 1:
            raise RuntimeError("simulated crash")
        original(self)

    def crash_while_finishing(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated crash")

    # a crash before the stopping epoch (the resumed run replays the end of the checkpoint's epoch), and
    # one after the stopping epoch's checkpoint, before the run folder was written
    for name, target, crash in (("early", FinetuneModule, crash_before_the_last_epoch),
                                ("late", run_module, crash_while_finishing)):  # fmt: skip
        attribute = "on_train_epoch_start" if target is FinetuneModule else "_finetuned_model"
        monkeypatch.setattr(target, attribute, crash)
        with pytest.raises(RuntimeError, match="simulated crash"):
            run_finetune(config, tmp_path / name, quiet=True)
        monkeypatch.undo()
        resumed = run_finetune(config, tmp_path / name, resume=True, quiet=True)
        assert _metrics(resumed.run_dir) == _metrics(reference.run_dir), name
        assert (resumed.best_epoch, resumed.test_metric) == (reference.best_epoch, reference.test_metric)


def test_resume_of_a_finished_run_reports_it_again(bbbp_run, tiny_model: Path) -> None:
    before = _metrics(bbbp_run.run_dir)
    again = run_finetune(_bbbp_config(tiny_model), bbbp_run.run_dir, resume=True, quiet=True)
    assert _metrics(bbbp_run.run_dir) == before
    assert (again.best_epoch, again.test_metric) == (bbbp_run.best_epoch, bbbp_run.test_metric)
    with pytest.raises(ValueError, match="optim.epochs"):
        run_finetune(_bbbp_config(tiny_model, epochs=4), bbbp_run.run_dir, resume=True, quiet=True)


def test_resume_accepts_a_run_folder_from_before_newer_config_keys(
    bbbp_run, tiny_model: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old_run"
    shutil.copytree(bbbp_run.run_dir, old)
    saved = yaml.safe_load((old / "config.yaml").read_text())
    del saved["trainer"]["tensorboard"], saved["data"]["split_col"]  # keys added after the run was made
    (old / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    again = run_finetune(_bbbp_config(tiny_model), old, resume=True, quiet=True)
    assert (again.best_epoch, again.test_metric) == (bbbp_run.best_epoch, bbbp_run.test_metric)


def test_linear_probe_keeps_the_backbone(data_dir: Path, tiny_model: Path, tmp_path: Path) -> None:
    config = _bbbp_config(tiny_model, epochs=2, freeze_backbone=True)
    config["data"]["limit"] = 120
    result = run_finetune(config, tmp_path / "probe", quiet=True)
    before = load_file(tiny_model / "model.safetensors")
    after = load_file(result.model_dir / "model.safetensors")
    encoder = [k for k in before if k.startswith("encoder.")]  # BatchNorm running statistics included
    assert all(torch.equal(before[k], after[k]) for k in encoder)
    header = (result.run_dir / "metrics.csv").read_text().splitlines()[0]
    assert "lr_backbone" not in header and "lr_head" in header


def test_backbone_warm_up_freezes_it_for_the_first_epochs_only(
    data_dir: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LP-FT: head and prompt train alone for ``freeze_backbone_epochs``, then the backbone trains too,
    and a run killed after the warm-up resumes to the numbers of an uninterrupted one."""
    seen: list[tuple[int, bool, bool]] = []
    original = FinetuneModule.on_train_epoch_start

    def record(self: FinetuneModule) -> None:
        original(self)
        backbone = self.net.encoder.backbone
        grads = all(p.requires_grad for p in backbone.parameters())
        seen.append((self.current_epoch, grads, backbone.training))

    monkeypatch.setattr(FinetuneModule, "on_train_epoch_start", record)
    config = _bbbp_config(tiny_model, epochs=3, freeze_backbone_epochs=2)
    config["data"]["limit"] = 120
    result = run_finetune(config, tmp_path / "lpft", quiet=True)
    assert seen == [(0, False, False), (1, False, False), (2, True, True)]
    rows = _metrics(result.run_dir)
    assert "lr_backbone" in rows[0]  # the backbone is in the optimizer from the start
    # the head's cosine runs from epoch 0; the backbone's starts when it starts to train (epoch 2)
    assert float(rows[2]["lr_head"]) < float(rows[0]["lr_head"])
    assert float(rows[2]["lr_backbone"]) == pytest.approx(float(rows[0]["lr_backbone"]))
    before = load_file(tiny_model / "model.safetensors")
    backbone = [k for k in before if k.startswith("encoder.backbone.")]  # BatchNorm statistics included

    def last_backbone(run_dir: Path) -> dict[str, torch.Tensor]:
        state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        return {k: state[f"net.{k}"] for k in backbone}

    assert any(not torch.equal(before[k], v) for k, v in last_backbone(result.run_dir).items())  # epoch 3

    def crash_in_third_epoch(self: FinetuneModule) -> None:
        if self.current_epoch == 2:
            raise RuntimeError("simulated crash")
        record(self)

    monkeypatch.setattr(FinetuneModule, "on_train_epoch_start", crash_in_third_epoch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_finetune(config, tmp_path / "killed", quiet=True)
    # the two fixed epochs left every backbone tensor as it was
    assert all(torch.equal(before[k], v) for k, v in last_backbone(tmp_path / "killed").items())
    monkeypatch.setattr(FinetuneModule, "on_train_epoch_start", original)
    resumed = run_finetune(config, tmp_path / "killed", resume=True, quiet=True)
    assert _metrics(resumed.run_dir) == rows
    np.testing.assert_array_equal(resumed.test_predictions, result.test_predictions)


def test_backbone_warm_up_is_not_part_of_older_configs_hash() -> None:
    from molchannel.finetune.config import comparable_config

    plain = comparable_config(FinetuneConfig())
    assert "freeze_backbone_epochs" not in plain["optim"]
    warm = comparable_config(FinetuneConfig.from_dict({"optim": {"freeze_backbone_epochs": 5}}))
    assert warm["optim"]["freeze_backbone_epochs"] == 5
    # runs of the first LP-FT schedule (backbone cosine from epoch 0) are not this one's
    assert warm["optim"]["backbone_schedule"] == 2 and "backbone_schedule" not in plain["optim"]
    for bad in ({"freeze_backbone_epochs": -1}, {"freeze_backbone_epochs": 5, "epochs": 5},
                {"freeze_backbone_epochs": 2, "freeze_backbone": True}):  # fmt: skip
        with pytest.raises(ValueError, match="freeze_backbone_epochs"):
            FinetuneConfig.from_dict({"optim": bad}).validate()


def test_scratch_starts_from_random_weights(tiny_model: Path) -> None:
    from molchannel.finetune.run import _initial_net

    base = molchannel.load(tiny_model)
    pretrained = _initial_net(
        base, FinetuneConfig.from_dict({"model": {"pretrained": str(tiny_model), "extra_features": []}}), 1
    )
    scratch_config = FinetuneConfig.from_dict({"model": {"scratch": True, "extra_features": []}})
    scratch = _initial_net(base, scratch_config, 1)
    reference = base.net.encoder.state_dict()
    assert all(torch.equal(pretrained.encoder.state_dict()[k], v) for k, v in reference.items())
    matrices = [
        k for k, v in reference.items() if v.is_floating_point() and v.dim() == 2
    ]  # Linear, embeddings
    assert matrices and not any(torch.equal(scratch.encoder.state_dict()[k], reference[k]) for k in matrices)


@pytest.fixture(scope="module")
def logp_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user CSV without benchmark data: ZINC sample molecules with their Crippen logP."""
    from rdkit import Chem
    from rdkit.Chem import Crippen

    smiles = (REPO / "examples" / "zinc_sample.smi").read_text().split()[:120]
    path = tmp_path_factory.mktemp("csv") / "logp.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "smiles", "logp"])
        for i, s in enumerate(smiles):
            writer.writerow([f"mol{i}", s, f"{Crippen.MolLogP(Chem.MolFromSmiles(s)):.3f}"])
    return path


def test_cli_finetunes_a_user_csv_from_scratch(logp_csv: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["finetune", "--config", str(CONFIGS / "base.yaml"), "--data.path", str(logp_csv),
            "--data.targets", "[logp]", "--data.task_type", "regression",
            "--model.pretrained", str(tiny_model), "--model.scratch", "true", "--model.head_hidden", "16",
            "--optim.epochs", "2", "--trainer.tensorboard", "true",
            "--output", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    assert all((out / name).is_file() for name in RUN_FILES)
    assert list((out / "tensorboard").glob("events.out.tfevents.*")), "no TensorBoard log next to metrics.csv"
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["data"]["dataset"] is None and config["data"]["targets"] == ["logp"]
    assert json.loads((out / "split.json").read_text())["method"] == "scaffold"
    model = molchannel.load(out / "model")
    assert model.tasks == ["logp"]
    provenance = model.info()["provenance"]
    assert provenance["scratch"] is True and provenance["pretrained"] is False
    assert (
        provenance["base_model"]["weights_sha256"]
        == json.loads((tiny_model / "config.json").read_text())["weights_sha256"]
    )
    assert (
        main([*args[:-3], "--output", str(out), "--quiet", "--optim.epochs", "3"]) == 1
    )  # exists, no --resume


def test_cli_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["finetune", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--data.path",
        "--data.targets",
        "--model.scratch",
        "--optim.epochs",
        "--prompt.init",
        "--resume",
    ):
        assert option in text


# ---- your own split (data.split: column) and runs without a test set ---------------------------
def _split_csv(logp_csv: Path, path: Path, subsets: list[str], split_col: str = "split") -> Path:
    """The first ``len(subsets)`` molecules of ``logp_csv`` as smiles, split column, logp (no id column)."""
    with open(logp_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))[: len(subsets)]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["smiles", split_col, "logp"])
        for row, subset in zip(rows, subsets, strict=True):
            writer.writerow([row["smiles"], subset, row["logp"]])
    return path


def _column_config(path: Path, model: Path, **data: object) -> dict:
    return {
        "data": {"path": str(path), "task_type": "regression", "split": "column", **data},
        "model": {"pretrained": str(model), "head_hidden": 16},
        "optim": {"epochs": 2},
    }


def test_split_column_is_used_exactly_and_is_not_a_target(
    logp_csv: Path, tiny_model: Path, tmp_path: Path
) -> None:
    # case, spaces and the val / validation spellings are accepted
    names = {0: "Train", 1: " train ", 2: "VALID", 3: "val", 4: "Validation", 5: "test", 6: "TEST "}
    subsets = [names[i % 7] for i in range(70)]
    path = _split_csv(logp_csv, tmp_path / "mine.csv", subsets)
    result = run_finetune(_column_config(path, tiny_model), tmp_path / "run", quiet=True)  # targets: null
    labels = [s.strip().lower() for s in subsets]
    split = json.loads((result.run_dir / "split.json").read_text())
    assert split["method"] == "column" and split["params"] == {"column": "split"}
    assert split["train"] == [i for i, s in enumerate(labels) if s == "train"]
    assert split["valid"] == [i for i, s in enumerate(labels) if s in ("valid", "val", "validation")]
    assert split["test"] == [i for i, s in enumerate(labels) if s == "test"] == result.test_indices.tolist()
    assert molchannel.load(result.model_dir).tasks == ["logp"]  # the split column is no target
    assert math.isfinite(result.test_metric) and result.test_predictions.shape == (len(split["test"]), 1)


def test_split_column_errors_say_what_to_change(logp_csv: Path, tiny_model: Path, tmp_path: Path) -> None:
    subsets = ["train"] * 8 + ["valid", "tset", "train", "", "test"]
    path = _split_csv(logp_csv, tmp_path / "bad.csv", subsets)
    with pytest.raises(ValueError, match=r"2 value\(s\).*row 9: 'tset'; row 11: ''.*\['test', 'train'"):
        run_finetune(_column_config(path, tiny_model), tmp_path / "bad", quiet=True)
    path = _split_csv(logp_csv, tmp_path / "novalid.csv", ["train"] * 10 + ["test"] * 2)
    with pytest.raises(ValueError, match="marks no valid rows"):
        run_finetune(_column_config(path, tiny_model), tmp_path / "novalid", quiet=True)
    with pytest.raises(ValueError, match="data.split_col='fold'"):
        run_finetune(_column_config(path, tiny_model, split_col="fold"), tmp_path / "nocol", quiet=True)
    # another missing column is not blamed on the split column, which the file has
    with pytest.raises(molchannel.data.MissingColumnError) as missing:
        run_finetune(_column_config(path, tiny_model, smiles_col="SMILES"), tmp_path / "nosmiles", quiet=True)
    assert missing.value.missing == ["SMILES"] and "split_col" not in str(missing.value)
    with pytest.raises(ValueError, match="data.path"):
        load_config(overrides={"data": {"dataset": "esol", "split": "column"}})
    with pytest.raises(ValueError, match="split_col 'logp'"):
        load_config(overrides={"data": {"path": str(path), "task_type": "regression", "split": "column",
                                        "split_col": "logp", "targets": ["logp"]}})  # fmt: skip


def test_without_a_test_set_the_test_metric_is_nan_and_the_model_is_exported(
    logp_csv: Path, tiny_model: Path, tmp_path: Path
) -> None:
    subsets = ["valid" if i % 6 == 0 else "train" for i in range(60)]
    path = _split_csv(logp_csv, tmp_path / "notest.csv", subsets, split_col="fold")
    config = _column_config(path, tiny_model, split_col="fold", targets=["logp"])
    result = run_finetune(config, tmp_path / "run", quiet=True)
    assert math.isnan(result.test_metric) and math.isfinite(result.valid_metric)
    assert result.test_indices.shape == (0,) and result.test_predictions.shape == (0, 1)
    run = result.run_dir
    assert all((run / name).is_file() for name in RUN_FILES)
    assert (run / "test_predictions.csv").read_text() == "row,smiles,logp,predicted logp\n"
    rows = _metrics(run)
    assert len(rows) == 2 and all(r["test_rmse"] == "" and r["valid_rmse"] for r in rows)
    saved = json.loads((run / "result.json").read_text())
    assert math.isnan(saved["test_metric"]) and saved["n_test"] == 0
    model = molchannel.load(result.model_dir)
    assert model.info()["provenance"]["metrics"] == {"valid_rmse": result.valid_metric}
    assert np.isfinite(model.predict(["CCO", "c1ccccc1O"])).all()
    again = run_finetune(config, run, resume=True, quiet=True)  # a finished run is reported again
    assert again.best_epoch == result.best_epoch and math.isnan(again.test_metric)


def test_test_frac_zero_gives_no_test_set() -> None:
    from molchannel.data.datasets import MoleculeTable
    from molchannel.finetune.data import make_split

    smiles = [f"C1{'C' * (2 + i % 5)}1" + "C" * (i % 4) + "O" * (i % 3) for i in range(53)]  # 5 scaffolds
    table = MoleculeTable("toy", smiles, np.zeros((53, 1), np.float32), ("y",), "regression", "rmse")
    for method in ("random", "scaffold", "random_scaffold"):
        config = load_config(overrides={"data": {"path": "toy.csv", "task_type": "regression",
                                                 "split": method, "test_frac": 0.0}})  # fmt: skip
        split = make_split(table, config)
        assert split.sizes[2] == 0 and sorted([*split.train, *split.valid]) == list(range(53)), method
