"""What a fine-tuning run leaves for people: metrics.csv, learning curve, channel-weight bars."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

from molchannel.atomic import atomic_path, write_text_atomic
from molchannel.training import pyplot

METRIC_LABEL = {"roc_auc": "ROC-AUC", "rmse": "RMSE"}


def write_metrics_csv(path: str | os.PathLike[str], history: Sequence[dict[str, float]], metric: str) -> None:
    """One row per epoch; ``valid_metric``/``test_metric`` are named after the metric (``valid_roc_auc``)."""
    if not history:
        return
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    header = [k.replace("_metric", f"_{metric}") if k in ("valid_metric", "test_metric") else k for k in keys]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in history:
        writer.writerow([_cell(k, row.get(k, math.nan)) for k in keys])
    write_text_atomic(path, buffer.getvalue())


def _cell(key: str, value: float) -> str:
    if key in ("epoch", "train_molecules") and math.isfinite(value):
        return str(int(value))
    return "" if math.isnan(value) else repr(float(value))


def plot_learning_curve(
    path: str | os.PathLike[str],
    history: Sequence[dict[str, float]],
    metric: str,
    best_epoch: int,
    title: str,
) -> Path:
    """Training loss and validation/test metric per epoch, the selected epoch marked (no test curve
    when the test metric is NaN throughout, e.g. without a test set)."""
    plt = pyplot()
    epochs = [int(r["epoch"]) for r in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot(epochs, [r["train_loss"] for r in history], "o-", ms=3, color="tab:blue")
    left.set_xlabel("epoch")
    left.set_ylabel("training loss")
    left.grid(alpha=0.3)
    label = METRIC_LABEL.get(metric, metric)
    right.plot(
        epochs, [r["valid_metric"] for r in history], "o-", ms=3, color="tab:orange", label="validation"
    )
    test = [r["test_metric"] for r in history]
    if any(math.isfinite(v) for v in test):  # no test curve without a test set (NaN in every epoch)
        right.plot(epochs, test, "s-", ms=3, color="tab:green", label="test")
    right.axvline(best_epoch, color="grey", ls="--", lw=1, label=f"best validation (epoch {best_epoch})")
    right.set_xlabel("epoch")
    right.set_ylabel(label)
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    from matplotlib.ticker import MaxNLocator

    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_channel_weights(
    path: str | os.PathLike[str],
    channels: Sequence[str],
    final: Sequence[float],
    initial: Sequence[float] | None,
    title: str,
) -> Path:
    """Bars of the prompt weights ``softmax(w / tau)`` per channel (initial ones as outlines)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.2 * len(channels) + 2.5, 3.4))
    xs = list(range(len(channels)))
    ax.bar(xs, final, color="tab:blue", width=0.6, label="selected epoch")
    if initial is not None:
        ax.bar(xs, initial, fill=False, edgecolor="black", ls="--", width=0.6, label="initial")
    for x, v in zip(xs, final, strict=True):
        ax.text(x, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(xs, list(channels))
    ax.set_ylabel("softmax(w / tau)")
    ax.set_ylim(0, max(1.0, max(final) * 1.15))
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: object, path: str | os.PathLike[str]) -> Path:
    plt = pyplot()
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format=out.suffix.lstrip(".") or "png")  # type: ignore[attr-defined]
    plt.close(fig)
    return out
