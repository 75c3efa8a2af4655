"""scripts/gpu_pretrain.sh end to end, on a CPU with the tiny recipe: the same script a GPU machine runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import molchannel
from molchannel.pretrain.leakage import read_heldout_keys, write_heldout_keys

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_pretrain.sh"


def _script(*args: str, timeout: int = 420) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "MOLCHANNEL_PROGRESS": "none"}
    return subprocess.run(
        ["bash", str(SCRIPT), "--python", sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )


def test_heldout_keys_file_round_trip(tmp_path: Path) -> None:
    keys = {"LFQSCWFLJHTTHZ-UHFFFAOYSA-N", "ISWSIDIOOBJBQZ-UHFFFAOYSA-N"}
    for name in ("keys.txt", "keys.txt.gz"):
        assert write_heldout_keys(tmp_path / name, [*keys, ""]) == 2
        assert read_heldout_keys(tmp_path / name) == keys
    (tmp_path / "bad.txt").write_text("CCO\n")
    with pytest.raises(ValueError, match="not a list of InChIKeys"):
        read_heldout_keys(tmp_path / "bad.txt")
    with pytest.raises(FileNotFoundError):
        read_heldout_keys(tmp_path / "missing.txt")


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_help_and_bad_option() -> None:
    shown = _script("--help", timeout=60)
    assert shown.returncode == 0
    for option in ("--wheels", "--smiles", "--limit", "--processes", "--minutes", "--out", "--accelerator"):
        assert option in shown.stdout
    bad = _script("--no-such-option", timeout=60)
    assert bad.returncode != 0
    assert "unknown option" in bad.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_script_end_to_end_on_cpu(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()  # empty: everything is installed here already, so nothing may be installed
    out = tmp_path / "out"
    done = _script(
        "--accelerator", "cpu",
        "--precision", "32-true",
        "--recipe", "configs/pretrain/tiny.yaml",
        "--smiles", "examples/zinc_sample.smi",
        "--limit", "60",
        "--processes", "1",
        "--workers", "1",
        "--minutes", "0.25",
        "--no-leakage-filter",
        "--wheels", str(wheels),
        "--work", str(tmp_path / "work"),
        "--out", str(out),
    )  # fmt: skip
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    for phase in ("check", "install", "prepare", "pretrain", "export"):
        assert f"== {phase} done in" in log
    assert "nothing missing" in log

    model_dir = out / "model"
    size = sum(f.stat().st_size for f in model_dir.rglob("*") if f.is_file())
    assert size <= 16 * 2**20
    model = molchannel.load(model_dir)
    x = np.asarray(model.embed(["CCO", "c1ccccc1O"]))
    assert x.shape[0] == 2 and np.isfinite(x).all()

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["anchors_per_s"] > 0
    assert metrics["steps"] > 0 and metrics["epochs"] > 0
    assert metrics["corpus"]["molecules"] == 60
    assert set(metrics["wall_s"]) == {"check", "install", "prepare", "pretrain", "export"}
    assert "train/loss" in metrics["final_losses"] and "val/loss" in metrics["final_losses"]
    assert metrics["model"]["model_bytes"] == size
    assert metrics["train_budget_s"] == 15
    assert (out / "gpu_pretrain.log").read_text().count("== pretrain done in") == 1
