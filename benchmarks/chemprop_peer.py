"""chemprop v2 as a comparison peer, trained and scored on molchannel's own splits.

Kept as one file: a script run by path (imported only by its test), whose steps share the peer
environment and the record format described below.

chemprop never becomes a dependency of molchannel: it lives in a virtual environment of its own
(default ``.cache/chemprop-venv``, created on first use with the pinned releases below, torch first so
that pip takes the CPU build of that torch release where one is on the index or in ``--find-links``).
This script runs in molchannel's environment and, for every requested (dataset, seed):

1. loads the registered dataset and its benchmark split through molchannel's own code
   (:func:`molchannel.data.load_dataset`, :func:`molchannel.data.splits.benchmark_split`: the deterministic
   scaffold split 80/10/10 that ``molchannel benchmark moleculenet`` fine-tunes on, the same rows in the same
   order) and writes ``train.csv``, ``val.csv`` and ``test.csv`` (``smiles`` then the target columns; rows
   with unparseable SMILES are in no subset, as in our benchmark) plus ``split.json``;
2. runs ``chemprop train`` with chemprop's defaults: only the three data files, the task type, the seed
   (``--data-seed`` and ``--pytorch-seed``), the output folder, ``--accelerator cpu`` and, when given,
   ``--epochs`` (chemprop's default is 50);
3. runs ``chemprop predict`` with the saved best model (``model_0/best.pt``, the epoch of best validation
   loss) on ``test.csv`` and on ``val.csv``, and scores the predictions with molchannel's metric code
   (:func:`molchannel.finetune.metrics.score`: ROC-AUC averaged over tasks with both classes, RMSE in the
   targets' original units), in the record format of ``molchannel benchmark`` (``kind: finetune`` plus
   ``method: chemprop``), so :mod:`molchannel.finetune.tables` tabulates them unchanged.

Records go to ``OUTPUT/records/<dataset>/seed<k>.json`` with the chemprop version, the command lines and
the wall time of each step; ``OUTPUT/results.csv``, ``summary.csv`` and ``results.md`` are rebuilt from
every record there, and ``OUTPUT/environment.txt`` lists the peer environment (``pip freeze``). A finished
(dataset, seed) whose record matches the current settings is skipped, so an interrupted run resumes with
the same command. Models, chemprop's logs and the CSVs live in ``--work-dir`` (default
``.cache/chemprop-peer``), never under ``OUTPUT``. Progress goes to stderr.

    MOLCHANNEL_DATA_DIR=<data> OMP_NUM_THREADS=1 nice -n 19 \\
        .venv/bin/python benchmarks/chemprop_peer.py --seeds 0
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from molchannel import __version__ as molchannel_version
from molchannel.atomic import write_text_atomic
from molchannel.data import get_dataset_spec, load_dataset
from molchannel.data.datasets import MoleculeTable
from molchannel.data.splits import Split, benchmark_split

log = logging.getLogger("chemprop_peer")

CHEMPROP_VERSION = "2.3.1"
TORCH_VERSION = "2.13.0"
PEER = "chemprop"
RECORD_FORMAT = 1
DEFAULT_DATASETS: tuple[str, ...] = ("bbbp", "bace", "esol", "freesolv", "lipophilicity")
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2)
DEFAULT_VENV = Path(".cache") / "chemprop-venv"
DEFAULT_WORK_DIR = Path(".cache") / "chemprop-peer"
DEFAULT_OUTPUT = Path("results") / "peers" / "chemprop"
CHEMPROP_DEFAULT_EPOCHS = 50
SMILES_COLUMN = "smiles"
SUBSET_FILES = {"train": "train.csv", "valid": "val.csv", "test": "test.csv"}


class PeerError(RuntimeError):
    """A chemprop step failed or its output could not be read."""


# ---- the peer environment ---------------------------------------------------------------------
def venv_executable(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / name


def ensure_chemprop(
    venv: Path, python: str = sys.executable, pip_args: Sequence[str] = (), version: str = CHEMPROP_VERSION
) -> Path:
    """The ``chemprop`` executable of ``venv``, creating the venv and installing the pinned releases first.

    torch is installed on its own before chemprop (``torch==TORCH_VERSION``), so that chemprop's resolver
    finds it satisfied and pulls no other build. ``pip_args`` go to both pip calls (an index or
    ``--find-links`` that serves a CPU build of torch, for instance).
    """
    exe = venv_executable(venv, "chemprop")
    if exe.is_file() and chemprop_version(exe) == version:
        return exe
    vpython = venv_executable(venv, "python")
    if not vpython.is_file():
        log.info("creating the chemprop environment %s", venv)
        _check_call([python, "-m", "venv", str(venv)])
    pip = [str(vpython), "-m", "pip", "install", "--quiet", *pip_args]
    log.info("installing torch==%s into %s", TORCH_VERSION, venv)
    _check_call([*pip, f"torch=={TORCH_VERSION}"])
    log.info("installing chemprop==%s into %s", version, venv)
    _check_call([*pip, f"chemprop=={version}"])
    found = chemprop_version(exe)
    if found != version:
        raise PeerError(f"{exe} reports chemprop {found}, expected {version}")
    return exe


def _check_call(cmd: Sequence[str]) -> None:
    done = subprocess.run(list(cmd), capture_output=True, text=True)
    if done.returncode:
        raise PeerError(
            f"`{shlex.join(cmd)}` failed ({done.returncode}):\n{done.stdout[-4000:]}{done.stderr[-4000:]}"
        )


def chemprop_version(exe: Path) -> str | None:
    """The version ``chemprop --version`` prints (``chemprop 2.3.1``), None when it does not run."""
    try:
        done = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=600)
    except OSError:
        return None
    match = re.search(r"chemprop\s+(\S+)", done.stdout + done.stderr)
    return match.group(1) if done.returncode == 0 and match else None


def environment_listing(exe: Path) -> str:
    """``pip freeze`` of the environment ``exe`` lives in (empty when it has no python)."""
    vpython = exe.parent / exe.name.replace("chemprop", "python")
    if not vpython.is_file():
        return ""
    done = subprocess.run([str(vpython), "-m", "pip", "freeze"], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else ""


# ---- our split as chemprop's input files --------------------------------------------------------
def _cell(value: float) -> str:
    return "" if not math.isfinite(value) else repr(float(value))


def write_split_csvs(table: MoleculeTable, split: Split, folder: Path) -> dict[str, Path]:
    """``train.csv``, ``val.csv``, ``test.csv`` (``smiles``, targets; rows in split order), ``split.json``.

    A missing label is an empty cell (chemprop reads it as missing). Returns subset name -> path.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for subset, name in SUBSET_FILES.items():
        rows = getattr(split, subset)
        lines = [[SMILES_COLUMN, *table.target_names]]
        lines += [[table.smiles[i], *(_cell(v) for v in table.targets[i])] for i in rows]
        paths[subset] = folder / name
        with open(paths[subset], "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh, lineterminator="\n").writerows(lines)
    write_text_atomic(folder / "split.json", split.to_json() + "\n")
    return paths


def split_fingerprint(split: Split) -> str:
    """Short sha256 of the subsets' row indices in order (changes if any row moves)."""
    text = json.dumps({s: getattr(split, s).tolist() for s in ("train", "valid", "test")})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# ---- chemprop's output, scored with our metric -------------------------------------------------------
def read_predictions(path: Path, target_names: Sequence[str], smiles: Sequence[str]) -> np.ndarray:
    """``[n, T]`` predictions of a ``chemprop predict`` CSV, checked row by row against ``smiles``.

    chemprop writes the input file back with each target column replaced by its prediction (a
    probability for classification, original units for regression).
    """
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    missing = [c for c in (SMILES_COLUMN, *target_names) if rows and c not in rows[0]]
    if missing or len(rows) != len(smiles):
        raise PeerError(
            f"{path}: expected {len(smiles)} rows with columns {[SMILES_COLUMN, *target_names]}, "
            f"got {len(rows)} rows{f', missing {missing}' if missing else ''}"
        )
    for i, (row, expected) in enumerate(zip(rows, smiles, strict=True)):
        if row[SMILES_COLUMN] != expected:
            raise PeerError(f"{path}: row {i} is {row[SMILES_COLUMN]!r}, expected {expected!r}")
    return np.array([[float(row[c]) for c in target_names] for row in rows], dtype=np.float64).reshape(
        len(rows), len(target_names)
    )


def score_predictions(metric: str, targets: np.ndarray, predictions: np.ndarray) -> float:
    """molchannel's benchmark metric of ``predictions`` (see :func:`molchannel.finetune.metrics.score`)."""
    from molchannel.finetune.metrics import score

    return float(score(metric, np.asarray(targets, dtype=np.float64), np.asarray(predictions, np.float64)))


def best_epoch_of(model_dir: Path) -> int | None:
    """1-based epoch of chemprop's best checkpoint (``best-epoch=N-...ckpt``, N 0-based), None if absent."""
    epochs = [
        int(m.group(1))
        for p in (model_dir / "checkpoints").glob("best-epoch=*.ckpt")
        if (m := re.match(r"best-epoch=(\d+)-", p.name))
    ]
    return max(epochs) + 1 if epochs else None


# ---- one (dataset, seed) ----------------------------------------------------------------------
@dataclass
class PeerOptions:
    datasets: Sequence[str] = DEFAULT_DATASETS
    seeds: Sequence[int] = DEFAULT_SEEDS
    output: Path = DEFAULT_OUTPUT
    work_dir: Path = DEFAULT_WORK_DIR
    epochs: int | None = None
    threads: int = 1
    command: str | None = None
    fail_fast: bool = False

    @property
    def effective_epochs(self) -> int:
        return self.epochs if self.epochs is not None else CHEMPROP_DEFAULT_EPOCHS


@dataclass
class PeerOutcome:
    ran: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[tuple[str, int]] = field(default_factory=list)
    failed: list[tuple[str, int, str]] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    markdown: str = ""


def train_command(
    exe: Path, files: Mapping[str, Path], task_type: str, seed: int, out: Path, epochs: int | None
) -> list[str]:
    cmd = [
        str(exe),
        "train",
        "--data-path",
        str(files["train"]),
        str(files["valid"]),
        str(files["test"]),
        "--task-type",
        task_type,
        "--data-seed",
        str(seed),
        "--pytorch-seed",
        str(seed),
        "--accelerator",
        "cpu",
        "--output-dir",
        str(out),
    ]
    return [*cmd, "--epochs", str(epochs)] if epochs is not None else cmd


def predict_command(exe: Path, data: Path, model: Path, preds: Path) -> list[str]:
    return [
        str(exe),
        "predict",
        "--test-path",
        str(data),
        "--model-paths",
        str(model),
        "--output",
        str(preds),
        "--accelerator",
        "cpu",
    ]


def run_settings(options: PeerOptions, version: str, dataset: str, seed: int, split: Split) -> dict[str, Any]:
    """What determines one run's numbers; its hash decides whether a record is still current."""
    return {
        "peer": PEER,
        "chemprop_version": version,
        "torch_version": TORCH_VERSION,
        "dataset": dataset,
        "data_sha256": get_dataset_spec(dataset).sha256,
        "split": split.method,
        "split_params": split.params,
        "split_sha256": split_fingerprint(split),
        "seed": int(seed),
        "epochs": options.effective_epochs,
        "epochs_given": options.epochs is not None,
        "chemprop_args": "chemprop defaults; --data-seed/--pytorch-seed = seed; --accelerator cpu",
    }


def config_hash(material: Mapping[str, Any]) -> str:
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def record_path(output: Path, dataset: str, seed: int) -> Path:
    return output / "records" / dataset / f"seed{seed}.json"


def read_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def _timed(cmd: Sequence[str], log_file: Path, env: Mapping[str, str]) -> float:
    """Run ``cmd`` with its output appended to ``log_file``; seconds of wall time. Raises on failure."""
    start = time.perf_counter()
    with open(log_file, "a", encoding="utf-8") as fh:
        fh.write(f"$ {shlex.join(cmd)}\n")
        fh.flush()
        done = subprocess.run(list(cmd), stdout=fh, stderr=subprocess.STDOUT, env=dict(env))
    seconds = time.perf_counter() - start
    if done.returncode:
        tail = log_file.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise PeerError(f"`{shlex.join(cmd)}` exited {done.returncode}; end of {log_file}:\n{tail}")
    return seconds


def _display_command(cmd: Sequence[str], work_dir: Path) -> str:
    """The command as recorded: the executable by name, paths relative to the work folder."""
    parts = [Path(cmd[0]).name, *cmd[1:]]
    root = str(work_dir.resolve())
    return shlex.join(p.replace(root + os.sep, "") for p in parts)


def run_one(
    options: PeerOptions,
    exe: Path,
    version: str,
    table: MoleculeTable,
    split: Split,
    seed: int,
    hash_: str,
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """Train, predict and score one (dataset, seed); returns its record (not yet written)."""
    dataset = table.name
    work = (options.work_dir / dataset / f"seed{seed}").resolve()
    if work.exists():
        shutil.rmtree(work)  # an unfinished or outdated run: start it over
    files = write_split_csvs(table, split, work / "data")
    out = work / "chemprop"
    log_file = work / "chemprop.log"
    env = {**os.environ, "OMP_NUM_THREADS": str(options.threads), "MKL_NUM_THREADS": str(options.threads)}
    train = train_command(exe, files, table.task_type, seed, out, options.epochs)
    model = out / "model_0" / "best.pt"
    preds = {s: work / f"{s}_preds.csv" for s in ("test", "valid")}
    commands = {
        "train": train,
        **{f"predict_{s}": predict_command(exe, files[s], model, preds[s]) for s in preds},
    }
    wall: dict[str, float] = {}
    for step, cmd in commands.items():
        log.info("%s seed %d: %s", dataset, seed, step.replace("_", " "))
        wall[step] = _timed(cmd, log_file, env)
        if step == "train" and not model.is_file():
            raise PeerError(f"chemprop train finished without writing {model}")
    scores: dict[str, float] = {}
    predictions: dict[str, np.ndarray] = {}
    for subset in ("test", "valid"):
        rows = getattr(split, subset)
        predictions[subset] = read_predictions(
            preds[subset], table.target_names, [table.smiles[i] for i in rows]
        )
        scores[subset] = score_predictions(table.metric, table.targets[rows], predictions[subset])
    check = _train_predictions_check(
        out / "model_0" / "test_predictions.csv", table, split, predictions["test"]
    )
    n_train = len(split.train)
    total = float(sum(wall.values()))
    return {
        "format": RECORD_FORMAT,
        "kind": "finetune",  # the benchmark record kind the tables read: one trained (dataset, seed) run
        "method": PEER,
        "collection": get_dataset_spec(dataset).collection,
        "dataset": dataset,
        "seed": int(seed),
        "config_hash": hash_,
        "settings": {"peer": PEER, "chemprop_version": version, "epochs": options.epochs},
        "task_type": table.task_type,
        "metric": table.metric,
        "best_epoch": best_epoch_of(out / "model_0") or -1,
        "valid_metric": scores["valid"],
        "test_metric": scores["test"],
        "channel_weights": {},
        "wall_time_s": total,
        "train_molecules_per_s": n_train * options.effective_epochs / wall["train"],
        "run_dir": f"{dataset}/seed{seed}",  # under --work-dir, not kept with the records
        "model_dir": f"{dataset}/seed{seed}/chemprop/model_0",
        "config": dict(settings),
        "peer": {
            "name": PEER,
            "version": version,
            "torch_version": TORCH_VERSION,
            "epochs": options.effective_epochs,
            "threads": options.threads,
            "commands": {step: _display_command(cmd, work) for step, cmd in commands.items()},
            "wall_time_s": wall,
            "train_predictions_max_abs_diff": check,
        },
        "n_train": n_train,
        "n_valid": len(split.valid),
        "n_test": len(split.test),
        "n_excluded": len(split.excluded),
        "test_indices": split.test.tolist(),
        "test_predictions": predictions["test"].tolist(),
        "molchannel_version": molchannel_version,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _train_predictions_check(
    path: Path, table: MoleculeTable, split: Split, ours: np.ndarray
) -> float | None:
    """Largest difference between ``chemprop train``'s own test predictions and ``chemprop predict``'s."""
    if not path.is_file():
        return None
    try:
        theirs = read_predictions(path, table.target_names, [table.smiles[i] for i in split.test])
    except (PeerError, ValueError) as exc:
        log.warning("could not compare with %s: %s", path, exc)
        return None
    return float(np.max(np.abs(theirs - ours))) if ours.size else 0.0


# ---- the whole peer benchmark --------------------------------------------------------------------
def run_peer(options: PeerOptions, exe: Path) -> PeerOutcome:
    """Every requested (dataset, seed) not finished yet, then the tables; see the module docstring."""
    version = chemprop_version(exe)
    if version is None:
        raise PeerError(f"{exe} does not run (`{exe} --version` failed)")
    outcome = PeerOutcome()
    plans = [(d, int(s)) for d in options.datasets for s in options.seeds]
    loaded: dict[str, MoleculeTable] = {}
    for k, (name, seed) in enumerate(plans, 1):
        dataset = get_dataset_spec(name).name
        if dataset not in loaded:
            loaded[dataset] = load_dataset(dataset)
        table = loaded[dataset]
        split = benchmark_split(table, seed=seed)  # MoleculeNet's scaffold split takes no seed
        settings = run_settings(options, version, dataset, seed, split)
        hash_ = config_hash(settings)
        path = record_path(options.output, dataset, seed)
        existing = read_record(path)
        if existing and existing.get("config_hash") == hash_:
            log.info(
                "[%d/%d] %s seed %d: finished before (test %s %.4f), skipped",
                k,
                len(plans),
                dataset,
                seed,
                existing["metric"],
                existing["test_metric"],
            )
            outcome.skipped.append((dataset, seed))
            continue
        if existing:
            path.unlink()  # made with other settings: not to be tabulated while the new run is under way
        log.info(
            "[%d/%d] %s seed %d: chemprop %s, %d epochs, split %r",
            k,
            len(plans),
            dataset,
            seed,
            version,
            options.effective_epochs,
            split,
        )
        try:
            record = run_one(options, exe, version, table, split, seed, hash_, settings)
        except Exception as exc:
            if options.fail_fast:
                raise
            log.error("%s seed %d failed: %s", dataset, seed, exc)
            outcome.failed.append((dataset, seed, f"{type(exc).__name__}: {exc}"))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(record, indent=1) + "\n")
        outcome.ran.append((dataset, seed))
        log.info(
            "%s seed %d: test %s %.4f (valid %.4f, best epoch %d), %.0f s",
            dataset,
            seed,
            record["metric"],
            record["test_metric"],
            record["valid_metric"],
            record["best_epoch"],
            record["wall_time_s"],
        )
    listing = environment_listing(exe)
    if listing:
        write_text_atomic(options.output / "environment.txt", listing)
    write_tables(options, outcome, version)
    return outcome


def load_peer_records(output: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted((output / "records").glob("*/seed*.json")):
        record = read_record(path)
        if record and record.get("method") == PEER:
            records.append(record)
    return records


def write_tables(options: PeerOptions, outcome: PeerOutcome, version: str) -> None:
    """``results.csv``, ``summary.csv`` and ``results.md`` from every chemprop record of the output folder."""
    from molchannel.data import list_datasets
    from molchannel.finetune import tables

    records = load_peer_records(options.output)
    order = list_datasets("moleculenet")
    rows = tables.moleculenet_result_rows(records, order)
    for row in rows:
        row["run_dir"] = f"{row['dataset']}/seed{row['seed']}"
    summary = tables.summarize_moleculenet(records, order)
    versions = sorted({r["peer"]["version"] for r in records}) or [version]
    header = "\n".join(
        [
            "# chemprop v2 peer on molchannel's splits",
            "",
            f"- runs: {len(records)} (dataset x seed), chemprop {', '.join(versions)} with its default "
            "settings, trained and scored by `benchmarks/chemprop_peer.py`",
            *([f"- command: `{options.command}`"] if options.command else []),
            "- split: molchannel's benchmark split (scaffold 80/10/10, chirality in the scaffold key); "
            "test metric of chemprop's best-validation-loss model, scored with molchannel's metric code",
            f"- molchannel {molchannel_version}, tables rebuilt {time.strftime('%Y-%m-%d %H:%M')}",
            "",
        ]
    )
    markdown = tables.moleculenet_markdown(summary, records, header, method=f"chemprop {', '.join(versions)}")
    out = options.output
    tables.write_csv(out / "results.csv", rows, tables.RESULT_COLUMNS_MOLECULENET)
    tables.write_csv(out / "summary.csv", summary, tables.SUMMARY_COLUMNS_MOLECULENET)
    write_text_atomic(out / "results.md", markdown + "\n")
    outcome.summary, outcome.markdown = summary, markdown


# ---- command line -----------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=list(DEFAULT_DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS))
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="records and tables (%(default)s)"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=DEFAULT_WORK_DIR,
        help="CSVs, chemprop's models and logs (%(default)s)",
    )
    parser.add_argument(
        "--venv", type=Path, default=DEFAULT_VENV, help="the chemprop environment (%(default)s)"
    )
    parser.add_argument(
        "--chemprop",
        type=Path,
        default=None,
        help="use this chemprop executable instead of the one of --venv (no install)",
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter that creates --venv")
    parser.add_argument(
        "--pip-arg",
        action="append",
        default=[],
        dest="pip_args",
        help="extra pip option for the install (repeatable), e.g. --pip-arg=--index-url=URL",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"chemprop --epochs (default: chemprop's own, {CHEMPROP_DEFAULT_EPOCHS})",
    )
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of chemprop (%(default)s)")
    parser.add_argument("--setup-only", action="store_true", help="create the chemprop environment and stop")
    parser.add_argument("--fail-fast", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )
    if args.epochs is not None and args.epochs < 3:
        parser.error("--epochs must be at least 3 (chemprop warms the learning rate up for 2 epochs)")
    try:
        specs = [get_dataset_spec(d) for d in args.datasets]
    except KeyError as exc:
        parser.error(str(exc))
    if any(spec.collection != "moleculenet" for spec in specs):
        parser.error("the chemprop peer runs MoleculeNet datasets (their scaffold split and tables)")
    exe = args.chemprop or ensure_chemprop(args.venv, args.python, args.pip_args)
    if args.setup_only:
        print(f"chemprop {chemprop_version(exe)}: {exe}")
        return 0
    shown = list(argv if argv is not None else sys.argv[1:])
    options = PeerOptions(
        datasets=[spec.name for spec in specs],
        seeds=args.seeds,
        output=args.output,
        work_dir=args.work_dir,
        epochs=args.epochs,
        threads=args.threads,
        command=shlex.join(["python", "benchmarks/chemprop_peer.py", *shown]),
        fail_fast=args.fail_fast,
    )
    outcome = run_peer(options, exe)
    print(outcome.markdown)
    log.info(
        "%d run(s) done, %d already finished, %d failed",
        len(outcome.ran),
        len(outcome.skipped),
        len(outcome.failed),
    )
    return 1 if outcome.failed else 0


if __name__ == "__main__":
    sys.exit(main())
