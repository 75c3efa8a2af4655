"""What a linear-probe run leaves for people: ``results.csv``, ``probe.md`` (table, wins), ``probe.png``.

Everything here is a function of the result rows of :func:`molchannel.finetune.probe.run_probe` (one per
dataset x model x feature set). In the table and the plot ROC-AUC is shown in %, as in the other benchmark
tables; the CSV keeps the raw metric (ROC-AUC as a fraction, RMSE in the dataset's units).

"Best channel" is the single channel with the best **validation** metric of its model, shown with its test
metric, so that picking it does not look at the test set. "Wins" compare the concat features (and the best
channels): the model wins a dataset when it is better by at least 0.01 ROC-AUC (1 point in %) or by at
least 1% of the peer's RMSE.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from molchannel import __version__
from molchannel.atomic import atomic_path, write_text_atomic
from molchannel.finetune.metrics import HIGHER_IS_BETTER

RESULT_COLUMNS = (
    "dataset", "model", "features", "metric", "value", "valid_value", "reg_name", "reg",
    "n_train", "n_valid", "n_test", "n_tasks", "n_features", "fit_time_s",
)  # fmt: skip
PEER_LABELS = {
    "model": "model",
    "random_init": "random init",
    "ecfp4": "ECFP4",
    "rdkit2d": "RDKit 2D descriptors",
}
WITH_DESCRIPTORS = "concat+rdkit2d"
"""A network's concatenated channels beside the RDKit descriptors (``run_probe(with_descriptors=True)``)."""
#: The margins of the "wins" line.
ROC_AUC_MARGIN = 0.01
RMSE_MARGIN = 0.01  # relative


@dataclass
class ProbeContext:
    """How the run was made: shown in the header and notes of ``probe.md``."""

    model: str
    channels: list[str]
    seed: int = 0
    limit: int | None = None
    max_tasks: int | None = None
    c_grid: list[float] = field(default_factory=list)
    alpha_grid: list[float] = field(default_factory=list)
    task_notes: dict[str, str] = field(default_factory=dict)
    with_descriptors: bool = False
    command: str | None = None
    wall_time_s: float = math.nan
    embed_time_s: dict[str, float] = field(default_factory=dict)


