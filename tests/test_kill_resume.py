"""Resume after a real hard kill, not an exception raised in-process.

``molchannel finetune`` and ``molchannel benchmark moleculenet`` run as separate processes, are killed
with SIGKILL once they have made progress (a checkpoint, a finished dataset), and are run again with the
same command (``--resume`` for finetune). They must finish with exactly the metrics of an uninterrupted
run of the same seed: every value of metrics.csv (timings aside) and of the result tables, compared as
the text written, so bit for bit. Runs use a 2 x 32 GIN with head dropout (so the resumed epochs must
draw the same dropout masks), 200 molecules per dataset, CPU and one thread. The fine-tuning run has
early stopping on, which a resumed run must pick up (its patience of 5 never runs out on this data, at
the earlier default prompt learning rate 5e-4 that the test keeps).

Each kill waits for progress files rather than a fixed time, and enough epochs remain after the kill
point (several seconds of work) that a run cannot finish before it is killed.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from molchannel.api import init_model
from molchannel.cli.main import main
from molchannel.training import load_checkpoint_safely

pytestmark = [pytest.mark.slow, pytest.mark.data]

REPO = Path(__file__).resolve().parents[1]
FINETUNE_EPOCHS = 8
#: esol is killed after its first epoch: the other 15 (a few seconds) cannot finish before the kill
BENCHMARK_EPOCHS = 16
#: columns that measure time, which no two runs share
TIMING = ("train_time_s", "epoch_time_s", "wall_time_s", "train_molecules_per_s", "wall_time_s_mean",
          "train_molecules_per_s_mean")  # fmt: skip


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 x 32 GIN standing in for a pre-trained model folder."""
    model = init_model({"num_layers": 2, "hidden_dim": 32, "aggregator_heads": 4}, seed=123)
    model.config["provenance"].update(pretrained=True, description="stand-in for a pre-trained model")
    return model.save(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture()
def env(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """One thread and a private graph cache, for the child processes and for the in-process reference run."""
    monkeypatch.setenv("MOLCHANNEL_DATA_DIR", str(data_dir))
    monkeypatch.setenv("MOLCHANNEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # results are bitwise reproducible only at a fixed thread count
    yield dict(os.environ)
    torch.set_num_threads(threads)


def _start(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    # output to a file, not a pipe nobody reads while waiting (a full pipe would stall the child)
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "molchannel.cli.main", *args],
            cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "molchannel.cli.main", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def _kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], what: str, log: Path) -> None:
    """SIGKILL ``proc`` as soon as ``ready()``; fail if it ended before (it must die mid-way)."""
    deadline = time.monotonic() + 600
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {what} after 600 s:\n{log.read_text()[-3000:]}")
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    code = proc.wait(timeout=60)
    assert code == -signal.SIGKILL, f"the run finished (exit {code}) before it could be killed"


def _rows(path: Path) -> list[dict[str, str]]:
    """A CSV as written (text values), [] while it does not exist."""
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _without(rows: list[dict[str, str]], columns: tuple[str, ...]) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k not in columns} for row in rows]


