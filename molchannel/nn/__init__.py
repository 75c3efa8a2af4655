"""Neural-network layer: backbones, prompt-guided aggregation and the multi-channel encoder.

Plain ``torch.nn.Module`` blocks; nothing here imports Lightning. PyG is imported only by the
GPS backbone (:mod:`molchannel.nn.gps`, when one is built), so GIN inference runs without it.
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
