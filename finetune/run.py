"""Fine-tuning: the in-memory core :func:`finetune` and :func:`run_finetune`, its run-folder layer.

``finetune(model, table, split, config)`` trains on a :class:`~molchannel.data.MoleculeTable` and a
:class:`~molchannel.data.splits.Split` held in memory and returns a :class:`FinetuneResult` whose
``model`` is the fine-tuned model (the scikit-learn wrappers call it this way). Given ``run_dir`` it
also writes the run folder below and can resume; without one it writes nothing but Lightning's
checkpoints, to a temporary folder that is removed at the end. ``run_finetune(config, RUN)`` is the
command line's entry: it reads the table and makes the split that the config names, then calls the
core with the run folder.

Kept as one module: its helpers are the steps of this one run (run folder, starting network, prompt
initialisation, trainer, export), which share the config and the run-folder layout described here.

Run folder::

    config.yaml            the resolved config
    split.json             row indices of train / valid / test (and excluded rows)
    prompt_init.json       how the initial channel logits were chosen (ROGI candidates and scores)
    metrics.csv            one row per epoch: training loss, validation and test metric, learning
                           rates, channel weights, training time
    learning_curve.png     loss and metrics per epoch, the selected epoch marked
    channel_weights.png    softmax(w / tau) per channel at the selected epoch (initial as outlines)
    test_predictions.csv   test rows: SMILES, labels and predictions at the selected epoch (only the
                           header without a test set: the test metric is then NaN everywhere)
    result.json            the FinetuneResult (without the arrays and the model)
    checkpoints/           last.ckpt (resume) and best.ckpt (selected epoch), Lightning format
    model/                 model folder with the head: molchannel.load("RUN/model").predict(...)
    tensorboard/           TensorBoard event file, with trainer.tensorboard: true
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import yaml
from rdkit import rdBase

from molchannel import __version__
from molchannel.api import MolChannelModel, build_model_config, load
from molchannel.atomic import write_text_atomic
from molchannel.chem.mol_features import cached_molecule_features, mol_features_dim
from molchannel.data import MoleculeTable, load_or_build_graphs
from molchannel.data.splits import Split
from molchannel.finetune.callbacks import BEST_CHECKPOINT, LAST_CHECKPOINT, RunRecorder
from molchannel.finetune.config import FinetuneConfig, as_config, config_differences
from molchannel.finetune.data import FinetuneDataModule, graph_cache_dir, load_table, make_split
from molchannel.finetune.metrics import score
from molchannel.finetune.module import FinetuneModule
from molchannel.finetune.prompt import channel_embeddings, initial_weights
from molchannel.finetune.report import plot_channel_weights, plot_learning_curve, write_metrics_csv
from molchannel.kernel_member import KernelMember
from molchannel.nn.model import HeadConfig, MolChannelNet, NetConfig
from molchannel.training import (
    AtomicCheckpointIO,
    epoch_progress_bar,
    load_checkpoint_safely,
    tensorboard_logger,
)

log = logging.getLogger("molchannel.finetune")

RESULT_FILE = "result.json"
# Training molecules above which model.kernel_blend is refused before training: its SVM holds a dense
# n x n kernel (20,000 molecules: 3.2 GB in float64), and a fit that size takes hours on a CPU.
KERNEL_BLEND_MAX_TRAIN = 20_000


@dataclass
class FinetuneResult:
    """Outcome of :func:`finetune` / :func:`run_finetune`. Epochs count from 1."""

    dataset: str
    seed: int
    task_type: str
    metric: str  # "roc_auc" | "rmse"
    best_epoch: int
    valid_metric: float
    test_metric: float  # NaN without a test set (data.split: column without test rows, test_frac: 0)
    test_indices: np.ndarray  # table rows of the test set (with a graph), in split order; may be empty
    test_predictions: np.ndarray  # [n_test, T]: probabilities / original units
    channel_weights: dict[str, float]  # softmax(w / tau) at the best epoch
    wall_time_s: float
    train_molecules_per_s: float
    run_dir: Path | None  # None: fine-tuned in memory (no run folder)
    model_dir: Path | None  # the exported model folder (RUN/model); None without a run folder
    model: MolChannelModel | None = field(default=None, repr=False, compare=False)  # the selected epoch's
    # with model.kernel_blend: the SVRs, blend weights and the network's own metrics (the metrics and
    # predictions above are the blend's, which is what the model predicts)
    kernel_blend: dict[str, Any] | None = None
    # with model.calibration (classification): the Platt parameters per task and the calibration
    # error before / after on the validation and test splits (the test predictions above are calibrated)
    calibration: dict[str, Any] | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """Everything but the arrays (which go to test_predictions.csv) and the model, as JSON values."""
        skip = ("test_indices", "test_predictions", "model")
        d = {k: v for k, v in asdict(replace(self, model=None)).items() if k not in skip}
        d["run_dir"] = None if self.run_dir is None else str(self.run_dir)
        d["model_dir"] = None if self.model_dir is None else str(self.model_dir)
        d["n_test"] = int(len(self.test_indices))
        return d


def finetune(
    model: MolChannelModel | str | os.PathLike[str],
    table: MoleculeTable,
    split: Split,
    config: dict[str, Any] | FinetuneConfig | None = None,
    *,
    run_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    quiet: bool = False,
) -> FinetuneResult:
    """Fine-tune ``model`` on the rows of ``table`` that ``split`` names (the in-memory core).

    Args:
        model: the starting model: a :class:`MolChannelModel`, a model folder or a built-in name (it
            replaces ``config.model.pretrained``); it is not changed.
        table: SMILES and labels, e.g. :func:`molchannel.data.load_csv` or a ``MoleculeTable(...)``
            built from arrays; its ``task_type`` and ``metric`` decide the head and the loss.
        split: train / valid (picks the best epoch) / test (may be empty: test metric NaN) row indices.
        config: the other sections (optim, prompt, model, trainer, seed); its data section is read for
            ``batch_size``, ``num_workers`` and ``cache_dir`` only (graphs and molecule features are
            cached there when it is set, else built in memory).
        run_dir: write the run folder there (see the module docstring); None: nothing is kept but the
            returned result, whose ``model`` is the fine-tuned model.
        resume: continue the run in ``run_dir`` from ``checkpoints/last.ckpt`` (needs ``run_dir``).
        quiet: no progress bars and only warnings in the log.

    Returns:
        the :class:`FinetuneResult`, with ``model`` set (the weights of the best validation epoch).
    """
    cfg = as_config(config if config is not None else {})
    base = model if isinstance(model, MolChannelModel) else load(model)
    source = str(model) if not isinstance(model, MolChannelModel) else str(model.path or "in-memory model")
    cfg = replace(cfg, model=replace(cfg.model, pretrained=source))
    if run_dir is None and resume:
        raise ValueError("resume=True continues a run folder: give run_dir too")
    if run_dir is not None:
        _prepare_run_dir(Path(run_dir), cfg, resume)
    cache = Path(cfg.data.cache_dir).expanduser() if cfg.data.cache_dir else None
    return _finetune(base, table, split, cfg, run_dir, resume, quiet, cache, table.name)


def run_finetune(
    config: dict[str, Any] | FinetuneConfig,
    output_dir: str | Path,
    resume: bool = False,
    quiet: bool = False,
    *,
    split_seed: int | None = None,
) -> FinetuneResult:
    """Fine-tune the model folder ``model.pretrained`` on the dataset of the config's data section and
    write the run folder (see the module docstring).

    Args:
        config: a :class:`FinetuneConfig` or a (partial) nested dict of its sections.
        output_dir: the run folder.
        resume: continue from ``checkpoints/last.ckpt`` when it exists (a finished run is only
            re-reported); without a checkpoint the run starts fresh. The config must be the one
            the run was started with.
        quiet: no progress bars and only warnings in the log.
        split_seed: seed of seeded splits (null: the config's seed); the members of an ensemble share
            one split this way.
    """
    started = time.perf_counter()
    cfg = as_config(config)
    cfg.require_data_source()
    run_dir = Path(output_dir)
    _prepare_run_dir(run_dir, cfg, resume)  # before reading the data: refuse a wrong folder at once
    table = load_table(cfg.data)
    split = make_split(table, cfg if split_seed is None else replace(cfg, seed=split_seed))
    base = load(cfg.model.pretrained)
    return _finetune(
        base, table, split, cfg, run_dir, resume, quiet, graph_cache_dir(cfg.data), cfg.name, started
    )


def _finetune(
    base: MolChannelModel,
    table: MoleculeTable,
    split: Split,
    cfg: FinetuneConfig,
    run_dir_arg: str | os.PathLike[str] | None,
    resume: bool,
    quiet: bool,
    cache: Path | None,
    name: str,
    started: float | None = None,
) -> FinetuneResult:
    """The run itself, in a run folder prepared by the caller (:func:`_prepare_run_dir`); with
    ``run_dir_arg`` None in a temporary folder that is removed."""
    started = time.perf_counter() if started is None else started
    if run_dir_arg is None:
        with tempfile.TemporaryDirectory(prefix="molchannel-finetune-") as tmp:
            return _finetune_in(base, table, split, cfg, Path(tmp), False, quiet, cache, name, started)
    run_dir = Path(run_dir_arg)
    write_text_atomic(run_dir / "split.json", split.to_json() + "\n")
    return _finetune_in(base, table, split, cfg, run_dir, resume, quiet, cache, name, started, keep=True)


def _finetune_in(
    base: MolChannelModel,
    table: MoleculeTable,
    split: Split,
    cfg: FinetuneConfig,
    run_dir: Path,
    resume: bool,
    quiet: bool,
    cache: Path | None,
    name: str,
    started: float,
    keep: bool = False,
) -> FinetuneResult:
    """Train in ``run_dir``; ``keep``: it is the user's run folder, so write the reports and the model."""
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / LAST_CHECKPOINT
    resuming = resume and last.is_file()
    if resuming:
        # Lightning loads it with weights_only=True too, but only after featurizing, and its bare
        # UnpicklingError escapes the CLI: refuse a checkpoint that does not load safely now, clearly.
        load_checkpoint_safely(last)

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if not cfg.model.scratch and not base.info()["pretrained"]:
        log.warning("model %s is not pre-trained: fine-tuning starts from random encoder weights",
                    cfg.model.pretrained)  # fmt: skip
    expected_blend = "ecfp_svr" if table.task_type == "regression" else "ecfp_svc"
    if cfg.model.kernel_blend not in (None, expected_blend):
        raise ValueError(
            f"model.kernel_blend {cfg.model.kernel_blend} does not fit {table.name}, a {table.task_type} "
            f"dataset: use --model.kernel_blend {expected_blend} (or none)"
        )
    labelled_train = int(np.isfinite(table.targets[split.train]).any(axis=1).sum())
    if cfg.model.kernel_blend and labelled_train > KERNEL_BLEND_MAX_TRAIN:
        raise ValueError(
            f"model.kernel_blend needs a dense kernel over the {labelled_train} training molecules (more "
            f"than {KERNEL_BLEND_MAX_TRAIN}): too large; fine-tune without --model.kernel_blend"
        )
    store = load_or_build_graphs(table, base.featurizer, cache, progress=not quiet)
    head = _head_section(table, cfg.model.variance_head)
    features = _molecule_features(table, cfg, cache, quiet)
    net = _initial_net(
        base, cfg, len(table.target_names), table.task_type, table.targets[split.train],
        None if features is None else features[split.train],
    )  # fmt: skip

    datamodule = FinetuneDataModule(
        store, split, table.targets, cfg.data.batch_size, cfg.data.num_workers, cfg.seed, features=features
    )
    prompt_record = _prompt_init(cfg, run_dir if keep else None, net, datamodule, table, resuming)
    module = FinetuneModule(network=net.config.to_dict(), head=head, optim=asdict(cfg.optim), seed=cfg.seed)
    module.net.load_state_dict(net.state_dict())
    with _quiet_lightning(quiet):
        trainer = _trainer(cfg, run_dir, ckpt_dir, quiet)
        try:
            trainer.fit(
                module, datamodule=datamodule, ckpt_path=str(last) if resuming else None, weights_only=True
            )
        except RuntimeError as exc:
            if "deterministic" not in str(exc):
                raise
            raise RuntimeError(
                f"{exc}\nAn operation has no deterministic implementation on {cfg.trainer.accelerator}: set "
                "trainer.deterministic: false (--trainer.deterministic false) and run again"
            ) from exc
    if trainer.interrupted:
        hint = f" in {run_dir}; rerun with resume=True (--resume) to continue from the last finished epoch"
        raise RuntimeError(f"fine-tuning was interrupted{hint if keep else ''}")
    device = trainer.strategy.root_device
    return _finish(
        cfg, run_dir, ckpt_dir, table, base, module, datamodule, head, prompt_record, started, device,
        name, keep,
    )  # fmt: skip


# ---- set-up ------------------------------------------------------------------------------------
def _prepare_run_dir(run_dir: Path, cfg: FinetuneConfig, resume: bool) -> None:
    """Write config.yaml; refuse to mix runs: resuming needs the same config, a fresh start an empty slot.

    "The same config" is :func:`molchannel.finetune.config.comparable_config` (the benchmark's too): keys
    added since the run folder was written count as at their defaults, and execution-only keys
    (``data.num_workers``, ``data.cache_dir``, ``trainer.tensorboard``) may change; config.yaml is then
    rewritten with the config given.
    """
    config_file = run_dir / "config.yaml"
    last = run_dir / "checkpoints" / LAST_CHECKPOINT
    if last.is_file() and not resume:
        raise ValueError(
            f"{run_dir} already holds a fine-tuning run ({last}); pass resume=True (--resume) to continue "
            "or finish it, or choose another output folder"
        )
    if resume and last.is_file() and config_file.is_file():
        try:
            saved = yaml.safe_load(config_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            diff = [f"{config_file} is unreadable ({exc})"]
        else:
            diff = config_differences(saved, cfg)
        if diff:
            raise ValueError(
                f"cannot resume {run_dir}: its config.yaml differs from the config given "
                f"({'; '.join(diff[:8])}). Resume with the same config, or start a new output folder."
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(config_file, yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def _head_section(table: MoleculeTable, variance: bool = False) -> dict[str, Any]:
    """The model folder's ``head``: tasks, task type and metric (and ``variance: true`` for a
    mean-variance head). The regression target scaler is part of the network (:func:`_initial_net`)."""
    if variance and table.task_type != "regression":
        raise ValueError(
            f"model.variance_head is for regression tasks; {table.name} is {table.task_type}. Remove "
            "--model.variance_head (classification probabilities are Platt-calibrated: model.calibration)"
        )
    section: dict[str, Any] = {
        "tasks": list(table.target_names),
        "task_type": table.task_type,
        "metric": table.metric,
    }
    if variance:
        section["variance"] = True
    return section


def _molecule_features(
    table: MoleculeTable, cfg: FinetuneConfig, cache: Path | None, quiet: bool
) -> np.ndarray | None:
    """Raw ``model.extra_features`` of every table row (cached beside the graphs when ``cache`` is set);
    None without any."""
    names = cfg.model.extra_features
    if not names:
        return None
    label = "" if quiet else table.name
    features = cached_molecule_features(table.smiles, names, cache, progress_label=label)
    valid = table.valid_mask
    bad_rows = int((~np.isfinite(features[valid])).any(axis=1).sum())
    if bad_rows:
        log.warning(
            "%s: %d of %d molecules have a descriptor RDKit could not compute (NaN): it is replaced by the "
            "training mean", table.name, bad_rows, int(valid.sum()),
        )  # fmt: skip
    return features


def _initial_net(
    base: MolChannelModel,
    cfg: FinetuneConfig,
    num_tasks: int,
    task_type: str = "regression",
    train_targets: np.ndarray | None = None,
    train_features: np.ndarray | None = None,
) -> MolChannelNet:
    """The base model's architecture (backbone dropout as configured) with a fresh head; its encoder weights
    unless ``scratch``. A regression head's target scaler is fitted to ``train_targets`` (the training
    rows' labels); with molecule features, the head reads them too, standardised with the statistics of
    ``train_features``."""
    torch.manual_seed(cfg.seed)
    encoder = base.net.config.encoder
    if cfg.model.backbone_dropout is not None:
        encoder = replace(encoder, dropout=cfg.model.backbone_dropout)
    extra = list(cfg.model.extra_features)
    head = HeadConfig(
        num_tasks=num_tasks,
        hidden_dim=cfg.model.head_hidden,
        dropout=cfg.model.dropout,
        extra_features=extra,
        extra_dim=mol_features_dim(extra),
        variance=cfg.model.variance_head,
        task_type=task_type,
    )
    net = MolChannelNet(NetConfig(encoder=encoder, tau=cfg.model.tau, head=head))
    if not cfg.model.scratch:
        net.encoder.load_state_dict(base.net.encoder.state_dict(), strict=True)
    if net.target_scaler is not None and train_targets is not None:
        net.target_scaler.fit(train_targets)
    if net.extra_scaler is not None:
        assert train_features is not None
        counts = net.extra_scaler.fit(train_features)
        log.info(
            "molecule features %s: %d columns, %d constant on the training rows, %d with NaN",
            "+".join(extra), head.extra_dim, counts["constant_columns"], counts["nonfinite_columns"],
        )  # fmt: skip
    return net


def _prompt_init(
    cfg: FinetuneConfig,
    run_dir: Path | None,
    net: MolChannelNet,
    datamodule: FinetuneDataModule,
    table: MoleculeTable,
    resuming: bool,
) -> dict[str, Any]:
    """Set the initial channel logits of ``net`` (uniform, given or ROGI) and record them in
    ``prompt_init.json`` of ``run_dir`` (when given); a resumed run reads the record (its weights come from
    the checkpoint)."""
    prompt_file = None if run_dir is None else run_dir / "prompt_init.json"
    if resuming and prompt_file is not None and prompt_file.is_file():
        return json.loads(prompt_file.read_text(encoding="utf-8"))
    train = datamodule.train_set

    def embed(rows: np.ndarray) -> np.ndarray:
        return channel_embeddings(net, [train.store[int(train.positions[i])] for i in rows])

    weights, record = initial_weights(
        cfg.prompt, net.channel_names, cfg.model.tau, cfg.seed, embed=embed, targets=table.targets[train.rows]
    )
    with torch.no_grad():
        net.mixing.weights.copy_(torch.tensor(weights, dtype=net.mixing.weights.dtype))
    record["initial_weights"] = [float(w) for w in weights]
    record["initial_probabilities"] = net.mixing.probabilities().tolist()
    if prompt_file is not None:
        write_text_atomic(prompt_file, json.dumps(record, indent=1) + "\n")
    return record


def _trainer(cfg: FinetuneConfig, run_dir: Path, ckpt_dir: Path, quiet: bool) -> L.Trainer:
    t = cfg.trainer
    # RunRecorder also stops early: Lightning's EarlyStopping cannot resume from last.ckpt (see RunRecorder)
    callbacks: list[L.Callback] = [RunRecorder(run_dir, ckpt_dir, patience=cfg.optim.early_stopping)]
    if not quiet:
        callbacks.append(epoch_progress_bar())
    return L.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        deterministic=t.deterministic,
        precision=t.precision,  # type: ignore[arg-type]
        max_epochs=cfg.optim.epochs,
        gradient_clip_val=cfg.optim.grad_clip,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(run_dir),
        logger=tensorboard_logger(run_dir, "tensorboard", version="") if t.tensorboard else False,
        enable_progress_bar=not quiet,
        enable_model_summary=False,
        enable_checkpointing=False,  # RunRecorder writes best.ckpt and last.ckpt itself
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )


class _quiet_lightning:  # noqa: N801 - used as a context manager
    """Silence Lightning's info lines and hints about workers (and everything but errors when quiet)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]

    def __enter__(self) -> None:
        self.levels = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.setLevel(logging.WARNING)
        self.warnings = warnings.catch_warnings()
        self.warnings.__enter__()
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*number of training batches.*")
        if self.quiet:
            warnings.filterwarnings("ignore", module="lightning")

    def __exit__(self, *exc: Any) -> None:
        self.warnings.__exit__(*exc)
        for lg, level in zip(self.loggers, self.levels, strict=True):
            lg.setLevel(level)


# ---- results -----------------------------------------------------------------------------------
def _finish(
    cfg: FinetuneConfig,
    run_dir: Path,
    ckpt_dir: Path,
    table: MoleculeTable,
    base: MolChannelModel,
    module: FinetuneModule,
    datamodule: FinetuneDataModule,
    head: dict[str, Any],
    prompt_record: dict[str, Any],
    started: float,
    device: torch.device,
    name: str,
    keep: bool,
) -> FinetuneResult:
    """The selected epoch's model and result; with ``keep``, also the reports and the model folder."""
    history = module.history
    best = module.best_row()
    if best is None:
        raise RuntimeError(f"fine-tuning in {run_dir} finished without a single evaluated epoch")
    best_epoch = int(best["epoch"])
    best_ckpt = load_checkpoint_safely(ckpt_dir / BEST_CHECKPOINT)
    if int(best_ckpt["epoch"]) + 1 != best_epoch:
        raise RuntimeError(
            f"{ckpt_dir / BEST_CHECKPOINT} holds epoch {int(best_ckpt['epoch']) + 1}, but the metrics "
            f"select epoch {best_epoch}; the run folder is inconsistent: start it again in a new folder"
        )
    if not math.isfinite(best["valid_metric"]):
        log.warning(
            "the validation %s is undefined in every epoch (e.g. a single class in the validation set), so "
            "epoch %d is reported; use more data or another split",
            head["metric"],
            best_epoch,
        )
    state = {k[len("net.") :]: v for k, v in best_ckpt["state_dict"].items() if k.startswith("net.")}
    module.net.load_state_dict(state, strict=True)
    num_tasks = len(table.target_names)
    test_rows, predictions = _predict(
        module, datamodule.test_loader(), datamodule.test_set, device, num_tasks
    )
    valid_metric, test_metric = float(best["valid_metric"]), float(best["test_metric"])
    calibration = None
    if cfg.model.calibration and head["task_type"] == "classification":
        calibration, predictions = _calibrate_probabilities(
            module, datamodule, table, device, test_rows, predictions
        )
        if len(test_rows):  # the same ranking (a > 0), scored from what the model now predicts
            test_metric = score(head["metric"], table.targets[test_rows], predictions)
    member, blend_record = None, None
    if cfg.model.kernel_blend:
        network_test = predictions
        member, blend_record, valid_metric, predictions = _blend_kernel(
            module, datamodule, table, device, test_rows, predictions
        )
        blend_record.update(
            network_valid_metric=float(best["valid_metric"]),
            network_test_metric=test_metric,
            network_test_predictions=network_test.tolist(),
        )
        if len(test_rows):
            test_metric = score(head["metric"], table.targets[test_rows], predictions)
    probabilities = module.net.mixing.probabilities().tolist()
    channels = module.net.channel_names
    weights = dict(zip(channels, probabilities, strict=True))
    trained = [r for r in history if math.isfinite(r["train_time_s"]) and r["train_time_s"] > 0]
    rate = (
        sum(r["train_molecules"] for r in trained) / sum(r["train_time_s"] for r in trained)
        if trained
        else math.nan
    )
    best = {**best, "valid_metric": valid_metric, "test_metric": test_metric}
    model = _finetuned_model(module, base, head, cfg, name, best, prompt_record, has_test=len(test_rows) > 0)
    model.kernel_member = member
    result = FinetuneResult(
        dataset=name,
        seed=cfg.seed,
        task_type=head["task_type"],
        metric=head["metric"],
        best_epoch=best_epoch,
        valid_metric=float(best["valid_metric"]),
        test_metric=float(best["test_metric"]),
        test_indices=test_rows,
        test_predictions=predictions,
        channel_weights=weights,
        wall_time_s=time.perf_counter() - started,
        train_molecules_per_s=float(rate),
        run_dir=run_dir if keep else None,
        model_dir=run_dir / "model" if keep else None,
        model=model,
        kernel_blend=blend_record,
        calibration=calibration,
    )
    if not keep:
        log.info("%s seed %d: best epoch %d, valid %s %.4f", name, cfg.seed, best_epoch, head["metric"],
                 result.valid_metric)  # fmt: skip
        return result
    model.save(run_dir / "model")
    write_metrics_csv(run_dir / "metrics.csv", history, head["metric"])
    _write_test_predictions(run_dir / "test_predictions.csv", table, test_rows, predictions)
    title = f"{name} (seed {cfg.seed})"
    plot_learning_curve(run_dir / "learning_curve.png", history, head["metric"], best_epoch, title)
    plot_channel_weights(
        run_dir / "channel_weights.png",
        channels,
        probabilities,
        prompt_record.get("initial_probabilities"),
        f"{title}: channel weights at epoch {best_epoch}",
    )
    payload = {
        **result.to_json_dict(),
        "epochs_run": len(history),
        "prompt_init": prompt_record.get("method"),
    }
    write_text_atomic(run_dir / RESULT_FILE, json.dumps(payload, indent=1) + "\n")
    log.info("%s seed %d: best epoch %d, valid %s %.4f, test %.4f -> %s", name, cfg.seed, best_epoch,
             head["metric"], result.valid_metric, result.test_metric, run_dir)  # fmt: skip
    return result


@torch.no_grad()
def _predict(
    module: FinetuneModule, loader: Any, subset: Any, device: torch.device, num_tasks: int
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions of a subset (its table rows, ``[n, T]``) in eval mode, on the training device, with
    the batches the evaluation used (``[0, T]`` for an empty subset, whose ``loader`` is None)."""
    from molchannel.api import head_predictions

    net = module.net.to(device).eval()
    predictions = [np.empty((0, num_tasks), dtype=np.float32)]
    for batch in loader if loader is not None else ():
        outputs = net(batch.to(device)).float()
        predictions.append(head_predictions(outputs, module.head_config).cpu().numpy())
    return subset.rows.astype(np.int64), np.concatenate(predictions).astype(np.float32)


def _blend_kernel(
    module: FinetuneModule,
    datamodule: FinetuneDataModule,
    table: MoleculeTable,
    device: torch.device,
    test_rows: np.ndarray,
    test_network: np.ndarray,
) -> tuple[KernelMember, dict[str, Any], float, np.ndarray]:
    """Fit the kernel member on the training split, weigh it on the validation split
    (:mod:`molchannel.finetune.kernel_blend`): (member, record, blended valid metric, blended test
    predictions). The network's validation predictions are those of the model as it stands (with its
    calibrated probabilities, for classification)."""
    from molchannel.finetune.kernel_blend import fit_classifier_member, fit_kernel_member

    t = len(table.target_names)
    valid_set = datamodule.valid_set
    valid_rows, valid_network = _predict(module, datamodule.valid_loader(), valid_set, device, t)
    train_rows = datamodule.train_set.rows
    smiles = table.smiles
    fit = fit_kernel_member if table.task_type == "regression" else fit_classifier_member
    member, record, valid = fit(
        [smiles[i] for i in train_rows], table.targets[train_rows],
        [smiles[i] for i in valid_rows], table.targets[valid_rows], valid_network,
    )  # fmt: skip
    test = test_network
    if len(test_rows):
        test = member.blend(test_network, member.svr_predictions([smiles[i] for i in test_rows]))
    return member, record, score(table.metric, table.targets[valid_rows], valid), test


def _calibrate_probabilities(
    module: FinetuneModule,
    datamodule: FinetuneDataModule,
    table: MoleculeTable,
    device: torch.device,
    test_rows: np.ndarray,
    test_probabilities: np.ndarray,
) -> tuple[dict[str, Any] | None, np.ndarray]:
    """Fit Platt scaling on the validation split and put it into the network (its head config and
    buffers, so the model folder predicts calibrated probabilities): (record, the network's calibrated
    test probabilities). No task with enough molecules of both classes in the validation split:
    (None, unchanged). The record's ``valid_*_after`` figures are in-sample (fitted on those rows)."""
    from molchannel.finetune.metrics import brier_score, expected_calibration_error
    from molchannel.nn.model import MIN_PLATT_CLASS_COUNT, ProbabilityCalibrator, logits_of

    t = len(table.target_names)
    valid_rows, valid_p = _predict(module, datamodule.valid_loader(), datamodule.valid_set, device, t)
    calibrator = ProbabilityCalibrator(t)
    fitted = calibrator.fit(logits_of(valid_p), table.targets[valid_rows])
    if not all(fitted):
        log.info("probability calibration: %d of %d task(s) keep the raw sigmoid (fewer than %d "
                 "labelled validation molecules of a class)", fitted.count(False), t,
                 MIN_PLATT_CLASS_COUNT)  # fmt: skip
    if not any(fitted):
        return None, test_probabilities
    head = module.net.config.head
    assert head is not None
    head.calibration = True
    module.net.calibrator = calibrator.to(device)
    # the calibrated figures come from the network itself, as the model folder will predict them
    _, valid_after = _predict(module, datamodule.valid_loader(), datamodule.valid_set, device, t)
    _, test_after = _predict(module, datamodule.test_loader(), datamodule.test_set, device, t)
    record: dict[str, Any] = {
        "method": "platt",
        "tasks_fitted": int(sum(fitted)),
        "scale": calibrator.scale.tolist(),
        "shift": calibrator.shift.tolist(),
    }
    parts = [("valid", table.targets[valid_rows], valid_p, valid_after)]
    if len(test_rows):
        parts.append(("test", table.targets[test_rows], test_probabilities, test_after))
    for name, labels, before, after in parts:
        record[f"{name}_ece_before"] = expected_calibration_error(labels, before)
        record[f"{name}_ece_after"] = expected_calibration_error(labels, after)
        record[f"{name}_brier_before"] = brier_score(labels, before)
        record[f"{name}_brier_after"] = brier_score(labels, after)
    return record, test_after if len(test_rows) else test_probabilities


def _finetuned_model(
    module: FinetuneModule,
    base: MolChannelModel,
    head: dict[str, Any],
    cfg: FinetuneConfig,
    name: str,
    best: dict[str, float],
    prompt_record: dict[str, Any],
    has_test: bool = True,
) -> MolChannelModel:
    """The fine-tuned model (on the CPU) with its provenance, which records the test metric only when
    there was a test set."""
    base_prov = base.config.get("provenance", {})
    pretrained = bool(base_prov.get("pretrained", False)) and not cfg.model.scratch
    start = "random weights (scratch)" if cfg.model.scratch else str(cfg.model.pretrained)
    metric = head["metric"]
    provenance = {
        "pretrained": pretrained,
        "finetuned": True,
        "description": f"fine-tuned on {name} ({head['task_type']}, {metric}) from {start}",
        "dataset": name,
        "data_path": cfg.data.path,
        "seed": cfg.seed,
        "epochs": cfg.optim.epochs,
        "epochs_run": len(module.history),
        "best_epoch": int(best["epoch"]),
        "metrics": {
            f"valid_{metric}": float(best["valid_metric"]),
            **({f"test_{metric}": float(best["test_metric"])} if has_test else {}),
        },
        "prompt_init": prompt_record.get("method"),
        "base_model": {
            "path": None if base.path is None else str(base.path),
            "name": cfg.model.pretrained,
            "weights_sha256": base.config.get("weights_sha256"),
            "pretrained": bool(base_prov.get("pretrained", False)),
            "description": base_prov.get("description", ""),
        },
        "scratch": cfg.model.scratch,
        "finetune_config": cfg.to_dict(),
        "molchannel_version": __version__,
        "torch_version": torch.__version__,
        "rdkit_version": rdBase.rdkitVersion,
    }
    net = module.net.cpu()
    config = build_model_config(net.config, base.featurizer, provenance, head=head)
    return MolChannelModel(net, base.featurizer, config)


def _write_test_predictions(
    path: Path, table: MoleculeTable, rows: np.ndarray, predictions: np.ndarray
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = list(table.target_names)
    writer.writerow(["row", "smiles", *names, *[f"predicted {n}" for n in names]])
    for row, pred in zip(rows, predictions, strict=True):
        labels = ["" if np.isnan(v) else repr(float(v)) for v in table.targets[row]]
        writer.writerow([int(row), table.smiles[row], *labels, *[repr(float(v)) for v in pred]])
    write_text_atomic(path, buffer.getvalue())
