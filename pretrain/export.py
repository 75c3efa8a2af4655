"""Turn a pre-training checkpoint into a model folder that :func:`molchannel.load` reads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from molchannel import __version__
from molchannel.api import MolChannelModel, build_model_config
from molchannel.chem.featurizers import get_featurizer
from molchannel.nn.encoder import encoder_config_for
from molchannel.nn.model import MolChannelNet, NetConfig
from molchannel.pretrain.checkpointing import find_checkpoint, load_checkpoint_safely


def export_checkpoint(
    run_or_ckpt: str | os.PathLike[str],
    output: str | os.PathLike[str],
    extra_provenance: dict[str, Any] | None = None,
) -> MolChannelModel:
    """Write the encoder of a pre-training checkpoint as a model folder at ``output``.

    The pre-training heads (context classes, motifs) stay behind: a model folder holds the
    encoder and the channel mixing only.
    """
    ckpt_path = find_checkpoint(run_or_ckpt)
    ckpt = load_checkpoint_safely(ckpt_path)
    hp = ckpt.get("hyper_parameters")
    if not hp or "encoder" not in hp:
        raise ValueError(
            f"{ckpt_path} is not a molchannel pre-training checkpoint (no encoder hyper-parameters)"
        )
    featurizer = get_featurizer(hp.get("featurizer", "basic"))
    net_config = NetConfig(encoder=encoder_config_for(dict(hp["encoder"] or {}), featurizer))
    net = MolChannelNet(net_config)
    prefix = "encoder."
    encoder_state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    net.encoder.load_state_dict(encoder_state, strict=True)
    metrics = {k: float(v) for k, v in _callback_metrics(ckpt).items()}
    provenance = {
        "pretrained": True,
        "description": f"pre-trained with MCL ({', '.join(net_config.encoder.channels)})",
        "checkpoint": ckpt_path.name,
        "epoch": int(ckpt.get("epoch", -1)),
        "global_step": int(ckpt.get("global_step", -1)),
        "pretrain_hyper_parameters": {k: v for k, v in hp.items() if k != "encoder"},
        "metrics": metrics,
        "molchannel_version": __version__,
        "torch_version": torch.__version__,
        **(extra_provenance or {}),
    }
    model = MolChannelModel(net, featurizer, build_model_config(net_config, featurizer, provenance))
    model.save(Path(output))
    return model


def _callback_metrics(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The monitored score of the checkpoint callback, when there is one."""
    out: dict[str, Any] = {}
    for key, state in (ckpt.get("callbacks") or {}).items():
        if "ModelCheckpoint" in str(key) and isinstance(state, dict):
            score = state.get("best_model_score")
            if score is not None:
                out[f"best_{state.get('monitor', 'score')}"] = float(score)
    return out
