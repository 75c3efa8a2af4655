"""The complete network behind a model folder: encoder, channel mixing and optional head.

``MolChannelNet`` is what both applications train and what :func:`molchannel.load` rebuilds:
the multi-channel encoder, the prompt-selection weights ``w`` (one per channel, mixed as
``softmax(w / tau)``) and, after fine-tuning, a prediction head. Its constructor takes only
plain values, so the config round-trips through JSON/YAML.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from molchannel.nn.encoder import EncoderConfig, EncoderOutput, MultiChannelEncoder, mix_channels


@dataclass
class HeadConfig:
    """Prediction head: Linear(D, hidden) - ReLU - Dropout - Linear(hidden, num_tasks)."""

    num_tasks: int
    hidden_dim: int = 300
    dropout: float = 0.0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HeadConfig:
        return cls(**d)


@dataclass
class NetConfig:
    encoder: EncoderConfig
    tau: float = 1.0
    head: HeadConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder.to_dict(),
            "tau": self.tau,
            "head": None if self.head is None else asdict(self.head),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetConfig:
        unknown = set(d) - {"encoder", "tau", "head"}
        if unknown:
            raise ValueError(f"unknown network config keys {sorted(unknown)}; expected encoder, tau, head")
        head = d.get("head")
        return cls(
            encoder=EncoderConfig.from_dict(d["encoder"]),
            tau=float(d.get("tau", 1.0)),
            head=None if head is None else HeadConfig.from_dict(head),
        )


class ChannelMixer(nn.Module):
    """Prompt selection: learnable channel logits ``w``; mixes ``sum_c softmax(w/tau)_c h_c``."""

    def __init__(self, num_channels: int, tau: float = 1.0) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f"tau must be positive, got {tau}")
        self.tau = tau
        self.weights = nn.Parameter(torch.zeros(num_channels))  # zeros = uniform mixture

    def probabilities(self) -> Tensor:
        return torch.softmax(self.weights / self.tau, dim=0)

    def forward(self, stacked: Tensor) -> Tensor:
        """``stacked``: [B, K, D] channel embeddings -> [B, D]."""
        return mix_channels(stacked, self.weights, self.tau)

    def extra_repr(self) -> str:
        return f"num_channels={self.weights.numel()}, tau={self.tau}"


class MolChannelNet(nn.Module):
    def __init__(self, config: NetConfig | dict[str, Any]) -> None:
        super().__init__()
        if isinstance(config, dict):
            config = NetConfig.from_dict(config)
        self.config = config
        self.encoder = MultiChannelEncoder(config.encoder)
        self.mixing = ChannelMixer(len(self.encoder.channel_names), config.tau)
        self.head: nn.Module | None = None
        if config.head is not None:
            dim = config.encoder.hidden_dim
            self.head = nn.Sequential(
                nn.Linear(dim, config.head.hidden_dim),
                nn.ReLU(),
                nn.Dropout(config.head.dropout),
                nn.Linear(config.head.hidden_dim, config.head.num_tasks),
            )

    @property
    def channel_names(self) -> list[str]:
        return list(self.encoder.channel_names)

    def encode(self, batch: Any) -> EncoderOutput:
        return self.encoder(batch)

    def stack(self, output: EncoderOutput) -> Tensor:
        """[B, K, D] channel embeddings in ``channel_names`` order."""
        return self.encoder.stack(output)

    def forward(self, batch: Any) -> Tensor:
        """Mixed embedding [B, D], or head outputs [B, T] when the net has a head."""
        mixed = self.mixing(self.stack(self.encode(batch)))
        return mixed if self.head is None else self.head(mixed)
