"""Prediction with a fine-tuned model folder: units, alignment with invalid input, the command line.

The model folders here are built directly (a tiny encoder plus a head and a recorded target
scaler), so these tests need neither training nor benchmark data; ``tests/finetune/test_finetune.py``
checks that the model a real run exports predicts what the run reported.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import molchannel
from molchannel.api import MolChannelModel, build_model_config, init_model
from molchannel.chem.smiles import InvalidSmilesError
from molchannel.cli.main import main
from molchannel.nn.model import HeadConfig, MolChannelNet, NetConfig

SMILES = ["CCO", "C1CC", "c1ccccc1O", "", "CC(=O)Nc1ccc(O)cc1"]
VALID = [0, 2, 4]


def _headed_model(path: Path, task_type: str, tasks: list[str], mean=None, std=None) -> Path:
    base = init_model({"num_layers": 2, "hidden_dim": 16, "aggregator_heads": 2}, seed=0)
    head_config = HeadConfig(len(tasks), hidden_dim=8, task_type=task_type)
    net_config = NetConfig(encoder=base.net.config.encoder, tau=1.0, head=head_config)
    torch.manual_seed(1)
    net = MolChannelNet(net_config)
    net.encoder.load_state_dict(base.net.encoder.state_dict())
    if mean is not None:
        assert net.target_scaler is not None
        net.target_scaler.mean.copy_(torch.tensor(mean))
        net.target_scaler.std.copy_(torch.tensor(std))
    metric = "rmse" if task_type == "regression" else "roc_auc"
    head = {"tasks": tasks, "task_type": task_type, "metric": metric}
    config = build_model_config(
        net_config, base.featurizer, {"pretrained": False, "finetuned": True}, head=head
    )
    return MolChannelModel(net, base.featurizer, config).save(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("predict")
    return {
        "regression": _headed_model(
            root / "reg", "regression", ["y", "z"], mean=[10.0, -2.0], std=[3.0, 0.5]
        ),
        "unscaled": _headed_model(root / "raw", "regression", ["y", "z"]),
        "classification": _headed_model(root / "cls", "classification", ["active"]),
    }


def test_regression_predictions_are_in_original_units(models: dict[str, Path]) -> None:
    scaled = molchannel.load(models["regression"]).predict(["CCO", "c1ccccc1O"])
    raw = molchannel.load(models["unscaled"]).predict(["CCO", "c1ccccc1O"])
    assert scaled.dtype == np.float32 and scaled.shape == (2, 2)
    np.testing.assert_allclose(scaled, raw * np.array([3.0, 0.5]) + np.array([10.0, -2.0]), rtol=1e-6)


def test_classification_gives_probabilities(models: dict[str, Path]) -> None:
    model = molchannel.load(models["classification"])
    probs = model.predict([SMILES[i] for i in VALID])
    assert model.tasks == ["active"] and probs.shape == (3, 1)
    assert ((probs > 0) & (probs < 1)).all()
    assert model.predict("CCO").shape == (1,)  # one SMILES -> one row of tasks


def test_rows_line_up_with_the_input_under_every_invalid_policy(models: dict[str, Path]) -> None:
    model = molchannel.load(models["regression"])
    alone = model.predict([SMILES[i] for i in VALID], batch_size=1)
    with_nan = model.predict(SMILES, on_invalid="nan", batch_size=2)
    assert with_nan.shape == (5, 2)
    assert np.isnan(with_nan[[1, 3]]).all()
    np.testing.assert_allclose(with_nan[VALID], alone, rtol=1e-5, atol=1e-6)  # batch size does not matter
    skipped, report = model.predict(SMILES, on_invalid="skip", return_report=True)
    assert skipped.shape == (3, 2) and report.indices == VALID
    assert [r.index for r in report.invalid] == [1, 3]
    np.testing.assert_allclose(skipped, alone, rtol=1e-5, atol=1e-6)
    with pytest.raises(InvalidSmilesError, match="index 1"):
        model.predict(SMILES)


def test_a_model_without_head_says_how_to_get_one() -> None:
    with pytest.raises(ValueError, match="molchannel finetune"):
        molchannel.load("default").predict(["CCO"])


def test_predict_does_not_import_lightning_or_pyg(models: dict[str, Path]) -> None:
    code = (
        f"import sys, molchannel; molchannel.load({str(models['regression'])!r}).predict(['CCO']); "
        "heavy = {'lightning', 'pytorch_lightning', 'torch_geometric'}; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_cli_keeps_input_columns_and_lists_invalid_rows(models: dict[str, Path], tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("id,smiles,y\na,CCO,1.5\nb,C1CC,2.0\nc,c1ccccc1O,\n")
    out = tmp_path / "out.csv"
    assert main(["predict", "-q", "-m", str(models["regression"]), "-i", str(src), "-o", str(out)]) == 0
    rows = _read(out)
    assert list(rows[0]) == ["id", "smiles", "y", "y_pred", "z", "valid"]  # "y" was taken: y_pred
    assert [r["id"] for r in rows] == ["a", "b", "c"] and [r["y"] for r in rows] == ["1.5", "2.0", ""]
    assert [r["valid"] for r in rows] == ["True", "False", "True"]
    assert rows[1]["y_pred"] == "" and rows[1]["z"] == ""
    expected = molchannel.load(models["regression"]).predict(["CCO", "c1ccccc1O"])
    got = np.array([[float(rows[i]["y_pred"]), float(rows[i]["z"])] for i in (0, 2)])
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    invalid = _read(tmp_path / "out.invalid.csv")
    assert [(r["index"], r["smiles"]) for r in invalid] == [("1", "C1CC")] and "RDKit" in invalid[0]["reason"]

    src.write_text("id,smiles,y\na,CCO,1.5\nc,c1ccccc1O,\n")  # all valid now: the stale report goes
    assert main(["predict", "-q", "-m", str(models["regression"]), "-i", str(src), "-o", str(out)]) == 0
    assert not (tmp_path / "out.invalid.csv").exists()


def test_cli_skip_raise_and_smi_input(models: dict[str, Path], tmp_path: Path) -> None:
    src = tmp_path / "in.smi"
    src.write_text("CCO\nnot_a_smiles\nc1ccccc1O\n")
    out = tmp_path / "out.csv"
    model = str(models["classification"])
    assert main(["predict", "-q", "-m", model, "-i", str(src), "-o", str(out), "--on-invalid", "skip"]) == 0
    rows = _read(out)
    assert list(rows[0]) == ["smiles", "active", "valid"]
    assert [r["smiles"] for r in rows] == ["CCO", "c1ccccc1O"] and all(
        0 < float(r["active"]) < 1 for r in rows
    )
    assert (tmp_path / "out.invalid.csv").exists()
    assert main(["predict", "-q", "-m", model, "-i", str(src), "-o", str(tmp_path / "r.csv"),
                 "--on-invalid", "raise"]) == 1  # fmt: skip
    assert main(["predict", "-q", "-m", "default", "-i", str(src), "-o", str(tmp_path / "d.csv")]) == 1
