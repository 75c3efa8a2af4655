"""The command line as a user runs it: files in, files out, bad rows reported."""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from molchannel.api import init_model
from molchannel.cli.main import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init_model({"num_layers": 2, "hidden_dim": 16, "aggregator_heads": 2}, seed=0).save(
        tmp_path_factory.mktemp("cli") / "model"
    )


def test_embed_smi_to_npy_with_invalid_rows(tmp_path: Path, model_dir: Path) -> None:
    src = tmp_path / "in.smi"
    src.write_text("smiles\nCCO ethanol\nC1CC broken\n\nc1ccccc1\n")
    out = tmp_path / "out.npy"
    assert main(["embed", "-q", "-m", str(model_dir), "-i", str(src), "-o", str(out)]) == 0
    emb = np.load(out)
    assert emb.shape == (3, 16)
    assert np.isnan(emb[1]).all() and np.isfinite(emb[[0, 2]]).all()
    with open(tmp_path / "out.npy.invalid.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["index"], r["smiles"]) for r in rows] == [("1", "C1CC")]
    assert "RDKit" in rows[0]["reason"]


def test_embed_skip_and_all_channels(tmp_path: Path, model_dir: Path) -> None:
    src = tmp_path / "in.smi"
    src.write_text("CCO\nnot_a_smiles\nc1ccccc1\n")
    out = tmp_path / "out.npy"
    main(
        [
            "embed",
            "-q",
            "-m",
            str(model_dir),
            "-i",
            str(src),
            "-o",
            str(out),
            "--on-invalid",
            "skip",
            "--channel",
            "all",
        ]
    )
    assert np.load(out).shape == (2, 3, 16)


@pytest.mark.requires_pyarrow
def test_embed_gzipped_csv_to_parquet(tmp_path: Path, model_dir: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    src = tmp_path / "in.csv.gz"
    with gzip.open(src, "wt") as fh:
        fh.write("id,SMILES\na,CCO\nb,\nc,c1ccccc1O\n")
    out = tmp_path / "out.parquet"
    assert main(["embed", "-q", "-m", str(model_dir), "-i", str(src), "-o", str(out)]) == 0
    table = pq.read_table(out).to_pydict()
    assert table["row"] == [0, 1, 2] and table["valid"] == [True, False, True]
    assert len(table["embedding"][0]) == 16 and all(np.isnan(table["embedding"][1]))


def test_embed_raise_policy_and_missing_column_fail_cleanly(tmp_path: Path, model_dir: Path, capsys) -> None:  # noqa: ANN001
    src = tmp_path / "in.csv"
    src.write_text("name,structure\na,CCO\n")
    assert main(["embed", "-q", "-m", str(model_dir), "-i", str(src), "-o", str(tmp_path / "o.npy")]) == 1
    assert "no SMILES column found among ['name', 'structure']" in capsys.readouterr().err
    src.write_text("smiles\nCCO\nC1CC\n")
    code = main(
        [
            "embed",
            "-q",
            "-m",
            str(model_dir),
            "-i",
            str(src),
            "-o",
            str(tmp_path / "o.npy"),
            "--on-invalid",
            "raise",
        ]
    )
    assert code == 1 and "invalid SMILES at index 1" in capsys.readouterr().err


def test_info_json(model_dir: Path, capsys) -> None:  # noqa: ANN001
    assert main(["info", str(model_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["embedding_dim"] == 16 and info["channels"] == ["molsim", "scaffsim", "context"]


def _console(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The ``molchannel`` command as installed (its console entry point), in a fresh interpreter."""
    code = (
        "import sys; from molchannel.cli.main import console_main; sys.argv[0] = 'molchannel'; console_main()"
    )
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True)


def test_console_command_fast_exit_keeps_every_output(tmp_path: Path, model_dir: Path) -> None:
    # embed ends with os._exit: the array, the invalid-row report and the log line must all be out
    src = tmp_path / "in.smi"
    src.write_text("\n".join(["CCO", "C1CC", "c1ccccc1O"] * 50) + "\n")
    done = _console(["embed", "-m", str(model_dir), "-i", str(src), "-o", "out.npy"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert np.load(tmp_path / "out.npy").shape == (150, 16)
    assert len((tmp_path / "out.npy.invalid.csv").read_text().splitlines()) == 51  # header + 50 rows
    assert "embedded 100 molecules" in done.stderr
    failed = _console(["embed", "-m", str(tmp_path / "missing"), "-i", str(src), "-o", "x.npy"], tmp_path)
    assert failed.returncode == 1 and "error:" in failed.stderr and "Traceback" not in failed.stderr


def test_embed_and_info_commands_run_without_pyg(tmp_path: Path, model_dir: Path) -> None:
    # GIN inference needs no torch_geometric (~2 s of a 20k-molecule embed): importing it fails here
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch_geometric':\n"
        "            raise ImportError('torch_geometric is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from molchannel.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]) or main(['info', sys.argv[4]]))\n"
    )
    src = tmp_path / "in.smi"
    src.write_text("CCO\nc1ccccc1O\n[Na+].[Cl-]\nC[C@H](N)C(=O)O\n")
    args = ["embed", "-q", "-m", str(model_dir), "-i", str(src), "-o", str(tmp_path / "out.npy")]
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert np.load(tmp_path / "out.npy").shape == (4, 16)
