"""The one-command benchmarks: table math, cliff RMSE, the ECFP + SVM baseline, resume, CLI wiring.

Fine-tuning itself is replaced by a fake runner here (it counts its calls); the real runner is exercised
end to end in the ``slow`` test at the bottom.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from molchannel.finetune import benchmark as bm
from molchannel.finetune import tables
from molchannel.finetune.baselines import (
    SvmBaselineConfig,
    cliff_rmse,
    ecfp_bits,
    ecfp_svm_baseline,
    fit_ecfp_svm,
    rbf_kernel,
    rmse,
    tanimoto_kernel,
)

# ---- statistics and tables ------------------------------------------------------------------


def test_mean_std_is_population_std_over_finite_values():
    mean, std, n = tables.mean_std([0.7, 0.8, 0.9, math.nan])
    assert n == 3
    assert mean == pytest.approx(0.8)
    assert std == pytest.approx(math.sqrt(2 / 3) * 0.1)  # ddof=0
    assert tables.mean_std([])[2] == 0 and math.isnan(tables.mean_std([])[0])


def test_average_over_datasets_uses_per_seed_averages_for_the_std():
    mean, std, n_common = tables.average_over_datasets({"a": {0: 1.0, 1: 3.0}, "b": {0: 5.0, 1: 7.0}})
    assert mean == pytest.approx(4.0)  # (2 + 6) / 2
    assert std == pytest.approx(1.0)  # per-seed averages 3 and 5
    assert n_common == 2
    # a dataset with only seed 0: the std uses seed 0 only (one value -> 0)
    mean, std, n_common = tables.average_over_datasets({"a": {0: 1.0, 1: 3.0}, "b": {0: 5.0}})
    assert mean == pytest.approx((2.0 + 5.0) / 2) and n_common == 1


def _record(dataset, seed, test, metric="roc_auc", valid=0.5, **extra):
    return {
        "kind": "finetune", "collection": "moleculenet", "dataset": dataset, "seed": seed,
        "task_type": "classification" if metric == "roc_auc" else "regression", "metric": metric,
        "best_epoch": 3, "valid_metric": valid, "test_metric": test, "wall_time_s": 10.0,
        "train_molecules_per_s": 100.0, "channel_weights": {"a": 0.5, "b": 0.5}, "config_hash": "x",
        "config": {"model": {"scratch": False, "pretrained": "default"}, "data": {"limit": None}},
        **extra,
    }  # fmt: skip


def test_moleculenet_summary_shows_roc_auc_in_percent_and_rmse_as_is():
    records = [
        _record("bbbp", 0, 0.70), _record("bbbp", 1, 0.72),
        _record("esol", 0, 1.0, metric="rmse"), _record("esol", 1, 1.2, metric="rmse"),
    ]  # fmt: skip
    summary = tables.summarize_moleculenet(records, ["bbbp", "esol"])
    bbbp, esol = summary
    assert bbbp["test_mean"] == pytest.approx(71.0) and bbbp["test_std"] == pytest.approx(1.0)
    assert bbbp["unit"] == "ROC-AUC (%)" and bbbp["n_seeds"] == 2 and bbbp["seeds"] == [0, 1]
    assert esol["test_mean"] == pytest.approx(1.1) and esol["test_std"] == pytest.approx(0.1)
    md = tables.moleculenet_markdown(summary, records)
    assert "71.0 ± 1.0" in md and "1.100 ± 0.100" in md
    # the published rows are printed beside ours, over the same datasets
    assert "| no pre-training (Hu et al.) | 65.8 | 65.8 |" in md
    assert "GraphMAE" in md and "Hu et al., Strategies for Pre-training Graph Neural Networks" in md


def test_moleculenet_markdown_uses_published_average_when_all_eight_are_present():
    from molchannel.finetune.references import MOLECULENET_COLUMNS

    records = [_record(d, 0, 0.75) for d in MOLECULENET_COLUMNS]
    md = tables.moleculenet_markdown(tables.summarize_moleculenet(records, MOLECULENET_COLUMNS), records)
    assert "| avg |" in md and "| 74.2 |" in md  # Supervised + ContextPred's published average
    assert "**75.0**" in md


# ---- metrics of the MoleculeACE tables ------------------------------------------------------


def test_cliff_rmse_uses_only_cliff_molecules():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([1.0, 2.0, 5.0, 4.0])
    cliff = np.array([0, 0, 1, 1])
    assert rmse(y, pred) == pytest.approx(1.0)  # sqrt(4 / 4)
    assert cliff_rmse(y, pred, cliff) == pytest.approx(math.sqrt(2.0))  # sqrt((4 + 0) / 2)
    assert cliff_rmse(y, pred, np.array([1, 1, 0, 0])) == pytest.approx(0.0)
    assert math.isnan(cliff_rmse(y, pred, np.zeros(4)))


def test_tanimoto_kernel_known_values_and_rdkit_parity():
    a = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]])
    b = np.array([[1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]])
    k = tanimoto_kernel(a, b)
    assert k[0].tolist() == pytest.approx([1 / 3, 1.0, 0.0, 0.0])
    assert k[1].tolist() == pytest.approx([0.5, 0.5, 0.5, 0.0])
    assert k[2].tolist() == pytest.approx([0.0, 0.0, 0.0, 0.0])  # empty vs empty: 0, as RDKit

    from rdkit import Chem, DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    smiles = ["CCO", "CCN", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O"]
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    fps = [gen.GetFingerprint(Chem.MolFromSmiles(s)) for s in smiles]
    expected = np.array([DataStructs.BulkTanimotoSimilarity(f, fps) for f in fps])
    bits = ecfp_bits(smiles)
    assert np.allclose(tanimoto_kernel(bits, bits), expected)


def test_rbf_kernel_matches_scikit_learn():
    from sklearn.metrics.pairwise import rbf_kernel as sk_rbf
    from sklearn.svm import SVR

    bits = ecfp_bits(["CCO", "CCN", "c1ccccc1O"])
    assert np.allclose(rbf_kernel(bits, bits, 0.01), sk_rbf(bits.astype(float), gamma=0.01))
    # the precomputed-kernel SVR is scikit-learn's RBF SVR on the raw bits
    rng = np.random.default_rng(0)
    x, y = (rng.random((50, 64)) < 0.2).astype(np.uint8), rng.normal(size=50)
    config = SvmBaselineConfig(c_grid=(10.0,), gamma_grid=(0.05,))
    pred, best, _, grid = fit_ecfp_svm(x[:40], y[:40], x[40:], config)
    reference = SVR(kernel="rbf", C=10.0, gamma=0.05, epsilon=0.1).fit(x[:40], y[:40]).predict(x[40:])
    assert best == {"C": 10.0, "gamma": 0.05} and len(grid) == 1
    assert np.allclose(pred, reference, atol=1e-6)


@pytest.fixture(scope="module")
def ace_subset(data_dir):
    from molchannel.data import load_dataset
    from molchannel.data.splits import official_split

    table = load_dataset("CHEMBL2047_EC50", data_dir)
    n = 200
    split = official_split(table.extra["split"][:n], valid_mask=table.valid_mask[:n])
    return table.smiles[:n], table.targets[:n, 0], table.extra["cliff_mol"][:n], split


@pytest.mark.data
@pytest.mark.parametrize("kernel", ["rbf", "tanimoto"])
def test_svm_baseline_beats_predicting_the_mean(ace_subset, kernel):
    smiles, y, cliff, split = ace_subset
    result = ecfp_svm_baseline(smiles, y, cliff, split.train, split.test, SvmBaselineConfig(kernel=kernel))
    mean_rmse = rmse(y[split.test], np.full(len(split.test), y[split.train].mean()))
    assert result.rmse < 0.9 * mean_rmse
    assert result.n_test == len(split.test) and result.n_cliff_test == int((cliff[split.test] == 1).sum())
    expected_cliff = cliff_rmse(y[split.test], result.test_predictions, cliff[split.test])
    assert result.cliff_rmse == pytest.approx(expected_cliff)
    assert len(result.grid) == (30 if kernel == "rbf" else 5)
    assert result.cv_rmse == min(p["cv_rmse"] for p in result.grid)


@pytest.mark.data
def test_svm_baseline_reproduces_moleculeace_on_a_full_dataset(data_dir):
    """Parity with MoleculeACE's published per-dataset ECFP + SVM result (its results file)."""
    from molchannel.data import load_dataset
    from molchannel.data.splits import official_split
    from molchannel.finetune.references import MOLECULEACE_SVM_PER_DATASET

    table = load_dataset("CHEMBL2047_EC50", data_dir)
    split = official_split(table.extra["split"], valid_mask=table.valid_mask)
    result = ecfp_svm_baseline(
        table.smiles, table.targets[:, 0], table.extra["cliff_mol"], split.train, split.test
    )
    published_rmse, published_cliff = MOLECULEACE_SVM_PER_DATASET["CHEMBL2047_EC50"]
    assert result.rmse == pytest.approx(published_rmse, abs=1e-3)  # 0.6136 here and there
    assert result.cliff_rmse == pytest.approx(published_cliff, abs=1e-3)


