"""Bad input, with nothing lost: files, the dataset loaders and the ``embed``/``predict`` commands.

Property-based like ``tests/test_bad_input.py``: random tables of valid and garbage SMILES (with
commas, quotes, line breaks, blanks and bytes that are not UTF-8 in the cells) go through
``molchannel embed`` / ``molchannel predict`` and the loaders; every output keeps one row per input
row (or drops exactly the invalid ones under ``--on-invalid skip``), valid rows equal the
molecule embedded on its own, and the invalid ones are listed with row index and reason.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import math
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from bad_input_helpers import HEADED_TASKS, examples, expected_atoms, save_headed_model, text_input
from hypothesis import given, settings
from hypothesis import strategies as st

import molchannel
from molchannel.cli.common import sidecar_path
from molchannel.cli.main import main
from molchannel.data import MissingColumnError, MoleculeTable, load_csv, load_dataset, read_smiles_file

CI = settings.get_profile("molchannel-ci")
CountCase = Callable[[str], None]


@pytest.fixture(scope="module")
def headed_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_headed_model(tmp_path_factory.mktemp("bad-input-files") / "model")


@pytest.fixture(scope="module")
def default_model() -> molchannel.api.MolChannelModel:
    return molchannel.load("default")


def write_table(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",") -> None:
    """A CSV/TSV (gzipped for ``.gz``); lone surrogates in cells become the raw non-UTF-8 bytes."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter).writerows([header, *rows])
    data = buffer.getvalue().encode("utf-8", "surrogateescape")
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)


def read_csv(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


def escaped(text: str) -> str:
    """How the commands write input text that held undecodable bytes (backslash escapes)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def run_cli(args: list[str]) -> tuple[int, str]:
    """``molchannel ARGS`` in-process: exit code and what it printed to stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(args)
    return code, err.getvalue()


def check_sidecar(sidecar: Path, cells: list[str], bad: list[int]) -> None:
    """The invalid-row report lists exactly the invalid rows: index, SMILES as read, a reason."""
    if not bad:
        assert not sidecar.exists()
        return
    records = read_csv(sidecar)
    assert [int(r["index"]) for r in records] == bad
    assert [r["smiles"] for r in records] == [escaped(cells[i]) for i in bad]
    assert all(r["reason"] for r in records)


# ---- the commands ----------------------------------------------------------------------------

cells_strategy = st.lists(text_input(), min_size=1, max_size=12)


@settings(CI, max_examples=examples(40))
@given(
    cells=cells_strategy,
    policy=st.sampled_from(["nan", "skip", "raise"]),
    fmt=st.sampled_from([".npy", ".parquet"]),
)
def test_cli_embed_keeps_rows_aligned(
    default_model: molchannel.api.MolChannelModel,
    cells: list[str],
    policy: str,
    fmt: str,
    count_case: CountCase,
) -> None:
    count_case("cli embed: random CSV cells, nan/skip/raise, .npy/.parquet")
    bad = [i for i, c in enumerate(cells) if expected_atoms(c) is None]
    good = [i for i in range(len(cells)) if i not in bad]
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.csv", Path(tmp) / f"out{fmt}"
        write_table(src, ["id", "smiles"], [[str(i), c] for i, c in enumerate(cells)])
        code, err = run_cli(["embed", "-q", "-i", str(src), "-o", str(out), "--on-invalid", policy])
        if policy == "raise" and bad:
            assert code == 1 and f"at index {bad[0]}" in err and not out.exists()
            return
        assert code == 0, err
        rows = good if policy == "skip" else list(range(len(cells)))
        if fmt == ".npy":
            emb = np.load(out)
        else:
            import pyarrow.parquet as pq

            arrow = pq.read_table(out)
            assert arrow.schema.field("embedding").type.list_size == default_model.embedding_dim
            table = arrow.to_pydict()
            assert table["row"] == rows and table["valid"] == [i in good for i in rows]
            assert table["smiles"] == [escaped(cells[i]) for i in rows]
            emb = np.array(table["embedding"], dtype=np.float32).reshape(
                len(rows), default_model.embedding_dim
            )
        assert emb.shape == (len(rows), default_model.embedding_dim)
        for k, i in enumerate(rows):
            if i in bad:
                assert np.isnan(emb[k]).all()
            else:  # row k is the molecule of input row i, embedded on its own
                np.testing.assert_allclose(emb[k], default_model.embed(cells[i]), rtol=1e-4, atol=1e-5)
        check_sidecar(Path(f"{out}.invalid.csv"), cells, bad)


@settings(CI, max_examples=examples(30))
@given(cells=cells_strategy, policy=st.sampled_from(["nan", "skip"]), fmt=st.sampled_from([".csv", ".tsv"]))
def test_cli_predict_keeps_rows_aligned(
    headed_model_dir: Path, cells: list[str], policy: str, fmt: str, count_case: CountCase
) -> None:
    count_case("cli predict: random CSV cells, nan/skip, .csv/.tsv")
    model = molchannel.load(headed_model_dir)
    bad = [i for i, c in enumerate(cells) if expected_atoms(c) is None]
    good = [i for i in range(len(cells)) if i not in bad]
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.csv", Path(tmp) / f"out{fmt}"
        write_table(src, ["id", "smiles", "note"], [[str(i), c, f"n{i}"] for i, c in enumerate(cells)])
        args = ["predict", "-q", "-m", str(headed_model_dir), "-i", str(src), "-o", str(out)]
        code, err = run_cli([*args, "--on-invalid", policy])
        assert code == 0, err
        table = read_csv(out, "\t" if fmt == ".tsv" else ",")
        rows = good if policy == "skip" else list(range(len(cells)))
        assert [int(r["id"]) for r in table] == rows and [r["note"] for r in table] == [f"n{i}" for i in rows]
        assert [r["smiles"] for r in table] == [escaped(cells[i]) for i in rows]
        for r, i in zip(table, rows, strict=True):
            assert r["valid"] == str(i in good)
            if i in bad:
                assert all(r[t] == "" for t in HEADED_TASKS)
            else:
                got = [float(r[t]) for t in HEADED_TASKS]
                np.testing.assert_allclose(got, model.predict(cells[i]), rtol=1e-5, atol=1e-6)
        check_sidecar(sidecar_path(out), cells, bad)  # out.invalid.csv, out.tsv.invalid.csv


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"smiles\n", "no molecules"),
        (b"id,smiles\n", "no molecules"),
        (b"id,name\n1,CCO\n", "no SMILES column"),
        (b"smiles,id,id\nCCO,1,2\n", "more than once"),
        (b'smiles,id\n"CCO,1\nCC,2\n', "malformed CSV"),  # an unterminated quote would swallow rows
    ],
)
def test_cli_refuses_files_without_molecules_by_name(tmp_path: Path, content: bytes, message: str) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(content)
    for command in (["embed"], ["predict", "-m", "default"]):
        out = tmp_path / ("out.npy" if command == ["embed"] else "out.csv")
        code, err = run_cli([*command, "-q", "-i", str(src), "-o", str(out)])
        assert code == 1 and message in err and "in.csv" in err and not out.exists()


