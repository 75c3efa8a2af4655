"""Prompt selection acts: when one channel alone carries the signal, fine-tuning moves its weight up.

The encoder is replaced by fixed channel embeddings that the test controls: three independent random
vectors per molecule, each layer-normalised as the aggregators' outputs are (so every channel has the
same norm), and a regression target that is a linear function of one channel only. The prompt logits
``w``, the head, the optimiser (its parameter groups, learning rates, weight decay and cosine schedule)
and the loss are the fine-tuning module's own, at the defaults of ``OptimConfig``. With the MCL
reference's prompt learning rate (5e-4) the same task leaves the weights near uniform.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from molchannel.finetune.config import FinetuneConfig, OptimConfig
from molchannel.finetune.module import FinetuneModule
from molchannel.nn.encoder import EncoderConfig
from molchannel.nn.model import HeadConfig, NetConfig

N_MOLECULES, N_TRAIN, DIM, BATCH = 320, 256, 16, 32
HEAD = {"tasks": ["y"], "task_type": "regression", "metric": "rmse"}


class FixedChannels(nn.Module):
    """Stands in for the encoder: a batch of row indices -> the fixed ``[B, K, D]`` channel embeddings."""

    def __init__(self, embeddings: Tensor) -> None:
        super().__init__()
        self.register_buffer("embeddings", embeddings)
        self.backbone = nn.Identity()  # nothing to train or freeze
        self.aggregators = nn.ModuleDict()

    def forward(self, rows: Tensor) -> Tensor:
        return rows

    def stack(self, rows: Tensor) -> Tensor:
        return self.embeddings[rows]


def _task(signal: int, seed: int) -> tuple[Tensor, Tensor]:
    """Channel embeddings ``[N, 3, D]`` and standardised targets ``[N, 1]`` read from channel ``signal``."""
    generator = torch.Generator().manual_seed(seed)
    channels = nn.functional.layer_norm(torch.randn(N_MOLECULES, 3, DIM, generator=generator), (DIM,))
    direction = torch.randn(DIM, generator=generator)
    y = channels[:, signal] @ (direction / direction.norm())
    return channels, ((y - y.mean()) / y.std())[:, None]


def _fine_tune(signal: int, seed: int = 0, epochs: int = 50, **optim: Any) -> list[float]:
    """Train w and the head as fine-tuning does (scheduler stepped per epoch); softmax(w / tau) at the end."""
    channels, y = _task(signal, seed)
    encoder = EncoderConfig(num_layers=1, hidden_dim=DIM, aggregator_heads=1)
    network = NetConfig(encoder=encoder, head=HeadConfig(num_tasks=1, hidden_dim=32))
    torch.manual_seed(seed)
    module = FinetuneModule(network.to_dict(), HEAD, asdict(OptimConfig(epochs=epochs, **optim)), seed=seed)
    module.net.encoder = FixedChannels(channels)
    configured = module.configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    module.train()
    order = torch.Generator().manual_seed(seed + 1)
    for _ in range(epochs):
        permutation = torch.randperm(N_TRAIN, generator=order)
        for start in range(0, N_TRAIN, BATCH):
            rows = permutation[start : start + BATCH]
            optimizer.zero_grad()
            module.loss(module.net(rows), y[rows]).backward()
            optimizer.step()
        scheduler.step()
    return module.net.mixing.probabilities().tolist()


@pytest.mark.parametrize("signal", [0, 1, 2])
def test_the_channel_that_carries_the_signal_gets_the_weight(signal: int) -> None:
    torch.set_num_threads(1)
    weights = _fine_tune(signal)
    others = [w for c, w in enumerate(weights) if c != signal]
    assert weights[signal] >= 0.6 and max(others) < 0.3, weights


def test_the_reference_prompt_learning_rate_leaves_the_weights_near_uniform() -> None:
    """The same task at the reference's lr_prompt: w hardly moves, so the check above would fail."""
    torch.set_num_threads(1)
    weights = _fine_tune(1, lr_prompt=5.0e-4)
    assert weights[1] < 0.45 and min(weights) > 0.25, weights


def test_prompt_weight_decay_and_backbone_dropout_options() -> None:
    encoder = EncoderConfig(num_layers=1, hidden_dim=DIM, aggregator_heads=1)
    network = NetConfig(encoder=encoder, head=HeadConfig(num_tasks=1)).to_dict()

    def decays(**optim: Any) -> dict[str, float]:
        module = FinetuneModule(network, HEAD, asdict(OptimConfig(**optim)))
        groups = module.configure_optimizers()["optimizer"].param_groups
        return {g["name"]: g["weight_decay"] for g in groups}

    assert decays(weight_decay=1e-3) == {"backbone": 1e-3, "prompt": 1e-3, "head": 1e-3}  # null: the same
    assert decays(weight_decay=1e-3, weight_decay_prompt=0.0)["prompt"] == 0.0

    from molchannel.api import init_model
    from molchannel.finetune.run import _initial_net

    base = init_model({"num_layers": 1, "hidden_dim": 16, "aggregator_heads": 1, "dropout": 0.05}, seed=0)
    no_features = {"extra_features": []}  # the network alone: no molecule features to fit a scaler on
    kept = _initial_net(base, FinetuneConfig.from_dict({"model": no_features}), 1)
    dropout_config = FinetuneConfig.from_dict({"model": {"backbone_dropout": 0.3, **no_features}})
    changed = _initial_net(base, dropout_config, 1)
    assert kept.config.encoder.dropout == 0.05 and changed.config.encoder.dropout == 0.3
    assert changed.encoder.backbone.dropout == 0.3
    weights = kept.encoder.state_dict()
    assert all(torch.equal(v, weights[k]) for k, v in changed.encoder.state_dict().items())  # same weights
    with pytest.raises(ValueError, match="backbone_dropout"):
        FinetuneConfig.from_dict({"model": {"backbone_dropout": 1.0}})
    with pytest.raises(ValueError, match="weight_decay_prompt"):
        FinetuneConfig.from_dict({"optim": {"weight_decay_prompt": -1.0}})