# ---- orchestration with a fake runner -------------------------------------------------------


class FakeRunner:
    """Stands in for run_finetune: records its calls, writes a file into the run folder."""

    def __init__(self, fail_on: set[tuple[str, int]] | None = None, tables_by_name=None):
        self.calls: list[dict] = []
        self.fail_on = set(fail_on or ())
        self.tables = tables_by_name or {}

    def __call__(self, config, output_dir, resume=False, quiet=False):
        dataset, seed = config["data"]["dataset"], config["seed"]
        self.calls.append({"dataset": dataset, "seed": seed, "resume": resume, "config": config})
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        (Path(output_dir) / "started.txt").write_text("x")
        if (dataset, seed) in self.fail_on:
            self.fail_on.discard((dataset, seed))
            raise RuntimeError("simulated crash")
        regression = dataset in self.tables or dataset in ("esol", "freesolv", "lipophilicity")
        idx, pred = np.arange(3), np.zeros((3, 1))
        if dataset in self.tables:  # MoleculeACE: predict y + 0.5 on the official test rows of the subset
            table = self.tables[dataset]
            idx = np.flatnonzero(np.asarray(table.extra["split"]) == "test")
            pred = table.targets[idx] + 0.5
        return SimpleNamespace(
            dataset=dataset, seed=seed, task_type="regression" if regression else "classification",
            metric="rmse" if regression else "roc_auc", best_epoch=1, valid_metric=0.6,
            test_metric=0.5 if dataset in self.tables else 0.6 + 0.01 * seed, test_indices=idx,
            test_predictions=pred, channel_weights={"mcd": 0.4, "scd": 0.3, "cp": 0.3}, wall_time_s=1.5,
            train_molecules_per_s=250.0, run_dir=Path(output_dir), model_dir=Path(output_dir) / "model",
        )  # fmt: skip


