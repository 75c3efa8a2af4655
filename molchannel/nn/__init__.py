"""Neural-network layer: backbones, prompt-guided aggregation and the multi-channel encoder.

Plain ``torch.nn.Module`` blocks; nothing here imports Lightning.
"""

from molchannel.nn.aggregator import AggregatorOutput, PromptAggregator
from molchannel.nn.encoder import (
    EncoderConfig,
    EncoderOutput,
    MultiChannelEncoder,
    build_encoder,
    mix_channels,
)
from molchannel.nn.gin import BondGINConv, GINBackbone
from molchannel.nn.gps import GPSBackbone

__all__ = [
    "AggregatorOutput",
    "BondGINConv",
    "EncoderConfig",
    "EncoderOutput",
    "GINBackbone",
    "GPSBackbone",
    "MultiChannelEncoder",
    "PromptAggregator",
    "build_encoder",
    "mix_channels",
]
