"""benchmarks/chemprop_peer.py without chemprop: our split as its CSVs, its predictions scored by our metric.

No test installs chemprop or touches the network: a tiny dataset is registered for the test, and a fake
``chemprop`` executable (a small Python script) stands in for the real one where the whole loop runs.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import math
import stat
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from molchannel.data import load_dataset, registry
from molchannel.data.splits import Split, benchmark_split

REPO = Path(__file__).resolve().parents[1]

# Scaffold groups of 7, 4, 3 (acyclic), 2, 2 and 2 molecules, and one unparseable row: the test set is the
# pyridine pair, one of each class.
TINY_ROWS = [
    ("c1ccccc1C", 0),
    ("c1ccccc1CC", 1),
    ("c1ccccc1O", 0),
    ("c1ccccc1N", 1),
    ("c1ccccc1Cl", 1),
    ("c1ccccc1F", 0),
    ("C1CCCCC1C", 1),
    ("C1CCCCC1O", 0),
    ("C1CCCCC1N", 1),
    ("c1ccncc1C", 0),
    ("c1ccncc1O", 1),
    ("CCO", 0),
    ("CCCN", 1),
    ("not a smiles", 0),
    ("C1CC1C(=O)O", 1),
    ("c1ccc2ccccc2c1", 0),
    ("c1ccc2ccccc2c1O", 1),
    ("c1ccccc1", 0),
    ("C1CCCCC1", 1),
    ("CCCCCC", 0),
    ("C1CC1CO", 0),
]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chemprop_peer", REPO / "benchmarks" / "chemprop_peer.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


peer = _load_script()


@pytest.fixture
def tiny_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A registered MoleculeNet-style classification dataset ``tinyset`` in a data folder of its own."""
    data_dir = tmp_path / "data"
    (data_dir / "moleculenet").mkdir(parents=True)
    path = data_dir / "moleculenet" / "tiny.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([("smiles", "active"), *TINY_ROWS])
    spec = registry.DatasetSpec(
        name="tinyset",
        collection="moleculenet",
        file="moleculenet/tiny.csv",
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        smiles_col="smiles",
        targets=("active",),
        task_type="classification",
        metric="roc_auc",
        url=None,
        split="scaffold",
    )
    monkeypatch.setitem(registry.DATASETS, "tinyset", spec)
    monkeypatch.setitem(registry._BY_LOWER_NAME, "tinyset", "tinyset")
    monkeypatch.setenv("MOLCHANNEL_DATA_DIR", str(data_dir))
    monkeypatch.setenv("MOLCHANNEL_CACHE_DIR", str(tmp_path / "cache"))
    return "tinyset"


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _check_csvs_equal_split(name: str, folder: Path) -> tuple[Split, dict[str, Path]]:
    table = load_dataset(name)
    split = benchmark_split(table)
    files = peer.write_split_csvs(table, split, folder)
    assert sorted(files) == ["test", "train", "valid"]
    assert [files[s].name for s in ("train", "valid", "test")] == ["train.csv", "val.csv", "test.csv"]
    for subset, path in files.items():
        rows = _read_csv(path)
        indices = getattr(split, subset)
        assert list(rows[0]) == ["smiles", *table.target_names]
        assert [r["smiles"] for r in rows] == [table.smiles[i] for i in indices]  # same rows, same order
        for target, column in enumerate(table.target_names):
            written = np.array([float(r[column]) if r[column] else math.nan for r in rows])
            np.testing.assert_array_equal(written, table.targets[indices, target].astype(np.float64))
    everything = np.concatenate([split.train, split.valid, split.test, split.excluded])
    assert sorted(everything.tolist()) == list(range(len(table)))
    saved = Split.from_json((folder / "split.json").read_text())
    for subset in ("train", "valid", "test", "excluded"):
        np.testing.assert_array_equal(getattr(saved, subset), getattr(split, subset))
    return split, files


def test_split_csvs_are_our_split_row_for_row(tiny_dataset: str, tmp_path: Path) -> None:
    split, files = _check_csvs_equal_split(tiny_dataset, tmp_path / "csv")
    assert split.excluded.tolist() == [13]  # the unparseable row is in no file
    written = [r["smiles"] for path in files.values() for r in _read_csv(path)]
    assert "not a smiles" not in written and len(written) == len(TINY_ROWS) - 1
    assert [TINY_ROWS[i][0] for i in split.test] == ["c1ccncc1C", "c1ccncc1O"]
    # The deterministic scaffold split: the largest group (6 benzenes) first, into train.
    assert [TINY_ROWS[i][0] for i in split.train[:6]] == [s for s, _ in TINY_ROWS[:6]]


def _write_predictions(path: Path, smiles: list[str], column: str, values: list[float]) -> None:
    """What ``chemprop predict`` writes: the input file with the target column replaced by predictions."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["smiles", column])
        writer.writerows(zip(smiles, values, strict=True))


def test_fake_chemprop_predictions_are_scored_with_our_metric(tmp_path: Path) -> None:
    smiles = ["C", "CC", "CCC", "CCCC"]
    preds = tmp_path / "test_preds.csv"
    _write_predictions(preds, smiles, "active", [0.1, 0.4, 0.35, 0.8])
    predicted = peer.read_predictions(preds, ["active"], smiles)
    assert predicted.shape == (4, 1)
    y = np.array([[0.0], [0.0], [1.0], [1.0]])
    assert peer.score_predictions("roc_auc", y, predicted) == pytest.approx(0.75)  # 3 of 4 pairs ordered
    # A task without both classes is left out of the average; missing labels are skipped.
    two = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, np.nan], [1.0, 1.0]])
    assert peer.score_predictions("roc_auc", two, np.hstack([predicted, predicted])) == pytest.approx(0.75)

    _write_predictions(preds, smiles[:3], "expt", [1.0, 2.0, 5.0])
    predicted = peer.read_predictions(preds, ["expt"], smiles[:3])
    rmse = peer.score_predictions("rmse", np.array([[1.0], [2.0], [3.0]]), predicted)
    assert rmse == pytest.approx(math.sqrt(4.0 / 3.0))

    with pytest.raises(peer.PeerError, match="row 1"):
        peer.read_predictions(preds, ["expt"], ["C", "CCC", "CC"])  # rows out of order
    with pytest.raises(peer.PeerError, match="missing"):
        peer.read_predictions(preds, ["other"], smiles[:3])


FAKE_CHEMPROP = """
import csv, sys, zlib
from pathlib import Path