@pytest.fixture()
def config_dir(tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "base.yaml").write_text("optim: {epochs: 3}\ndata: {batch_size: 16}\n")
    (folder / "bace.yaml").write_text("optim: {lr_head: 0.002}\n")
    return folder


def _options(tmp_path, config_dir, **kw):
    defaults = dict(
        collection="moleculenet", datasets=["bbbp", "bace"], seeds=[0, 1], output=tmp_path / "out",
        config_dir=config_dir, quiet=True, baseline=False,
    )  # fmt: skip
    return bm.BenchmarkOptions(**{**defaults, **kw})


def test_configs_are_layered_and_overridden(tmp_path, config_dir):
    options = _options(tmp_path, config_dir, epochs=2, limit=50, overrides=["trainer.accelerator=cpu"])
    cfg = bm.effective_config(options, config_dir, "bace", 1)
    assert cfg["seed"] == 1 and cfg["data"]["dataset"] == "bace" and cfg["data"]["limit"] == 50
    assert cfg["optim"]["epochs"] == 2  # the command beats base.yaml
    assert cfg["optim"]["lr_head"] == 0.002 and cfg["data"]["batch_size"] == 16  # dataset and base layers
    assert bm.parse_overrides(["optim.lr_head=1e-3", "model.scratch=true"]) == {
        "optim": {"lr_head": 1e-3}, "model": {"scratch": True}}  # fmt: skip
    # the hash follows what changes numbers, not execution-only settings
    h = bm.run_hash(cfg, "data", bm.model_fingerprint(cfg))
    workers_options = _options(tmp_path, config_dir, epochs=2, limit=50, overrides=["data.num_workers=2"])
    workers = bm.effective_config(workers_options, config_dir, "bace", 1)
    assert bm.run_hash(workers, "data", bm.model_fingerprint(workers)) == h
    scratch_options = _options(tmp_path, config_dir, epochs=2, limit=50, scratch=True)
    scratch = bm.effective_config(scratch_options, config_dir, "bace", 1)
    assert bm.model_fingerprint(scratch).startswith("scratch:")
    assert bm.run_hash(scratch, "data", bm.model_fingerprint(scratch)) != h
    assert bm.run_hash(cfg, "other data", bm.model_fingerprint(cfg)) != h
    # a key added later at its inert default (data.split_col) keeps the hashes of older records
    older = {**cfg, "data": {k: v for k, v in cfg["data"].items() if k != "split_col"}}
    assert cfg["data"]["split_col"] == "split" and bm.run_hash(older, "data", bm.model_fingerprint(cfg)) == h
    with pytest.raises(ValueError, match="cannot read the starting model"):
        bm.model_fingerprint({"model": {"pretrained": str(tmp_path / "missing"), "scratch": False}})
    with pytest.raises(ValueError, match="section.key=value"):
        bm.parse_overrides(["optim.lr_head"])
    with pytest.raises(ValueError, match="unknown fine-tuning config key"):
        bm.effective_config(_options(tmp_path, config_dir, overrides=["optim.lr=1"]), config_dir, "bbbp", 0)


