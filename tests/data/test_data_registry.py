"""Dataset registry, verified file access and table loading."""

from __future__ import annotations

import csv
import gzip
import hashlib
import math
from pathlib import Path

import numpy as np
import pytest

from molchannel.data import (
    CORPUS_FILES,
    DATASETS,
    MOLECULEACE_METADATA,
    ChecksumMismatchError,
    DataFile,
    DataNotFoundError,
    MissingColumnError,
    fetch_file,
    get_dataset_spec,
    list_datasets,
    load_csv,
    load_dataset,
    resolve_data_dir,
    verify_file,
)
from molchannel.data import paths as paths_module


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the remembered-checksum file out of the user's home."""
    monkeypatch.setenv("MOLCHANNEL_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


# ---- registry --------------------------------------------------------------------------------
def test_registry_holds_11_moleculenet_and_30_moleculeace_datasets() -> None:
    moleculenet = list_datasets("moleculenet")
    classification = ["bbbp", "tox21", "toxcast", "sider", "clintox", "muv", "hiv", "bace"]
    assert sorted(moleculenet) == sorted([*classification, "esol", "freesolv", "lipophilicity"])
    moleculeace = list_datasets("moleculeace")
    assert len(moleculeace) == 30
    assert len(DATASETS) == 41
    assert all(DATASETS[n].split == "official" and DATASETS[n].targets == ("y",) for n in moleculeace)
    assert all(DATASETS[n].split == "scaffold" for n in moleculenet)


def test_registry_tasks_and_metrics() -> None:
    assert get_dataset_spec("bace").targets == ("Class",)
    assert get_dataset_spec("bace").task_type == "classification"
    assert len(get_dataset_spec("tox21").targets) == 12
    assert "mol_id" not in get_dataset_spec("tox21").targets
    assert len(get_dataset_spec("sider").targets) == 27
    assert len(get_dataset_spec("muv").targets) == 17
    assert get_dataset_spec("toxcast").targets == ()  # read from the header at load time
    for name in ("esol", "freesolv", "lipophilicity", "CHEMBL204_Ki"):
        spec = get_dataset_spec(name)
        assert (spec.task_type, spec.metric) == ("regression", "rmse")
    assert get_dataset_spec("hiv").metric == "roc_auc"


def test_lookup_is_case_insensitive_and_unknown_names_list_the_choices() -> None:
    assert get_dataset_spec("BBBP") is DATASETS["bbbp"]
    assert get_dataset_spec("chembl1862_ki").name == "CHEMBL1862_Ki"
    with pytest.raises(KeyError, match="freesolv"):
        get_dataset_spec("freesolve")
    with pytest.raises(ValueError, match="collection"):
        list_datasets("qm9")  # type: ignore[arg-type]


def test_registry_holds_no_machine_paths() -> None:
    for spec in [*DATASETS.values(), MOLECULEACE_METADATA, *CORPUS_FILES.values()]:
        assert not Path(spec.file).is_absolute()
        assert len(spec.sha256) == 64 and int(spec.sha256, 16) >= 0


# ---- the real files ------------------------------------------------------------------------
@pytest.mark.data
def test_every_registered_file_verifies(data_dir: Path) -> None:
    files = [*DATASETS.values(), MOLECULEACE_METADATA, *CORPUS_FILES.values()]
    for spec in files:
        path = fetch_file(spec, data_dir, download=False)
        assert path == data_dir / spec.file


@pytest.mark.data
def test_registry_agrees_with_the_data_folder_checksum_list(data_dir: Path) -> None:
    sums_file = data_dir / "SHA256SUMS"
    if not sums_file.is_file():
        pytest.skip("the data folder has no SHA256SUMS")
    listed = dict(reversed(line.split()) for line in sums_file.read_text().splitlines() if line.strip())
    registered = {
        s.file: s.sha256 for s in [*DATASETS.values(), MOLECULEACE_METADATA, *CORPUS_FILES.values()]
    }
    assert registered == listed


def _count_empty_cells(path: Path, columns: tuple[str, ...]) -> int:
    with open(path, newline="") as fh:
        return sum(1 for row in csv.DictReader(fh) for c in columns if row[c].strip() == "")


@pytest.mark.data
def test_tox21_missing_labels_stay_nan(data_dir: Path) -> None:
    table = load_dataset("tox21", data_dir)
    assert table.targets.shape == (7831, 12)
    assert table.targets.dtype == np.float32
    assert table.n_missing_labels == 16026
    assert _count_empty_cells(data_dir / "moleculenet/tox21.csv", table.target_names) == 16026
    # first data row: "0,0,1,,,0,0,1,0,0,0,0,TOX3021,CCOc1ccc2nc(S(N)(=O)=O)sc2c1"
    np.testing.assert_array_equal(table.targets[0], [0, 0, 1, np.nan, np.nan, 0, 0, 1, 0, 0, 0, 0])
    assert table.smiles[0] == "CCOc1ccc2nc(S(N)(=O)=O)sc2c1"
    assert set(np.unique(table.targets[~np.isnan(table.targets)])) == {0.0, 1.0}


@pytest.mark.data
def test_invalid_smiles_are_kept_and_reported(data_dir: Path) -> None:
    bbbp = load_dataset("bbbp", data_dir)
    assert len(bbbp) == 2050  # rows are never dropped
    assert len(bbbp.invalid) == 11
    assert bbbp.valid_mask.sum() == 2039
    assert 59 in {rec.index for rec in bbbp.invalid}
    assert "valence" in bbbp.invalid[0].reason
    clintox = load_dataset("clintox", data_dir)
    assert clintox.target_names == ("FDA_APPROVED", "CT_TOX")
    assert len(clintox.invalid) == 4


@pytest.mark.data
def test_other_moleculenet_columns(data_dir: Path) -> None:
    esol = load_dataset("esol", data_dir)
    assert esol.target_names == ("measured log solubility in mols per litre",)
    assert esol.smiles[0] == "OCC3OC(OCC2OC(OC(C#N)c1ccccc1)C(O)C(O)C2O)C(O)C(O)C3O"  # trailing space removed
    assert esol.targets[0, 0] == pytest.approx(-0.77)
    bace = load_dataset("bace", data_dir)
    assert (len(bace), bace.target_names) == (1513, ("Class",))
    toxcast = load_dataset("toxcast", data_dir)
    assert toxcast.targets.shape == (8576, 617)
    assert toxcast.target_names[0] == "ACEA_T47D_80hr_Negative"
    assert toxcast.source_sha256 == DATASETS["toxcast"].sha256


@pytest.mark.data
def test_moleculeace_table_carries_cliff_and_split_columns(data_dir: Path) -> None:
    table = load_dataset("CHEMBL1862_Ki", data_dir)
    assert len(table) == 794
    assert table.extra["cliff_mol"].dtype.kind == "i"
    assert set(np.unique(table.extra["split"])) == {"train", "test"}
    # first row: Nc1[nH]cnc2nnc(-c3ccc(Cl)cc3)c1-2,500.0,-2.6989700043360187,0,train
    assert table.targets[0, 0] == pytest.approx(-math.log10(500.0), abs=1e-6)
    assert (table.extra["cliff_mol"][0], table.extra["split"][0]) == (0, "train")


# ---- fetching and verification ---------------------------------------------------------------
def _write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return hashlib.sha256(text.encode()).hexdigest()


def test_missing_file_without_download_names_file_place_and_source(tmp_path: Path) -> None:
    spec = DataFile("moleculenet/BBBP.csv", "0" * 64, "https://example.org/BBBP.csv")
    with pytest.raises(DataNotFoundError) as info:
        fetch_file(spec, tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path / "moleculenet/BBBP.csv") in message
    assert "https://example.org/BBBP.csv" in message and "download=False" in message
    assert isinstance(info.value, FileNotFoundError)


def test_failed_download_raises_data_not_found(tmp_path: Path) -> None:
    spec = DataFile("x/a.csv", "0" * 64, "http://127.0.0.1:9/a.csv")  # nothing listens on port 9
    with pytest.raises(DataNotFoundError, match="download failed"):
        fetch_file(spec, tmp_path)
    assert list((tmp_path / "x").iterdir()) == []  # no partial file left behind


def test_the_test_suite_cannot_download_from_the_internet(tmp_path: Path) -> None:
    """conftest.py's guard: a test that would fetch a missing file fails, naming the host, and is not
    turned into a quiet DataNotFoundError (the guard's error is no OSError)."""
    spec = DataFile("x/a.csv", "0" * 64, "https://example.org/a.csv")
    with pytest.raises(RuntimeError, match="must not use the network .*example.org"):
        fetch_file(spec, tmp_path)
    assert not (tmp_path / "x" / "a.csv").exists()


def test_download_is_verified_and_decompressed(tmp_path: Path) -> None:
    source = tmp_path / "upstream" / "a.csv"
    sha = _write(source, "smiles,y\nCCO,1.0\n")
    got = fetch_file(DataFile("d/a.csv", sha, source.as_uri()), tmp_path / "data")
    assert got.read_text() == "smiles,y\nCCO,1.0\n"
    with gzip.open(tmp_path / "upstream" / "b.csv.gz", "wt") as fh:
        fh.write("smiles,y\nCCO,1.0\n")
    gz_spec = DataFile("d/b.csv", sha, (tmp_path / "upstream" / "b.csv.gz").as_uri(), "gzip")
    assert fetch_file(gz_spec, tmp_path / "data").read_text() == "smiles,y\nCCO,1.0\n"


def test_download_with_wrong_content_is_rejected(tmp_path: Path) -> None:
    source = tmp_path / "upstream.csv"
    actual = _write(source, "changed upstream\n")
    with pytest.raises(ChecksumMismatchError) as info:
        fetch_file(DataFile("d/a.csv", "f" * 64, source.as_uri()), tmp_path / "data")
    assert actual in str(info.value) and "f" * 64 in str(info.value)
    assert not (tmp_path / "data" / "d" / "a.csv").exists()
    assert list((tmp_path / "data" / "d").iterdir()) == []


def test_wrong_checksum_names_expected_and_actual(tmp_path: Path) -> None:
    actual = _write(tmp_path / "d" / "a.csv", "smiles\nCCO\n")
    with pytest.raises(ChecksumMismatchError) as info:
        fetch_file(DataFile("d/a.csv", "a" * 64), tmp_path)
    assert actual in str(info.value) and "a" * 64 in str(info.value)


def test_verification_is_remembered_until_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.csv"
    sha = _write(path, "smiles\nCCO\n")
    verify_file(path, sha, tmp_path / "cache")
    assert (tmp_path / "cache" / "verified_sha256.json").is_file()
    paths_module._verified_this_process.clear()  # a new process: only the sidecar file remembers

    def no_hashing(_: object) -> str:
        raise AssertionError("the file was hashed again")

    monkeypatch.setattr(paths_module, "sha256_of_file", no_hashing)
    verify_file(path, sha, tmp_path / "cache")
    monkeypatch.undo()
    path.write_text("smiles\nCCN\n")  # same size, new content and mtime
    with pytest.raises(ChecksumMismatchError):
        verify_file(path, sha, tmp_path / "cache")


def test_data_dir_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOLCHANNEL_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("MOLCHANNEL_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir() == tmp_path / "xdg" / "molchannel" / "data"


# ---- users' own CSV files --------------------------------------------------------------------
def test_load_csv_labels_missing_and_nonfinite(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("name,smiles,a,b\nx,CCO,1.5,\ny,not_a_smiles,inf,2\nz, c1ccccc1 ,-inf,3\n")
    table = load_csv(path, "smiles", ["a", "b"])
    assert table.target_names == ("a", "b")
    np.testing.assert_array_equal(
        table.targets, np.array([[1.5, np.nan], [np.nan, 2], [np.nan, 3]], np.float32)
    )
    assert table.n_nonfinite_labels == 2
    assert table.n_missing_labels == 3
    assert [r.index for r in table.invalid] == [1]
    assert table.valid_mask.tolist() == [True, False, True]
    assert table.smiles[2] == "c1ccccc1"
    assert table.metric == "rmse" and table.name == "mine.csv"


def test_load_csv_missing_column_lists_columns(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("SMILES,y\nCCO,1\n")
    with pytest.raises(MissingColumnError, match=r"\['SMILES', 'y'\]"):
        load_csv(path, "smiles", ["y"])
    with pytest.raises(MissingColumnError, match="'z'"):
        load_csv(path, "SMILES", ["y", "z"])


def test_load_csv_rejects_text_labels_and_bad_classes(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("smiles,y\nCCO,1\nCCN,active\n")
    with pytest.raises(ValueError, match="row 1: 'active'"):
        load_csv(path, "smiles", ["y"])
    path.write_text("smiles,y\nCCO,1\nCCN,2\n")
    with pytest.raises(ValueError, match="0 or 1"):
        load_csv(path, "smiles", ["y"], task_type="classification")
    path.write_text("smiles,y\nCCO,1\nCCN,0,7\n")
    with pytest.raises(ValueError, match="line 3"):
        load_csv(path, "smiles", ["y"])


def test_load_csv_reads_gzip_and_tsv_and_defaults_targets(tmp_path: Path) -> None:
    path = tmp_path / "mine.tsv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("smiles\tp\tq\nCCO\t0\t1\nCCN\t1\t\n")
    table = load_csv(path, task_type="classification")
    assert table.target_names == ("p", "q")
    assert table.metric == "roc_auc"
    assert np.isnan(table.targets[1, 1]) and table.targets[1, 0] == 1.0
