"""Loss curves and model cards of pre-training runs."""

from __future__ import annotations

import csv
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from molchannel.atomic import atomic_path

TERMS = ("loss", "mcd", "scd", "cp_context", "cp_motif", "attn_mcd", "attn_scd")


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


def final_losses(run_dir: str | os.PathLike[str]) -> dict[str, float]:
    """Last validation value of every term (what a model card reports)."""
    metrics = read_metrics(run_dir)
    return {t: metrics[f"val/{t}"][-1][1] for t in TERMS if f"val/{t}" in metrics}


def model_card(info: dict[str, Any], losses: dict[str, float], command: str, corpus: dict[str, Any],
               weights_sha256: str, plot_name: str | None) -> str:  # fmt: skip
    """Markdown model card of a pre-trained model folder."""
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
    return "\n".join(lines)
