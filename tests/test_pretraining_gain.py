"""benchmarks/pretraining_gain.py: a pre-trained start's gain over scratch, and issue 10's reading of it."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
FIELDS = ["dataset", "seed", "task_type", "metric", "valid_metric", "test_metric"]


def _load_script() -> ModuleType:
    path = REPO / "benchmarks" / "pretraining_gain.py"
    spec = importlib.util.spec_from_file_location("pretraining_gain", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gain_script = _load_script()


def _results(folder: Path, rows: list[tuple[str, int, float, float]]) -> Path:
    """A benchmark folder whose ``results.csv`` holds (dataset, seed, valid, test) rows."""
    folder.mkdir(parents=True)
    with open(folder / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        for dataset, seed, valid, test in rows:
            metric = "rmse" if dataset == "esol" else "roc_auc"
            task = "regression" if metric == "rmse" else "classification"
            writer.writerow(dict(zip(FIELDS, [dataset, seed, task, metric, valid, test], strict=True)))
    return folder


def test_joined_sessions_read_issue_10s_acceptance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # session 1: bbbp loses 2 points, esol wins 10%; session 2: bace wins 3 points (seed 1 only in both),
    # and a second bbbp (+40 points) that the joined protocol must not take
    pre1 = _results(tmp_path / "pre1", [("bbbp", 0, 0.70, 0.68), ("esol", 0, 1.0, 0.9)])
    scr1 = _results(tmp_path / "scr1", [("bbbp", 0, 0.70, 0.70), ("esol", 0, 1.0, 1.0)])
    pre2 = _results(
        tmp_path / "pre2", [("bace", 0, 0.8, 0.9), ("bace", 1, 0.80, 0.83), ("bbbp", 0, 0.9, 0.9)]
    )
    scr2 = _results(tmp_path / "scr2", [("bace", 1, 0.80, 0.80), ("bbbp", 0, 0.5, 0.5)])
    out = tmp_path / "out"
    both = f"all={pre1}+{pre2},{scr1}+{scr2}"  # the sessions joined: bbbp from pre1 / scr1, not pre2 / scr2
    argv = [
        "pretraining_gain.py",
        "--output",
        str(out),
        "--protocol",
        f"two={pre2},{scr2}",
        "--protocol",
        both,
    ]
    monkeypatch.setattr(sys, "argv", argv)
    gain_script.main()
    with open(out / "pretraining_gain.csv", newline="") as fh:
        rows = {(r["protocol"], r["dataset"]): r for r in csv.DictReader(fh)}
    assert float(rows["two", "bace"]["gain_test"]) == pytest.approx(3.0)  # seed 0 has no scratch run
    assert float(rows["two", "bbbp"]["gain_test"]) == pytest.approx(40.0)
    assert float(rows["all", "bbbp"]["gain_test"]) == pytest.approx(-2.0)
    assert float(rows["all", "esol"]["gain_test"]) == pytest.approx(10.0)
    text = (out / "pretraining_gain.md").read_text()
    assert "- all: 1 of 2 classification sets (mean gain +0.5 points), 1 of 1 regression sets" in text
    assert "- two: 2 of 2 classification sets (mean gain +21.5 points), 0 of 0 regression sets" in text
    assert (out / "pretraining_gain.png").stat().st_size > 0


def test_no_common_seeds_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pre = _results(tmp_path / "pre", [("bbbp", 0, 0.7, 0.7)])
    scr = _results(tmp_path / "scr", [("bbbp", 1, 0.7, 0.7)])
    argv = ["pretraining_gain.py", "--output", str(tmp_path / "out"), "--protocol", f"x={pre},{scr}"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit, match="nothing to compare"):
        gain_script.main()
