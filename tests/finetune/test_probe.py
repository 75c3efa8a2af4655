"""The linear probe: the fits learn what the features carry, strengths are chosen on validation only,
the random-init copy, the files and table of a run, and the CLI wiring."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from molchannel.api import init_model
from molchannel.data import MoleculeTable
from molchannel.finetune import probe, probe_report

TINY = {"num_layers": 2, "hidden_dim": 16, "aggregator_heads": 2}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "zinc_logp.csv"


# ---- the linear models --------------------------------------------------------------------------
def _signal_and_noise(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features with the signal in column 0, pure-noise features, and a latent y."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=n)
    signal = np.column_stack([latent + 0.3 * rng.normal(size=n), rng.normal(size=(n, 7))])
    noise = rng.normal(size=(n, 8))
    return signal, noise, latent


def _fit(x: np.ndarray, y: np.ndarray, task_type: str, grid=None) -> probe.ProbeFit:
    tr, va, te = slice(0, 300), slice(300, 400), slice(400, 500)
    return probe.fit_linear_probe(x[tr], y[tr], x[va], y[va], x[te], y[te], task_type, grid)


def test_classification_probe_scores_the_features_that_carry_the_signal():
    signal, noise, latent = _signal_and_noise(500, seed=0)
    y = (latent > 0).astype(float)[:, None]
    good, bad = _fit(signal, y, "classification"), _fit(noise, y, "classification")
    assert good.metric == "roc_auc" and good.reg_name == "C"
    assert good.value > 0.9
    assert 0.3 < bad.value < 0.7
    assert good.reg in probe.DEFAULT_C_GRID and set(good.valid_by_reg) == set(probe.DEFAULT_C_GRID)


def test_regression_probe_reports_rmse_in_original_units():
    signal, noise, latent = _signal_and_noise(500, seed=1)
    y = (100.0 + 50.0 * latent)[:, None]  # large offset and scale: RMSE must come back in these units
    good, bad = _fit(signal, y, "regression"), _fit(noise, y, "regression")
    spread = float(np.std(y[400:]))
    assert good.metric == "rmse" and good.reg_name == "alpha"
    assert good.value < 0.4 * spread  # the noise on the signal column is 0.3 x 50 = 15
    assert bad.value > 0.9 * spread


def test_missing_labels_are_masked_and_a_one_class_task_scores_chance():
    signal, _, latent = _signal_and_noise(500, seed=2)
    y = np.column_stack([(latent > 0), (latent > 0), np.zeros(500)]).astype(float)
    y[np.arange(500) % 2 == 0, 1] = np.nan  # task 1: half of the labels missing everywhere
    y[400::2, 2] = 1.0  # task 2: one class in train, both classes in test
    fit = _fit(signal, y, "classification")
    assert fit.n_tasks == 3
    # tasks 0 and 1 are learnt from their labelled molecules; task 2 has no model, so its test ROC-AUC is 0.5
    assert (2 * 0.9 + 0.5) / 3 < fit.value <= (2 * 1.0 + 0.5) / 3 + 1e-12
    only_learnable = _fit(signal, y[:, :2], "classification")
    assert fit.value == pytest.approx((2 * only_learnable.test_by_reg[fit.reg] + 0.5) / 3)


def test_strength_is_chosen_on_validation_not_on_test():
    """Validation labels built so that the strongest ridge wins there, test labels so the weakest wins."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 10))
    truth = x @ rng.normal(size=10)
    y = truth.copy()
    y[300:400] = truth[:300].mean()  # validation: a constant, best predicted by shrinking everything away
    grid = (1e-3, 1e-1, 10.0, 1e3, 1e5)
    fit = _fit(x, y[:, None], "regression", grid)
    assert fit.reg == 1e5  # chosen on validation ...
    assert fit.value == fit.test_by_reg[1e5]  # ... and the test metric reported at that strength
    assert min(fit.test_by_reg, key=fit.test_by_reg.get) == 1e-3  # while test would have chosen the weakest
    assert fit.value > 5 * fit.test_by_reg[1e-3]
    # the same data with validation and test swapped: now the weakest strength is chosen
    swapped = probe.fit_linear_probe(x[:300], y[:300, None], x[400:], y[400:, None], x[300:400],
                                     y[300:400, None], "regression", grid)  # fmt: skip
    assert swapped.reg == 1e-3


def test_ties_on_validation_go_to_the_stronger_regularisation():
    assert probe._choose("roc_auc", {0.01: 0.7, 1.0: 0.7, 100.0: 0.6}, [0.01, 1.0, 100.0]) == 0.01
    assert probe._choose("rmse", {1e3: 1.0, 1.0: 1.0, 1e-3: 2.0}, [1e3, 1.0, 1e-3]) == 1e3
    assert probe._choose("roc_auc", {0.1: math.nan, 1.0: math.nan, 10.0: math.nan}, [0.1, 1.0, 10.0]) == 1.0


