"""The pre-training module on real batches: slicing, each loss term teaching, knowledge, diagnostics."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from molchannel.pretrain.corpus import CorpusConfig, PretrainCorpus, prepare_corpus
from molchannel.pretrain.data import EpochShuffleSampler, ViewDataset, collate_views
from molchannel.pretrain.module import MCLPretrainModule
from molchannel.pretrain.targets import NUM_DESCRIPTORS

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "zinc_sample.smi"
ENCODER = {"backbone": "gin", "num_layers": 2, "hidden_dim": 32, "aggregator_heads": 4}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> PretrainCorpus:
    out = tmp_path_factory.mktemp("corpus") / "tiny"
    prepare_corpus(SAMPLE, out, CorpusConfig(shard_size=64, n_stored=8), limit=48, progress=False)
    return PretrainCorpus(out)


def _batch(corpus: PretrainCorpus, n: int = 12, n_mcd: int = 3, n_scd: int = 2, epoch: int = 0):
    dataset = ViewDataset(corpus, torch.arange(n).numpy(), n_mcd=n_mcd, n_scd=n_scd, seed=0)
    dataset.epoch = epoch
    items = [dataset[i] for i in range(n)]
    return items, collate_views(items)


def _module(corpus: PretrainCorpus, **options) -> MCLPretrainModule:
    torch.manual_seed(0)
    return MCLPretrainModule(encoder=ENCODER, vocab_size=len(corpus.vocab), **options)


def test_prepare_says_when_shards_are_fewer_than_processes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="molchannel.pretrain.corpus"):
        prepare_corpus(SAMPLE, tmp_path / "c", CorpusConfig(shard_size=64, n_stored=2), processes=2, limit=20,
                       progress=False)  # fmt: skip
    assert "1 shard(s) to prepare for 2 processes" in caplog.text and "shard size of 5" in caplog.text
    assert len(PretrainCorpus(tmp_path / "c")) > 0


def test_batch_slices_anchors_mcd_scd_and_context_views(corpus: PretrainCorpus) -> None:
    items, batch = _batch(corpus, n=5, n_mcd=3, n_scd=2)
    b, p, q = 5, 3, 2
    sizes = (batch.graphs.ptr[1:] - batch.graphs.ptr[:-1]).tolist()
    assert len(sizes) == b + b * p + b * q + b
    for k, item in enumerate(items):
        n_atoms = item.anchor.num_nodes
        assert sizes[k] == n_atoms  # anchors first
        assert torch.equal(batch.graphs.x[batch.graphs.ptr[k] : batch.graphs.ptr[k + 1]], item.anchor.x)
        for j in range(p):  # anchor k's masked views are graphs b + k*p .. b + k*p + p - 1
            g = b + k * p + j
            view = batch.graphs.x[batch.graphs.ptr[g] : batch.graphs.ptr[g + 1]]
            assert torch.equal(view, item.mcd[j].x)
        for j in range(q):
            g = b + b * p + k * q + j
            assert sizes[g] == item.scd[j].num_nodes
            assert torch.equal(batch.graphs.x[batch.graphs.ptr[g] : batch.graphs.ptr[g + 1]], item.scd[j].x)
        g = b + b * p + b * q + k
        assert torch.equal(batch.graphs.x[batch.graphs.ptr[g] : batch.graphs.ptr[g + 1]], item.context.x)
    # every context centre points into its own context view, at the right atom
    ctx0 = b + b * p + b * q
    offset = 0
    for k, item in enumerate(items):
        centres = batch.context_centers[offset : offset + len(item.context.masked_centers)]
        offset += len(item.context.masked_centers)
        lo, hi = int(batch.graphs.ptr[ctx0 + k]), int(batch.graphs.ptr[ctx0 + k + 1])
        assert ((centres >= lo) & (centres < hi)).all()
        assert torch.equal(centres - lo, item.context.masked_centers)
    assert batch.num_anchor_atoms == sum(i.anchor.num_nodes for i in items)
    assert batch.scaffold_mask.numel() == batch.num_anchor_atoms
    assert batch.descriptors is not None and batch.descriptors.shape == (b, NUM_DESCRIPTORS)
    assert batch.motif.shape == (b, 86) and batch.fp.shape == (b, 512)


def test_scd_positives_are_resampled_each_epoch_among_stored_ones(corpus: PretrainCorpus) -> None:
    index = next(i for i in range(len(corpus)) if corpus[i].n_real == corpus.n_stored)
    dataset = ViewDataset(corpus, [index], n_mcd=1, n_scd=2, seed=0)
    drawn = set()
    for epoch in range(8):
        dataset.epoch = epoch
        drawn.add(tuple(tuple(g.x[:, 0].tolist()) for g in dataset[0].scd))
    assert len(drawn) > 1, "the same SCD positives in every epoch"


@pytest.mark.parametrize(
    "term",
    ["mcd", "scd", "cp_context", "cp_motif", "attn_mcd", "attn_scd", "knowledge_fp", "knowledge_descriptors"],
)
def test_each_loss_term_falls_when_overfitting_one_batch(corpus: PretrainCorpus, term: str) -> None:
    """Every term can teach: optimised alone on a fixed batch, it falls well below its start."""
    _, batch = _batch(corpus)
    module = _module(
        corpus,
        loss_weights={"knowledge": 0.1, "knowledge_from_epoch": 0},
        attention_reg="support_scaled",
        margin=1.5,  # a margin the random-init embeddings violate, so both distancing terms start active
    )
    opt = torch.optim.Adam(module.parameters(), lr=3e-3)
    values = []
    for _ in range(60):
        value = module.losses(batch)[term]
        values.append(float(value.detach()))
        opt.zero_grad()
        value.backward()
        opt.step()
    assert values[0] > 0
    assert min(values[-5:]) < 0.6 * values[0], f"{term}: {values[0]:.4f} -> {values[-1]:.4f}"


def test_motif_regression_reads_the_anchor_not_the_context_view(corpus: PretrainCorpus) -> None:
    _, batch = _batch(corpus, n=6)
    anchor = _module(corpus, motif_source="anchor")
    view = _module(corpus, motif_source="context_view")
    view.load_state_dict(anchor.state_dict())
    # the same weights give different motif losses: one reads the anchors, the other the masked views
    assert float(anchor.losses(batch)["cp_motif"]) != pytest.approx(float(view.losses(batch)["cp_motif"]))
    # and (BatchNorm on running statistics) the anchor one ignores how the context views are masked
    anchor.eval()
    _, other_epoch = _batch(corpus, n=6, epoch=3)
    motif_here = float(anchor.losses(batch)["cp_motif"])
    assert motif_here == pytest.approx(float(anchor.losses(other_epoch)["cp_motif"]), rel=1e-5)


def test_knowledge_term_starts_at_its_epoch_and_trains_both_heads(corpus: PretrainCorpus) -> None:
    _, batch = _batch(corpus, n=6)
    late = _module(corpus, loss_weights={"knowledge": 0.1, "knowledge_from_epoch": 5})
    assert "knowledge" not in late.losses(batch)  # epoch 0 < 5
    module = _module(corpus, loss_weights={"knowledge": 0.1, "knowledge_from_epoch": 0})
    terms = module.losses(batch)
    assert float(terms["knowledge"]) == pytest.approx(
        float(terms["knowledge_fp"]) + float(terms["knowledge_descriptors"]), rel=1e-5
    )
    terms["loss"].backward()
    for head in (module.knowledge_fp_head, module.knowledge_descriptor_head):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    off = _module(corpus, loss_weights={"knowledge": 0.0})
    assert off.knowledge_fp_head is None and "knowledge" not in off.losses(batch)


def test_linear_knowledge_head_reads_descriptors_straight_off_the_mixture(corpus: PretrainCorpus) -> None:
    _, batch = _batch(corpus, n=6)
    weights = {"knowledge": 1.0, "knowledge_from_epoch": 0}
    module = _module(corpus, loss_weights=weights, knowledge_head="linear")
    assert isinstance(module.knowledge_descriptor_head, torch.nn.Linear)
    module.losses(batch)["knowledge_descriptors"].backward()
    assert module.knowledge_descriptor_head.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="mlp"):
        _module(corpus, loss_weights={"knowledge": 1.0}, knowledge_head="deep")


def test_active_hinge_reduction_reaches_the_distancing_losses(corpus: PretrainCorpus) -> None:
    _, batch = _batch(corpus)
    plain = _module(corpus)
    active = _module(corpus, hinge_reduction="active")
    active.load_state_dict(plain.state_dict())
    plain_terms, active_terms = plain.losses(batch), active.losses(batch)
    for name in ("mcd", "scd"):
        fraction = float(plain_terms[f"diag/{name}_pair_active"])
        assert 0 < fraction < 1
        assert float(active_terms[name]) > float(plain_terms[name])  # divided by fewer than all pairs
    with pytest.raises(ValueError, match="active"):
        _module(corpus, hinge_reduction="sum")


def test_knowledge_without_descriptors_trains_the_fingerprint_and_warns(
    corpus: PretrainCorpus, caplog: pytest.LogCaptureFixture
) -> None:
    _, batch = _batch(corpus, n=6)
    batch.descriptors = None  # a corpus prepared with prepare.descriptors false
    module = _module(corpus, loss_weights={"knowledge": 0.1, "knowledge_from_epoch": 0})
    with caplog.at_level(logging.WARNING, logger="molchannel.pretrain.module"):
        terms = module.losses(batch)
    assert "knowledge_descriptors" not in terms and float(terms["knowledge"]) == float(terms["knowledge_fp"])
    assert "descriptors" in caplog.text


def test_diagnostics_report_active_fractions_and_backbone_gradients(corpus: PretrainCorpus) -> None:
    _, batch = _batch(corpus)
    module = _module(corpus, margin=100.0)  # every margin violated: everything active
    atoms = module.encoder.backbone(batch.graphs)
    terms = module.losses(batch, atoms)
    for name in ("mcd", "scd"):
        assert float(terms[f"diag/{name}_pair_active"]) == 1.0
        assert float(terms[f"diag/{name}_triplet_active"]) == 1.0
    norms = module.backbone_gradient_norms(terms, atoms)
    for name in ("mcd", "scd", "cp_context", "cp_motif", "attn_mcd", "attn_scd"):
        assert float(norms[f"diag/grad_{name}"]) > 0
    # the norms are those of the weighted terms: doubling a weight doubles the gradient
    module.weights.mcd = 2.0
    doubled = module.backbone_gradient_norms(module.losses(batch, atoms), atoms)
    assert float(doubled["diag/grad_mcd"]) == pytest.approx(2 * float(norms["diag/grad_mcd"]), rel=1e-4)
    quiet = _module(corpus, margin=0.0, triplet_gap=2.0)  # no margin, no triplet: nothing can be violated
    terms = quiet.losses(batch)
    assert float(terms["diag/mcd_triplet_active"]) == 0.0


def test_saturated_loss_warns_at_epoch_end(corpus: PretrainCorpus, caplog: pytest.LogCaptureFixture) -> None:
    module = _module(corpus, saturation_threshold=0.5)
    module._epoch_active = {"mcd_pair_active": [0.01, 0.02], "scd_pair_active": [0.9, 0.8]}
    with caplog.at_level(logging.WARNING, logger="molchannel.pretrain.module"):
        module.on_train_epoch_end()
    assert "mcd pair" in caplog.text and "scd pair" not in caplog.text


def test_unknown_options_are_rejected_with_the_allowed_values(corpus: PretrainCorpus) -> None:
    with pytest.raises(ValueError, match="softplus"):
        _module(corpus, hinge="square")
    with pytest.raises(ValueError, match="anchor"):
        _module(corpus, motif_source="somewhere")


def test_epoch_sampler_depends_on_seed_and_epoch_only() -> None:
    a, b = EpochShuffleSampler(50, seed=1), EpochShuffleSampler(50, seed=1)
    a.set_epoch(3)
    list(b)  # drawing an earlier epoch's order changes nothing
    b.set_epoch(3)
    assert list(a) == list(b) and sorted(a) == list(range(50))
    a.set_epoch(4)
    assert list(a) != list(b)