# ---- SMILES file readers ---------------------------------------------------------------------


@settings(CI, max_examples=examples(100))
@given(
    cells=st.lists(text_input(), min_size=0, max_size=10),
    kind=st.sampled_from(["in.csv", "in.tsv", "in.csv.gz", "in.smi", "in.smi.gz"]),
)
def test_read_smiles_file_keeps_every_row(cells: list[str], kind: str, count_case: CountCase) -> None:
    count_case("read_smiles_file: random cells in .csv/.tsv/.smi (gz)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / kind
        if ".smi" in kind:
            # one SMILES per line, a name may follow; blank lines are skipped
            lines = [c.strip().split(maxsplit=1)[0] for c in cells if c.strip()]
            lines = [s for s in lines if "\n" not in s and "\r" not in s]
            data = "".join(f"{s} name{i}\n" for i, s in enumerate(lines)).encode("utf-8", "surrogateescape")
            path.write_bytes(gzip.compress(data) if kind.endswith(".gz") else data)
            expected = lines
            if lines and lines[0].lower() in ("smiles", "canonical_smiles", "smi", "mol"):
                expected = lines[1:]  # taken for a header
        else:
            write_table(path, ["smiles", "id"], [[c, str(i)] for i, c in enumerate(cells)],
                        "\t" if ".tsv" in kind else ",")  # fmt: skip
            expected = cells
        if not expected:
            with pytest.raises(ValueError, match="no molecules|empty"):
                read_smiles_file(path)
            return
        table = read_smiles_file(path)
        assert table.smiles == expected
        if ".smi" not in kind:
            assert table.columns["id"] == [str(i) for i in range(len(cells))]


# ---- dataset loaders -------------------------------------------------------------------------

LABELS = ("", "0", "1", "1.0", " 0 ", "nan", "NaN", "inf", "-inf", "1e999", "2.5", "-3", "abc", "\udcff")


def _label_value(cell: str) -> float | None:
    """What a label cell must become: a float (NaN for missing, inf turned NaN), None if not numeric."""
    text = cell.strip()
    if not text:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        return None
    return math.nan if math.isinf(value) else value


@settings(CI, max_examples=examples(150))
@given(
    rows=st.lists(st.tuples(text_input(), st.sampled_from(LABELS), st.sampled_from(LABELS)), max_size=8),
    duplicates=st.integers(0, 3),
    header=st.sampled_from([["smiles", "a", "b"], ["smiles", "a"], ["mol", "a", "b"], ["b", "smiles", "a"]]),
    task_type=st.sampled_from(["regression", "classification"]),
)
def test_load_csv_keeps_rows_or_names_the_problem(
    rows: list[tuple[str, str, str]],
    duplicates: int,
    header: list[str],
    task_type: str,
    count_case: CountCase,
) -> None:
    count_case("load_csv: random SMILES/labels, missing columns, duplicates, NaN/inf")
    rows = rows + rows[:duplicates]  # duplicated rows are kept as they are
    by_name = [dict(zip(["smiles", "a", "b"], r, strict=True)) for r in rows]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "user.csv"
        write_table(path, header, [[r[h] if h != "mol" else r["smiles"] for h in header] for r in by_name])

        def load() -> MoleculeTable:
            return load_csv(path, target_cols=["a", "b"], task_type=task_type)  # type: ignore[arg-type]

        missing = [c for c in ("smiles", "a", "b") if c not in header]
        if missing:
            with pytest.raises(
                MissingColumnError, match=re.escape(f"user.csv: column(s) {missing} not found")
            ):
                load()
            return
        if not rows:
            with pytest.raises(ValueError, match="user.csv has a header but no rows"):
                load()
            return
        labels = np.array([[_label_value(r["a"]), _label_value(r["b"])] for r in by_name], dtype=object)
        if any(v is None for v in labels.ravel()):
            with pytest.raises(ValueError, match="user.csv: label column .* non-numeric values .*row"):
                load()
            return
        labels = labels.astype(np.float64)
        if task_type == "classification" and not np.isin(labels[~np.isnan(labels)], (0.0, 1.0)).all():
            with pytest.raises(ValueError, match="user.csv: classification labels must be 0 or 1"):
                load()
            return
        table = load()
    assert len(table) == len(rows) and table.smiles == [r["smiles"].strip() for r in by_name]
    assert [r.index for r in table.invalid] == [
        i for i, r in enumerate(by_name) if expected_atoms(r["smiles"]) is None
    ]
    np.testing.assert_array_equal(table.targets, labels.astype(np.float32))
    n_inf = sum(
        math.isinf(float(c))
        for r in by_name
        for c in (r["a"], r["b"])
        if _label_value(c) is not None and c.strip()
    )
    assert table.n_nonfinite_labels == n_inf


def test_load_table_user_csvs(tmp_path: Path) -> None:
    """The fine-tuning entry point over the odd user CSVs of the issue."""
    from molchannel.finetune.config import DataConfig
    from molchannel.finetune.data import load_table

    def table(
        name: str, content: bytes, task_type: str = "classification", targets: list[str] | None = None
    ) -> MoleculeTable:
        path = tmp_path / name
        path.write_bytes(content)
        return load_table(DataConfig(dataset=None, path=str(path), task_type=task_type, targets=targets))

    one_class = table("one.csv", b"smiles,active\nCCO,1\nc1ccccc1,1\nCCO,1\n")  # and a duplicated row
    assert one_class.smiles == ["CCO", "c1ccccc1", "CCO"] and (one_class.targets == 1).all()
    mixed = table("mixed.csv", b"smiles,y\nCCO,1.5\nC\xffC,2\nc1ccccc1,nan\nCC,inf\n", "regression")
    assert len(mixed) == 4 and [r.index for r in mixed.invalid] == [1] and "UTF-8" in mixed.invalid[0].reason
    assert np.isnan(mixed.targets[[2, 3], 0]).all() and mixed.n_nonfinite_labels == 1
    for name, content, message in [
        ("header.csv", b"smiles,y\n", "header.csv has a header but no rows"),
        ("empty.csv", b"", "empty.csv is empty"),
        ("nosmiles.csv", b"mol,y\nCCO,1\n", r"nosmiles.csv: column\(s\) \['smiles'\] not found"),
        ("notarget.csv", b"smiles,y\nCCO,1\n", r"notarget.csv: column\(s\) \['z'\] not found"),
        ("badlabel.csv", b"smiles,y\nCCO,\xff\n", "badlabel.csv: label column 'y' holds non-numeric"),
    ]:
        with pytest.raises(ValueError, match=message):
            table(name, content, "regression", ["y"] if name != "notarget.csv" else ["z"])


@pytest.mark.data
@pytest.mark.parametrize("name", ["bbbp", "clintox", "esol", "freesolv", "sider"])
def test_registered_datasets_featurize_or_report_every_row(data_dir: Path, name: str) -> None:
    """Real benchmark rows: every one featurizes or is listed as invalid, none crashes."""
    table = load_dataset(name, data_dir=data_dir, download=False)
    result = molchannel.chem.featurize_smiles(table.smiles, molchannel.chem.get_featurizer("basic"), "nan")
    assert len(result) == len(table)
    assert [r.index for r in result.invalid] == [r.index for r in table.invalid]
    assert [i for i, g in enumerate(result.graphs) if g is None] == [r.index for r in table.invalid]


# ---- a bulk file with 1 % invalid rows --------------------------------------------------------

GARBAGE_ROWS = [
    "", "not_a_smiles", "C1CC", "c1cccc1", "[#6,#7]", "CCO ethanol", "C(C", "[Xx]", "CC\udcffO",
    "Cl(Cl)(Cl)(Cl)Cl",
]  # fmt: skip


@pytest.mark.data
def test_bulk_embed_and_predict_with_one_percent_invalid_rows(
    tmp_path: Path,
    zinc_smiles: list[str],
    headed_model_dir: Path,
    default_model: molchannel.api.MolChannelModel,
) -> None:
    """1,000 ZINC rows, 10 of them garbage at random places: every valid row written, in order."""
    rng = np.random.default_rng(0)
    n = 1000
    bad = sorted(rng.choice(n, size=len(GARBAGE_ROWS), replace=False).tolist())
    valid_smiles = iter(rng.choice(zinc_smiles, size=n - len(bad), replace=False).tolist())
    garbage = iter(GARBAGE_ROWS)
    cells = [next(garbage) if i in bad else next(valid_smiles) for i in range(n)]
    good = [i for i in range(n) if i not in bad]
    src = tmp_path / "in.csv"
    write_table(src, ["id", "smiles"], [[f"mol{i}", c] for i, c in enumerate(cells)])

    # embed, NaN rows
    out = tmp_path / "emb.npy"
    assert run_cli(["embed", "-q", "-i", str(src), "-o", str(out)])[0] == 0
    emb = np.load(out)
    assert emb.shape == (n, default_model.embedding_dim)
    assert np.isnan(emb[bad]).all() and np.isfinite(emb[good]).all()
    np.testing.assert_allclose(emb[good], default_model.embed([cells[i] for i in good]), rtol=1e-4, atol=1e-5)
    for i in rng.choice(good, size=25, replace=False):  # each row is its molecule, embedded alone
        np.testing.assert_allclose(emb[i], default_model.embed(cells[i]), rtol=1e-4, atol=1e-5)
    check_sidecar(tmp_path / "emb.npy.invalid.csv", cells, bad)
    reasons = {int(r["index"]): r["reason"] for r in read_csv(tmp_path / "emb.npy.invalid.csv")}
    assert "text after the SMILES" in reasons[bad[GARBAGE_ROWS.index("CCO ethanol")]]
    assert "UTF-8" in reasons[bad[GARBAGE_ROWS.index("CC\udcffO")]]

    # embed, invalid rows dropped: the valid rows, in input order
    skipped = tmp_path / "emb_skip.parquet"
    assert run_cli(["embed", "-q", "-i", str(src), "-o", str(skipped), "--on-invalid", "skip"])[0] == 0
    import pyarrow.parquet as pq

    table = pq.read_table(skipped).to_pydict()
    assert table["row"] == good and table["smiles"] == [cells[i] for i in good]
    np.testing.assert_allclose(np.array(table["embedding"], dtype=np.float32), emb[good], rtol=1e-6)
    check_sidecar(tmp_path / "emb_skip.parquet.invalid.csv", cells, bad)

    # predict: every input row, ids and SMILES carried, empty predictions where invalid
    pred = tmp_path / "pred.csv"
    assert run_cli(["predict", "-q", "-m", str(headed_model_dir), "-i", str(src), "-o", str(pred)])[0] == 0
    rows = read_csv(pred)
    assert [r["id"] for r in rows] == [f"mol{i}" for i in range(n)]
    assert [r["smiles"] for r in rows] == [escaped(c) for c in cells]
    assert [r["valid"] == "True" for r in rows] == [i in set(good) for i in range(n)]
    model = molchannel.load(headed_model_dir)
    got = np.array([[float(rows[i][t]) for t in HEADED_TASKS] for i in good], dtype=np.float32)
    np.testing.assert_allclose(got, model.predict([cells[i] for i in good]), rtol=1e-5, atol=1e-6)
    assert all(rows[i][t] == "" for i in bad for t in HEADED_TASKS)
    check_sidecar(tmp_path / "pred.invalid.csv", cells, bad)