def test_sparse_ecfp_bits_are_scaled_like_dense_ones():
    """Scaling without centring (sparse ECFP4) gives the same logistic model as full standardisation."""
    import scipy.sparse as sp

    rng = np.random.default_rng(4)
    x = (rng.random((500, 30)) < 0.2).astype(float)
    y = ((x[:, 0] + x[:, 1] + 0.3 * rng.normal(size=500)) > 0.5).astype(float)[:, None]
    dense, sparse = _fit(x, y, "classification"), _fit(sp.csr_matrix(x), y, "classification")
    assert sparse.reg == dense.reg
    assert sparse.value == pytest.approx(dense.value, abs=2e-3)


def test_ecfp4_features_match_rdkit_bits():
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    smiles = ["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O"]
    bits = probe.ecfp4_features(smiles)
    assert bits.shape == (3, 2048)
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    for i, s in enumerate(smiles):
        expected = gen.GetFingerprintAsNumPy(Chem.MolFromSmiles(s))
        assert np.array_equal(bits[i].toarray()[0], expected.astype(np.float32))


def test_select_tasks_samples_tasks_with_both_classes_in_every_subset():
    rng = np.random.default_rng(5)
    y = (rng.random((90, 40)) < 0.5).astype(float)
    y[:30, :10] = 0.0  # tasks 0-9: one class in train
    subsets = y[:30], y[30:60], y[60:]
    assert probe.select_tasks(*subsets, max_tasks=40, seed=0).tolist() == list(range(40))  # within the cap
    picked = probe.select_tasks(*subsets, max_tasks=12, seed=0)
    assert len(picked) == 12 and picked.min() >= 10 and list(picked) == sorted(picked)
    assert picked.tolist() == probe.select_tasks(*subsets, max_tasks=12, seed=0).tolist()
    assert picked.tolist() != probe.select_tasks(*subsets, max_tasks=12, seed=1).tolist()


# ---- the random-init copy -----------------------------------------------------------------------
def test_random_init_copy_has_the_architecture_but_fresh_weights():
    model = init_model(TINY, seed=7)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    copy = probe.random_init_copy(model, seed=0)
    assert torch.equal(torch.rand(3), expected_next)  # the caller's random state is untouched
    ours, theirs = model.net.state_dict(), copy.net.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)
    assert copy.net.config == model.net.config and copy.channels == model.channels
    assert copy.featurizer.spec == model.featurizer.spec
    weights = [k for k in ours if k.startswith("encoder.") and k.endswith("weight") and ours[k].ndim == 2]
    assert weights and all(not torch.equal(ours[k], theirs[k]) for k in weights)
    again = probe.random_init_copy(model, seed=0).net.state_dict()
    assert all(torch.equal(again[k], theirs[k]) for k in theirs)  # the seed fixes it
    other = probe.random_init_copy(model, seed=1).net.state_dict()
    assert any(not torch.equal(other[k], theirs[k]) for k in weights)
    assert not copy.info()["pretrained"]
    a = model.embed(["CCO", "c1ccccc1O"], channel="all")
    b = copy.embed(["CCO", "c1ccccc1O"], channel="all")
    assert a.shape == b.shape and not np.allclose(a, b)


def test_embedding_feature_sets_are_the_models_own_embeddings():
    from molchannel.data import load_or_build_graphs

    model = init_model(TINY, seed=8)
    smiles = ["CCO", "c1ccccc1O", "CCN(CC)CC", "O=C(O)c1ccccc1"]
    store = load_or_build_graphs(smiles, model.featurizer, None)
    stacked, mixed = probe.embed_graphs(model, store, batch_size=3)
    sets = probe.embedding_feature_sets(model.channels, stacked, mixed)
    assert list(sets) == [*model.channels, "mix", "concat"]
    np.testing.assert_allclose(sets["mix"], model.embed(smiles), atol=1e-5)
    allc = model.embed(smiles, channel="all")
    for i, name in enumerate(model.channels):
        np.testing.assert_allclose(sets[name], allc[:, i], atol=1e-5)
    np.testing.assert_allclose(sets["concat"], allc.reshape(len(smiles), -1), atol=1e-5)


