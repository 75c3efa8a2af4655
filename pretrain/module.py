"""The pre-training LightningModule: one encoder, K channels, one loss per channel (METHOD.md 5).

Channel roles are configurable: ``mcd_channel`` is trained by molecule distancing on
subgraph-masked views, ``scd_channel`` by scaffold distancing on scaffold-invariant
perturbations, ``cp_channel`` by context prediction (masked atom-context classes plus motif
regression). Every constructor argument is a plain value, so checkpoints load with
``weights_only=True`` and the hyper-parameters round-trip through YAML.

Every deviation from the reference code is a named option whose reference value is listed in
``docs/method.md``; the CPU recipe (``configs/pretrain/cpu.yaml``) sets the measured choices.

Diagnostics: each training step logs, per distancing loss, the fraction of pair hinges and
triplets still active (``diag/<loss>_pair_active``, ``diag/<loss>_triplet_active``); every
``diagnostics_every_n_steps`` steps, the norm of the gradient each loss term sends into the
backbone's atom embeddings (``diag/grad_<term>``). At the end of each training epoch a loss whose
active fraction fell below ``saturation_threshold`` gets a warning: it has stopped teaching.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from molchannel.nn.encoder import MultiChannelEncoder, encoder_config_for
from molchannel.pretrain.data import PretrainBatch
from molchannel.pretrain.losses import (
    HINGE_REDUCTIONS,
    HINGES,
    LossWeights,
    adaptive_margin_loss,
    attention_uniform_loss,
    context_loss,
    motif_loss,
)
from molchannel.pretrain.targets import NUM_DESCRIPTORS, NUM_MOTIF_TARGETS, tanimoto_distance_matrix

log = logging.getLogger(__name__)

MOTIF_DIM = NUM_MOTIF_TARGETS  # 85 RDKit fr_* counts + QED
MOTIF_SOURCES = ("anchor", "context_view")
ATTENTION_REG_MODES = ("reference", "support_scaled")
# The knowledge term's descriptor head: the reference's two-layer MLP, or one linear layer, which makes the
# embedding itself carry the descriptors linearly (what a linear probe or a small head reads).
KNOWLEDGE_HEADS = ("mlp", "linear")
# loss terms whose gradient into the backbone is measured, with the weight each is added with
_GRAD_TERMS = ("mcd", "scd", "cp_context", "cp_motif", "attn_mcd", "attn_scd", "knowledge")


class MCLPretrainModule(L.LightningModule):
    """Prompt-guided multi-channel pre-training.

    Args:
        encoder: :class:`~molchannel.nn.encoder.EncoderConfig` as a dict (backbone, sizes, channels).
        featurizer: the featurization the corpus was prepared with (saved into exported models).
        vocab_size: atom-context classes (linked from the data module by the CLI).
        mcd_channel / scd_channel / cp_channel: which channel each task trains.
        margin / triplet_gap / max_triplets: adaptive-margin loss settings (0.8, 0.3, B^2).
        loss_weights: :class:`~molchannel.pretrain.losses.LossWeights` as a dict.
        lr / weight_decay: Adam (5e-4, 1e-6 in the reference).
        fp_bits: Morgan fingerprint length of the corpus (the knowledge term's target).
        triplet_weight: factor on the triplet part of both distancing losses (reference 1).
        hinge / hinge_temperature: ``relu`` (reference) or ``softplus`` hinge of the distancing
            losses, see :func:`~molchannel.pretrain.losses.hinge_fn`.
        hinge_reduction: ``all`` (reference: mean over every pair / triplet) or ``active``
            (normalised by the violated hinges, so the term keeps teaching as most pairs become
            satisfied), see :func:`~molchannel.pretrain.losses.reduce_hinges`.
        motif_source: graphs the motif regression reads: ``anchor`` (the reference) or
            ``context_view`` (the context-masked view; this project's first releases).
        attention_reg: ``reference`` (smooth-L1 on raw attention weights) or ``support_scaled``
            (weights in units of the uniform weight, see
            :func:`~molchannel.pretrain.losses.attention_uniform_loss`).
        knowledge_descriptors: the knowledge term also regresses the corpus's 118 normalised RDKit
            descriptors (the reference does; needs a corpus prepared with descriptors).
        knowledge_head: the descriptor head, ``mlp`` (the reference: Linear-ReLU-Linear) or
            ``linear`` (the embedding must hold the descriptors linearly).
        diagnostics_every_n_steps: how often the per-term backbone gradient norms are measured
            (0: never; active fractions are logged every step regardless).
        saturation_threshold: warn when a distancing loss's mean active fraction over an epoch
            falls below this.
    """

    @property
    def _hp(self) -> Any:
        """``self.hparams``, Lightning's AttributeDict (typed as a plain mapping), for attribute access."""
        return self.hparams

    def __init__(
        self,
        encoder: dict[str, Any] | None = None,
        featurizer: str = "basic",
        vocab_size: int = 2,
        mcd_channel: str = "molsim",
        scd_channel: str = "scaffsim",
        cp_channel: str = "context",
        margin: float = 0.8,
        triplet_gap: float = 0.3,
        max_triplets: int | None = None,
        loss_weights: dict[str, float] | None = None,
        lr: float = 5e-4,
        weight_decay: float = 1e-6,
        fp_bits: int = 512,
        triplet_weight: float = 1.0,
        hinge: str = "relu",
        hinge_temperature: float = 0.1,
        hinge_reduction: str = "all",
        motif_source: str = "anchor",
        attention_reg: str = "reference",
        knowledge_descriptors: bool = True,
        knowledge_head: str = "mlp",
        diagnostics_every_n_steps: int = 50,
        saturation_threshold: float = 0.05,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        config = encoder_config_for(dict(encoder or {}), featurizer)
        for role, name in (("mcd", mcd_channel), ("scd", scd_channel), ("cp", cp_channel)):
            if name not in config.channels:
                raise ValueError(
                    f"{role}_channel {name!r} is not one of the encoder's channels {list(config.channels)}"
                )
        if cp_channel not in config.atom_channels:
            raise ValueError(f"cp_channel {cp_channel!r} must be listed in the encoder's atom_channels")
        for option, value, allowed in (
            ("hinge", hinge, HINGES),
            ("hinge_reduction", hinge_reduction, HINGE_REDUCTIONS),
            ("motif_source", motif_source, MOTIF_SOURCES),
            ("attention_reg", attention_reg, ATTENTION_REG_MODES),
            ("knowledge_head", knowledge_head, KNOWLEDGE_HEADS),
        ):
            if value not in allowed:
                raise ValueError(f"model.{option} must be one of {list(allowed)}, got {value!r}")
        self.encoder = MultiChannelEncoder(config)
        dim = config.hidden_dim
        self.context_head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, vocab_size))
        self.motif_head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, MOTIF_DIM))
        self.weights = LossWeights.from_dict(dict(loss_weights or {}))
        # Knowledge term (reference: weight 0.1 from epoch 20 on): the uniform mixture of the anchors'
        # channel embeddings (what `embed` returns) predicts the molecule's Morgan fingerprint and its
        # normalised RDKit descriptors.
        self.knowledge_fp_head: nn.Module | None = None
        self.knowledge_descriptor_head: nn.Module | None = None
        if self.weights.knowledge > 0:
            self.knowledge_fp_head = nn.Linear(dim, fp_bits)
            if knowledge_descriptors and knowledge_head == "linear":
                self.knowledge_descriptor_head = nn.Linear(dim, NUM_DESCRIPTORS)
            elif knowledge_descriptors:
                self.knowledge_descriptor_head = nn.Sequential(
                    nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, NUM_DESCRIPTORS)
                )
        self._epoch_active: dict[str, list[float]] = {}
        self._warned_no_descriptors = False

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self._hp.lr, weight_decay=self._hp.weight_decay)

    def on_train_epoch_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "set_epoch"):
            datamodule.set_epoch(self.current_epoch)

    def losses(self, batch: PretrainBatch, atoms: Tensor | None = None) -> dict[str, Tensor]:
        """Every loss term of one batch (the total under ``"loss"``) and its diagnostics.

        Keys starting with ``diag/`` are diagnostics (no gradient). Pass ``atoms`` (the backbone's
        output for ``batch.graphs``) to reuse it, e.g. to differentiate the terms with respect to it.
        """
        hp = self._hp
        graphs = batch.graphs
        b, p, q = batch.num_anchors, batch.n_mcd, batch.n_scd
        if atoms is None:
            atoms = self.encoder.backbone(graphs)
        # Each channel is read out only on the graphs its loss uses: anchors + MCD views for the
        # molecule channel, anchors + SCD positives for the scaffold channel, the context views
        # for the context channel. Graphs are ordered anchors | MCD | SCD | context.
        scd_start, ctx_start = b + b * p, b + b * p + b * q
        mcd_out = self.encoder.readout(hp.mcd_channel, atoms, graphs, (0, scd_start))
        scd_anchor = self.encoder.readout(hp.scd_channel, atoms, graphs, (0, b))
        scd_pos = self.encoder.readout(hp.scd_channel, atoms, graphs, (scd_start, ctx_start))
        cp_out = self.encoder.readout(hp.cp_channel, atoms, graphs, (ctx_start, ctx_start + b))
        mcd = mcd_out.graph.float()
        dim = mcd.size(-1)
        margin_options = dict(
            margin=hp.margin,
            triplet_gap=hp.triplet_gap,
            max_triplets=hp.max_triplets,
            triplet_weight=hp.triplet_weight,
            hinge=hp.hinge,
            hinge_temperature=hp.hinge_temperature,
            hinge_reduction=hp.hinge_reduction,
        )
        mcd_loss = adaptive_margin_loss(
            mcd[:b], mcd[b:].view(b, p, dim), tanimoto_distance_matrix(batch.fp), **margin_options
        )
        scd_loss = adaptive_margin_loss(
            scd_anchor.graph.float(),
            scd_pos.graph.float().view(b, q, dim),
            tanimoto_distance_matrix(batch.scaffold_fp),
            **margin_options,
        )
        # context prediction: masked centres' classes from the context view; motifs from the anchor
        # (reference) or from the context view
        ctx_atom0 = int(graphs.ptr[ctx_start])
        assert cp_out.atoms is not None  # the context channel is built with atom_output=True
        center_atoms = cp_out.atoms[batch.context_centers - ctx_atom0]
        ctx = context_loss(self.context_head(center_atoms).float(), batch.context_labels)
        cp_anchor = None
        if hp.motif_source == "anchor" or self.knowledge_fp_head is not None:
            cp_anchor = self.encoder.readout(hp.cp_channel, atoms, graphs, (0, b)).graph
        motif_input = cp_anchor if hp.motif_source == "anchor" else cp_out.graph
        motif = motif_loss(self.motif_head(motif_input).float(), batch.motif)
        # attention regularisers on the anchors' atoms
        n_atoms = batch.num_anchor_atoms
        anchor_batch = graphs.batch[:n_atoms]
        scaled = hp.attention_reg == "support_scaled"
        attn_mcd = attention_uniform_loss(
            mcd_out.attention[:n_atoms].float(), anchor_batch, None, b, scale_by_support=scaled
        )
        attn_scd = attention_uniform_loss(
            scd_anchor.attention.float(), anchor_batch, batch.scaffold_mask, b, scale_by_support=scaled
        )
        knowledge = None
        terms: dict[str, Tensor] = {}
        if self.knowledge_fp_head is not None and self.weights.knowledge_active(self.current_epoch):
            assert cp_anchor is not None
            mixture = torch.stack([mcd[:b], scd_anchor.graph.float(), cp_anchor.float()], dim=1).mean(dim=1)
            fp_term = F.binary_cross_entropy_with_logits(self.knowledge_fp_head(mixture).float(), batch.fp)
            knowledge = fp_term
            terms["knowledge_fp"] = fp_term
            if self.knowledge_descriptor_head is not None:
                if batch.descriptors is not None:
                    pred = self.knowledge_descriptor_head(mixture).float()
                    descriptor_term = motif_loss(pred, batch.descriptors.float())
                    terms["knowledge_descriptors"] = descriptor_term
                    knowledge = fp_term + descriptor_term
                elif not self._warned_no_descriptors:
                    self._warned_no_descriptors = True
                    log.warning(
                        "the knowledge term regresses RDKit descriptors, but this corpus has none: only the "
                        "fingerprint part is trained. Prepare the corpus again (descriptors are stored by "
                        "default) or set model.knowledge_descriptors false"
                    )
        cp_loss = (ctx + motif) / 2
        total = self.weights.combine(
            mcd=mcd_loss.total,
            scd=scd_loss.total,
            cp=cp_loss,
            attn_mcd=attn_mcd,
            attn_scd=attn_scd,
            knowledge=knowledge,
            epoch=self.current_epoch,
        )
        terms = {
            "loss": total,
            "mcd": mcd_loss.total,
            "scd": scd_loss.total,
            "cp": cp_loss,
            "cp_context": ctx,
            "cp_motif": motif,
            "attn_mcd": attn_mcd,
            "attn_scd": attn_scd,
            **terms,
        }
        if knowledge is not None:
            terms["knowledge"] = knowledge
        with torch.no_grad():
            for name, part in (("mcd", mcd_loss), ("scd", scd_loss)):
                terms[f"diag/{name}_pair_active"] = part.pair_active.detach()
                terms[f"diag/{name}_triplet_active"] = part.triplet_active.detach()
            anchors_z = F.normalize(mcd[:b].detach(), dim=-1)
            off = ~torch.eye(b, dtype=torch.bool, device=anchors_z.device)
            if b > 1:
                terms["diag/mcd_anchor_distance"] = torch.cdist(anchors_z, anchors_z)[off].mean()
        return terms

    def term_weight(self, name: str) -> float:
        """The factor a loss term enters the total with (the CP halves included)."""
        w = self.weights
        return {
            "mcd": w.mcd,
            "scd": w.scd,
            "cp_context": w.cp / 2,
            "cp_motif": w.cp / 2,
            "attn_mcd": w.attn_reg,
            "attn_scd": w.attn_reg,
            "knowledge": w.knowledge,
        }[name]

    def backbone_gradient_norms(self, terms: dict[str, Tensor], atoms: Tensor) -> dict[str, Tensor]:
        """Norm of the gradient each weighted loss term sends into the backbone's atom embeddings."""
        norms: dict[str, Tensor] = {}
        for name in _GRAD_TERMS:
            term = terms.get(name)
            if term is None or not term.requires_grad:
                continue
            (grad,) = torch.autograd.grad(
                term * self.term_weight(name), atoms, retain_graph=True, allow_unused=True
            )
            norms[f"diag/grad_{name}"] = (
                torch.linalg.vector_norm(grad.float()) if grad is not None else atoms.new_zeros(())
            )
        return norms

    def _log_terms(self, stage: str, terms: dict[str, Tensor], batch_size: int) -> None:
        on_step = stage == "train"
        for name, value in terms.items():
            # training diagnostics are logged as diag/...; validation ones as val/diag/...
            key = name if name.startswith("diag/") and on_step else f"{stage}/{name}"
            self.log(
                key,
                value.detach(),
                on_step=on_step,
                on_epoch=True,
                batch_size=batch_size,
                prog_bar=name == "loss",
                sync_dist=not on_step,
            )

    def training_step(self, batch: PretrainBatch, batch_idx: int) -> Tensor:
        atoms = self.encoder.backbone(batch.graphs)
        terms = self.losses(batch, atoms)
        every = self._hp.diagnostics_every_n_steps
        if every and self.global_step % every == 0:
            terms.update(self.backbone_gradient_norms(terms, atoms))
        for name in ("mcd_pair_active", "mcd_triplet_active", "scd_pair_active", "scd_triplet_active"):
            self._epoch_active.setdefault(name, []).append(float(terms[f"diag/{name}"]))
        self._log_terms("train", terms, batch.num_anchors)
        return terms["loss"]

    def on_train_epoch_end(self) -> None:
        threshold = self._hp.saturation_threshold
        for name, values in sorted(self._epoch_active.items()):
            mean = sum(values) / max(len(values), 1)
            if values and mean < threshold and self.global_rank == 0:
                log.warning(
                    "epoch %d: only %.1f%% of %s hinges are active (threshold %.0f%%): this distancing loss "
                    "has almost stopped teaching. Consider model.hinge_reduction active (keeps the gradient "
                    "of the violated hinges), a larger model.margin or model.hinge softplus",
                    self.current_epoch,
                    100 * mean,
                    name.replace("_active", "").replace("_", " "),
                    100 * threshold,
                )
        self._epoch_active = {}

    def validation_step(self, batch: PretrainBatch, batch_idx: int) -> None:
        self._log_terms("val", self.losses(batch), batch.num_anchors)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        if isinstance(batch, PretrainBatch):
            return batch.to(device)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)
