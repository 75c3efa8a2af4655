"""Loss curves and model cards of pre-training runs."""

from __future__ import annotations

import csv
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from molchannel.atomic import atomic_path

TERMS = (
    "loss",
    "mcd",
    "scd",
    "cp_context",
    "cp_motif",
    "attn_mcd",
    "attn_scd",
    "knowledge_fp",
    "knowledge_descriptors",
)
# diagnostics panels: (title, [(metric, label), ...])
DIAGNOSTICS = (
    (
        "active hinges (fraction)",
        [
            ("diag/mcd_pair_active_step", "MCD pairs"),
            ("diag/mcd_triplet_active_step", "MCD triplets"),
            ("diag/scd_pair_active_step", "SCD pairs"),
            ("diag/scd_triplet_active_step", "SCD triplets"),
        ],
    ),
    (
        "gradient into the backbone (norm)",
        [
            (f"diag/grad_{t}_step", t)
            for t in ("mcd", "scd", "cp_context", "cp_motif", "attn_mcd", "attn_scd", "knowledge")
        ],
    ),
    ("mean anchor distance (MCD channel)", [("diag/mcd_anchor_distance_step", "anchors")]),
)


def read_metrics(run_dir: str | os.PathLike[str]) -> dict[str, list[tuple[int, float]]]:
    """Every logged metric of a run as ``name -> [(step, value), ...]``, across resumed versions."""
    series: dict[str, dict[int, float]] = defaultdict(dict)
    for path in sorted(Path(run_dir).rglob("metrics.csv")):
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                step = int(float(row.get("step") or 0))
                for name, value in row.items():
                    if name in ("step", "epoch") or value in ("", None):
                        continue
                    series[name][step] = float(value)
    return {name: sorted(points.items()) for name, points in series.items()}


def _smooth(points: list[tuple[int, float]], window: int) -> list[tuple[int, float]]:
    if window <= 1 or len(points) <= window:
        return points
    out = []
    for i in range(len(points)):
        chunk = points[max(0, i - window + 1) : i + 1]
        out.append((points[i][0], sum(v for _, v in chunk) / len(chunk)))
    return out