# ---- a whole run on tiny data -------------------------------------------------------------------
def _tiny_tables() -> dict[str, MoleculeTable]:
    """ZINC molecules with RDKit's logP: as "esol" (regression) and "bbbp" (logP above the median)."""
    with open(EXAMPLES, newline="") as fh:
        rows = list(csv.DictReader(fh))
    smiles = [r["smiles"] for r in rows]
    logp = np.array([[float(r["logp"])] for r in rows], dtype=np.float32)
    high = (logp > np.median(logp)).astype(np.float32)
    return {
        "esol": MoleculeTable("esol", smiles, logp, ("logp",), "regression", "rmse"),
        "bbbp": MoleculeTable("bbbp", smiles, high, ("high_logp",), "classification", "roc_auc"),
    }


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> probe.ProbeResult:
    tables = _tiny_tables()
    model = init_model(TINY, seed=9)
    out = tmp_path_factory.mktemp("probe") / "out"
    command = "molchannel benchmark probe --model tiny"
    return probe.run_probe(model, datasets=["bbbp", "esol"], output=out, seed=0, cache_dir=None, quiet=True,
                           load_table=tables.__getitem__, command=command)  # fmt: skip


def test_run_writes_one_row_per_dataset_model_and_feature_set(tiny_run):
    rows = tiny_run.rows
    channels = ["molsim", "scaffsim", "context"]
    expected = {(d, m, f) for d in ("bbbp", "esol") for m in ("model", "random_init")
                for f in [*channels, "mix", "concat"]}  # fmt: skip
    expected |= {("bbbp", "ecfp4", "ecfp4"), ("esol", "ecfp4", "ecfp4")}
    assert {(r["dataset"], r["model"], r["features"]) for r in rows} == expected
    assert len(rows) == len(expected)
    with open(tiny_run.files["results_csv"], newline="") as fh:
        written = list(csv.DictReader(fh))
    assert len(written) == len(rows) and list(written[0]) == list(probe_report.RESULT_COLUMNS)
    for r in rows:
        assert r["n_train"] + r["n_valid"] + r["n_test"] == 300
        assert r["n_train"] >= 230 and r["n_valid"] > 0 and r["n_test"] > 0
        assert r["n_features"] == {"concat": 48, "ecfp4": 2048}.get(r["features"], 16)
        assert math.isfinite(r["value"]) and r["reg"] in (probe.DEFAULT_C_GRID + probe.DEFAULT_ALPHA_GRID)
    # ECFP4 carries logP (it is additive over atoms): ridge on it is far better than predicting the mean
    table = _tiny_tables()["esol"]
    ecfp = next(r for r in rows if r["dataset"] == "esol" and r["model"] == "ecfp4")
    assert ecfp["value"] < 0.7 * float(np.std(table.targets))
    ecfp_cls = next(r for r in rows if r["dataset"] == "bbbp" and r["model"] == "ecfp4")
    assert ecfp_cls["value"] > 0.75


