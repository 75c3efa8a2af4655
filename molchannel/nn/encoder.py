"""The multi-channel encoder: one backbone, K prompt-guided aggregators, one embedding per channel.

:class:`EncoderConfig` holds plain values only, so it round-trips through YAML, JSON and
``torch.load(weights_only=True)``; :func:`build_encoder` turns it into a module. The backbone is
chosen by name from :data:`BACKBONES`, filled by ``@register_backbone(name, featurizer=...)`` on a
function ``EncoderConfig -> nn.Module`` (the GIN and GPS ones are at the end of this module).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import Tensor, nn

from molchannel.chem.featurizers import get_featurizer
from molchannel.chem.graph_batch import GraphBatch
from molchannel.nn.aggregator import AggregatorOutput, PromptAggregator
from molchannel.nn.gin import JK_MODES, GINBackbone
from molchannel.nn.gps import GPSBackbone
from molchannel.registry import Registry

if TYPE_CHECKING:  # PyG is imported by the gps backbone and by training only, not for GIN inference
    from torch_geometric.data import Data

_CHANNEL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True)
class EncoderConfig:
    """Architecture of a :class:`MultiChannelEncoder`. Defaults are the reference GIN (METHOD.md 2-3).

    ``atom_channels`` names the channels that also return per-atom outputs (the context channel
    in MCL); it must be a subset of ``channels``. ``atom_dim``/``bond_dim``/``pe_dim``/``gps_heads``/
    ``attn_dropout`` only matter for the ``gps`` backbone, ``jk`` only for ``gin``.
    """

    backbone: str = "gin"
    num_layers: int = 5
    hidden_dim: int = 300
    dropout: float = 0.0
    jk: str = "last"
    atom_dim: int | None = None
    bond_dim: int | None = None
    pe_dim: int = 20
    gps_heads: int = 6
    attn_dropout: float = 0.0
    aggregator_heads: int = 4
    aggregator_dropout: float = 0.0
    channels: tuple[str, ...] = ("molsim", "scaffsim", "context")
    atom_channels: tuple[str, ...] = ("context",)

    def __post_init__(self) -> None:
        # YAML and JSON give lists; keep tuples so the config stays hashable and immutable.
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "atom_channels", tuple(self.atom_channels))
        self._validate()

    def _validate(self) -> None:
        BACKBONES.lookup(self.backbone)  # ValueError naming the known backbones
        if self.num_layers < 1 or self.hidden_dim < 1:
            raise ValueError(
                f"num_layers and hidden_dim must be positive, got {self.num_layers}, {self.hidden_dim}"
            )
        for name in ("dropout", "attn_dropout", "aggregator_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.jk not in JK_MODES:
            raise ValueError(f"unknown jk {self.jk!r}; choose one of {JK_MODES}")
        if self.hidden_dim % self.aggregator_heads:
            raise ValueError(
                f"hidden_dim={self.hidden_dim} must be divisible by aggregator_heads={self.aggregator_heads}"
            )
        if self.backbone == "gps":
            if self.atom_dim is None or self.bond_dim is None:
                raise ValueError(
                    "the gps backbone needs atom_dim and bond_dim (the rich featurizer's ATOM_DIM/BOND_DIM)"
                )
            if self.hidden_dim % self.gps_heads:
                raise ValueError(
                    f"hidden_dim={self.hidden_dim} must be divisible by gps_heads={self.gps_heads}"
                )
        self._validate_channels()

    def _validate_channels(self) -> None:
        if not self.channels:
            raise ValueError("channels must name at least one channel")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError(f"channel names must be unique, got {list(self.channels)}")
        reserved = set(dir(nn.ModuleDict()))
        for name in self.channels:
            if not isinstance(name, str) or not _CHANNEL_NAME.fullmatch(name) or name in reserved:
                raise ValueError(
                    f"invalid channel name {name!r}: use letters, digits and '_', starting with a letter, "
                    f"and not a reserved attribute name such as 'keys' or 'items'"
                )
        unknown = [name for name in self.atom_channels if name not in self.channels]
        if unknown:
            raise ValueError(
                f"atom_channels {unknown} are not among channels {list(self.channels)}; "
                "list only existing channels (or set atom_channels: [] when no channel needs per-atom output)"
            )

    @property
    def featurizer_name(self) -> str:
        """The featurization this backbone reads: ``basic`` for gin, ``rich`` for gps."""
        return BACKBONES[self.backbone].featurizer

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists, not tuples) ready for YAML/JSON."""
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["atom_channels"] = list(self.atom_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EncoderConfig:
        """Inverse of :meth:`to_dict`; missing keys take defaults, unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"unknown EncoderConfig key(s) {unknown}; valid keys are {sorted(known)}. "
                "Check for typos or a config written for another molchannel version."
            )
        return cls(**d)


@dataclass
class EncoderOutput:
    """Everything one encoder pass produces for B molecules with N atoms in all (D = hidden_dim)."""

    atoms: Tensor
    """``[N, D]`` backbone atom embeddings."""
    channels: dict[str, Tensor]
    """channel name -> ``[B, D]`` molecule embedding."""
    attention: dict[str, Tensor]
    """channel name -> ``[N]`` per-atom attention, summing to 1 within each molecule."""
    channel_atoms: dict[str, Tensor]
    """channel name -> ``[N, D]`` per-atom ``LayerNorm(x)``, for the ``atom_channels`` only."""


def mix_channels(stacked: Tensor, weights: Tensor, tau: float = 1.0) -> Tensor:
    """``sum_c softmax(weights / tau)_c * stacked[:, c]``: ``[B, K, D]`` and ``[K]`` -> ``[B, D]``."""
    if stacked.dim() != 3 or weights.dim() != 1 or weights.numel() != stacked.size(1):
        raise ValueError(
            f"mix needs channel embeddings [B, K, D] and weights [K]; got {tuple(stacked.shape)} and "
            f"{tuple(weights.shape)}"
        )
    if tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}")
    # softmax in float32 even under mixed precision, so small weight differences survive
    probs = torch.softmax(weights.float() / tau, dim=0).to(stacked.dtype)
    return torch.einsum("bkd,k->bd", stacked, probs)


class MultiChannelEncoder(nn.Module):
    """Backbone + one :class:`PromptAggregator` per channel (METHOD.md sections 2-3)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = BACKBONES[config.backbone].build(config)
        self.aggregators = nn.ModuleDict(
            {
                name: PromptAggregator(
                    config.hidden_dim,
                    heads=config.aggregator_heads,
                    dropout=config.aggregator_dropout,
                    atom_output=name in config.atom_channels,
                )
                for name in config.channels
            }
        )

    @property
    def channel_names(self) -> tuple[str, ...]:
        return self.config.channels

    @property
    def hidden_dim(self) -> int:
        return self.config.hidden_dim

    def reset_parameters(self) -> None:
        self.backbone.reset_parameters()  # type: ignore[operator]  # nn.Module attributes type as Tensor | Module
        for aggregator in self.aggregators.values():
            aggregator.reset_parameters()  # type: ignore[operator]

    def forward(self, batch: Data | GraphBatch) -> EncoderOutput:
        """Encode a PyG ``Batch`` (or a single ``Data``, or a :class:`GraphBatch`) of featurized molecules."""
        atoms = self.backbone(batch)
        index, num_graphs = _graph_index(batch, atoms)
        channels, attention, channel_atoms = {}, {}, {}
        for name, aggregator in self.aggregators.items():
            out = aggregator(atoms, index, num_graphs=num_graphs)
            channels[name] = out.graph
            attention[name] = out.attention
            if out.atoms is not None:
                channel_atoms[name] = out.atoms
        return EncoderOutput(atoms=atoms, channels=channels, attention=attention, channel_atoms=channel_atoms)

    def readout(self, channel: str, atoms: Tensor, batch: Data, graphs: tuple[int, int]) -> AggregatorOutput:
        """Channel ``channel`` for graphs ``[start, stop)`` of a PyG batch only.

        ``atoms`` is the backbone output for the whole batch. A PyG batch stores each graph's atoms
        contiguously, so a range of graphs is a range of atoms. Pre-training uses this to read out
        each channel only on the views its loss needs.
        """
        start, stop = graphs
        ptr = batch.ptr
        a0, a1 = int(ptr[start]), int(ptr[stop])
        index = batch.batch[a0:a1] - start
        return self.aggregators[channel](atoms[a0:a1], index, num_graphs=stop - start)

    @torch.no_grad()
    def embed(self, batch: Data | GraphBatch) -> EncoderOutput:
        """Inference: :meth:`forward` in eval mode without autograd; restores the previous mode.

        In eval mode BatchNorm uses its running statistics and attention never crosses
        molecules, so each molecule's outputs are independent of the rest of the batch.
        """
        was_training = self.training
        self.eval()
        try:
            return self(batch)
        finally:
            self.train(was_training)

    def stack(self, output: EncoderOutput) -> Tensor:
        """Channel embeddings as one ``[B, K, D]`` tensor, in :attr:`channel_names` order."""
        return torch.stack([output.channels[name] for name in self.channel_names], dim=1)

    def mix(self, output_or_stack: EncoderOutput | Tensor, weights: Tensor, tau: float = 1.0) -> Tensor:
        """Softmax-weighted channel mixture ``[B, D]`` (the fine-tuning prompt selection)."""
        if isinstance(output_or_stack, EncoderOutput):
            output_or_stack = self.stack(output_or_stack)
        return mix_channels(output_or_stack, weights, tau)

    def __repr__(self) -> str:
        aggregator = next(iter(self.aggregators.values()))
        return (
            f"{type(self).__name__}(backbone={self.backbone!r}, channels={list(self.channel_names)}, "
            f"aggregator={type(aggregator).__name__}({self.hidden_dim}, heads={aggregator.heads}), "
            f"atom_channels={list(self.config.atom_channels)})"
        )


def build_encoder(config: EncoderConfig | dict[str, Any]) -> MultiChannelEncoder:
    """Build an encoder from a config or its dict form (e.g. ``yaml.safe_load`` of configs/model/*.yaml)."""
    if isinstance(config, dict):
        config = EncoderConfig.from_dict(config)
    return MultiChannelEncoder(config)


def _graph_index(data: Data | GraphBatch, atoms: Tensor) -> tuple[Tensor, int]:
    """Each atom's molecule index and the molecule count; a ``Data`` without ``batch`` is one molecule."""
    index = getattr(data, "batch", None)
    if index is None:
        return torch.zeros(atoms.size(0), dtype=torch.long, device=atoms.device), 1
    num_graphs = getattr(data, "num_graphs", None)  # batches (PyG's and GraphBatch) count empty molecules too
    if isinstance(num_graphs, int):
        return index, num_graphs
    return index, int(index.max()) + 1 if index.numel() else 1


def encoder_config_for(encoder: EncoderConfig | dict[str, Any], featurizer: Any) -> EncoderConfig:
    """``encoder`` completed with the input sizes of ``featurizer`` (a featurizer or its name).

    The GPS backbone's ``atom_dim``/``bond_dim``/``pe_dim`` are properties of the featurization, so
    configs leave them out and they are filled in here; a backbone/featurizer mismatch is an error.
    """
    d = encoder.to_dict() if isinstance(encoder, EncoderConfig) else dict(encoder)
    feat = get_featurizer(featurizer) if isinstance(featurizer, str | dict) else featurizer
    backbone = d.get("backbone", "gin")
    expected = FEATURIZER_OF_BACKBONE.get(backbone)
    if expected is not None and feat.spec.name != expected:
        raise ValueError(
            f"the {backbone} backbone reads the {expected!r} featurization, "
            f"but the data use {feat.spec.name!r}; "
            f"prepare the data with featurizer {expected!r} or choose the matching backbone"
        )
    if backbone == "gps":
        for key, attr in (("atom_dim", "atom_dim"), ("bond_dim", "bond_dim"), ("pe_dim", "pe_dim")):
            value = getattr(feat, attr)
            if d.get(key) not in (None, value) and key != "pe_dim":
                raise ValueError(f"encoder {key}={d[key]} does not match the rich featurizer's {value}")
            d[key] = value
    return EncoderConfig.from_dict(d)


# ---- backbones ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackboneEntry:
    """How :class:`MultiChannelEncoder` gets a backbone by name: its factory and its featurization."""

    build: Callable[[EncoderConfig], nn.Module]
    """``EncoderConfig -> nn.Module`` mapping a batch of featurized molecules to ``[N, hidden_dim]``."""
    featurizer: str
    """The featurization scheme the backbone reads (a name known to ``get_featurizer``)."""


BACKBONES: Registry[BackboneEntry] = Registry("backbone")
"""Backbone name (``EncoderConfig.backbone``) -> :class:`BackboneEntry`; see :func:`register_backbone`."""

B = TypeVar("B", bound=Callable[[EncoderConfig], nn.Module])


def register_backbone(name: str, featurizer: str) -> Callable[[B], B]:
    """Decorator: make the factory ``EncoderConfig -> nn.Module`` the backbone ``name``.

    ``featurizer`` names the featurization its input comes from (``encoder_config_for`` and
    ``init_model`` pair them). Backbone-specific config checks belong in ``EncoderConfig._validate``.
    """

    def decorator(build: B) -> B:
        BACKBONES.add(name, BackboneEntry(build=build, featurizer=featurizer))
        return build

    return decorator


class _FeaturizerOfBackbone(Mapping[str, str]):
    """Read-only view of :data:`BACKBONES`: backbone name -> featurization name."""

    def __getitem__(self, name: str) -> str:
        return BACKBONES[name].featurizer

    def __iter__(self) -> Iterator[str]:
        return iter(BACKBONES)

    def __len__(self) -> int:
        return len(BACKBONES)

    def __repr__(self) -> str:
        return repr(dict(self))


FEATURIZER_OF_BACKBONE: Mapping[str, str] = _FeaturizerOfBackbone()
"""Backbone name -> the featurization it reads (``{"gin": "basic", "gps": "rich"}``)."""


@register_backbone("gin", featurizer="basic")
def gin_backbone(config: EncoderConfig) -> GINBackbone:
    """The GIN of Hu et al. (2020) on the basic featurization (METHOD.md section 2)."""
    return GINBackbone(config.hidden_dim, config.num_layers, dropout=config.dropout, jk=config.jk)


@register_backbone("gps", featurizer="rich")
def gps_backbone(config: EncoderConfig) -> GPSBackbone:
    """GraphGPS on the rich featurization; input sizes come from the config (see encoder_config_for)."""
    assert config.atom_dim is not None and config.bond_dim is not None  # checked by EncoderConfig
    return GPSBackbone(
        config.atom_dim,
        config.bond_dim,
        pe_dim=config.pe_dim,
        dim=config.hidden_dim,
        num_layers=config.num_layers,
        heads=config.gps_heads,
        dropout=config.dropout,
        attn_dropout=config.attn_dropout,
    )