def test_dataset_names_are_checked_against_the_collection():
    assert bm.resolve_datasets("moleculenet", ["BBBP", "bbbp", "Tox21"]) == ["bbbp", "tox21"]
    assert len(bm.resolve_datasets("moleculeace", None)) == 30
    with pytest.raises(ValueError, match="belongs to moleculeace"):
        bm.resolve_datasets("moleculenet", ["CHEMBL2047_EC50"])
    with pytest.raises(ValueError, match="unknown dataset"):
        bm.resolve_datasets("moleculenet", ["bbbq"])
    with pytest.raises(ValueError, match="not both"):
        bm.BenchmarkOptions(collection="moleculenet", model="default", scratch=True)


def test_resume_skips_finished_runs_and_a_changed_config_reruns(tmp_path, config_dir):
    runner = FakeRunner()
    outcome = bm.run_benchmark(_options(tmp_path, config_dir), runner=runner)
    calls = [(c["dataset"], c["seed"]) for c in runner.calls]
    assert calls == [("bbbp", 0), ("bbbp", 1), ("bace", 0), ("bace", 1)]
    out = tmp_path / "out"
    for name in ("results.csv", "summary.csv", "results.md", "results.png"):
        assert (out / name).is_file(), name
    record = json.loads((out / "records" / "bace" / "seed1.json").read_text())
    assert record["config"]["optim"]["lr_head"] == 0.002 and len(record["config_hash"]) == 16
    assert outcome.summary[0]["dataset"] == "bbbp" and outcome.summary[0]["test_mean"] == pytest.approx(60.5)

    again = FakeRunner()
    outcome = bm.run_benchmark(_options(tmp_path, config_dir), runner=again)
    assert again.calls == [] and len(outcome.skipped) == 4
    assert outcome.summary[0]["n_seeds"] == 2  # tables rebuilt from the records

    changed = FakeRunner()
    bm.run_benchmark(_options(tmp_path, config_dir, datasets=["bace"], epochs=1), runner=changed)
    assert [(c["dataset"], c["seed"]) for c in changed.calls] == [("bace", 0), ("bace", 1)]
    assert all(c["config"]["optim"]["epochs"] == 1 for c in changed.calls)
    lines = (out / "results.csv").read_text().strip().splitlines()
    assert len(lines) == 1 + 4  # header + every record in the folder (bbbp from before, bace rerun)


def test_a_failed_run_is_reported_and_resumed_alone(tmp_path, config_dir):
    runner = FakeRunner(fail_on={("bace", 1)})
    with pytest.raises(bm.BenchmarkError, match="bace seed 1"):
        bm.run_benchmark(_options(tmp_path, config_dir), runner=runner)
    out = tmp_path / "out"
    assert len(runner.calls) == 4 and "| BBBP |" in (out / "results.md").read_text()
    assert (out / "records" / "bace" / "seed1.started.json").is_file()

    runner2 = FakeRunner()
    outcome = bm.run_benchmark(_options(tmp_path, config_dir), runner=runner2)
    assert [(c["dataset"], c["seed"], c["resume"]) for c in runner2.calls] == [("bace", 1, True)]
    assert len(outcome.skipped) == 3 and not (out / "records" / "bace" / "seed1.started.json").exists()


