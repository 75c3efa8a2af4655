"""Model cards: a ``README.md`` beside the weights of every model folder molchannel writes.

The card is rendered from ``config.json`` (architecture, channels, head, provenance, sha256) into the
template ``molchannel/assets/model_card_template.md``; the sections marked "author" are for the person
who shares the model. Loading a model never reads the card.
"""

from __future__ import annotations

import json
import logging
import os
from importlib import resources
from pathlib import Path
from typing import Any

from molchannel.atomic import write_text_atomic

CARD_FILE = "README.md"
#: first line of every generated card; a README.md without it is the author's and is never replaced
GENERATED_MARK = "<!-- molchannel model card -->"

log = logging.getLogger(__name__)


def model_card_template() -> str:
    """The Markdown template every card starts from (placeholders in ``{braces}``)."""
    return (resources.files("molchannel") / "assets" / "model_card_template.md").read_text(encoding="utf-8")


def render_model_card(
    config: dict[str, Any],
    folder: str | os.PathLike[str],
    num_parameters: int,
    channel_weights: list[float] | None = None,
) -> str:
    """The card of a model folder whose ``config.json`` is ``config``."""
    enc = config["network"]["encoder"]
    prov = config.get("provenance") or {}
    head = config.get("head") or None
    channels = list(config.get("channels", []))
    weights = channel_weights
    if head:
        kind = f"fine-tuned {head.get('task_type')} model ({len(head.get('tasks', []))} task(s))"
        usage = 'model.predict(["CCO", "c1ccccc1O"])  # (2, T): ' + (
            "probabilities" if head.get("task_type") == "classification" else "values in the original units"
        )
        member = config.get("kernel_member")
        if member:  # --model.kernel_blend: predictions are w * network + (1 - w) * ECFP SVR
            weights_text = ", ".join(
                "1" if t is None else f"{t['network_weight']:.2f}" for t in member["tasks"]
            )
            svm = "classifier" if member.get("kind") == "ecfp_svc" else "regressor"
            kind += f", blended with an ECFP4 support-vector {svm} (network weight per task: {weights_text})"
    else:
        kind = (
            "pre-trained encoder"
            if prov.get("pretrained")
            else "encoder with random weights (not pre-trained)"
        )
        usage = 'model.embed(["CCO", "c1ccccc1O"])  # (2, D) prompt-weighted mixture of the channels'
    metrics = prov.get("metrics") or {}
    evaluation = (
        "\n".join(f"- {k}: {v:.4g}" if isinstance(v, float) else f"- {k}: {v}" for k, v in metrics.items())
        or "(none recorded)"
    )
    values = {
        "name": _title(prov, folder),
        "description": _sentence(prov.get("description") or "a molchannel multi-channel model"),
        "kind": kind,
        "backbone": enc.get("backbone"),
        "num_layers": enc.get("num_layers"),
        "hidden_dim": enc.get("hidden_dim"),
        "num_parameters": int(num_parameters),
        "featurizer": _featurizer_key(config.get("featurizer", {})),
        "channels": ", ".join(channels),
        "channel_weights": (
            ", ".join(f"{c} {w:.3f}" for c, w in zip(channels, weights, strict=True))
            if weights
            else "see config.json"
        ),
        "tasks": ", ".join(head.get("tasks", [])) if head else "none (embeddings only)",
        "weights_sha256": config.get("weights_sha256", ""),
        "molchannel_version": prov.get("molchannel_version", "?"),
        "torch_version": prov.get("torch_version", "?"),
        "folder": Path(folder).as_posix(),
        "usage": usage,
        "training": _training_text(prov, head),
        "evaluation": evaluation,
        "provenance": json.dumps(prov, indent=2, default=str),
    }
    return model_card_template().format_map(values)


def write_model_card(
    folder: str | os.PathLike[str],
    config: dict[str, Any],
    num_parameters: int,
    channel_weights: list[float] | None = None,
) -> Path:
    """Write ``folder/README.md``: a new card, or a fresh one over an older generated card (a card must
    describe the weights beside it). A ``README.md`` that molchannel did not write is kept."""
    path = Path(folder) / CARD_FILE
    if path.is_file() and GENERATED_MARK not in path.read_text(encoding="utf-8", errors="replace"):
        log.info("%s was not written by molchannel: kept as it is (no model card written)", path)
        return path
    write_text_atomic(path, render_model_card(config, folder, num_parameters, channel_weights))
    return path


def _title(prov: dict[str, Any], folder: str | os.PathLike[str]) -> str:
    if prov.get("finetuned"):
        data = prov.get("dataset") or Path(str(prov.get("data_path") or "data")).name
        return f"molchannel model fine-tuned on {data} (seed {prov.get('seed')})"
    return Path(folder).name or "molchannel model"


def _featurizer_key(spec: dict[str, Any]) -> str:
    name, version = spec.get("name", "?"), spec.get("version", "")
    return f"{name}-v{version}" if version != "" else str(name)


def _training_text(prov: dict[str, Any], head: dict[str, Any] | None) -> str:
    if prov.get("finetuned"):
        base = prov.get("base_model") or {}
        start = "random weights (no pre-training)" if prov.get("scratch") else f"`{base.get('name', '?')}`"
        return (
            f"Fine-tuned on {prov.get('dataset') or prov.get('data_path')} from {start} with seed "
            f"{prov.get('seed')}: {prov.get('epochs_run')} of {prov.get('epochs')} epochs, selected epoch "
            f"{prov.get('best_epoch')} (best validation metric); initial prompt weights: "
            f"{prov.get('prompt_init')}. The full configuration is under `finetune_config` in Provenance."
        )
    if prov.get("pretrained"):
        return (
            f"Pre-trained with MCL from checkpoint `{prov.get('checkpoint', '?')}` (epoch "
            f"{prov.get('epoch', '?')}, step {prov.get('global_step', '?')}). Corpus and recipe: author, "
            "or see `pretrain_hyper_parameters` in Provenance."
        )
    return "Not trained: random initial weights."


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
