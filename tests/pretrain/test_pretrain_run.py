"""Pre-training as users run it: the CLI on the tiny recipe, DDP on two CPU processes, kill and resume."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import molchannel
from molchannel.pretrain.checkpointing import AtomicCheckpointIO, load_checkpoint_safely
from molchannel.pretrain.corpus import CorpusConfig, PretrainCorpus, prepare_corpus

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "pretrain" / "tiny.yaml"
SAMPLE = REPO / "examples" / "zinc_sample.smi"


def _cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `molchannel ...` in a fresh interpreter (DDP re-launches the command line)."""
    cmd = [sys.executable, "-m", "molchannel.cli.main", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def _run_args(root: Path, corpus: Path, *extra: str) -> list[str]:
    return [
        "pretrain",
        "--config",
        str(TINY),
        "--trainer.default_root_dir",
        str(root),
        "--trainer.logger.init_args.save_dir",
        str(root),
        "--trainer.enable_progress_bar",
        "false",
        "--data.corpus",
        str(corpus),
        "--data.source",
        str(SAMPLE),
        *extra,
    ]


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus") / "tiny"
    prepare_corpus(SAMPLE, out, CorpusConfig(shard_size=100), limit=240, progress=False)
    return out


def test_prepared_corpus_is_aligned_and_complete(tiny_corpus: Path) -> None:
    corpus = PretrainCorpus(tiny_corpus)
    smiles = SAMPLE.read_text().split()
    manifest = corpus.manifest
    assert manifest["n_molecules"] + manifest["n_invalid"] + manifest["n_removed_heldout"] == 240
    assert 3.0 < manifest["mean_real_perturbations"] <= 5.0
    from rdkit import Chem

    for i in (0, 17, len(corpus) - 1):
        item = corpus[i]
        mol = Chem.MolFromSmiles(smiles[item.row])
        assert item.anchor.num_nodes == mol.GetNumAtoms()  # the stored graph is that row's molecule
        assert len(item.positives) == 5 and item.anchor.context_label.max() < len(corpus.vocab)


def test_resuming_prepare_keeps_finished_shards(tiny_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "c"
    prepare_corpus(SAMPLE, out, CorpusConfig(shard_size=100), limit=240, progress=False)
    kept = (out / "shard-00000.records.safetensors").stat().st_mtime_ns
    (out / "shard-00001.summary.json").unlink()  # as if killed while writing shard 1
    manifest = prepare_corpus(SAMPLE, out, CorpusConfig(shard_size=100), limit=240, progress=False)
    assert (out / "shard-00000.records.safetensors").stat().st_mtime_ns == kept
    assert manifest["n_molecules"] == PretrainCorpus(tiny_corpus).manifest["n_molecules"]
    with pytest.raises(ValueError, match="other settings"):
        prepare_corpus(SAMPLE, out, CorpusConfig(shard_size=50), limit=240, progress=False)


def test_preparing_with_a_larger_limit_grows_the_corpus(tmp_path: Path) -> None:
    out = tmp_path / "c"
    small = prepare_corpus(SAMPLE, out, CorpusConfig(shard_size=100), limit=150, progress=False)
    kept = (out / "shard-00000.records.safetensors").stat().st_mtime_ns
    grown = prepare_corpus(SAMPLE, out, CorpusConfig(shard_size=100), limit=240, progress=False)
    assert (out / "shard-00000.records.safetensors").stat().st_mtime_ns == kept  # full shard kept
    assert len(grown["shards"]) == 3 and grown["shards"][1]["rows"] == [100, 200]  # partial shard rebuilt
    assert grown["n_molecules"] > small["n_molecules"]
    assert grown["n_molecules"] == len(PretrainCorpus(out))


def test_leakage_filter_removes_heldout_molecules(tmp_path: Path) -> None:
    from molchannel.pretrain.leakage import inchikey

    smiles = SAMPLE.read_text().split()[:30]
    banned = {inchikey(Chem_mol(s)) for s in smiles[:4]}
    manifest = prepare_corpus(
        smiles, tmp_path / "c", CorpusConfig(shard_size=50), heldout_keys=banned, progress=False
    )
    assert manifest["n_removed_heldout"] == 4 and manifest["n_molecules"] == 26


def Chem_mol(smiles: str):  # noqa: ANN201, N802 - tiny helper
    from rdkit import Chem

    return Chem.MolFromSmiles(smiles)


def test_tiny_recipe_trains_exports_and_embeds(tmp_path: Path) -> None:
    result = _cli(*_run_args(tmp_path / "run", tmp_path / "corpus"), "--tensorboard", "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "GPU available" not in result.stderr  # --quiet: Lightning's info lines are silenced
    assert list((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*")), "no TensorBoard log"
    with open(next((tmp_path / "run").rglob("metrics.csv"))) as fh:
        metrics = list(csv.DictReader(fh))
    columns = set(metrics[0])
    for term in ("mcd", "scd", "cp", "cp_context", "cp_motif", "attn_mcd", "attn_scd"):
        assert f"train/{term}_step" in columns and f"val/{term}" in columns
    losses = [float(r["train/loss_epoch"]) for r in metrics if r.get("train/loss_epoch")]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert load_checkpoint_safely(tmp_path / "run" / "checkpoints" / "last.ckpt")["epoch"] == 1

    exported = _cli("export", str(tmp_path / "run"), "-o", str(tmp_path / "model"))
    assert exported.returncode == 0, exported.stderr[-2000:]
    model = molchannel.load(tmp_path / "model")
    assert model.info()["pretrained"] is True and model.embedding_dim == 32
    emb = model.embed(["CCO", "c1ccccc1O"], channel="all")
    assert emb.shape == (2, 3, 32) and np.isfinite(emb).all()


@pytest.mark.slow
def test_ddp_two_cpu_processes_disjoint_data_identical_weights(tmp_path: Path, tiny_corpus: Path) -> None:
    audit = tmp_path / "audit"
    extra = tmp_path / "audit.yaml"
    extra.write_text(
        yaml.safe_dump(
            {
                "trainer": {
                    "callbacks": [
                        {
                            "class_path": "molchannel.pretrain.callbacks.RankAudit",
                            "init_args": {"output_dir": str(audit)},
                        }
                    ]
                }
            }
        )
    )
    result = _cli(
        *_run_args(
            tmp_path / "run",
            tiny_corpus,
            "--config",
            str(extra),
            "--trainer.devices",
            "2",
            "--trainer.strategy",
            "ddp",
            "--data.limit",
            "200",
            "--data.val_fraction",
            "0.04",
            "--data.batch_size",
            "16",
        ),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [json.loads((audit / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert {r["world_size"] for r in ranks} == {2} and ranks[0]["pid"] != ranks[1]["pid"]
    for epoch in ("0", "1"):
        a, b = set(ranks[0]["seen"][epoch]), set(ranks[1]["seen"][epoch])
        assert a and b and not (a & b), f"ranks overlap in epoch {epoch}"
        assert len(a | b) == 192  # every training molecule once (200 - 8 validation)
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]


@pytest.mark.slow
def test_killed_run_resumes_from_last_checkpoint(tmp_path: Path, tiny_corpus: Path) -> None:
    root = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "molchannel.cli.main",
        *_run_args(root, tiny_corpus, "--trainer.max_epochs", "4"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = root / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, (
        "the run ended before it could be killed: " + proc.stderr.read().decode()[-2000:]
    )
    time.sleep(0.3)  # into the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted = load_checkpoint_safely(last)  # never a half-written file
    assert interrupted["epoch"] < 3
    resumed = _cli(*_run_args(root, tiny_corpus, "--trainer.max_epochs", "4", "--ckpt_path", "last"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restored all states" in resumed.stderr + resumed.stdout
    final = load_checkpoint_safely(last)
    assert final["epoch"] == 3
    assert final["global_step"] == 4 * interrupted["global_step"] // (interrupted["epoch"] + 1)
    # the resumed run ends with the same weights as one that was never interrupted
    straight = _cli(*_run_args(tmp_path / "straight", tiny_corpus, "--trainer.max_epochs", "4"))
    assert straight.returncode == 0, straight.stderr[-3000:]
    reference = load_checkpoint_safely(tmp_path / "straight" / "checkpoints" / "last.ckpt")["state_dict"]
    assert reference.keys() == final["state_dict"].keys()
    for name, tensor in reference.items():
        assert torch.equal(tensor, final["state_dict"][name]), f"{name} differs after resuming"


def test_atomic_checkpoint_write_keeps_the_previous_file(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)

    class Explodes:
        def __reduce__(self):  # noqa: ANN204 - fails half-way through serialisation
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        io.save_checkpoint({"epoch": 2, "w": torch.zeros(1000), "bad": Explodes()}, path)
    assert load_checkpoint_safely(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


@pytest.mark.parametrize(
    "config", sorted((REPO / "configs" / "pretrain").glob("*.yaml")), ids=lambda p: p.stem
)
def test_every_pretrain_config_runs_fast_dev_run(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One training and one validation batch of every recipe (its model, losses and featurizer) on CPU."""
    from lightning.pytorch import Trainer

    cfg = yaml.safe_load(config.read_text())
    featurizer = cfg["data"].get("prepare", {}).get("featurizer", "basic")
    corpus = tmp_path / "corpus"
    prepare_corpus(
        SAMPLE, corpus, CorpusConfig(featurizer=featurizer, shard_size=64), limit=64, progress=False
    )
    from molchannel.pretrain.cli import main

    trainers: list[Trainer] = []  # the CLI's trainer, to look at after the run
    fit = Trainer.fit

    def recording_fit(self: Trainer, *args: object, **kwargs: object) -> None:
        trainers.append(self)
        fit(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", recording_fit)
    code = main(
        [
            "--config",
            str(config),
            "--trainer.fast_dev_run",
            "1",
            "--trainer.accelerator",
            "cpu",
            "--trainer.devices",
            "1",
            "--trainer.strategy",
            "auto",
            "--trainer.default_root_dir",
            str(tmp_path / "run"),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path / "run"),
            "--trainer.enable_progress_bar",
            "false",
            "--data.corpus",
            str(corpus),
            "--data.batch_size",
            "4",
            "--data.num_workers",
            "0",
        ]
    )
    assert code == 0
    (trainer,) = trainers
    assert trainer.state.finished and trainer.global_step == 1  # one optimizer step was taken
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    assert "train/loss" in metrics and "val/loss" in metrics  # a training and a validation batch ran
    not_finite = {name: value for name, value in metrics.items() if not math.isfinite(value)}
    assert not not_finite  # losses, their terms and the diagnostics
    module = trainer.lightning_module
    assert module.hparams.featurizer == featurizer  # the recipe's featurizer reached the model
    encoder = cfg["model"]["encoder"]
    built = module.encoder.config
    assert (built.backbone, built.num_layers, built.hidden_dim) == (
        encoder["backbone"],
        encoder["num_layers"],
        encoder["hidden_dim"],
    )  # the recipe's model was built, not a default one


def test_default_recipe_config_is_the_shipped_default_recipe() -> None:
    """configs/pretrain/default.yaml reproduces the hyperparameters the shipped default was trained with."""
    recipe = yaml.safe_load((REPO / "configs" / "pretrain" / "default.yaml").read_text())["model"]
    config = json.loads((REPO / "molchannel" / "assets" / "default" / "config.json").read_text())
    trained = config["provenance"]["pretrain_hyper_parameters"]
    for key, value in recipe.items():
        if key == "encoder":
            assert {k: config["network"]["encoder"][k] for k in value} == {
                k: list(v) if isinstance(v, list) else v for k, v in value.items()
            }
        elif key == "loss_weights":
            assert {k: float(v) for k, v in value.items()} == trained[key]
        else:
            assert trained[key] == value, key
