"""Turn a pre-training checkpoint (or run folder) into a model folder for `molchannel.load`.

Example:
    molchannel export runs/pretrain/cpu -o my_model
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a .ckpt file, or a run folder (its best, else last, checkpoint is used)")
    p.add_argument("-o", "--output", required=True, help="model folder to write")


def run(args: argparse.Namespace) -> int:
    from molchannel.pretrain.export import export_checkpoint

    model = export_checkpoint(args.run, args.output)
    print(f"wrote {args.output}: {model}")
    return 0
