"""Reproduce the benchmark tables: fine-tune on every dataset of a collection over several seeds.

Each (dataset, seed) run is recorded in OUTPUT/records/; rerunning the same command skips finished runs
(an interrupted benchmark resumes where it stopped) and reruns those whose settings changed. The tables
are rebuilt from all records: OUTPUT/results.csv (one row per run), summary.csv (mean ± std over seeds),
results.md (beside the published figures and the ECFP baselines of the same run) and results.png.

Examples:
    molchannel benchmark moleculenet                                 # 11 datasets x seeds 0 1 2
    molchannel benchmark moleculenet --datasets bbbp bace --seeds 0 --epochs 5
    molchannel benchmark moleculeace --model my_model --output runs/benchmark/ace-my_model
    molchannel benchmark moleculenet --scratch --set trainer.accelerator=gpu
    molchannel benchmark moleculenet --datasets esol --baseline-only   # only ECFP4 + SVM / RF
    molchannel benchmark probe --model default      # linear probe of frozen embeddings (no fine-tuning)
"""

from __future__ import annotations

import argparse
import shlex
import sys

COLLECTION_HELP = {
    # (argparse %-formats help texts, hence %%)
    "moleculenet": "11 MoleculeNet datasets, scaffold split; ROC-AUC (%%) / RMSE beside the published rows "
    "and ECFP4 + SVM / RF (same run)",
    "moleculeace": "30 MoleculeACE datasets, official split; RMSE, cliff-RMSE beside ECFP + SVM (same run)",
}


def _add_common(p: argparse.ArgumentParser, collection: str) -> None:
    p.add_argument("--datasets", nargs="+", metavar="NAME", help=f"a subset of the {collection} datasets")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], metavar="K", help="default: 0 1 2")
    start = p.add_mutually_exclusive_group()
    start.add_argument(
        "--model", default=None, help='starting model folder or "default" (default: as in the configs)'
    )
    start.add_argument("--scratch", action="store_true", help="same architecture from random weights")
    p.add_argument("--epochs", type=int, default=None, help="override optim.epochs of every config")
    p.add_argument("--limit", type=int, default=None, help="first N molecules of each dataset (quick looks)")
    p.add_argument("--output", default=None, help=f"output folder (default: runs/benchmark/{collection})")
    p.add_argument("--config-dir", default=None, help="fine-tuning configs (default: configs/finetune)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config value, e.g. --set trainer.accelerator=gpu (repeatable)",
    )
    p.add_argument("--run-progress", action="store_true", help="also show each run's own progress bars")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first failing run")
    # SUPPRESS: `molchannel benchmark -q moleculenet` and `... moleculenet --quiet` both work.
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bar")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="collection", metavar="COLLECTION", required=True)
    for name, help_text in COLLECTION_HELP.items():
        # help= is %-formatted by argparse, description= is not
        q = sub.add_parser(name, help=help_text, description=help_text.replace("%%", "%"))
        _add_common(q, name)
        baselines = "ECFP + SVM baseline" if name == "moleculeace" else "ECFP4 + SVM and ECFP4 + RF baselines"
        q.add_argument("--no-baseline", action="store_true", help=f"skip the {baselines}")
        q.add_argument("--baseline-only", action="store_true", help=f"only the {baselines}, no fine-tuning")
        if name == "moleculenet":
            q.add_argument(
                "--rf-max-tasks",
                type=int,
                default=None,
                metavar="N",
                help="grow the ECFP4 + RF forests of datasets with up to N tasks (default 100: ToxCast's 617 "
                "tasks x 500 trees took about 2 hours of one core per seed here, so they are skipped)",
            )
        if name == "moleculeace":
            q.add_argument(
                "--svm-kernel",
                choices=["rbf", "tanimoto"],
                default="rbf",
                help="baseline SVM kernel: rbf (MoleculeACE's, default) or tanimoto",
            )
    _add_probe(sub)


PROBE_HELP = "linear probe of frozen embeddings on MoleculeNet, beside a random-init copy and ECFP4"


def _add_probe(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser("probe", help=PROBE_HELP, description=PROBE_HELP)
    q.add_argument("--model", required=True, help='model folder or "default"')
    q.add_argument("--datasets", nargs="+", metavar="NAME", help="a subset of the 11 MoleculeNet datasets")
    q.add_argument("--output", default=None, help="output folder (default: runs/benchmark/probe-<model>)")
    q.add_argument("--seed", type=int, default=0, help="seed of the random-init copy and of task samples")
    q.add_argument("--limit", type=int, default=None, help="first N molecules of each dataset (quick looks)")
    q.add_argument(
        "--max-tasks", type=int, default=50, help="probe a seeded sample of at most N tasks (ToxCast); 0: all"
    )
    q.add_argument("--device", default=None, help='"cpu" (default), "cuda" or "auto" for the embeddings')
    q.add_argument(
        "--with-descriptors",
        action="store_true",
        help="also probe RDKit 2D descriptors alone and beside each network's channels (does the "
        "embedding add to what a fine-tuning head with descriptors already has?)",
    )
    q.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bar")


def _command() -> str | None:
    return "molchannel " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else None


def _run_probe(args: argparse.Namespace) -> int:
    from molchannel.finetune.probe import run_probe

    if args.max_tasks < 0:
        raise ValueError(f"--max-tasks must be 0 (all tasks) or a positive integer, got {args.max_tasks}")
    result = run_probe(
        args.model,
        datasets=args.datasets,
        output=args.output,
        seed=args.seed,
        limit=args.limit,
        max_tasks=args.max_tasks or None,
        device=args.device,
        quiet=args.quiet,
        command=_command(),
        with_descriptors=args.with_descriptors,
    )
    print(result.markdown)
    files = ", ".join(str(p) for p in result.files.values())
    print(f"linear probe done in {result.wall_time_s / 60:.1f} min. Wrote {files}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.collection == "probe":
        return _run_probe(args)
    from molchannel.finetune.benchmark import BenchmarkError, BenchmarkOptions, run_benchmark

    options = BenchmarkOptions(
        collection=args.collection,
        datasets=args.datasets,
        seeds=args.seeds,
        model=args.model,
        scratch=args.scratch,
        epochs=args.epochs,
        limit=args.limit,
        output=args.output,
        config_dir=args.config_dir,
        overrides=args.overrides,
        quiet=args.quiet,
        run_progress=args.run_progress,
        baseline=not getattr(args, "no_baseline", False),
        baseline_only=getattr(args, "baseline_only", False),
        svm_kernel=getattr(args, "svm_kernel", "rbf"),
        rf_max_tasks=getattr(args, "rf_max_tasks", None),
        fail_fast=args.fail_fast,
        command=_command(),
    )
    try:
        outcome = run_benchmark(options)
    except BenchmarkError as exc:
        print((options.output_dir / "results.md").read_text(encoding="utf-8"))
        print(f"molchannel benchmark: error: {exc}", file=sys.stderr)
        return 1
    print(outcome.markdown)
    done = f"{len(outcome.ran)} run(s) done, {len(outcome.skipped)} already finished"
    if outcome.baseline_ran or outcome.baseline_skipped:
        computed, cached = len(outcome.baseline_ran), len(outcome.baseline_skipped)
        done += f"; ECFP baselines: {computed} computed, {cached} cached"
    files = ", ".join(str(p) for p in outcome.files.values())
    print(f"{done}. Wrote {files}", file=sys.stderr)
    return 0