def test_an_unfinished_run_resumes_when_only_execution_settings_changed(tmp_path, config_dir):
    bace1 = tmp_path / "out" / "runs" / "bace" / "seed1"
    with pytest.raises(bm.BenchmarkError, match="bace seed 1"):
        bm.run_benchmark(_options(tmp_path, config_dir), runner=FakeRunner(fail_on={("bace", 1)}))
    assert (bace1 / "started.txt").is_file()  # the unfinished run's files

    # TensorBoard on, other workers: the same run, resumed (its folder kept), not started over
    execution = ["trainer.tensorboard=true", "data.num_workers=2", "data.cache_dir=/tmp/elsewhere"]
    runner = FakeRunner(fail_on={("bace", 1)})
    with pytest.raises(bm.BenchmarkError, match="bace seed 1"):
        bm.run_benchmark(_options(tmp_path, config_dir, overrides=execution), runner=runner)
    assert [(c["dataset"], c["seed"], c["resume"]) for c in runner.calls] == [("bace", 1, True)]
    assert runner.calls[0]["config"]["trainer"]["tensorboard"] is True

    (bace1 / "started.txt").unlink()
    (bace1 / "partial.txt").write_text("x")
    runner = FakeRunner()
    changed = _options(tmp_path, config_dir, overrides=["optim.lr_prompt=0.01"])
    outcome = bm.run_benchmark(changed, runner=runner)
    assert ("bace", 1, False) in [(c["dataset"], c["seed"], c["resume"]) for c in runner.calls]
    assert not (bace1 / "partial.txt").exists()  # another config: started over in an emptied folder
    assert len(outcome.ran) == 4


def test_run_hash_is_pinned():
    """Benchmark records store this hash: changing what it covers reruns every published benchmark run."""
    from molchannel.finetune.config import FinetuneConfig

    # the defaults before issue 11 (lr_prompt 5e-4, no early stopping, no extra features): the keys added
    # since (model.backbone_dropout, optim.weight_decay_prompt) are left out at null, so such records keep
    # their hash
    earlier = FinetuneConfig()
    earlier.optim.lr_prompt, earlier.optim.early_stopping = 5.0e-4, None
    earlier.model.extra_features = []
    config = earlier.to_dict()
    assert bm.run_hash(config, "data-sha", "weights-sha") == "42758be16f6463fb"
    assert bm.run_hash(FinetuneConfig().to_dict(), "data-sha", "weights-sha") != "42758be16f6463fb"
    own = {**config, "optim": {**config["optim"], "epochs": 7},
           "trainer": {**config["trainer"], "tensorboard": True},
           "data": {**config["data"], "path": "my.csv", "dataset": None, "task_type": "regression",
                    "split": "column", "split_col": "fold", "num_workers": 3}}  # fmt: skip
    assert bm.run_hash(own, "data-sha", "weights-sha") == "37241e4f4b316f46"
    with pytest.raises(ValueError, match="optim.epochs"):
        bm.run_hash({**config, "optim": {"epochs": 0}}, "data-sha", "weights-sha")


@pytest.mark.data
def test_moleculeace_scores_cliffs_and_caches_the_baseline(tmp_path, config_dir, data_dir, monkeypatch):
    monkeypatch.setenv("MOLCHANNEL_DATA_DIR", str(data_dir))
    names = ["CHEMBL2047_EC50", "CHEMBL1871_Ki"]
    subsets = {name: bm._load_table(name, 120) for name in names}
    options = _options(
        tmp_path, config_dir, collection="moleculeace", datasets=names, seeds=[0], limit=120, baseline=True
    )
    runner = FakeRunner(tables_by_name=subsets)
    outcome = bm.run_benchmark(options, runner=runner)
    assert len(runner.calls) == 2 and sorted(outcome.baseline_ran) == sorted(names)
    out = tmp_path / "out"
    row = next(r for r in outcome.summary if r["dataset"] == "CHEMBL2047_EC50")
    table = subsets["CHEMBL2047_EC50"]
    test = np.asarray(table.extra["split"]) == "test"
    assert row["n_test"] == int(test.sum())
    assert row["n_cliff_test"] == int((table.extra["cliff_mol"][test] == 1).sum())
    assert row["rmse_mean"] == pytest.approx(0.5) and row["cliff_rmse_mean"] == pytest.approx(0.5)  # y + 0.5
    assert math.isfinite(row["svm_rmse"]) and row["svm_C"] is not None
    md = (out / "results.md").read_text()
    assert "ECFP + SVM (published)" in md and "0.671" in md and "0.751" in md and "subset run" in md
    assert "*0.614*" in md  # MoleculeACE's own SVM result for CHEMBL2047_EC50, beside ours
    assert (out / "records" / "CHEMBL2047_EC50" / "ecfp_svm.json").is_file()

    again = bm.run_benchmark(options, runner=FakeRunner(tables_by_name=subsets))
    assert again.baseline_ran == [] and sorted(again.baseline_skipped) == sorted(names)
    assert len(again.skipped) == 2
    csv_text = (out / "results.csv").read_text()
    assert csv_text.count("ecfp_svm") == 2 and csv_text.count("molchannel") == 2

    only = bm.run_benchmark(bm.BenchmarkOptions(**{**vars(options), "baseline_only": True}))
    assert only.ran == [] and only.skipped == [] and len(only.baseline_skipped) == 2


