"""``molchannel`` command line: one sub-command per user journey.

Sub-commands import what they need when they run, so ``molchannel embed`` and
``molchannel info`` never import Lightning.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from molchannel import __version__
from molchannel.cli import benchmark, embed, export, info, predict, prepare

# name -> module with add_arguments(parser) and run(args) -> int
COMMANDS = {
    "embed": embed,
    "predict": predict,
    "info": info,
    "prepare": prepare,
    "export": export,
    "benchmark": benchmark,
}
# Commands with their own parsers (LightningCLI, ...): everything after the name is theirs.
PASSTHROUGH = {
    "pretrain": ("molchannel.pretrain.cli", "pre-train a multi-channel encoder (LightningCLI; see --help)"),
    "finetune": (
        "molchannel.finetune.cli",
        "fine-tune a model on a benchmark or your own CSV, with prompt selection (see --help)",
    ),
    "perturb": (
        "molchannel.pretrain.perturb",
        "precompute scaffold-invariant perturbations (CReM or side-chain)",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="molchannel",
        description="Prompt-guided multi-channel molecular representations (MCL).",
    )
    parser.add_argument("--version", action="version", version=f"molchannel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in PASSTHROUGH.items():
        sub.add_parser(name, help=help_text, add_help=False)
    for name, module in COMMANDS.items():
        doc = (module.__doc__ or "").strip().splitlines()[0]
        p = sub.add_parser(
            name, help=doc, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
        module.add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PASSTHROUGH:
        import importlib

        return int(importlib.import_module(PASSTHROUGH[argv[0]][0]).main(argv[1:]) or 0)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return COMMANDS[args.command].run(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        # Expected user errors: say what went wrong without a traceback.
        print(f"molchannel {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
