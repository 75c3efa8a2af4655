"""Initial prompt-selection logits ``w``: uniform, given, or chosen by ROGI (METHOD.md section 6)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Batch

from molchannel.finetune.config import PromptConfig
from molchannel.finetune.rogi import select_prompt_weights
from molchannel.nn.model import MolChannelNet


@torch.no_grad()
def channel_embeddings(
    net: MolChannelNet, graphs: Sequence[Any], batch_size: int = 256, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Frozen channel embeddings ``[n, K, D]`` of ``graphs`` (eval mode; the net's mode is restored)."""
    was_training = net.training
    net.eval()
    out = []
    try:
        for start in range(0, len(graphs), batch_size):
            chunk = [graphs[i] for i in range(start, min(start + batch_size, len(graphs)))]
            batch = Batch.from_data_list(chunk)
            out.append(net.stack(net.encode(batch.to(device))).float().cpu().numpy())
    finally:
        net.train(was_training)
    return (
        np.concatenate(out) if out else np.zeros((0, len(net.channel_names), net.config.encoder.hidden_dim))
    )


def initial_weights(
    config: PromptConfig,
    channels: Sequence[str],
    tau: float,
    seed: int,
    embed: Callable[[np.ndarray], np.ndarray] | None = None,
    targets: np.ndarray | None = None,
) -> tuple[list[float], dict[str, Any]]:
    """Logits ``w`` (channel order) and a record of how they were chosen.

    For ``init: rogi``, ``targets`` are the training molecules' labels ``[n, T]`` and
    ``embed(rows)`` returns the frozen channel embeddings ``[len(rows), K, D]`` of those training
    molecules; only a seeded subsample of labelled ones (``rogi_max_molecules``) is embedded.
    """
    k = len(channels)
    if config.init == "uniform":
        return [0.0] * k, {"method": "uniform"}
    if config.init == "given":
        weights = [float(v) for v in config.weights or []]
        if len(weights) != k:
            raise ValueError(
                f"prompt.weights has {len(weights)} values but the model has {k} channels {list(channels)}; "
                "give one logit per channel, in that order"
            )
        return weights, {"method": "given"}
    if embed is None or targets is None:
        raise ValueError("the ROGI prompt search needs the training molecules' embeddings and labels")
    targets = targets[:, None] if targets.ndim == 1 else targets
    rows = np.flatnonzero((~np.isnan(targets)).any(axis=1))
    if rows.size > config.rogi_max_molecules:
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(rows, size=config.rogi_max_molecules, replace=False))
    search = select_prompt_weights(
        embed(rows),
        targets[rows],
        tau=tau,
        n_candidates=config.rogi_candidates,
        seed=seed,
        max_molecules=config.rogi_max_molecules,
    )
    return search.weights, search.to_dict()
