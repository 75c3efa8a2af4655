"""Ship a pre-training run as the package's default model, with its model card.

Exports the run's best (or last) checkpoint into ``molchannel/assets/default`` (``config.json`` +
``model.safetensors``), then writes ``README.md`` (the model card: corpus, size, epochs, losses,
command, sha256) and ``losses.png`` (per-channel loss curves) beside them.

    python scripts/make_default_model.py --run runs/pretrain/default-k10 --checkpoint last \\
        --corpus runs/corpora/moses20k --command "$(cat runs/pretrain/default-k10.cmd)" \\
        --probe results/probe/default-2026-12-06 \\
        --finetune-gain results/comparison/pretraining-gain-all-sets-2026-12-07
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from molchannel.api import load
from molchannel.atomic import write_text_atomic
from molchannel.pretrain.checkpointing import find_checkpoint, load_checkpoint_safely
from molchannel.pretrain.export import export_checkpoint
from molchannel.pretrain.report import (
    final_diagnostics,
    final_losses,
    model_card,
    plot_diagnostics,
    plot_losses,
)

REPO = Path(__file__).resolve().parents[1]


def training_summary(run: Path, n_molecules: int) -> dict:
    """Epochs (fractional), steps and training wall time of a run, from its last checkpoint."""
    last = find_checkpoint(run / "checkpoints" / "last.ckpt")
    ckpt = load_checkpoint_safely(last)
    elapsed = None
    for key, state in (ckpt.get("callbacks") or {}).items():
        if "Timer" in str(key) and isinstance(state, dict):
            elapsed = (state.get("time_elapsed") or {}).get("train")
    started = sorted(run.glob("logs/*/hparams.yaml"))
    if elapsed is None and started:  # no Timer (no max_time): the logger writes hparams.yaml as fit starts
        elapsed = last.stat().st_mtime - started[-1].stat().st_mtime
    data_hp = ckpt.get("datamodule_hyper_parameters") or {}
    n_train = n_molecules - round(n_molecules * float(data_hp.get("val_fraction", 0.0)))
    steps_per_epoch = math.ceil(n_train / int(data_hp.get("batch_size", 64)))
    step = int(ckpt.get("global_step", 0))
    return {
        "epochs": round(step / steps_per_epoch, 2),
        "global_step": step,
        "batch_size": int(data_hp.get("batch_size", 64)),
        "train_minutes": None if elapsed is None else round(elapsed / 60, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True, help="pre-training run folder")
    parser.add_argument("--corpus", type=Path, required=True, help="the prepared corpus it was trained on")
    parser.add_argument("--command", required=True, help="the exact command that trained it (for the card)")
    parser.add_argument("--machine", default="2-core AMD EPYC VM (AVX2), no GPU, 1 torch thread")
    parser.add_argument("--output", type=Path, default=REPO / "molchannel/assets/default")
    parser.add_argument(
        "--probe", type=Path, default=None, help="a `molchannel benchmark probe` output folder for the card"
    )
    parser.add_argument(
        "--finetune-gain",
        type=Path,
        default=None,
        help="a benchmarks/pretraining_gain.py output folder (fine-tuned against scratch) for the card",
    )
    parser.add_argument("--title", default="molchannel default model (pre-trained, CPU-sized)")
    parser.add_argument(
        "--checkpoint",
        choices=("best", "last"),
        default="best",
        help="the run's best checkpoint (lowest validation loss) or its last one (the end of training)",
    )
    args = parser.parse_args()

    corpus = json.loads((args.corpus / "corpus.json").read_text())
    source = corpus["settings"]["source"]
    corpus_info = {
        "name": args.corpus.name,
        "source": source["path"],
        "source_sha256": source["sha256"],
        "rows_read": corpus["settings"]["n_rows"],
        "molecules": corpus["n_molecules"],
        "removed_heldout": corpus["n_removed_heldout"],
        "perturbation": corpus["settings"]["config"]["perturb_method"],
        "mean_real_perturbations": round(corpus["mean_real_perturbations"], 2),
        "description": (
            f"first {corpus['settings']['n_rows']:,} molecules of MOSES ZINC15 `{source['path']}`; "
            f"{corpus['n_molecules']:,} kept after removing {corpus['n_removed_heldout']:,} that occur in a "
            "benchmark's validation/test split"
        ),
    }
    training = training_summary(args.run, corpus["n_molecules"])
    checkpoint = args.run / "checkpoints" / "last.ckpt" if args.checkpoint == "last" else args.run
    model = export_checkpoint(
        checkpoint,
        args.output,
        extra_provenance={
            "corpus": corpus_info,
            "training": training,
            "command": args.command,
            "machine": args.machine,
        },  # fmt: skip
    )
    model = load(args.output)  # read back: verifies the folder and gives its weights' sha256
    plot_losses(args.run, args.output / "losses.png", title="molchannel default: pre-training losses")
    diagnostics_plot = plot_diagnostics(args.run, args.output / "diagnostics.png", title="diagnostics")
    probe_table = (args.probe / "probe.md").read_text() if args.probe else None
    gain_table = (args.finetune_gain / "pretraining_gain.md").read_text() if args.finetune_gain else None
    info = model.info()
    weights = model.config["provenance"]["pretrain_hyper_parameters"].get("loss_weights", {})
    knowledge = float(weights.get("knowledge", 0.0))
    knowledge_text = (
        f", plus the knowledge term: Morgan bits and RDKit descriptors, weight {knowledge:g}"
        if knowledge > 0
        else ""
    )
    info.update(
        title=args.title,
        summary=(
            'The model `molchannel.load("default")` returns: a small multi-channel GIN pre-trained with MCL '
            f"(molecule distancing, scaffold distancing, context prediction{knowledge_text}) on a ZINC15 "
            "subset, on a CPU. It is a starting point for fine-tuning and a demonstration of the method, not "
            "the reference model: that one is 5 x 300 wide and trained for 100 epochs on 2M molecules."
        ),
        training=(
            f"{training['epochs']} epochs, {training['global_step']:,} steps of "
            f"{training['batch_size']} anchors (5 + 5 positives), "
            f"{training['train_minutes']} min on {args.machine}"
        ),
    )
    card = model_card(
        info,
        final_losses(args.run),
        args.command,
        corpus_info,
        str(model.config["weights_sha256"]),
        "losses.png",
        diagnostics=final_diagnostics(args.run),
        diagnostics_plot=diagnostics_plot.name if diagnostics_plot else None,
        probe_table=probe_table,
        finetune_gain=gain_table,
    )
    write_text_atomic(args.output / "README.md", card)
    print(f"wrote {args.output}: {model}")


if __name__ == "__main__":
    main()
