"""ECFP4 + SVM / RF beside the MoleculeNet fine-tuning runs: the fits, their record, their table rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from molchannel.finetune import benchmark as bm
from molchannel.finetune import tables
from molchannel.finetune.metrics import score
from molchannel.finetune.moleculenet_baselines import EcfpBaselineConfig, ecfp_moleculenet_baselines

# Small molecules whose properties an ECFP model can learn: the label is a substructure count / presence.
_BASES = ["c1ccccc1", "C1CCCCC1", "CCO", "CCN", "CC(=O)O", "c1ccncc1", "ClCC", "CC(C)C", "OCCO", "NCCN"]
_SUBSTITUENTS = ["", "C", "CC", "O", "N", "Cl", "F", "C(=O)O", "CO", "CN"]


def _molecules() -> list[str]:
    return [f"{b}{s}" if s else b for b in _BASES for s in _SUBSTITUENTS]


def _targets(smiles: list[str]) -> np.ndarray:
    """Task 0: number of oxygens (regression-like signal); task 1: has nitrogen; task 2: one class only."""
    from rdkit import Chem

    mols = [Chem.MolFromSmiles(s) for s in smiles]
    oxygens = np.array([sum(a.GetSymbol() == "O" for a in m.GetAtoms()) for m in mols], dtype=float)
    nitrogen = np.array([any(a.GetSymbol() == "N" for a in m.GetAtoms()) for m in mols], dtype=float)
    return np.stack([oxygens, nitrogen, np.zeros(len(mols))], axis=1)


def _split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return order[: int(0.6 * n)], order[int(0.6 * n) : int(0.8 * n)], order[int(0.8 * n) :]


def test_regression_baselines_learn_a_substructure_count():
    smiles = _molecules()
    y = _targets(smiles)[:, :1]
    train, valid, test = _split(len(smiles))
    result = ecfp_moleculenet_baselines(smiles, y, "rmse", train, valid, test, seeds=[0, 1])
    mean_only = score("rmse", y[test], np.full((len(test), 1), y[train].mean()))
    assert result.svm_test_metric < 0.5 * mean_only and result.svm_skipped is None
    assert set(result.rf_test_metric) == {0, 1}
    assert all(v < 0.7 * mean_only for v in result.rf_test_metric.values())
    assert result.rf_test_metric[0] != result.rf_test_metric[1]  # each seed its own forest
    assert len(result.svm_c) == 1 and result.svm_c[0] in EcfpBaselineConfig().c_grid


def test_classification_skips_single_class_tasks_and_missing_labels():
    smiles = _molecules()
    y = _targets(smiles)[:, 1:]
    y[::7, 0] = np.nan  # missing labels are left out of the fit and the score
    train, valid, test = _split(len(smiles), seed=1)
    result = ecfp_moleculenet_baselines(smiles, y, "roc_auc", train, valid, test, seeds=[0])
    assert result.skipped_tasks == [1] and result.n_tasks_fitted == 1
    assert result.svm_test_metric > 0.9 and result.rf_test_metric[0] > 0.9


def test_a_task_that_cannot_be_fitted_is_left_out_of_the_score():
    """Validation rows of one class but test rows of both (7 ToxCast tasks): no prediction, no score."""
    smiles = _molecules()
    y = _targets(smiles)[:, 1:3].copy()
    train, valid, test = _split(len(smiles), seed=2)
    y[:, 1] = y[:, 0]  # task 1: the same labels as task 0 ...
    y[valid, 1] = 0.0  # ... but one class in the validation rows
    assert len(np.unique(y[test, 1])) == 2
    result = ecfp_moleculenet_baselines(smiles, y, "roc_auc", train, valid, test, seeds=[0])
    assert result.skipped_tasks == [1]
    alone = ecfp_moleculenet_baselines(smiles, y[:, :1], "roc_auc", train, valid, test, seeds=[0])
    assert result.svm_test_metric == pytest.approx(alone.svm_test_metric)
    assert result.rf_test_metric[0] == pytest.approx(alone.rf_test_metric[0])


def test_svm_is_skipped_above_its_size_limit_and_the_forest_still_runs():
    smiles = _molecules()
    y = _targets(smiles)[:, :1]
    train, valid, test = _split(len(smiles))
    config = EcfpBaselineConfig(svm_max_train=10, trees=20)
    result = ecfp_moleculenet_baselines(smiles, y, "rmse", train, valid, test, seeds=[0], config=config)
    assert math.isnan(result.svm_test_metric) and "svm_max_train 10" in (result.svm_skipped or "")
    assert math.isfinite(result.rf_test_metric[0]) and result.svm_c == []
    with pytest.raises(ValueError, match="validation and test"):
        ecfp_moleculenet_baselines(smiles, y, "rmse", train, valid[:0], test, seeds=[0])
    # a subset whose validation rows hold one class gives no figure, and says why (the benchmark goes on)
    labels = _targets(smiles)[:, 1:2]
    labels[valid] = 0.0
    none = ecfp_moleculenet_baselines(smiles, labels, "roc_auc", train, valid, test, seeds=[0], config=config)
    assert math.isnan(none.svm_test_metric) and math.isnan(none.rf_test_metric[0])
    assert none.n_tasks_fitted == 0 and "both classes" in (none.svm_skipped or "")


def test_shared_gram_matrix_gives_the_per_task_fits_and_forests_skip_above_their_task_limit():
    smiles = _molecules()
    y = _targets(smiles)[:, :2]
    y[::3, 0] = np.nan  # task 0 has its own rows: each task's slice of the shared matrix differs
    train, valid, test = _split(len(smiles))
    per_task = EcfpBaselineConfig(trees=10, gram_max_molecules=0)
    shared = EcfpBaselineConfig(trees=10, rf_max_tasks=1)
    a = ecfp_moleculenet_baselines(smiles, y, "rmse", train, valid, test, seeds=[0, 1], config=per_task)
    b = ecfp_moleculenet_baselines(smiles, y, "rmse", train, valid, test, seeds=[0, 1], config=shared)
    assert b.svm_test_metric == pytest.approx(a.svm_test_metric, rel=1e-9) and b.svm_c == a.svm_c
    assert b.svm_valid_metric == pytest.approx(a.svm_valid_metric, rel=1e-9)
    assert a.rf_skipped is None and all(math.isfinite(v) for v in a.rf_test_metric.values())
    # 2 tasks > rf_max_tasks 1: no forest, NaN per seed asked (so a cached record is complete), and why
    assert "2 tasks > rf_max_tasks 1" in (b.rf_skipped or "")
    assert set(b.rf_test_metric) == {0, 1} and all(math.isnan(v) for v in b.rf_test_metric.values())
    assert b.rf_wall_time_s < 0.01


def test_a_cached_record_without_forests_grows_them_once_the_task_limit_allows():
    nan = math.nan
    record = {"rf_test_metric": {"0": nan, "1": nan}, "rf_skipped": "617 tasks > rf_max_tasks 100",
              "n_tasks_fitted": 610, "skipped_tasks": list(range(7))}  # fmt: skip
    assert bm._seeds_with_forests(record, EcfpBaselineConfig()) == {0, 1}  # still skipped: nothing to do
    assert bm._seeds_with_forests(record, EcfpBaselineConfig(rf_max_tasks=1000)) == set()  # grow them now
    grown = {"rf_test_metric": {"0": 0.7, "1": nan}, "n_tasks_fitted": 3, "skipped_tasks": []}
    assert bm._seeds_with_forests(grown, EcfpBaselineConfig()) == {0}


def _baseline_record(dataset, metric, svm, rf, skipped=None):
    return {
        "kind": "ecfp_moleculenet", "collection": "moleculenet", "dataset": dataset, "metric": metric,
        "svm_test_metric": svm, "rf_test_metric": {str(k): v for k, v in rf.items()}, "svm_skipped": skipped,
    }  # fmt: skip


def _finetune_record(dataset, seed, test, metric):
    return {
        "kind": "finetune", "collection": "moleculenet", "dataset": dataset, "seed": seed, "metric": metric,
        "task_type": "classification" if metric == "roc_auc" else "regression", "best_epoch": 3,
        "valid_metric": test, "test_metric": test, "wall_time_s": 1.0, "train_molecules_per_s": 1.0,
        "config": {"model": {"scratch": False, "pretrained": "default"}, "data": {"limit": None}},
    }  # fmt: skip


def test_tables_show_the_baselines_beside_our_rows(tmp_path):
    records = [
        _finetune_record("bbbp", 0, 0.70, "roc_auc"),
        _finetune_record("bbbp", 1, 0.72, "roc_auc"),
        _finetune_record("esol", 0, 0.80, "rmse"),
        _baseline_record("bbbp", "roc_auc", 0.66, {0: 0.665, 1: 0.667}),
        _baseline_record("esol", "rmse", 1.42, {0: 1.66}),
        _baseline_record("hiv", "roc_auc", math.nan, {0: 0.80}, skipped="33000 training molecules"),
    ]
    summary = tables.summarize_moleculenet(records, ["bbbp", "hiv", "esol"])
    by = {r["dataset"]: r for r in summary}
    assert by["bbbp"]["ecfp_svm_test"] == pytest.approx(66.0)
    assert by["bbbp"]["ecfp_rf_test_mean"] == pytest.approx(66.6) and by["bbbp"]["ecfp_rf_seeds"] == [0, 1]
    assert by["hiv"]["n_seeds"] == 0 and math.isnan(by["hiv"]["test_mean"])  # baseline only
    md = tables.moleculenet_markdown(summary, records)
    assert "| ECFP4 + SVM (Tanimoto, this run) | 66.0 | – | – |" in md
    assert "| ECFP4 + RF (this run) | 66.6 ± 0.1 | 80.0 | 73.3 |" in md
    assert "| ECFP4 + SVM (Tanimoto, this run) | 1.420 |" in md and "| ECFP4 + RF (this run) | 1.660 |" in md
    assert "ECFP4 + SVM not fitted on: HIV (33000 training molecules)" in md
    # a dataset whose forests were not grown: its RF cell is empty and the note says why
    toxcast = _baseline_record("toxcast", "roc_auc", 0.62, {0: math.nan})
    toxcast["rf_skipped"] = "617 tasks > rf_max_tasks 100"
    with_toxcast = [*records, toxcast]
    summary = tables.summarize_moleculenet(with_toxcast, ["bbbp", "hiv", "toxcast", "esol"])
    by = {r["dataset"]: r for r in summary}
    assert by["toxcast"]["ecfp_rf_seeds"] == [] and math.isnan(by["toxcast"]["ecfp_rf_test_mean"])
    md = tables.moleculenet_markdown(summary, with_toxcast)
    assert "| ECFP4 + RF (this run) | 66.6 ± 0.1 | – | 80.0 | – |" in md  # BBBP ToxCast HIV avg
    assert "ECFP4 + RF not grown on: ToxCast (617 tasks > rf_max_tasks 100)" in md
    assert tables.plot_moleculenet(summary, tmp_path / "p.png").stat().st_size > 0
    # without baseline records there are no ECFP rows
    plain = [r for r in records if r["kind"] == "finetune"]
    assert "ECFP4" not in tables.moleculenet_markdown(tables.summarize_moleculenet(plain, ["bbbp"]), plain)


@pytest.mark.data
def test_benchmark_computes_caches_and_tabulates_the_baselines(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("MOLCHANNEL_DATA_DIR", str(data_dir))
    options = bm.BenchmarkOptions(
        collection="moleculenet", datasets=["esol"], seeds=[0, 1], limit=150, output=tmp_path / "out",
        quiet=True, baseline_only=True,
    )  # fmt: skip
    outcome = bm.run_benchmark(options)
    assert outcome.ran == [] and outcome.baseline_ran == ["esol"]
    record = bm.read_record(tmp_path / "out" / "records" / "esol" / "ecfp_moleculenet.json")
    assert record is not None and record["config"]["seeds"] == [0, 1] and record["svm_skipped"] is None
    assert "| ECFP4 + RF (this run) |" in outcome.markdown
    summary = (tmp_path / "out" / "summary.csv").read_text()
    assert "ecfp_svm_test" in summary.splitlines()[0] and summary.count("\n") == 2
    again = bm.run_benchmark(options)
    assert again.baseline_ran == [] and again.baseline_skipped == ["esol"]
    # a new seed adds its forest to the record; the SVM (deterministic) and the earlier forests are kept
    more = bm.run_benchmark(bm.BenchmarkOptions(**{**vars(options), "seeds": [2]}))
    assert more.baseline_ran == ["esol"]
    grown = bm.read_record(tmp_path / "out" / "records" / "esol" / "ecfp_moleculenet.json")
    assert grown is not None and grown["config"]["seeds"] == [0, 1, 2]
    assert grown["svm_test_metric"] == record["svm_test_metric"]
    assert {k: grown["rf_test_metric"][k] for k in ("0", "1")} == record["rf_test_metric"]
    assert bm.run_benchmark(bm.BenchmarkOptions(**{**vars(options), "seeds": [1, 2]})).baseline_skipped == [
        "esol"
    ]


@pytest.mark.data
def test_a_raised_rf_task_limit_grows_the_forests_a_cached_record_skipped(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("MOLCHANNEL_DATA_DIR", str(data_dir))
    options = bm.BenchmarkOptions(
        collection="moleculenet", datasets=["sider"], seeds=[0], limit=200, output=tmp_path / "out",
        quiet=True, baseline_only=True, rf_max_tasks=2,
    )  # fmt: skip
    bm.run_benchmark(options)
    path = tmp_path / "out" / "records" / "sider" / "ecfp_moleculenet.json"
    skipped = bm.read_record(path)
    assert skipped is not None and "tasks > rf_max_tasks 2" in skipped["rf_skipped"]
    assert math.isnan(skipped["rf_test_metric"]["0"])
    # the default limit (100) allows SIDER's 27 tasks: the forests are grown, the SVM is kept as it was
    grown_run = bm.run_benchmark(bm.BenchmarkOptions(**{**vars(options), "rf_max_tasks": None}))
    assert grown_run.baseline_ran == ["sider"]
    grown = bm.read_record(path)
    assert grown is not None and not grown["rf_skipped"] and math.isfinite(grown["rf_test_metric"]["0"])
    assert grown["svm_test_metric"] == skipped["svm_test_metric"]
    with pytest.raises(ValueError, match="--rf-max-tasks must be a positive integer"):
        bm.BenchmarkOptions(collection="moleculenet", rf_max_tasks=0)