args = sys.argv[1:]
if args == ["--version"]:
    print("chemprop 9.9.9")
    sys.exit(0)

def value(flag, n=1):
    i = args.index(flag)
    return args[i + 1] if n == 1 else args[i + 1 : i + 1 + n]

def predict(src, dst):
    with open(src, newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns = list(rows[0])
    for row in rows:
        for column in columns[1:]:
            row[column] = str((zlib.crc32(row["smiles"].encode()) % 1000) / 1000)
    with open(dst, "w", newline="") as fh:
        writer = csv.DictWriter(fh, columns, lineterminator="\\n")
        writer.writeheader()
        writer.writerows(rows)

if args[0] == "train":
    model = Path(value("--output-dir")) / "model_0"
    (model / "checkpoints").mkdir(parents=True)
    (model / "checkpoints" / "best-epoch=3-val_loss=0.50.ckpt").write_text("")
    (model / "best.pt").write_text("")
    predict(value("--data-path", 3)[2], model / "test_predictions.csv")
elif args[0] == "predict":
    predict(value("--test-path"), value("--output"))
"""


def _fake_chemprop(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "chemprop"
    exe.write_text(f"#!{sys.executable}\n{FAKE_CHEMPROP}")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def test_peer_loop_writes_benchmark_records_and_resumes(tiny_dataset: str, tmp_path: Path) -> None:
    exe = _fake_chemprop(tmp_path / "bin")
    options = peer.PeerOptions(
        datasets=[tiny_dataset], seeds=[0, 1], output=tmp_path / "out", work_dir=tmp_path / "work", epochs=5
    )
    outcome = peer.run_peer(options, exe)
    assert outcome.ran == [(tiny_dataset, 0), (tiny_dataset, 1)] and not outcome.failed
    record = json.loads((tmp_path / "out" / "records" / tiny_dataset / "seed0.json").read_text())
    table = load_dataset(tiny_dataset)
    split = benchmark_split(table)
    assert record["kind"] == "finetune" and record["method"] == "chemprop" and record["metric"] == "roc_auc"
    assert record["peer"]["version"] == "9.9.9" and record["best_epoch"] == 4
    assert record["test_indices"] == split.test.tolist()
    preds = peer.read_predictions(
        tmp_path / "work" / tiny_dataset / "seed0" / "test_preds.csv",
        ["active"],
        [table.smiles[i] for i in split.test],
    )
    assert record["test_metric"] == pytest.approx(
        peer.score_predictions("roc_auc", table.targets[split.test], preds)
    )
    assert record["peer"]["train_predictions_max_abs_diff"] == 0.0
    train = record["peer"]["commands"]["train"]
    assert train.startswith("chemprop train --data-path data/train.csv data/val.csv data/test.csv")
    assert "--task-type classification" in train and "--pytorch-seed 0" in train and "--epochs 5" in train
    assert str(tmp_path) not in json.dumps(record["peer"])  # commands are recorded without local paths
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| **chemprop 9.9.9** |" in md and "no pre-training (Hu et al.)" in md
    assert len(_read_csv(tmp_path / "out" / "results.csv")) == 2
    assert _read_csv(tmp_path / "out" / "summary.csv")[0]["n_seeds"] == "2"

    again = peer.run_peer(options, exe)
    assert again.ran == [] and len(again.skipped) == 2
    other = peer.run_peer(peer.PeerOptions(**{**vars(options), "epochs": 6, "seeds": [0]}), exe)
    assert other.ran == [(tiny_dataset, 0)]  # another budget is another run


@pytest.mark.data
def test_split_csvs_of_a_registered_dataset_are_the_benchmark_split(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BBBP (11 unparseable SMILES): the files hold exactly the split `molchannel benchmark` fine-tunes on."""
    from molchannel.finetune.config import load_config
    from molchannel.finetune.data import make_split

    monkeypatch.setenv("MOLCHANNEL_DATA_DIR", str(data_dir))
    split, _ = _check_csvs_equal_split("bbbp", tmp_path / "bbbp")
    for seed in (0, 2):
        ours = make_split(
            load_dataset("bbbp"), load_config(overrides={"seed": seed, "data": {"dataset": "bbbp"}})
        )
        for subset in ("train", "valid", "test", "excluded"):
            np.testing.assert_array_equal(getattr(ours, subset), getattr(split, subset))
    assert split.sizes == (1640, 205, 194) and len(split.excluded) == 11


def test_cli_refuses_what_it_cannot_run(tmp_path: Path) -> None:
    exe = str(_fake_chemprop(tmp_path / "bin"))
    for bad in (["--datasets", "CHEMBL2047_EC50"], ["--datasets", "nosuchset"], ["--epochs", "2"]):
        with pytest.raises(SystemExit):
            peer.main(["--chemprop", exe, "--output", str(tmp_path / "out"), *bad])
    assert not (tmp_path / "out").exists()