# ---- summary ----------------------------------------------------------------------------------
def summarize(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One dict per dataset (in order of first appearance): concat, mix and best channel of both networks,
    and ECFP4; each value a raw test metric (NaN when missing)."""
    out: list[dict[str, Any]] = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == dataset]
        metric = mine[0]["metric"]
        entry: dict[str, Any] = {"dataset": dataset, "metric": metric, "n_test": mine[0]["n_test"],
                                 "n_tasks": mine[0]["n_tasks"]}  # fmt: skip
        for peer in ("model", "random_init"):
            sets = {r["features"]: r for r in mine if r["model"] == peer}
            entry[f"{peer}_concat"] = _value(sets.get("concat"))
            entry[f"{peer}_mix"] = _value(sets.get("mix"))
            entry[f"{peer}_{WITH_DESCRIPTORS}"] = _value(sets.get(WITH_DESCRIPTORS))
            channels = [r for f, r in sets.items() if f not in ("concat", "mix", WITH_DESCRIPTORS)]
            best = best_by_validation(channels, metric)
            entry[f"{peer}_best"] = _value(best)
            entry[f"{peer}_best_channel"] = best["features"] if best else ""
        entry["ecfp4"] = _value(next((r for r in mine if r["model"] == "ecfp4"), None))
        entry["rdkit2d"] = _value(next((r for r in mine if r["model"] == "rdkit2d"), None))
        out.append(entry)
    return out


def best_by_validation(rows: Sequence[Mapping[str, Any]], metric: str) -> Mapping[str, Any] | None:
    """The row with the best validation metric (first in order on ties); None when none is finite."""
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    scored = [r for r in rows if math.isfinite(r["valid_value"])]
    if not scored:
        return None
    return max(scored, key=lambda r: sign * r["valid_value"])


def beats(metric: str, ours: float, theirs: float) -> bool:
    """Better by the wins margin: +0.01 ROC-AUC, or an RMSE at least 1% below the peer's."""
    if not (math.isfinite(ours) and math.isfinite(theirs)):
        return False
    if metric == "roc_auc":
        return ours - theirs >= ROC_AUC_MARGIN - 1e-12
    return (theirs - ours) >= RMSE_MARGIN * theirs - 1e-12


def count_wins(summary: Sequence[Mapping[str, Any]], features: str = "concat") -> dict[str, Any]:
    """How often the model beats its random-init copy and ECFP4 with ``features`` (``concat`` or ``best``)."""
    key = f"model_{features}"
    won_random, won_ecfp, n_random, n_ecfp = [], [], 0, 0
    for r in summary:
        ours, random_init, ecfp = r[key], r[f"random_init_{features}"], r["ecfp4"]
        if _finite(ours, random_init):
            n_random += 1
            if beats(r["metric"], ours, random_init):
                won_random.append(r["dataset"])
        if _finite(ours, ecfp):
            n_ecfp += 1
            if beats(r["metric"], ours, ecfp):
                won_ecfp.append(r["dataset"])
    return {
        "features": features,
        "beats_random_init": len(won_random),
        "of_random_init": n_random,
        "beats_ecfp4": len(won_ecfp),
        "of_ecfp4": n_ecfp,
        "datasets_beating_random_init": won_random,
        "datasets_beating_ecfp4": won_ecfp,
    }


def count_descriptor_wins(summary: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How often the model's channels beside the descriptors beat the descriptors alone, and its random-init
    copy's channels beside them (the same margins as :func:`count_wins`)."""
    key = f"model_{WITH_DESCRIPTORS}"
    rows = [r for r in summary if _finite(r.get(key, math.nan), r.get("rdkit2d", math.nan))]
    alone = [r["dataset"] for r in rows if beats(r["metric"], r[key], r["rdkit2d"])]
    random_rows = [r for r in rows if _finite(r[f"random_init_{WITH_DESCRIPTORS}"])]
    random = [
        r["dataset"] for r in random_rows if beats(r["metric"], r[key], r[f"random_init_{WITH_DESCRIPTORS}"])
    ]
    random_alone = [r["dataset"] for r in random_rows
                    if beats(r["metric"], r[f"random_init_{WITH_DESCRIPTORS}"], r["rdkit2d"])]  # fmt: skip
    return {
        "of": len(rows),
        "model_beats_descriptors": len(alone),
        "random_init_beats_descriptors": len(random_alone),
        "model_beats_random_init": len(random),
        "of_random_init": len(random_rows),
        "datasets_model_beats_descriptors": alone,
        "datasets_model_beats_random_init": random,
    }


def _value(row: Mapping[str, Any] | None) -> float:
    return float(row["value"]) if row is not None else math.nan


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


# ---- Markdown -----------------------------------------------------------------------------------
def _shown(metric: str, value: float) -> str:
    if not math.isfinite(value):
        return "–"
    return f"{100.0 * value:.1f}" if metric == "roc_auc" else f"{value:.3f}"


def _unit(metric: str) -> str:
    return "ROC-AUC (%) ↑" if metric == "roc_auc" else "RMSE ↓"


def _bold_best(metric: str, values: Sequence[float]) -> list[str]:
    """``values`` as table cells, the best finite one(s) in bold."""
    finite = [v for v in values if math.isfinite(v)]
    best = (max if HIGHER_IS_BETTER[metric] else min)(finite) if finite else math.nan
    return [f"**{_shown(metric, v)}**" if v == best else _shown(metric, v) for v in values]


def wins_line(wins: Mapping[str, Any], label: str) -> str:
    return (
        f"**Wins ({label})**: the model beats its random-init copy on {wins['beats_random_init']} of "
        f"{wins['of_random_init']} datasets and ECFP4 on {wins['beats_ecfp4']} of {wins['of_ecfp4']} "
        "(by >= 0.01 ROC-AUC, or an RMSE >= 1% lower)."
    )


def probe_markdown(summary: Sequence[Mapping[str, Any]], context: ProbeContext) -> str:
    """The ``probe.md`` text: header, one table (rows = datasets), wins lines and notes."""
    from molchannel.finetune.tables import display_name

    lines = [
        "# Linear probe of frozen embeddings (MoleculeNet, scaffold split)",
        "",
        f"- model: `{context.model}` (channels {', '.join(context.channels)}); random-init copy: same "
        f"architecture, fresh weights (seed {context.seed})",
    ]
    if context.command:
        lines.append(f"- command: `{context.command}`")
    if context.limit is not None:
        lines.append(f"- **subset run (`--limit {context.limit}`): first molecules only, not comparable**")
    wall = f", {context.wall_time_s / 60:.1f} min wall time" if math.isfinite(context.wall_time_s) else ""
    lines += [f"- molchannel {__version__}, {time.strftime('%Y-%m-%d %H:%M')}{wall}", ""]
    header = (
        "| dataset | metric | model concat | random init concat | ECFP4 | model mix | random init mix | "
        "model best channel | random init best channel |"
    )
    lines += [header, "|---|---|" + "---:|" * 7]
    for r in summary:
        m = r["metric"]
        shown = _bold_best(m, [r["model_concat"], r["random_init_concat"], r["ecfp4"]])
        channel = [
            f"{_shown(m, r[f'{p}_best'])} ({r[f'{p}_best_channel']})" if r[f"{p}_best_channel"] else "–"
            for p in ("model", "random_init")
        ]
        lines.append(
            f"| {display_name(r['dataset'])} | {_unit(m)} | {' | '.join(shown)} | "
            f"{_shown(m, r['model_mix'])} | {_shown(m, r['random_init_mix'])} | {' | '.join(channel)} |"
        )
    lines += ["", wins_line(count_wins(summary, "concat"), "concat features"), "",
              wins_line(count_wins(summary, "best"), "best single channel"), ""]  # fmt: skip
    if any(math.isfinite(r.get("rdkit2d", math.nan)) for r in summary):
        lines += descriptor_section(summary)
    lines += ["Notes:", ""] + [f"- {n}" for n in _notes(context)]
    return "\n".join(lines) + "\n"


def descriptor_section(summary: Sequence[Mapping[str, Any]]) -> list[str]:
    """``probe.md``'s table of the descriptor probes: does an embedding add to what the descriptors know?"""
    from molchannel.finetune.tables import display_name

    lines = [
        "## Beside RDKit descriptors (what a fine-tuning head gets by default)",
        "",
        "| dataset | metric | RDKit 2D descriptors | model concat + descriptors | "
        "random init concat + descriptors |",
        "|---|---|---:|---:|---:|",
    ]
    for r in summary:
        m = r["metric"]
        shown = _bold_best(
            m, [r["rdkit2d"], r[f"model_{WITH_DESCRIPTORS}"], r[f"random_init_{WITH_DESCRIPTORS}"]]
        )
        lines.append(f"| {display_name(r['dataset'])} | {_unit(m)} | {' | '.join(shown)} |")
    wins = count_descriptor_wins(summary)
    lines += [
        "",
        f"**Wins (beside descriptors)**: the model's channels add to the descriptors on "
        f"{wins['model_beats_descriptors']} of {wins['of']} datasets (its random-init copy's on "
        f"{wins['random_init_beats_descriptors']} of {wins['of_random_init']}), and beat the random-init "
        "copy's channels beside them on "
        f"{wins['model_beats_random_init']} of {wins['of_random_init']} "
        "(by >= 0.01 ROC-AUC, or an RMSE >= 1% lower).",
        "",
    ]
    return lines


def _notes(context: ProbeContext) -> list[str]:
    def grid(values: Sequence[float]) -> str:
        exps = [math.log10(v) for v in values]
        if values and all(abs(e - round(e)) < 1e-9 for e in exps):
            return f"10^{round(min(exps))} .. 10^{round(max(exps))} ({len(values)} values)"
        return ", ".join(f"{v:g}" for v in values)

    notes = [
        "Split: the registry's deterministic scaffold split 80/10/10 of each dataset; molecules without a "
        "graph are left out of every feature set alike.",
        "Features: frozen embeddings (eval mode) of each channel alone, `mix` (the model's default `embed` "
        "output, the prompt-weighted mixture) and `concat` (all channels side by side); ECFP4 = RDKit Morgan "
        "bits, radius 2, 2,048 bits. Standardised with the training rows' mean and std (ECFP4 scaled only, "
        "which gives the same model with an unpenalised intercept).",
        "Classification: scikit-learn `LogisticRegression` (L-BFGS, warm-started along the grid) per task "
        f"on its labelled molecules, C in {grid(context.c_grid)}; ROC-AUC averaged over the tasks with both "
        "classes. Regression: `Ridge` per task, alpha in "
        f"{grid(context.alpha_grid)}; RMSE in the original units.",
        "One strength per dataset and feature set, chosen on the validation split (best mean metric over "
        "tasks, ties to the stronger regularisation); the test metric at that strength is reported. "
        "Best channel: the channel with the best validation metric, shown with its test metric.",
        "Bold: the best of the three concat / ECFP4 columns.",
    ]
    if context.task_notes:
        sampled = "; ".join(f"{d}: {n}" for d, n in context.task_notes.items())
        notes.append(
            f"Task sample (at most {context.max_tasks} tasks per dataset, to keep the run to minutes): "
            f"{sampled}, drawn with seed {context.seed} among the tasks with both classes in train, valid "
            "and test."
        )
    if context.embed_time_s:
        spent = ", ".join(f"{PEER_LABELS.get(k, k)} {v:.0f} s" for k, v in context.embed_time_s.items())
        notes.append(f"Embedding time (all datasets): {spent}.")
    return notes


# ---- picture -------------------------------------------------------------------------------------
BARS = (
    ("model_concat", "model (concat)", "tab:blue"),
    ("model_best", "model (best channel)", "lightsteelblue"),
    ("random_init_concat", "random init (concat)", "tab:orange"),
    ("ecfp4", "ECFP4", "tab:gray"),
)


def plot_probe(summary: Sequence[Mapping[str, Any]], output: str | os.PathLike[str]) -> Path:
    """Grouped bars per dataset (model concat, model best channel, random init concat, ECFP4): a ROC-AUC (%)
    panel and an RMSE panel."""
    import matplotlib

    matplotlib.use("Agg")  # plots are files, never windows
    import matplotlib.pyplot as plt

    from molchannel.finetune.tables import display_name

    cls = [r for r in summary if r["metric"] == "roc_auc"]
    reg = [r for r in summary if r["metric"] != "roc_auc"]
    panels = [(rows, label) for rows, label in ((cls, "test ROC-AUC (%) ↑"), (reg, "test RMSE ↓")) if rows]
    widths = [max(len(rows), 2) for rows, _ in panels] or [2]
    fig, axes = plt.subplots(
        1, len(panels) or 1, figsize=(1.5 + 1.0 * sum(widths), 4.8), squeeze=False,
        gridspec_kw={"width_ratios": widths},
    )  # fmt: skip
    width = 0.8 / len(BARS)
    for ax, (rows, label) in zip(axes.flat, panels, strict=False):
        x = np.arange(len(rows))
        scale = 100.0 if rows is cls else 1.0
        values_all = []
        for k, (key, name, color) in enumerate(BARS):
            values = [scale * r[key] for r in rows]
            values_all += [v for v in values if math.isfinite(v)]
            ax.bar(x + (k - (len(BARS) - 1) / 2) * width, values, width, color=color, label=name)
        if rows is cls and values_all:
            ax.set_ylim(max(0.0, min(values_all) - 5.0), min(100.0, max(values_all) + 3.0))
        ax.set_xticks(x, [display_name(r["dataset"]) for r in rows], rotation=30, ha="right")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(BARS), fontsize=8, frameon=False)
    fig.suptitle("Linear probe of frozen embeddings, MoleculeNet scaffold split")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    out = Path(output)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out


# ---- files -----------------------------------------------------------------------------------------
def write_outputs(result: Any, context: ProbeContext) -> None:
    """Write results.csv, probe.md and probe.png into ``result.output_dir``; fill in ``result``'s tables."""
    from molchannel.finetune.tables import write_csv

    out = Path(result.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    result.summary = summarize(result.rows)
    result.wins = {"concat": count_wins(result.summary, "concat"), "best": count_wins(result.summary, "best")}
    if context.with_descriptors:
        result.wins["descriptors"] = count_descriptor_wins(result.summary)
    result.markdown = probe_markdown(result.summary, context)
    files = {"results_csv": write_csv(out / "results.csv", result.rows, RESULT_COLUMNS)}
    write_text_atomic(out / "probe.md", result.markdown)
    files["probe_md"] = out / "probe.md"
    if result.summary:
        files["probe_png"] = plot_probe(result.summary, out / "probe.png")
    result.files = files