def test_run_writes_the_table_wins_and_plot(tiny_run):
    md = Path(tiny_run.files["probe_md"]).read_text()
    assert md == tiny_run.markdown
    assert "| BBBP | ROC-AUC (%) ↑ |" in md and "| ESOL | RMSE ↓ |" in md
    assert "model concat | random init concat | ECFP4" in md
    assert "**Wins (concat features)**" in md and "of 2 datasets" in md
    assert "`molchannel benchmark probe --model tiny`" in md
    assert Path(tiny_run.files["probe_png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    wins = tiny_run.wins["concat"]
    assert wins["of_random_init"] == 2 and 0 <= wins["beats_random_init"] <= 2


def test_descriptor_probe_reports_what_the_embedding_adds(tmp_path):
    """--with-descriptors: RDKit descriptors alone and beside each network's channels, one table and wins
    line; logP is nearly a descriptor (MolLogP), so the descriptors alone probe it well."""
    tables = _tiny_tables()
    model = init_model(TINY, seed=9)
    result = probe.run_probe(model, datasets=["esol", "bbbp"], output=tmp_path / "out",
                             cache_dir=tmp_path / "c", quiet=True, load_table=tables.__getitem__,
                             with_descriptors=True)  # fmt: skip
    sets = {(r["dataset"], r["model"], r["features"]): r for r in result.rows}
    width = sets[("esol", "rdkit2d", "rdkit2d")]["n_features"]
    assert width > 100  # RDKit's 2D descriptors
    for d in ("esol", "bbbp"):
        for peer in ("model", "random_init"):
            assert sets[(d, peer, "concat+rdkit2d")]["n_features"] == 48 + width
    table = tables["esol"]
    assert sets[("esol", "rdkit2d", "rdkit2d")]["value"] < 0.3 * float(np.std(table.targets))
    md = Path(result.files["probe_md"]).read_text()
    assert "## Beside RDKit descriptors" in md and "**Wins (beside descriptors)**" in md
    wins = result.wins["descriptors"]
    assert wins["of"] == 2 and wins["of_random_init"] == 2
    # the best single channel is still chosen among the channels alone
    assert all(r["model_best_channel"] in ("molsim", "scaffsim", "context") for r in result.summary)
    # the descriptors were computed once and cached beside the graphs, for the next call to read
    assert list((tmp_path / "c").glob("molfeatures-*.npy"))


def test_descriptor_features_fill_what_rdkit_cannot_compute_and_clip(monkeypatch):
    import molchannel.chem.mol_features as mol_features

    raw = np.array([[1.0, np.nan, 5.0], [3.0, 2.0, np.inf], [5.0, 4.0, 7.0], [1e6, np.nan, 6.0]])
    monkeypatch.setattr(mol_features, "cached_molecule_features", lambda smiles, names, cache: raw)
    table = MoleculeTable("t", ["C"] * 4, np.zeros((4, 1), np.float32), ("y",), "regression", "rmse")
    x = probe.descriptor_features(table, np.arange(4), np.arange(3), None)
    assert x.dtype == np.float32 and np.isfinite(x).all()
    # NaN / inf -> the training mean (0 once standardised); training rows standardised; outliers clipped
    assert x[0, 1] == 0.0 and x[1, 2] == 0.0 and x[3, 1] == 0.0
    np.testing.assert_allclose(x[:3, 0], (raw[:3, 0] - 3.0) / np.std(raw[:3, 0]), rtol=1e-6)
    assert x[3, 0] == probe.DESCRIPTOR_CLIP


def test_wins_use_the_stated_margins():
    row = {"dataset": "d", "metric": "roc_auc", "model_concat": 0.80, "random_init_concat": 0.79,
           "ecfp4": 0.7949, "model_best": math.nan, "random_init_best": 0.5}  # fmt: skip
    wins = probe_report.count_wins([row], "concat")
    assert wins["beats_random_init"] == 1 and wins["beats_ecfp4"] == 0  # +0.01 counts, +0.0051 does not
    assert wins["datasets_beating_random_init"] == ["d"]
    assert probe_report.beats("rmse", 0.99, 1.0) and not probe_report.beats("rmse", 0.995, 1.0)
    assert probe_report.count_wins([row], "best")["of_random_init"] == 0  # NaN: not compared


def test_best_channel_is_chosen_on_validation():
    rows = [
        {"features": "a", "valid_value": 0.9, "value": 0.6},
        {"features": "b", "valid_value": 0.7, "value": 0.95},
    ]
    assert probe_report.best_by_validation(rows, "roc_auc")["features"] == "a"
    assert probe_report.best_by_validation(rows, "rmse")["features"] == "b"


# ---- the command line ---------------------------------------------------------------------------
def test_cli_runs_the_probe_and_rejects_bad_input(tmp_path, monkeypatch, capsys):
    from molchannel.cli.main import main

    folder = init_model(TINY, seed=10).save(tmp_path / "tiny_model")
    tables = _tiny_tables()
    monkeypatch.setattr(probe, "_load_dataset", tables.__getitem__)
    monkeypatch.setenv("MOLCHANNEL_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "cli"
    assert main(["benchmark", "probe", "--model", str(folder), "--datasets", "esol", "--output", str(out),
                 "--quiet"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert "| ESOL | RMSE ↓ |" in captured.out and "probe.md" in captured.err
    assert (out / "results.csv").is_file() and (out / "probe.png").is_file()

    assert main(["benchmark", "probe", "--model", str(tmp_path / "missing"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "cannot load the model" in err and "Give --model a model folder" in err and "Traceback" not in err
    assert main(["benchmark", "probe", "--model", str(folder), "--datasets", "bbbp", "nosuch"]) == 1
    err = capsys.readouterr().err
    assert "unknown dataset 'nosuch'" in err and "lipophilicity" in err and "Traceback" not in err


def test_default_output_folder_is_named_after_the_model(tmp_path):
    assert probe.default_output_dir("default") == Path("runs/benchmark/probe-default")
    assert probe.default_output_dir(tmp_path / "my_model") == Path("runs/benchmark/probe-my_model")


# ---- real data --------------------------------------------------------------------------------------
@pytest.mark.data
def test_probe_uses_the_registry_split_on_real_data(data_dir, tmp_path, monkeypatch):
    from molchannel.data import load_dataset
    from molchannel.data.splits import benchmark_split

    monkeypatch.setenv("MOLCHANNEL_DATA_DIR", str(data_dir))
    out = tmp_path / "bace"
    result = probe.run_probe("default", datasets=["bace"], output=out, limit=800, cache_dir=None, quiet=True)
    split = benchmark_split(probe._first_rows(load_dataset("bace"), 800))
    assert sum(split.sizes) == 800  # the first 600 rows leave one class in the test split
    for r in result.rows:
        assert (r["n_train"], r["n_valid"], r["n_test"]) == split.sizes
        assert math.isfinite(r["value"]) and 0.0 <= r["value"] <= 1.0
    ecfp = next(r for r in result.rows if r["model"] == "ecfp4")
    assert ecfp["value"] > 0.6  # ECFP4 + logistic regression on BACE's scaffold split is above chance
