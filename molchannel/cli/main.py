"""``molchannel`` command line: one sub-command per user journey.

Sub-commands import what they need when they run, so ``molchannel embed`` and
``molchannel info`` never import Lightning. Every sub-command, those with their own parsers included,
runs through :func:`run_command`: a user error is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

import yaml

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
        epilog="Errors are reported in one line; set MOLCHANNEL_TRACEBACK=1 to see where they came from.",
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


# What a user can get wrong (a path, a value, a file's content, a dataset name), as the library raises it.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, KeyError, OSError, RuntimeError, yaml.YAMLError)


def run_command(name: str, command: Callable[[], int | None]) -> int:
    """Run sub-command ``name``: a user error prints ``molchannel NAME: error: ...`` on stderr, no
    traceback, and gives exit status 1. Anything else is a bug and keeps its traceback, with a note
    asking for a report; MOLCHANNEL_TRACEBACK=1 shows the traceback of user errors as well.
    """
    try:
        return int(command() or 0)
    except Exception as exc:
        errors = USER_ERRORS
        lightning = sys.modules.get("lightning.fabric.utilities.exceptions")  # imported by training only
        if lightning is not None:
            errors += (lightning.MisconfigurationException,)
        if not isinstance(exc, errors):
            exc.add_note(
                f"molchannel {name}: an unexpected error, likely a bug: please report it with this traceback"
            )
            raise
        if os.environ.get("MOLCHANNEL_TRACEBACK", "") not in ("", "0"):
            raise
        if isinstance(exc, KeyError) and exc.args:
            message = exc.args[0]  # str() of a KeyError would quote the sentence
        elif isinstance(exc, OSError) and exc.filename and exc.strerror:
            message = f"{exc.strerror}: {exc.filename}"  # without the [Errno N]
        else:
            message = str(exc) or type(exc).__name__
        print(f"molchannel {name}: error: {message}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PASSTHROUGH:
        import importlib

        name, rest = argv[0], argv[1:]
        return run_command(name, lambda: importlib.import_module(PASSTHROUGH[name][0]).main(rest))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    return run_command(args.command, lambda: COMMANDS[args.command].run(args))


# Commands whose every output is written and closed before `main` returns (no training loggers,
# no background writers): the `molchannel` command may end them without the interpreter teardown.
FAST_EXIT_COMMANDS = frozenset({"embed", "predict", "info"})


def console_main() -> NoReturn:
    """Entry point of the ``molchannel`` command: :func:`main`, then exit with its status.

    After an inference command the process ends with ``os._exit`` once the ``atexit`` handlers
    have run and logging and the standard streams are flushed. That skips only the interpreter's
    module-by-module teardown, which takes ~0.9 s with torch and PyG loaded: a tenth of embedding
    20,000 molecules end to end. Every other command (and ``main`` called from Python) exits normally.
    """
    argv = sys.argv[1:]
    code = main(argv)
    if argv and argv[0] in FAST_EXIT_COMMANDS:
        atexit._run_exitfuncs()
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            # a closed pipe (`molchannel info | head`) leaves nothing to flush to
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    console_main()