def test_cli_wires_the_benchmark(tmp_path, config_dir, monkeypatch, capsys):
    from molchannel.cli.main import main

    runner = FakeRunner()
    monkeypatch.setattr(bm, "_default_runner", lambda: runner)
    argv = ["benchmark", "moleculenet", "--datasets", "bbbp", "esol", "--seeds", "0", "--epochs", "1",
            "--output", str(tmp_path / "cli"), "--config-dir", str(config_dir), "--quiet",
            "--no-baseline"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "MoleculeNet classification" in printed and "MoleculeNet regression" in printed
    assert [c["config"]["optim"]["epochs"] for c in runner.calls] == [1, 1]
    assert main([*argv[:2], "--datasets", "CHEMBL2047_EC50", "--output", str(tmp_path / "x")]) == 1
    # --rf-max-tasks reaches the options the benchmark runs with
    seen: list[bm.BenchmarkOptions] = []
    outcome = bm.BenchmarkOutcome(tmp_path)
    monkeypatch.setattr(bm, "run_benchmark", lambda options: seen.append(options) or outcome)
    assert main([*argv, "--rf-max-tasks", "700"]) == 0
    assert seen[0].rf_max_tasks == 700


# ---- the real fine-tuning runner, end to end ------------------------------------------------


@pytest.mark.slow
@pytest.mark.data
def test_cli_end_to_end_with_real_finetuning(tmp_path, data_dir, monkeypatch, capsys):
    """Tiny: one MoleculeNet and one MoleculeACE dataset, one seed, one epoch, 80 molecules each."""
    from molchannel.cli.main import main

    monkeypatch.setenv("MOLCHANNEL_DATA_DIR", str(data_dir))
    monkeypatch.setenv("MOLCHANNEL_CACHE_DIR", str(tmp_path / "cache"))
    common = ["--seeds", "0", "--epochs", "1", "--limit", "80", "--quiet"]
    mn = ["benchmark", "moleculenet", "--datasets", "esol", "--output", str(tmp_path / "mn"), *common]
    assert main(mn) == 0
    record = json.loads((tmp_path / "mn" / "records" / "esol" / "seed0.json").read_text())
    assert record["metric"] == "rmse" and math.isfinite(record["test_metric"]) and record["best_epoch"] == 1
    assert (tmp_path / "mn" / "runs" / "esol" / "seed0" / "model" / "config.json").is_file()
    printed = capsys.readouterr().out
    assert "| **molchannel (this run)** |" in printed and "| ECFP4 + RF (this run) |" in printed
    assert main(mn) == 0  # the rerun finds the records and trains nothing
    rerun = capsys.readouterr().err
    assert "0 run(s) done, 1 already finished; ECFP baselines: 0 computed, 1 cached" in rerun

    ace = [
        "benchmark",
        "moleculeace",
        "--datasets",
        "CHEMBL2047_EC50",
        "--output",
        str(tmp_path / "ace"),
        *common,
    ]
    assert main(ace) == 0
    record = json.loads((tmp_path / "ace" / "records" / "CHEMBL2047_EC50" / "seed0.json").read_text())
    assert record["rmse"] == pytest.approx(record["test_metric"], rel=1e-4)
    assert math.isfinite(record["cliff_rmse"]) and record["n_cliff_test"] > 0
    summary = (tmp_path / "ace" / "summary.csv").read_text().splitlines()
    assert len(summary) == 2 and summary[1].startswith("CHEMBL2047_EC50,")