def plot_losses(run_dir: str | os.PathLike[str], output: str | os.PathLike[str], title: str = "") -> Path:
    """One panel per loss term: training (per step, smoothed) and validation curves."""
    from molchannel.training import pyplot

    plt = pyplot()
    metrics = read_metrics(run_dir)
    terms = [t for t in TERMS if f"train/{t}_step" in metrics or f"val/{t}" in metrics]
    cols = 4
    rows = math.ceil(len(terms) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, term in zip(axes.flat, terms, strict=False):
        train = metrics.get(f"train/{term}_step", [])
        if train:
            smooth = _smooth(train, max(1, len(train) // 50))
            ax.plot(*zip(*train, strict=True), color="tab:blue", alpha=0.2, lw=0.8)
            ax.plot(*zip(*smooth, strict=True), color="tab:blue", lw=1.5, label="train")
        val = metrics.get(f"val/{term}", [])
        if val:
            ax.plot(*zip(*val, strict=True), "o-", color="tab:orange", ms=3, label="validation")
        ax.set_title(term)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(terms) :]:
        ax.axis("off")
    axes.flat[0].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(output)
    with atomic_path(out) as tmp:  # the temporary name has no suffix: say the format
        fig.savefig(tmp, dpi=110, format=out.suffix.lstrip(".") or "png")
    plt.close(fig)
    return out


def plot_diagnostics(
    run_dir: str | os.PathLike[str], output: str | os.PathLike[str], title: str = ""
) -> Path | None:
    """Active fractions of the distancing losses, per-term backbone gradients, anchor spread.

    Returns None (and writes nothing) for runs that logged no diagnostics.
    """
    metrics = read_metrics(run_dir)
    panels = [(t, [(m, lab) for m, lab in series if m in metrics]) for t, series in DIAGNOSTICS]
    panels = [(t, series) for t, series in panels if series]
    if not panels:
        return None
    from molchannel.training import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.4), squeeze=False)
    for ax, (panel_title, series) in zip(axes.flat, panels, strict=True):
        for metric, label in series:
            points = metrics[metric]
            smooth = _smooth(points, max(1, len(points) // 50))
            ax.plot(*zip(*smooth, strict=True), lw=1.4, label=label)
        ax.set_title(panel_title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if "gradient" in panel_title:
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(output)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format=out.suffix.lstrip(".") or "png")
    plt.close(fig)
    return out


def final_diagnostics(run_dir: str | os.PathLike[str], last: int = 20) -> dict[str, float]:
    """Mean of the last ``last`` logged values of every diagnostic (for model cards and tables)."""
    out = {}
    for name, points in read_metrics(run_dir).items():
        if name.startswith("diag/") and name.endswith("_step") and points:
            tail = [v for _, v in points[-last:]]
            out[name[len("diag/") : -len("_step")]] = sum(tail) / len(tail)
    return out


def final_losses(run_dir: str | os.PathLike[str]) -> dict[str, float]:
    """Last validation value of every term (what a model card reports)."""
    metrics = read_metrics(run_dir)
    return {t: metrics[f"val/{t}"][-1][1] for t in TERMS if f"val/{t}" in metrics}


def model_card(info: dict[str, Any], losses: dict[str, float], command: str, corpus: dict[str, Any],
               weights_sha256: str, plot_name: str | None, diagnostics: dict[str, float] | None = None,
               diagnostics_plot: str | None = None, probe_table: str | None = None,
               finetune_gain: str | None = None) -> str:  # fmt: skip
    """Markdown model card of a pre-trained model folder.

    ``diagnostics`` (from :func:`final_diagnostics`), ``probe_table`` (the Markdown table of
    ``molchannel benchmark probe``) and ``finetune_gain`` (the Markdown of ``benchmarks/pretraining_gain.py``:
    fine-tuned from this model against scratch) are added as sections when given.
    """
    lines = [
        f"# {info.get('title', 'molchannel pre-trained model')}",
        "",
        info.get("summary", ""),
        "",
        "| | |",
        "|---|---|",
        f"| architecture | {info['backbone']} {info['num_layers']} x {info['embedding_dim']}, "
        f"{info['num_parameters']:,} parameters |",
        f"| featurizer | {info['featurizer']} |",
        f"| channels | {', '.join(info['channels'])} |",
        f"| corpus | {corpus.get('description', '')} |",
        f"| training | {info.get('training', '')} |",
        f"| weights sha256 | `{weights_sha256}` |",
        "",
        "## Validation losses at the end of training",
        "",
        "| term | value |",
        "|---|---:|",
        *[f"| {k} | {v:.4f} |" for k, v in losses.items()],
        "",
        "## Command",
        "",
        "```bash",
        command,
        "```",
        "",
    ]
    if plot_name:
        lines += ["## Loss curves", "", f"![losses]({plot_name})", ""]
    if diagnostics:
        lines += [
            "## Are the losses still teaching? (end of training)",
            "",
            "Fraction of active hinges and the gradient norm each term sends into the backbone, averaged "
            "over the last logged steps.",
            "",
            "| diagnostic | value |",
            "|---|---:|",
            *[f"| {k} | {v:.4g} |" for k, v in sorted(diagnostics.items())],
            "",
        ]
        if diagnostics_plot:
            lines += [f"![diagnostics]({diagnostics_plot})", ""]
    if probe_table:
        lines += ["## Linear probe (frozen embeddings)", "", probe_table.strip(), ""]
    if finetune_gain:
        lines += ["## Fine-tuned: this model against the same architecture from scratch", "",
                  finetune_gain.strip(), ""]  # fmt: skip
    return "\n".join(lines)
