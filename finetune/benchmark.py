"""One-command benchmarks: fine-tune on every dataset of a collection for several seeds and tabulate.

Kept as one module: the config layers, the run hash and the record files below are one resume
contract, best changed with all of it in view; the tables are apart, in :mod:`molchannel.finetune.tables`.

``run_benchmark(BenchmarkOptions(collection="moleculenet"))`` (or ``molchannel benchmark moleculenet``)
does, for every (dataset, seed):

1. build the run's config: the built-in defaults, then ``CONFIG_DIR/base.yaml``,
   ``CONFIG_DIR/<collection>.yaml`` and ``CONFIG_DIR/<dataset>.yaml`` where they exist, then the command's
   overrides (seed, model, scratch, epochs, limit, ``--set key=value``), validated by
   :func:`molchannel.finetune.config.load_config`;
2. hash it, together with the sha256 of the dataset file and of the starting model's weights;
3. skip the run if ``OUTPUT/records/<dataset>/seed<k>.json`` exists with that hash; otherwise call
   ``run_finetune`` into ``OUTPUT/runs/<dataset>/seed<k>/`` (with ``resume=True`` when an unfinished run of
   the same config is there) and write the record atomically.

Beside the fine-tuning runs it computes the ECFP baselines per dataset, cached the same way (off with
``baseline=False``, ``--no-baseline``): for MoleculeACE the ECFP + SVM of MoleculeACE's protocol
(:mod:`molchannel.finetune.baselines`, ``OUTPUT/records/<dataset>/ecfp_svm.json``), with our test predictions
scored by RMSE on all test molecules and on the activity-cliff molecules; for MoleculeNet ECFP4 + SVM
(Tanimoto) and ECFP4 + RF with the benchmark's seeds (:mod:`molchannel.finetune.moleculenet_baselines`,
``OUTPUT/records/<dataset>/ecfp_moleculenet.json``).

Then it rebuilds the tables from **every** record under ``OUTPUT/records``: ``results.csv`` (one row per run),
``summary.csv`` (mean ± std over seeds per dataset), ``results.md`` (Markdown, beside the published figures)
and ``results.png``. An interrupted benchmark resumes where it stopped when the same command is run again;
a changed setting reruns exactly the runs it changes. A failing run is logged and the others go on (the
command then exits non-zero); ``fail_fast=True`` stops at the first failure instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import shutil
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import yaml

from molchannel import __version__
from molchannel.atomic import write_text_atomic
from molchannel.data import get_dataset_spec, list_datasets
from molchannel.finetune.config import comparable_config, config_differences

if TYPE_CHECKING:
    from molchannel.finetune.moleculenet_baselines import EcfpBaselineConfig

log = logging.getLogger("molchannel.benchmark")

Collection = Literal["moleculenet", "moleculeace"]
COLLECTIONS: tuple[str, ...] = ("moleculenet", "moleculeace")
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2)
RECORD_FORMAT = 1

#: ``runner(config, output_dir, resume=..., quiet=...) -> FinetuneResult`` (``molchannel.finetune.run``).
Runner = Callable[..., Any]


class BenchmarkError(RuntimeError):
    """Some runs of a benchmark failed; the tables hold the runs that finished."""


@dataclass
class BenchmarkOptions:
    """What ``molchannel benchmark COLLECTION`` was asked to do.

    ``model`` replaces ``model.pretrained`` (a model folder or ``default``); ``scratch`` trains the same
    architecture from random weights; ``epochs`` and ``limit`` set ``optim.epochs`` and ``data.limit``
    (first N rows, for quick looks); ``overrides`` are ``section.key=value`` strings (values parsed as
    YAML). ``config_dir`` defaults to ``configs/finetune`` in the working directory, else the repository's.
    """

    collection: Collection
    datasets: Sequence[str] | None = None
    seeds: Sequence[int] = DEFAULT_SEEDS
    model: str | None = None
    scratch: bool = False
    epochs: int | None = None
    limit: int | None = None
    output: str | Path | None = None
    config_dir: str | Path | None = None
    overrides: Sequence[str] = ()
    quiet: bool = False
    run_progress: bool = False
    baseline: bool = True
    baseline_only: bool = False
    svm_kernel: str = "rbf"
    #: MoleculeNet: grow the ECFP4 + RF forests of datasets with up to this many tasks (None: the
    #: baselines' default, :attr:`EcfpBaselineConfig.rf_max_tasks`)
    rf_max_tasks: int | None = None
    fail_fast: bool = False
    command: str | None = None

    def __post_init__(self) -> None:
        if self.collection not in COLLECTIONS:
            raise ValueError(f"collection must be one of {COLLECTIONS}, got {self.collection!r}")
        if self.model is not None and self.scratch:
            raise ValueError("give either --model (start from a pre-trained model) or --scratch, not both")
        if not self.seeds:
            raise ValueError("give at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {list(self.seeds)}")
        if self.baseline_only and not self.baseline:
            raise ValueError("--baseline-only and --no-baseline contradict each other: give one")
        for name in ("epochs", "limit", "rf_max_tasks"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")

    @property
    def output_dir(self) -> Path:
        return Path(self.output) if self.output is not None else Path("runs") / "benchmark" / self.collection


@dataclass
class BenchmarkOutcome:
    """What a benchmark call did and wrote."""

    output_dir: Path
    ran: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[tuple[str, int]] = field(default_factory=list)
    failed: list[tuple[str, int | None, str]] = field(default_factory=list)
    baseline_ran: list[str] = field(default_factory=list)
    baseline_skipped: list[str] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    markdown: str = ""
    files: dict[str, Path] = field(default_factory=dict)


# ---- datasets and configs -----------------------------------------------------------------
def resolve_datasets(collection: Collection, names: Sequence[str] | None) -> list[str]:
    """Registered names (registry spelling) of ``names``, all of the collection when None."""
    if not names:
        return list_datasets(collection)
    out = []
    for name in names:
        try:
            spec = get_dataset_spec(name)
        except KeyError as exc:
            known = ", ".join(list_datasets(collection))
            raise ValueError(f"unknown dataset {name!r}; the {collection} datasets are: {known}") from exc
        if spec.collection != collection:
            raise ValueError(
                f"dataset {spec.name!r} belongs to {spec.collection}, not {collection}; "
                f"run `molchannel benchmark {spec.collection}` for it"
            )
        if spec.name not in out:
            out.append(spec.name)
    return out


def default_config_dir() -> Path:
    """``configs/finetune`` in the working directory, else the one of the repository this code lives in."""
    local = Path("configs") / "finetune"
    if local.is_dir():
        return local
    return Path(__file__).resolve().parents[1] / "configs" / "finetune"


def config_files(config_dir: Path, collection: str, dataset: str) -> list[Path]:
    """The YAML layers of one run, most general first: base, collection, dataset (those that exist)."""
    names = ["base", collection, dataset, dataset.lower()]
    seen: list[Path] = []
    for name in names:
        path = config_dir / f"{name}.yaml"
        if path.is_file() and path not in seen:
            seen.append(path)
    return seen


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["optim.lr_head=1e-3", "trainer.accelerator=gpu"]`` -> nested dict (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects section.key=value (e.g. optim.lr_head=0.001), got {item!r}")
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {item!r} conflicts with another --set of {part!r}")
        try:
            node[parts[-1]] = _parse_value(text)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or exc
            raise ValueError(f"--set {item!r}: the value is not valid YAML ({problem})") from None
    return out


def _parse_value(text: str) -> Any:
    """YAML, except that ``1e-3`` is a number (PyYAML reads exponents without a dot as text)."""
    if not text.strip():
        return None
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def run_overrides(options: BenchmarkOptions, dataset: str, seed: int) -> dict[str, Any]:
    """The nested override dict of one run (applied after the YAML layers)."""
    from molchannel.finetune.config import merge

    out: dict[str, Any] = merge(
        parse_overrides(options.overrides), {"seed": seed, "data": {"dataset": dataset}}
    )
    if options.model is not None:
        out = merge(out, {"model": {"pretrained": str(options.model), "scratch": False}})
    if options.scratch:
        out = merge(out, {"model": {"scratch": True}})
    if options.epochs is not None:
        out = merge(out, {"optim": {"epochs": options.epochs}})
    if options.limit is not None:
        out = merge(out, {"data": {"limit": options.limit}})
    return out


def effective_config(options: BenchmarkOptions, config_dir: Path, dataset: str, seed: int) -> dict[str, Any]:
    """The complete, validated config dict of one (dataset, seed) run."""
    from molchannel.finetune.config import load_config

    layers = config_files(config_dir, options.collection, dataset)
    return load_config(*layers, overrides=run_overrides(options, dataset, seed)).to_dict()


def model_fingerprint(config: Mapping[str, Any]) -> str:
    """What the run starts from, so that another starting model reruns the benchmark.

    The sha256 of the pre-trained weights; for ``scratch`` (random weights, the base model's architecture)
    a hash of the base model's featurizer and network config.
    """
    from molchannel.api import resolve_model_path
    from molchannel.model_folder import read_config

    model = config.get("model", {})
    pretrained = model.get("pretrained", "default")
    try:
        base = read_config(resolve_model_path(pretrained))
    except Exception as exc:  # noqa: BLE001 - turned into a user-facing error
        raise ValueError(
            f"cannot read the starting model {pretrained!r}: {exc}. Give --model a model folder "
            "(config.json + model.safetensors) or 'default'."
        ) from exc
    if model.get("scratch"):
        return "scratch:" + config_hash({k: base.get(k) for k in ("featurizer", "network", "channels")})
    return str(base["weights_sha256"])


def config_hash(material: Mapping[str, Any]) -> str:
    """Short sha256 of canonical JSON (sorted keys) of ``material``."""
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def run_hash(config: Mapping[str, Any], data_sha256: str, weights_sha256: str) -> str:
    """Hash of everything that determines a fine-tuning run's numbers.

    The config part is :func:`molchannel.finetune.config.comparable_config` (execution-only keys and keys
    added later at their inert defaults left out, so older records keep their hash); an invalid ``config``
    raises ``ValueError``.
    """
    return config_hash({
        "config": comparable_config(dict(config)),
        "data_sha256": data_sha256,
        "weights_sha256": weights_sha256,
    })  # fmt: skip


# ---- records ------------------------------------------------------------------------------
def record_path(output_dir: Path, dataset: str, seed: int) -> Path:
    return output_dir / "records" / dataset / f"seed{seed}.json"


def started_path(output_dir: Path, dataset: str, seed: int) -> Path:
    return output_dir / "records" / dataset / f"seed{seed}.started.json"


def baseline_path(output_dir: Path, dataset: str, collection: str = "moleculeace") -> Path:
    name = "ecfp_svm" if collection == "moleculeace" else "ecfp_moleculenet"
    return output_dir / "records" / dataset / f"{name}.json"


def run_dir_of(output_dir: Path, dataset: str, seed: int) -> Path:
    return output_dir / "runs" / dataset / f"seed{seed}"


def read_record(path: Path) -> dict[str, Any] | None:
    """A record, or None when absent or unreadable (an unreadable one is logged and redone)."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("ignoring unreadable record %s (%s); the run will be redone", path, exc)
        return None
    return record if isinstance(record, dict) else None


def write_record(path: Path, record: Mapping[str, Any]) -> None:
    write_text_atomic(path, json.dumps(_jsonable(record), indent=1, sort_keys=False) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def load_records(output_dir: Path, collection: str) -> list[dict[str, Any]]:
    """Every finished record under ``output_dir/records`` that belongs to ``collection``."""
    records = []
    for path in sorted((output_dir / "records").glob("*/*.json")):
        if path.name.endswith(".started.json"):
            continue
        record = read_record(path)
        if (
            record
            and record.get("collection") == collection
            and record.get("kind") in ("finetune", "ecfp_svm", "ecfp_moleculenet")
        ):
            records.append(record)
    return records


def _settings(record: Mapping[str, Any]) -> str:
    return json.dumps(record.get("settings", {}), sort_keys=True)


# ---- one fine-tuning run -------------------------------------------------------------------
def _finetune_record(
    result: Any, options: BenchmarkOptions, dataset: str, seed: int, config: dict[str, Any], hash_: str,
    table: Any | None,
) -> dict[str, Any]:  # fmt: skip
    record: dict[str, Any] = {
        "format": RECORD_FORMAT,
        "kind": "finetune",
        "collection": options.collection,
        "dataset": dataset,
        "seed": int(seed),
        "config_hash": hash_,
        "settings": _settings_of(options),
        "task_type": result.task_type,
        "metric": result.metric,
        "best_epoch": int(result.best_epoch),
        "valid_metric": float(result.valid_metric),
        "test_metric": float(result.test_metric),
        "channel_weights": {str(k): float(v) for k, v in dict(result.channel_weights).items()},
        "wall_time_s": float(result.wall_time_s),
        "train_molecules_per_s": float(result.train_molecules_per_s),
        "run_dir": str(result.run_dir),
        "model_dir": str(result.model_dir),
        "config": config,
        "molchannel_version": __version__,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    blend = getattr(result, "kernel_blend", None)
    if blend:  # model.kernel_blend: the network's own metrics beside the blend's
        record["network_valid_metric"] = float(blend["network_valid_metric"])
        record["network_test_metric"] = float(blend["network_test_metric"])
        record["network_weights"] = [t["network_weight"] if t else 1.0 for t in blend["tasks"]]
    calibration = getattr(result, "calibration", None)
    if calibration:  # model.calibration: the calibration error before / after Platt scaling
        record["calibration"] = {k: v for k, v in calibration.items() if k not in ("scale", "shift")}
    if table is not None:
        record.update(_cliff_scores(result, table))
    return record


def _cliff_scores(result: Any, table: Any) -> dict[str, Any]:
    """MoleculeACE: RMSE over all test molecules and over ``cliff_mol == 1`` ones, from the predictions."""
    from molchannel.finetune.baselines import cliff_rmse, rmse

    idx = np.asarray(result.test_indices, dtype=np.int64).reshape(-1)
    pred = np.asarray(result.test_predictions, dtype=np.float64).reshape(len(idx), -1)[:, 0]
    y = np.asarray(table.targets[idx, 0], dtype=np.float64)
    cliff = np.asarray(table.extra["cliff_mol"])[idx]
    keep = np.isfinite(y)
    scores = {
        "rmse": rmse(y[keep], pred[keep]),
        "cliff_rmse": cliff_rmse(y[keep], pred[keep], cliff[keep]),
        "n_test": int(keep.sum()),
        "n_cliff_test": int((cliff[keep] == 1).sum()),
        "test_indices": idx.tolist(),
        "test_predictions": pred.tolist(),
    }
    blend = getattr(result, "kernel_blend", None)
    if blend and blend.get("network_test_predictions") is not None:  # the network alone, for comparison
        net = np.asarray(blend["network_test_predictions"], dtype=np.float64).reshape(len(idx), -1)[:, 0]
        scores["network_rmse"] = rmse(y[keep], net[keep])
        scores["network_cliff_rmse"] = cliff_rmse(y[keep], net[keep], cliff[keep])
        scores["network_weight"] = blend["tasks"][0]["network_weight"] if blend["tasks"][0] else 1.0
    if math.isfinite(result.test_metric) and not math.isclose(
        scores["rmse"], result.test_metric, rel_tol=1e-4
    ):
        log.warning(
            "%s seed %s: RMSE from the test predictions (%.4f) differs from the runner's test metric (%.4f)",
            result.dataset, result.seed, scores["rmse"], result.test_metric,
        )  # fmt: skip
    return scores


def _settings_of(options: BenchmarkOptions) -> dict[str, Any]:
    """The command-level settings, to warn when records made with different ones are tabulated together."""
    return {
        "model": options.model,
        "scratch": options.scratch,
        "epochs": options.epochs,
        "limit": options.limit,
        "overrides": sorted(options.overrides),
    }


def _default_runner() -> Runner:
    try:
        from molchannel.finetune.run import run_finetune
    except ImportError as exc:
        raise RuntimeError(
            f"fine-tuning is not available ({exc}); "
            "install the training extra: pip install 'molchannel[train]'"
        ) from exc
    return run_finetune


def _why_not_resumable(marker: Mapping[str, Any] | None, config: dict[str, Any], hash_: str) -> str:
    """Why the unfinished run of ``marker`` (its ``.started.json``) is not one of ``config``; "" if it is."""
    if not marker:
        return "no readable record of the run it holds"
    if marker.get("config_hash") != hash_:
        return "a run of another config, starting model or data file"
    differences = config_differences(marker.get("config"), config)
    return "a run of another config: " + "; ".join(differences[:8]) if differences else ""


def _run_one(
    options: BenchmarkOptions, runner: Runner, dataset: str, seed: int, config: dict[str, Any], hash_: str,
    table: Any | None,
) -> dict[str, Any]:  # fmt: skip
    out = options.output_dir
    run_dir = run_dir_of(out, dataset, seed)
    marker = read_record(started_path(out, dataset, seed))
    # Resume only an unfinished run of the same config (run_finetune checks config.yaml the same way); one
    # that differs only in execution-only keys (data.num_workers, trainer.tensorboard, ...) is the same run.
    why_not = _why_not_resumable(marker, config, hash_)
    resume = not why_not and run_dir.is_dir()
    if run_dir.exists() and not resume:
        log.info("%s seed %d: removing %s (%s)", dataset, seed, run_dir, why_not or "not resumable")
        shutil.rmtree(run_dir)
    stale = record_path(out, dataset, seed)
    if stale.exists():
        stale.unlink()  # its config changed: it must not be tabulated while the new run is under way
    started = {"config_hash": hash_, "config": config, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_record(started_path(out, dataset, seed), started)
    log.info(
        "%s seed %d: %s fine-tuning (config %s)", dataset, seed, "resuming" if resume else "starting", hash_
    )
    result = runner(config, run_dir, resume=resume, quiet=not options.run_progress)
    record = _finetune_record(result, options, dataset, seed, config, hash_, table)
    write_record(record_path(out, dataset, seed), record)
    started_path(out, dataset, seed).unlink(missing_ok=True)
    return record


# ---- the ECFP + SVM baseline ---------------------------------------------------------------
def _baseline(
    options: BenchmarkOptions, dataset: str, table_of: Callable[[str], Any]
) -> tuple[dict[str, Any], bool]:
    """The cached baseline record of ``dataset``, computing it when missing or made with other settings."""
    from molchannel.data.splits import official_split
    from molchannel.finetune.baselines import SvmBaselineConfig, ecfp_svm_baseline

    svm_config = SvmBaselineConfig(kernel=options.svm_kernel)  # type: ignore[arg-type]
    material = {
        "svm": svm_config.to_dict(),
        "limit": options.limit,
        "data_sha256": get_dataset_spec(dataset).sha256,
    }
    hash_ = config_hash(material)
    path = baseline_path(options.output_dir, dataset)
    cached = read_record(path)
    if cached and cached.get("config_hash") == hash_:
        return cached, False
    table = table_of(dataset)
    log.info("%s: ECFP + SVM baseline (grid search with %d-fold CV)", dataset, svm_config.cv_folds)
    split = official_split(table.extra["split"], valid_frac=0.0, valid_mask=table.valid_mask)
    result = ecfp_svm_baseline(
        table.smiles, table.targets[:, 0], table.extra["cliff_mol"], split.train, split.test, svm_config
    )
    record = {
        "format": RECORD_FORMAT,
        "kind": "ecfp_svm",
        "collection": options.collection,
        "dataset": dataset,
        "config_hash": hash_,
        "config": {**svm_config.to_dict(), "limit": options.limit},
        **dataclasses.asdict(result),
        "molchannel_version": __version__,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_record(path, record)
    return read_record(path) or record, True


def _seeds_with_forests(record: dict[str, Any], config: EcfpBaselineConfig) -> set[int]:
    """The seeds of a baseline record that need no forest grown: those with a figure, and all of them when
    the record skipped the forests for a task count ``config`` would skip too (a raised ``rf_max_tasks``
    grows them then)."""
    seeds = {int(k): float(v) for k, v in record["rf_test_metric"].items()}
    n_tasks = int(record.get("n_tasks_fitted", 0)) + len(record.get("skipped_tasks", []))
    if record.get("rf_skipped") and n_tasks > config.rf_max_tasks:
        return set(seeds)
    return {k for k, v in seeds.items() if math.isfinite(v)}


def _moleculenet_baseline(
    options: BenchmarkOptions, dataset: str, table_of: Callable[[str], Any], bar: Any
) -> tuple[dict[str, Any], bool]:
    """The cached ECFP + SVM / RF record of a MoleculeNet ``dataset``, computing it when missing or stale."""
    from molchannel.data.splits import benchmark_split
    from molchannel.finetune.moleculenet_baselines import EcfpBaselineConfig, ecfp_moleculenet_baselines

    config = EcfpBaselineConfig()
    if options.rf_max_tasks is not None:
        config = dataclasses.replace(config, rf_max_tasks=options.rf_max_tasks)
    seeds = sorted({int(s) for s in options.seeds})
    # the seeds are not hashed: a record holds the forests of every seed asked for so far, and a call
    # with new seeds adds their forests to it (the SVM is deterministic and is not refit)
    material = {
        "ecfp": config.to_dict(),
        "limit": options.limit,
        "data_sha256": get_dataset_spec(dataset).sha256,
    }
    hash_ = config_hash(material)
    path = baseline_path(options.output_dir, dataset, options.collection)
    cached = read_record(path)
    if cached and cached.get("config_hash") != hash_:
        cached = None
    have = _seeds_with_forests(cached, config) if cached else set()
    missing = [s for s in seeds if s not in have]
    if cached and not missing:
        return cached, False
    if any(item.startswith("data.") for item in options.overrides):
        log.warning("%s: the ECFP baselines use the dataset's benchmark split; --set data.* applies to the "
                    "fine-tuning runs only", dataset)  # fmt: skip
    table = table_of(dataset)
    split = benchmark_split(table)
    log.info("%s: ECFP4 + %s (seeds %s)", dataset, "RF" if cached else "SVM and ECFP4 + RF",
             " ".join(map(str, missing)))  # fmt: skip

    def on_task(done: int, total: int) -> None:
        if total > 1:
            bar.set_postfix_str(f"{dataset} ECFP baselines, task {done}/{total}")

    result = ecfp_moleculenet_baselines(
        table.smiles, table.targets, table.metric, split.train, split.valid, split.test, missing, config,
        on_task=on_task, fit_svm=cached is None,
    )  # fmt: skip
    fields = dataclasses.asdict(result)
    if cached:  # keep the SVM and the earlier forests
        fields = {k: cached[k] for k in fields if k in cached}
        fields["rf_test_metric"] = {
            **cached["rf_test_metric"],
            **{str(k): v for k, v in result.rf_test_metric.items()},
        }
        fields["rf_wall_time_s"] = float(cached.get("rf_wall_time_s", 0.0)) + result.rf_wall_time_s
        fields["rf_skipped"] = result.rf_skipped
    rf_seeds = sorted(int(k) for k in fields["rf_test_metric"])
    record = {
        "format": RECORD_FORMAT,
        "kind": "ecfp_moleculenet",
        "collection": options.collection,
        "dataset": dataset,
        "config_hash": hash_,
        "config": {**config.to_dict(), "seeds": rf_seeds, "limit": options.limit},
        **fields,
        "molchannel_version": __version__,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_record(path, record)
    if record.get("rf_skipped"):
        log.info("%s ECFP4: SVM %.4f (%s); RF not grown: %s", dataset, float(record["svm_test_metric"]),
                 result.metric, record["rf_skipped"])  # fmt: skip
    else:
        log.info("%s ECFP4: SVM %.4f, RF %.4f (%s)", dataset, float(record["svm_test_metric"]),
                 float(np.mean(list(record["rf_test_metric"].values()))), result.metric)  # fmt: skip
    return read_record(path) or record, True


# ---- the whole benchmark -------------------------------------------------------------------
def _load_table(dataset: str, limit: int | None) -> Any:
    from molchannel.data import load_dataset

    table = load_dataset(dataset)
    if limit is not None and limit < len(table):
        table = dataclasses.replace(
            table,
            smiles=table.smiles[:limit],
            targets=table.targets[:limit],
            extra={k: v[:limit] for k, v in table.extra.items()},
            invalid=[rec for rec in table.invalid if rec.index < limit],
        )
    return table


def run_benchmark(options: BenchmarkOptions, runner: Runner | None = None) -> BenchmarkOutcome:
    """Run (or resume) a benchmark and write its tables; see the module docstring.

    ``runner`` defaults to :func:`molchannel.finetune.run.run_finetune`; tests pass a fake.
    Raises :class:`BenchmarkError` after writing the tables when some runs failed.
    """
    from molchannel.progress import progress

    datasets = resolve_datasets(options.collection, options.datasets)
    config_dir = Path(options.config_dir) if options.config_dir is not None else default_config_dir()
    if options.config_dir is not None and not config_dir.is_dir():
        raise FileNotFoundError(
            f"config folder {config_dir} does not exist; pass --config-dir configs/finetune"
        )
    if not config_dir.is_dir():
        log.warning(
            "no fine-tuning configs at %s: using the built-in defaults (those of base.yaml)", config_dir
        )
    out = options.output_dir
    out.mkdir(parents=True, exist_ok=True)
    outcome = BenchmarkOutcome(output_dir=out)
    runner = runner or (_unused_runner if options.baseline_only else _default_runner())
    ace = options.collection == "moleculeace"

    # Resolve every config first, so a typo fails before hours of training.
    plans: list[tuple[str, int, dict[str, Any], str]] = []
    fingerprints: dict[tuple[str, bool], str] = {}
    for dataset in datasets:
        spec = get_dataset_spec(dataset)
        for seed in () if options.baseline_only else options.seeds:
            config = effective_config(options, config_dir, dataset, int(seed))
            key = (str(config["model"]["pretrained"]), bool(config["model"]["scratch"]))
            if key not in fingerprints:
                fingerprints[key] = model_fingerprint(config)
            plans.append((dataset, int(seed), config, run_hash(config, spec.sha256, fingerprints[key])))

    steps = len(plans) + (len(datasets) if options.baseline else 0)
    loaded: dict[str, Any] = {}

    def table_of(dataset: str) -> Any:
        """The dataset's table, loaded only when something has to be computed here (baselines, cliffs)."""
        if dataset not in loaded:
            loaded[dataset] = _load_table(dataset, options.limit)
        return loaded[dataset]

    with progress(
        total=steps, desc=f"benchmark {options.collection}", unit="run", disable=options.quiet
    ) as bar:
        for dataset in datasets:
            if options.baseline:
                bar.set_postfix_str(f"{dataset} ECFP baseline")
                try:
                    if ace:
                        record, ran = _baseline(options, dataset, table_of)
                        log.info("%s ECFP+SVM: RMSE %.3f, cliff-RMSE %.3f%s", dataset, record["rmse"],
                                 record["cliff_rmse"], "" if ran else " (cached)")  # fmt: skip
                    else:
                        record, ran = _moleculenet_baseline(options, dataset, table_of, bar)
                    (outcome.baseline_ran if ran else outcome.baseline_skipped).append(dataset)
                except Exception as exc:
                    if options.fail_fast:
                        raise
                    _log_failure(outcome, dataset, None, exc)
                finally:
                    bar.update(1)
            for plan_dataset, seed, config, hash_ in plans:
                if plan_dataset != dataset:
                    continue
                bar.set_postfix_str(f"{dataset} seed {seed}")
                existing = read_record(record_path(out, dataset, seed))
                if existing and existing.get("config_hash") == hash_:
                    outcome.skipped.append((dataset, seed))
                    log.info("%s seed %d: finished before with this config, skipped", dataset, seed)
                    bar.update(1)
                    continue
                try:
                    table = table_of(dataset) if ace else None
                    record = _run_one(options, runner, dataset, seed, config, hash_, table)
                    outcome.ran.append((dataset, seed))
                    log.info("%s seed %d: test %s %.4f (best epoch %d)", dataset, seed, record["metric"],
                             record["test_metric"], record["best_epoch"])  # fmt: skip
                except Exception as exc:
                    if options.fail_fast:
                        raise
                    _log_failure(outcome, dataset, seed, exc)
                finally:
                    bar.update(1)

    write_tables(options, outcome)
    if outcome.failed:
        failures = "; ".join(f"{d}{'' if s is None else f' seed {s}'}: {m}" for d, s, m in outcome.failed)
        raise BenchmarkError(
            f"{len(outcome.failed)} run(s) failed ({failures}). The tables in {out} hold the finished runs; "
            "fix the cause and rerun the same command to do only the missing runs."
        )
    return outcome


def _unused_runner(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("no fine-tuning run is planned with baseline_only")


def _log_failure(outcome: BenchmarkOutcome, dataset: str, seed: int | None, exc: BaseException) -> None:
    where = dataset if seed is None else f"{dataset} seed {seed}"
    log.error("%s failed: %s\n%s", where, exc, "".join(traceback.format_exception(exc)))
    outcome.failed.append((dataset, seed, f"{type(exc).__name__}: {exc}"))


def write_tables(options: BenchmarkOptions, outcome: BenchmarkOutcome) -> None:
    """Rebuild results.csv, summary.csv, results.md and results.png from every record of the output folder."""
    from molchannel.finetune import tables

    out = options.output_dir
    records = load_records(out, options.collection)
    order = list_datasets(options.collection)
    settings = {_settings(r) for r in records if r["kind"] == "finetune"}
    if len(settings) > 1:
        log.warning(
            "the records in %s were made with different settings (%s); the tables mix them. Use a fresh "
            "--output for each setting.", out, " vs ".join(sorted(settings)),
        )  # fmt: skip
    header = _header(options, records)
    if options.collection == "moleculenet":
        rows = tables.moleculenet_result_rows(records, order)
        summary = tables.summarize_moleculenet(records, order)
        markdown = tables.moleculenet_markdown(summary, records, header)
        result_cols, summary_cols = tables.RESULT_COLUMNS_MOLECULENET, tables.SUMMARY_COLUMNS_MOLECULENET
        plot = tables.plot_moleculenet
    else:
        rows = tables.moleculeace_result_rows(records, order)
        summary = tables.summarize_moleculeace(records, order)
        markdown = tables.moleculeace_markdown(summary, records, header)
        result_cols, summary_cols = tables.RESULT_COLUMNS_MOLECULEACE, tables.SUMMARY_COLUMNS_MOLECULEACE
        plot = tables.plot_moleculeace
    files = {
        "results_csv": tables.write_csv(out / "results.csv", rows, result_cols),
        "summary_csv": tables.write_csv(out / "summary.csv", summary, summary_cols),
    }
    write_text_atomic(out / "results.md", markdown + "\n")
    files["results_md"] = out / "results.md"
    if summary:
        files["results_png"] = plot(summary, out / "results.png")
    outcome.summary, outcome.markdown, outcome.files = summary, markdown, files


def _header(options: BenchmarkOptions, records: Sequence[Mapping[str, Any]]) -> str:
    runs = [r for r in records if r["kind"] == "finetune"]
    starts = sorted({"scratch (random weights)" if r["config"]["model"]["scratch"]
                     else str(r["config"]["model"]["pretrained"]) for r in runs})  # fmt: skip
    lines = [
        f"# {'MoleculeNet' if options.collection == 'moleculenet' else 'MoleculeACE'} benchmark",
        "",
        f"- runs: {len(runs)} (dataset x seed) fine-tuning runs in `{options.output_dir}`",
        f"- starting model: {', '.join(starts) or '–'}",
    ]
    if options.command:
        lines.append(f"- command: `{options.command}`")
    if options.limit is not None or any(r["config"]["data"].get("limit") for r in runs):
        lines.append("- **subset run (`--limit`): not comparable with published figures**")
    lines.append(f"- molchannel {__version__}, tables rebuilt {time.strftime('%Y-%m-%d %H:%M')}")
    return "\n".join([*lines, ""])