def test_finetune_killed_mid_run_resumes_to_the_uninterrupted_result(
    tiny_model: Path, env: dict[str, str], tmp_path: Path
) -> None:
    args = ["finetune", "--data.dataset", "esol", "--data.limit", "200",
            "--model.pretrained", str(tiny_model), "--model.head_hidden", "32", "--model.dropout", "0.2",
            "--optim.epochs", str(FINETUNE_EPOCHS), "--optim.early_stopping", "5", "--seed", "1",
            "--optim.lr_prompt", "0.0005", "--quiet"]  # fmt: skip
    reference, run = tmp_path / "reference", tmp_path / "run"
    assert main([*args, "--output", str(reference)]) == 0  # in-process (and it fills the graph cache)

    log = tmp_path / "killed.log"
    proc = _start([*args, "--output", str(run)], env, tmp_path, log)
    _kill_when(proc, lambda: len(_rows(run / "metrics.csv")) >= 2, "epoch 2 was recorded", log)
    killed = _rows(run / "metrics.csv")
    assert 2 <= len(killed) < FINETUNE_EPOCHS and not (run / "result.json").exists()
    last = run / "checkpoints" / "last.ckpt"
    history = load_checkpoint_safely(last)["finetune_history"]  # complete, never half-written
    assert len(history) in (len(killed), len(killed) + 1)  # the kill may fall between the two writes
    # what a kill during an atomic write leaves behind: temporary files that nothing may read
    (run / "checkpoints" / ".last.ckpt.killed.tmp").write_bytes(b"half a checkpoint")
    (run / ".metrics.csv.killed.tmp").write_text("epoch,train_loss\n1,")

    resumed = _run([*args, "--output", str(run), "--resume"], env, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = _rows(run / "metrics.csv")
    # continued from the checkpoint, not started again: the epochs before the kill kept their timings
    assert final[: len(killed)] == killed
    assert len(final) == FINETUNE_EPOCHS
    assert _without(final, TIMING) == _without(_rows(reference / "metrics.csv"), TIMING)
    ours, theirs = (json.loads((d / "result.json").read_text()) for d in (run, reference))
    for key in ("best_epoch", "valid_metric", "test_metric", "channel_weights", "epochs_run"):
        assert ours[key] == theirs[key], key
    # Not asserted: that the reported epoch comes after the kill (that depends on the data). That the
    # resumed process trained the epochs after the kill is shown by final[: len(killed)] == killed and
    # len(final) == FINETUNE_EPOCHS above.
    assert (run / "test_predictions.csv").read_bytes() == (reference / "test_predictions.csv").read_bytes()
    sha = [json.loads((d / "model" / "config.json").read_text())["weights_sha256"] for d in (run, reference)]
    assert sha[0] == sha[1]  # the exported model is bit-identical too


def test_benchmark_killed_mid_run_resumes_to_the_uninterrupted_tables(
    tiny_model: Path, env: dict[str, str], tmp_path: Path
) -> None:
    args = ["benchmark", "moleculenet", "--datasets", "bbbp", "esol", "--seeds", "1",
            "--epochs", str(BENCHMARK_EPOCHS), "--limit", "200", "--model", str(tiny_model),
            "--config-dir", str(REPO / "configs" / "finetune"),
            "--set", "model.head_hidden=32", "--set", "model.dropout=0.2", "--no-baseline"]  # fmt: skip
    reference, out = tmp_path / "reference", tmp_path / "out"
    assert main([*args, "--output", str(reference), "--quiet"]) == 0

    log = tmp_path / "killed.log"
    proc = _start([*args, "--output", str(out)], env, tmp_path, log)
    bbbp_done = out / "records" / "bbbp" / "seed1.json"
    esol_metrics = out / "runs" / "esol" / "seed1" / "metrics.csv"
    # killed inside the second dataset's fine-tuning, once its first epoch is recorded (RunRecorder writes
    # metrics.csv after last.ckpt, so waiting for the checkpoint alone could leave nothing to compare)
    _kill_when(proc, lambda: bbbp_done.is_file() and len(_rows(esol_metrics)) >= 1, "esol's first epoch", log)
    assert (out / "records" / "esol" / "seed1.started.json").is_file()
    assert not (out / "records" / "esol" / "seed1.json").exists() and not (out / "results.csv").exists()
    killed = _rows(esol_metrics)
    assert 1 <= len(killed) < BENCHMARK_EPOCHS

    resumed = _run([*args, "--output", str(out)], env, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "bbbp seed 1: finished before with this config, skipped" in resumed.stderr
    assert "esol seed 1: resuming fine-tuning" in resumed.stderr  # not removed and started again
    assert "1 run(s) done, 1 already finished" in resumed.stderr
    assert not (out / "records" / "esol" / "seed1.started.json").exists()
    esol = _rows(esol_metrics)
    assert esol[: len(killed)] == killed and len(esol) == BENCHMARK_EPOCHS
    uninterrupted = _rows(reference / "runs" / "esol" / "seed1" / "metrics.csv")
    assert _without(esol, TIMING) == _without(uninterrupted, TIMING)
    for table in ("results.csv", "summary.csv"):
        ours, theirs = (_without(_rows(d / table), (*TIMING, "run_dir")) for d in (out, reference))
        assert len(ours) == 2 and ours == theirs, table
    assert all(math.isfinite(float(row["test_metric"])) for row in _rows(out / "results.csv"))
