"""``molchannel finetune``: fine-tune a model folder on a benchmark or on your own CSV.

Every option of the YAML config can be given on the command line, as a dotted name::

    molchannel finetune --config configs/finetune/bbbp.yaml --optim.epochs 5
    molchannel finetune --config configs/finetune/base.yaml --data.path my.csv --data.smiles_col smiles \\
        --data.targets '[y]' --data.task_type regression --output runs/finetune/my
    molchannel finetune --config configs/finetune/bbbp.yaml --model.scratch true   # no pre-training
    molchannel finetune --config configs/finetune/bbbp.yaml --output runs/finetune/bbbp --resume
    molchannel finetune --config configs/finetune/esol.yaml --ensemble-size 5   # 5 seeds, one model folder

The run folder (``--output``, default ``runs/finetune/<dataset>-seed<seed>``) receives the resolved
config, the split, per-epoch metrics, plots, checkpoints and ``model/``, a model folder with the
prediction head: ``molchannel predict -m RUN/model -i molecules.csv -o predictions.csv``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser, DefaultHelpFormatter

from molchannel.cli.common import check_config_files
from molchannel.finetune.config import SECTIONS, FinetuneConfig


class _HelpFormatter(DefaultHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Option help as jsonargparse writes it, the description's examples kept as written."""


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="molchannel finetune",
        description=__doc__,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--config", action=ActionConfigFile, help="YAML config (may be given several times)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the split, initialisation and batches")
    for name, cls in SECTIONS.items():
        parser.add_class_arguments(cls, name, help=(cls.__doc__ or "").strip().splitlines()[0])
    parser.add_argument(
        "--output",
        type=str | None,
        default=None,
        help="run folder (default: runs/finetune/<dataset>-seed<seed>)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --output from its last checkpoint"
    )
    parser.add_argument(
        "--ensemble-size",
        "--ensemble_size",
        dest="ensemble_size",
        type=int,
        default=1,
        help="fine-tune N members (seeds seed .. seed+N-1, one split) into one ensemble model folder",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar, warnings only")
    return parser


def config_from_namespace(namespace: Any) -> FinetuneConfig:
    d = namespace.as_dict()
    raw = {"seed": d["seed"], **{name: dict(d[name]) for name in SECTIONS}}
    for name, cls in SECTIONS.items():
        known = {f.name for f in dataclasses.fields(cls)}
        raw[name] = {k: v for k, v in raw[name].items() if k in known}
    return FinetuneConfig.from_dict(raw)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``molchannel finetune``; user errors raise (``molchannel.cli.main`` reports them)."""
    import logging

    args = list(sys.argv[1:] if argv is None else argv)
    check_config_files(args)
    namespace = build_parser().parse_args(args)
    logging.basicConfig(
        level=logging.WARNING if namespace.quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    config = config_from_namespace(namespace)
    output = namespace.output or f"runs/finetune/{config.name}-seed{config.seed}"
    if namespace.ensemble_size != 1:
        from molchannel.finetune.ensemble import run_ensemble

        size = namespace.ensemble_size
        ensemble = run_ensemble(config, output, size, resume=namespace.resume, quiet=namespace.quiet)
    else:
        from molchannel.finetune.run import run_finetune

        result = run_finetune(config, output, resume=namespace.resume, quiet=namespace.quiet)
    if namespace.ensemble_size != 1:
        label = {"roc_auc": "ROC-AUC", "rmse": "RMSE"}[ensemble.metric]
        members = ", ".join(f"{v:.4f}" for v in ensemble.member_test_metrics)
        print(
            f"{ensemble.dataset} ensemble of {ensemble.size} (seeds {ensemble.seeds}): test {label} "
            f"{ensemble.test_metric:.4f} (members {members})\nrun folder: {ensemble.run_dir}\n"
            f"model:      {ensemble.model_dir}"
        )
        return 0
    label = {"roc_auc": "ROC-AUC", "rmse": "RMSE"}[result.metric]
    weights = ", ".join(f"{k} {v:.2f}" for k, v in result.channel_weights.items())
    test = f"test {label} {result.test_metric:.4f}" if len(result.test_indices) else "no test set"
    print(
        f"{result.dataset} (seed {result.seed}): best epoch {result.best_epoch}, "
        f"validation {label} {result.valid_metric:.4f}, {test}; "
        f"channel weights {weights}\nrun folder: {result.run_dir}\nmodel:      {result.model_dir}"
    )
    return 0


if __name__ == "__main__":
    from molchannel.cli.main import main as molchannel_main

    sys.exit(molchannel_main(["finetune", *sys.argv[1:]]))
