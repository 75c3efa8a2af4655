"""``molchannel pretrain``: LightningCLI over the pre-training module and data module.

Everything a run needs is in its YAML (``configs/pretrain/*.yaml``); any value can be overridden
on the command line the way Lightning users expect::

    molchannel pretrain --config configs/pretrain/cpu.yaml
    molchannel pretrain --config configs/pretrain/reference_gin.yaml \\
        --trainer.devices 4 --trainer.num_nodes 2 --trainer.strategy ddp
    molchannel pretrain --config configs/pretrain/cpu.yaml --ckpt_path last   # resume
    molchannel pretrain --config configs/pretrain/cpu.yaml --tensorboard      # + TensorBoard logs
    molchannel pretrain --config configs/pretrain/cpu.yaml --quiet            # no bars, warnings only

Besides Lightning's options: --tensorboard (TensorBoard logs in SAVE_DIR/tensorboard next to the
recipe's CSV logger) and -q/--quiet (no progress bars, warnings only), both plain switches.

The run folder (``trainer.default_root_dir``) receives the resolved config, CSV metrics and
checkpoints (``last.ckpt`` for resuming, ``best-*.ckpt`` by validation loss); ``molchannel export``
turns a checkpoint into a model folder.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from molchannel.cli.common import check_config_files
from molchannel.pretrain.checkpointing import AtomicCheckpointIO
from molchannel.pretrain.data import PretrainDataModule
from molchannel.pretrain.module import MCLPretrainModule
from molchannel.training import tensorboard_logger, use_epoch_progress_bar

log = logging.getLogger(__name__)


def cpu_supports_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16 or AMX); elsewhere it is emulated."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def warn_on_slow_precision(trainer) -> None:  # noqa: ANN001 - a lightning Trainer
    """bf16 autocast on a CPU without bf16 units runs several times slower than fp32: say so."""
    precision = str(getattr(trainer, "precision", ""))
    on_cpu = type(trainer.accelerator).__name__ == "CPUAccelerator"
    if on_cpu and precision.startswith("bf16") and not cpu_supports_bf16():
        log.warning(
            "--trainer.precision %s on a CPU without native bfloat16 (no AVX512-BF16/AMX): bf16 is emulated "
            "and much slower than fp32 here; use --trainer.precision 32-true",
            precision,
        )


class PretrainCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # sizes that follow from the corpus, so configs cannot get them wrong
        parser.link_arguments("data.vocab_size", "model.vocab_size", apply_on="instantiate")
        parser.link_arguments("data.featurizer", "model.featurizer", apply_on="instantiate")
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="checkpoint to resume from: a path, or 'last' for the run's last.ckpt",
        )


def trainer_defaults() -> dict:
    """Explicit defaults: best/last checkpoints in the run folder, written atomically.

    The checkpoint callback is always present; configs set the logger and add callbacks
    (``--trainer.enable_progress_bar false`` silences the progress bar).
    """
    return {
        "callbacks": [
            ModelCheckpoint(
                save_last=True, monitor="val/loss", mode="min", save_top_k=1, filename="best-{epoch}-{step}"
            ),
        ],
        "plugins": [AtomicCheckpointIO()],
        "log_every_n_steps": 10,
    }


def _pop_flag(args: list[str], *names: str) -> bool:
    """Remove every occurrence of the flag ``names`` from ``args``; True when there was one."""
    found = any(a in names for a in args)
    args[:] = [a for a in args if a not in names]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``molchannel pretrain``; user errors raise (``molchannel.cli.main`` reports them)."""
    args = list(sys.argv[1:] if argv is None else argv)
    check_config_files(args)
    # Two switches on top of the recipe, taken out before LightningCLI parses: they act outside the
    # Trainer's arguments (TensorBoard next to the recipe's logger; quiet for molchannel's own bars and
    # logs as well), and DDP re-launches of this command line remove them again the same way.
    quiet = _pop_flag(args, "-q", "--quiet")
    tensorboard = _pop_flag(args, "--tensorboard")
    if quiet:
        args.append("--trainer.enable_progress_bar=false")
        os.environ["MOLCHANNEL_PROGRESS"] = "none"  # corpus preparation and leakage bars, child processes too
        for name in ("molchannel", "lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
    cli = PretrainCLI(
        MCLPretrainModule,
        PretrainDataModule,
        run=False,
        args=args,
        trainer_defaults=trainer_defaults(),
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"prog": "molchannel pretrain", "description": __doc__},
        seed_everything_default=0,
    )
    trainer = cli.trainer
    warn_on_slow_precision(trainer)
    use_epoch_progress_bar(trainer)
    if tensorboard:
        # beside the config's (CSV) logger: same folder, subfolder "tensorboard", one event stream that
        # a resumed run (--ckpt_path last) continues rather than a new version per attempt
        save_dir = trainer.loggers[0].save_dir if trainer.loggers else trainer.default_root_dir
        logger = tensorboard_logger(save_dir or trainer.default_root_dir, "tensorboard", version="")
        trainer.loggers = [*trainer.loggers, logger]
    for callback in trainer.checkpoint_callbacks:
        # one fixed folder per run, so `--ckpt_path last` finds the checkpoint of an earlier attempt
        if getattr(callback, "dirpath", None) is None:
            callback.dirpath = os.path.join(trainer.default_root_dir, "checkpoints")  # type: ignore[attr-defined]
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.ckpt_path, weights_only=True)
    return 0
