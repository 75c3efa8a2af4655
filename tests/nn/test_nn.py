"""Tests of molchannel.nn: backbones, prompt aggregation, the multi-channel encoder and model configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from torch import nn
from torch_geometric.data import Batch, Data

from molchannel.chem import BasicFeaturizer
from molchannel.chem.basic import BOND_SELF_LOOP, NUM_BOND_TYPES
from molchannel.chem.featurizers import ATOM_MASK, BOND_MASK
from molchannel.nn import (
    EncoderConfig,
    GINBackbone,
    GPSBackbone,
    MultiChannelEncoder,
    PromptAggregator,
    build_encoder,
    mix_channels,
)
from molchannel.nn.encoder import BACKBONES, FEATURIZER_OF_BACKBONE, BackboneEntry, register_backbone
from molchannel.nn.gin import BondGINConv, bond_neighbourhood

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "model"
SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "C[C@H](N)C(=O)O", "O=C=O", "C", "CCN(CC)CC", "c1ccncc1"]
BIG = "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)OCCOc1ccc2ccccc2c1"  # larger than all of SMILES: forces more padding
ATOM_DIM, BOND_DIM, PE_DIM = 17, 5, 4  # small rich-like dims keep the tests fast


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny graphs gain nothing from intra-op threads, and on a busy machine spinning threads cost seconds."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def basic_batch(smiles: list[str]) -> Batch:
    featurizer = BasicFeaturizer()
    return Batch.from_data_list([featurizer(s) for s in smiles])


def rich_like(smiles: str) -> Data:
    """Topology of the real molecule with random float features that depend only on the SMILES."""
    graph = BasicFeaturizer()(smiles)
    gen = torch.Generator().manual_seed(sum(map(ord, smiles)) * 7919 + len(smiles))
    n, e = graph.num_nodes, graph.edge_index.size(1)
    return Data(
        x=torch.rand(n, ATOM_DIM, generator=gen),
        edge_index=graph.edge_index,
        edge_attr=torch.rand(e, BOND_DIM, generator=gen),
        pe=torch.rand(n, PE_DIM, generator=gen),
    )


def rich_batch(smiles: list[str]) -> Batch:
    return Batch.from_data_list([rich_like(s) for s in smiles])


def tiny_config(backbone: str = "gin", **overrides) -> EncoderConfig:
    values = dict(backbone=backbone, num_layers=2, hidden_dim=24, aggregator_heads=4)
    if backbone == "gps":
        values.update(atom_dim=ATOM_DIM, bond_dim=BOND_DIM, pe_dim=PE_DIM, gps_heads=2)
    values.update(overrides)
    return EncoderConfig(**values)


def warmed_up(encoder: MultiChannelEncoder, batch: Batch) -> MultiChannelEncoder:
    """A few training passes so BatchNorm running stats are not the trivial (0, 1); left in train mode,
    so the tests also check that ``embed`` switches to eval by itself."""
    encoder.train()
    with torch.no_grad():
        for _ in range(3):
            encoder(batch)
    return encoder


# ---- backbones ----------------------------------------------------------------------------


def test_gin_shapes_on_real_molecules():
    batch = basic_batch(SMILES)
    backbone = GINBackbone(dim=16, num_layers=3)
    h = backbone(batch)
    assert h.shape == (batch.num_nodes, 16)
    assert batch.num_nodes == 3 + 7 + 11 + 6 + 3 + 1 + 7 + 6  # heavy atoms, counted by hand
    assert torch.isfinite(h).all()


def test_gin_jk_sum_differs_from_last():
    batch = basic_batch(SMILES)
    torch.manual_seed(0)
    last = GINBackbone(dim=16, num_layers=3, jk="last").eval()
    summed = GINBackbone(dim=16, num_layers=3, jk="sum").eval()
    summed.load_state_dict(last.state_dict())
    assert summed(batch).shape == last(batch).shape
    assert not torch.allclose(summed(batch), last(batch))
    with pytest.raises(ValueError, match="jk"):
        GINBackbone(jk="concat")


def test_gin_runs_on_masked_atoms_and_bonds():
    graph = BasicFeaturizer()("c1ccccc1O")
    masked = graph.clone()
    masked.x[0, 0] = ATOM_MASK
    masked.edge_attr[0, 0] = BOND_MASK
    masked.edge_attr[1, 0] = BOND_MASK  # the same bond, other direction
    backbone = GINBackbone(dim=16, num_layers=2).eval()
    out_masked, out_plain = backbone(masked), backbone(graph)
    assert out_masked.shape == (7, 16) and torch.isfinite(out_masked).all()
    assert not torch.allclose(out_masked, out_plain)


def test_gin_rejects_rich_features_with_a_hint():
    with pytest.raises(ValueError, match="basic"):
        GINBackbone(dim=8, num_layers=1)(rich_like("CCO"))


def test_gin_self_loop_and_isolated_atom():
    # Methane has no bonds: the only message is the self-loop, so the output must still be finite.
    h = GINBackbone(dim=8, num_layers=2).eval()(BasicFeaturizer()("C"))
    assert h.shape == (1, 8) and torch.isfinite(h).all()


def message_by_message(conv: BondGINConv, x: torch.Tensor, graph: Data) -> torch.Tensor:
    """The GIN layer as defined: ``MLP(sum over incoming bonds and the self-loop of (x_j + e_ji))``."""
    n = x.size(0)
    loops = torch.arange(n)
    source = torch.cat([graph.edge_index[0], loops])
    target = torch.cat([graph.edge_index[1], loops])
    loop_attr = torch.tensor([[BOND_SELF_LOOP, 0]]).expand(n, 2)
    attr = torch.cat([graph.edge_attr, loop_attr])
    messages = x[source] + conv.bond_type_embedding(attr[:, 0]) + conv.bond_dir_embedding(attr[:, 1])
    return conv.mlp(torch.zeros_like(x).index_add(0, target, messages))


def test_gin_conv_is_exactly_the_message_passing_definition():
    # BondGINConv computes the neighbour sum in closed form (neighbour sum + bond-count matmul);
    # outputs and every gradient must match the per-message definition, masked bonds included.
    graph = basic_batch([*SMILES, BIG])
    graph.edge_attr[3] = torch.tensor([BOND_MASK, 2])
    conv = BondGINConv(16)
    x = torch.randn(graph.num_nodes, 16, requires_grad=True)
    fast = conv(x, graph.edge_index, graph.edge_attr)
    fast_grads = torch.autograd.grad(fast.square().sum(), [x, *conv.parameters()])
    slow = message_by_message(conv, x, graph)
    slow_grads = torch.autograd.grad(slow.square().sum(), [x, *conv.parameters()])
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    for a, b in zip(fast_grads, slow_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    # the counts shared across layers are those of the bonds: bond types + self-loop per atom
    neighbourhood = bond_neighbourhood(graph.edge_index, graph.edge_attr, graph.num_nodes)
    degree = torch.bincount(graph.edge_index[1], minlength=graph.num_nodes) + 1
    torch.testing.assert_close(neighbourhood.bond_counts[:, :NUM_BOND_TYPES].sum(1), degree.float())
    torch.testing.assert_close(neighbourhood.bond_counts[:, NUM_BOND_TYPES:].sum(1), degree.float())


def test_gps_shapes_on_real_topologies():
    batch = rich_batch(SMILES)
    backbone = GPSBackbone(ATOM_DIM, BOND_DIM, pe_dim=PE_DIM, dim=24, num_layers=2, heads=2)
    h = backbone(batch)
    assert h.shape == (batch.num_nodes, 24) and torch.isfinite(h).all()
    assert backbone.atom_encoder.out_features == 24 - PE_DIM


def test_gps_rejects_wrong_feature_widths():
    backbone = GPSBackbone(ATOM_DIM + 1, BOND_DIM, pe_dim=PE_DIM, dim=24, num_layers=1, heads=2)
    with pytest.raises(ValueError, match=f"x \\[N, {ATOM_DIM + 1}\\]"):
        backbone(rich_like("CCO"))
    no_pe = rich_like("CCO")
    del no_pe.pe
    with pytest.raises(ValueError, match="no 'pe' attribute"):
        GPSBackbone(ATOM_DIM, BOND_DIM, pe_dim=PE_DIM, dim=24, num_layers=1, heads=2)(no_pe)


# ---- aggregator ---------------------------------------------------------------------------


def test_attention_sums_to_one_per_molecule():
    batch = basic_batch(SMILES)
    agg = PromptAggregator(dim=16, heads=4)
    out = agg(torch.randn(batch.num_nodes, 16), batch.batch)
    assert out.graph.shape == (len(SMILES), 16)
    assert out.atoms is not None and out.atoms.shape == (batch.num_nodes, 16)
    sums = torch.zeros(len(SMILES)).index_add_(0, batch.batch, out.attention)
    torch.testing.assert_close(sums, torch.ones(len(SMILES)))
    assert (out.attention > 0).all()


def test_attention_hand_checked_cases():
    agg = PromptAggregator(dim=8, heads=2, atom_output=False)
    # molecule 0: one atom -> weight 1; molecule 1: four identical atoms -> 1/4 each
    h = torch.cat([torch.randn(1, 8), torch.randn(1, 8).expand(4, 8)])
    out = agg(h, torch.tensor([0, 1, 1, 1, 1]))
    torch.testing.assert_close(out.attention, torch.tensor([1.0, 0.25, 0.25, 0.25, 0.25]))
    assert out.atoms is None
    # a trailing molecule without atoms gives a finite embedding, not NaN
    empty = agg(torch.randn(2, 8), torch.tensor([0, 0]), num_graphs=2)
    assert empty.graph.shape == (2, 8) and torch.isfinite(empty.graph).all()


def test_aggregator_matches_torch_multihead_attention():
    """Parity with nn.MultiheadAttention on a padded dense batch (the reference formulation)."""
    torch.manual_seed(0)
    dim, heads = 12, 3
    agg = PromptAggregator(dim=dim, heads=heads).eval()
    mha = nn.MultiheadAttention(dim, heads, batch_first=True).eval()
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([agg.query.weight, agg.key.weight, agg.value.weight]))
        mha.in_proj_bias.copy_(torch.cat([agg.query.bias, agg.key.bias, agg.value.bias]))
        mha.out_proj.weight.copy_(agg.out.weight)
        mha.out_proj.bias.copy_(agg.out.bias)
    sizes = [3, 1, 5]
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor(sizes))
    h = torch.randn(sum(sizes), dim)
    out = agg(h, batch)

    x = agg.mlp(h)
    dense = torch.zeros(3, max(sizes), dim)
    pad = torch.ones(3, max(sizes), dtype=torch.bool)
    start = 0
    for i, n in enumerate(sizes):
        dense[i, :n], pad[i, :n] = x[start : start + n], False
        start += n
    query = agg.prompt.expand(3, 1, dim)
    ref, ref_weights = mha(query, dense, dense, key_padding_mask=pad, average_attn_weights=True)
    torch.testing.assert_close(out.graph, agg.norm(ref.squeeze(1)), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.attention, ref_weights.squeeze(1)[~pad], atol=1e-6, rtol=1e-5)


# ---- encoder ------------------------------------------------------------------------------


@pytest.mark.parametrize("backbone", ["gin", "gps"])
def test_encoder_output_shapes(backbone):
    batch = basic_batch(SMILES) if backbone == "gin" else rich_batch(SMILES)
    encoder = build_encoder(tiny_config(backbone))
    out = encoder(batch)
    n, b = batch.num_nodes, len(SMILES)
    assert out.atoms.shape == (n, 24)
    assert list(out.channels) == ["molsim", "scaffsim", "context"] == list(encoder.channel_names)
    assert all(v.shape == (b, 24) for v in out.channels.values())
    assert all(v.shape == (n,) for v in out.attention.values())
    assert list(out.channel_atoms) == ["context"] and out.channel_atoms["context"].shape == (n, 24)
    assert encoder.stack(out).shape == (b, 3, 24)
    torch.testing.assert_close(encoder.stack(out)[:, 1], out.channels["scaffsim"])


@pytest.mark.parametrize("backbone", ["gin", "gps"])
def test_eval_outputs_do_not_depend_on_batch_company(backbone):
    make = basic_batch if backbone == "gin" else rich_batch
    torch.manual_seed(0)
    encoder = warmed_up(build_encoder(tiny_config(backbone)), make(SMILES))
    small = encoder.embed(make(SMILES[:3]))
    # A bigger molecule appended (more padding inside GPS attention) and the order reversed.
    grown = encoder.embed(make(SMILES[:3] + [BIG]))
    reordered = encoder.embed(make([BIG] + SMILES[:3][::-1]))
    n_small = small.atoms.size(0)
    torch.testing.assert_close(grown.atoms[:n_small], small.atoms, atol=1e-5, rtol=1e-5)
    close = dict(atol=1e-5, rtol=1e-5)
    for name in encoder.channel_names:
        torch.testing.assert_close(grown.channels[name][:3], small.channels[name], **close)
        torch.testing.assert_close(reordered.channels[name][1:], small.channels[name].flip(0), **close)
        torch.testing.assert_close(grown.attention[name][:n_small], small.attention[name], **close)
    # The single-molecule path (a Data without `batch`) agrees with the batched one.
    alone = encoder.embed(make([SMILES[1]]).to_data_list()[0])
    torch.testing.assert_close(alone.channels["molsim"][0], small.channels["molsim"][1], atol=1e-5, rtol=1e-5)


def test_embed_restores_training_mode_and_needs_no_grad():
    encoder = build_encoder(tiny_config())
    encoder.train()
    out = encoder.embed(basic_batch(SMILES[:2]))
    assert encoder.training and not out.channels["molsim"].requires_grad


def test_mix_with_dominant_weight_equals_first_channel():
    encoder = build_encoder(tiny_config()).eval()
    out = encoder(basic_batch(SMILES))
    mixed = encoder.mix(out, torch.tensor([100.0, 0.0, 0.0]), tau=1.0)
    torch.testing.assert_close(mixed, out.channels["molsim"], atol=1e-6, rtol=0)
    # equal weights: the plain mean of the channels, from a stacked tensor as well
    stacked = encoder.stack(out)
    torch.testing.assert_close(encoder.mix(stacked, torch.zeros(3)), stacked.mean(dim=1))
    # tau sharpens: weights [1, 0] at tau=0.5 give softmax([2, 0]) = [0.8808, 0.1192]
    two = torch.stack([torch.ones(1, 2), torch.zeros(1, 2)], dim=1)
    sharp = mix_channels(two, torch.tensor([1.0, 0.0]), tau=0.5)
    torch.testing.assert_close(sharp, torch.full((1, 2), 0.880797))
    with pytest.raises(ValueError, match="weights \\[K\\]"):
        encoder.mix(out, torch.zeros(2))


def test_gradients_reach_every_parameter():
    """Prompts get gradients, and no parameter is left without one (distributed training needs that)."""
    encoder = build_encoder(tiny_config())
    out = encoder(basic_batch(SMILES))
    loss = sum(v.pow(2).sum() for v in out.channels.values()) + out.channel_atoms["context"].pow(2).sum()
    loss.backward()
    for name in encoder.channel_names:
        grad = encoder.aggregators[name].prompt.grad
        assert grad is not None and grad.abs().sum() > 0
    missing = [n for n, p in encoder.named_parameters() if p.grad is None]
    assert missing == []


def test_overfit_one_batch():
    torch.manual_seed(0)
    encoder = build_encoder(tiny_config(hidden_dim=32, num_layers=2))
    head = nn.Linear(32, 1)
    batch = basic_batch(SMILES)
    target = torch.linspace(-1.0, 1.0, len(SMILES)).unsqueeze(1)
    params = list(encoder.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-2)
    weights = torch.zeros(3)
    for _ in range(100):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(head(encoder.mix(encoder(batch), weights)), target)
        loss.backward()
        optimizer.step()
    assert loss.item() < 1e-2, f"could not overfit 8 molecules: final MSE {loss.item():.4f}"


def test_channel_count_and_names_are_configurable():
    encoder = build_encoder(tiny_config(channels=["a", "b"], atom_channels=[]))
    out = encoder(basic_batch(SMILES[:2]))
    assert list(out.channels) == ["a", "b"] and out.channel_atoms == {}
    assert encoder.stack(out).shape == (2, 2, 24)


def test_reset_parameters_redraws_prompts():
    encoder = build_encoder(tiny_config())
    before = encoder.aggregators["molsim"].prompt.detach().clone()
    encoder.reset_parameters()
    assert not torch.equal(before, encoder.aggregators["molsim"].prompt)


def test_reprs_are_readable():
    encoder = build_encoder(tiny_config())
    assert repr(encoder.backbone) == "GINBackbone(24, num_layers=2, jk='last')"
    assert repr(encoder.aggregators["context"]) == "PromptAggregator(24, heads=4, atom_output=True)"
    assert "channels=['molsim', 'scaffsim', 'context']" in repr(encoder)


# ---- config -------------------------------------------------------------------------------


def test_config_round_trip_through_yaml():
    config = tiny_config("gps", dropout=0.1, channels=["x", "y"], atom_channels=["y"])
    assert EncoderConfig.from_dict(yaml.safe_load(yaml.safe_dump(config.to_dict()))) == config
    assert config.featurizer_name == "rich" and EncoderConfig().featurizer_name == "basic"


def test_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ValueError, match=r"unknown EncoderConfig key\(s\) \['hiden_dim'\]"):
        EncoderConfig.from_dict({"hiden_dim": 300})
    with pytest.raises(ValueError, match="unique"):
        EncoderConfig(channels=("a", "a"), atom_channels=())
    with pytest.raises(ValueError, match="not among channels"):
        EncoderConfig(channels=("a",))
    with pytest.raises(ValueError, match="invalid channel name 'keys'"):
        EncoderConfig(channels=("keys",), atom_channels=())
    with pytest.raises(ValueError, match="atom_dim and bond_dim"):
        EncoderConfig(backbone="gps")
    with pytest.raises(ValueError, match=r"unknown backbone 'gcn'; choose one of \('gin', 'gps'\)"):
        EncoderConfig(backbone="gcn")


def test_backbones_come_from_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    assert BACKBONES.names() == ("gin", "gps")
    assert dict(FEATURIZER_OF_BACKBONE) == {"gin": "basic", "gps": "rich"}
    assert EncoderConfig(backbone="gin").featurizer_name == "basic"

    class Embedding(nn.Module):
        """A toy backbone: an embedding of the atom type, no message passing."""

        def __init__(self, dim: int) -> None:
            super().__init__()
            self.embedding = nn.Embedding(120, dim)

        def reset_parameters(self) -> None:
            self.embedding.reset_parameters()

        def forward(self, data: Data) -> torch.Tensor:
            return self.embedding(data.x[:, 0])

    def build(config: EncoderConfig) -> nn.Module:
        return Embedding(config.hidden_dim)

    monkeypatch.setitem(BACKBONES._entries, "embedding", BackboneEntry(build, "basic"))  # undone after
    encoder = build_encoder({"backbone": "embedding", "hidden_dim": 8, "aggregator_heads": 2})
    assert isinstance(encoder.backbone, Embedding) and encoder.config.featurizer_name == "basic"
    out = encoder.embed(Batch.from_data_list([BasicFeaturizer()(s) for s in ("CCO", "C")]))
    assert out.channels["molsim"].shape == (2, 8)
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("gin", featurizer="basic")(build)


@pytest.mark.parametrize("name", ["gin", "gps"])
def test_model_yaml_files_load(name):
    config = EncoderConfig.from_dict(yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text()))
    assert (config.backbone, config.num_layers, config.hidden_dim) == (name, 5, 300)
    assert config.channels == ("molsim", "scaffsim", "context") and config.aggregator_heads == 4


def test_gps_yaml_matches_rich_featurizer_dims():
    from molchannel.chem import rich

    config = yaml.safe_load((CONFIG_DIR / "gps.yaml").read_text())
    assert (config["atom_dim"], config["bond_dim"]) == (rich.ATOM_DIM, rich.BOND_DIM)


def test_reference_gin_parameter_count():
    """Hand count for the 5 x 300 GIN with this project's vocabularies (120/4 atoms, 7/4 bonds).

    atom embeddings 120*300 + 4*300 = 37,200; per layer: bond embeddings (7+4)*300 = 3,300,
    MLP 300*600+600 + 600*300+300 = 360,900, BatchNorm 2*300 = 600 -> 364,800; x5 = 1,824,000.
    Backbone 1,861,200 (Hu et al.'s GIN: ~1.86M). Each aggregator: prompt 300 + MLP 2*90,300 +
    q/k/v/out 4*90,300 + LayerNorm 600 = 542,700; the context channel adds its atom LayerNorm 600.
    """
    config = EncoderConfig.from_dict(yaml.safe_load((CONFIG_DIR / "gin.yaml").read_text()))
    encoder = build_encoder(config)
    assert sum(p.numel() for p in encoder.backbone.parameters()) == 1_861_200
    assert sum(p.numel() for p in encoder.parameters()) == 1_861_200 + 3 * 542_700 + 600
