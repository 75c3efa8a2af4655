"""The pre-training LightningModule: one encoder, K channels, one loss per channel (METHOD.md 5).

Channel roles are configurable: ``mcd_channel`` is trained by molecule distancing on
subgraph-masked views, ``scd_channel`` by scaffold distancing on scaffold-invariant
perturbations, ``cp_channel`` by context prediction (masked atom-context classes plus motif
regression). Every constructor argument is a plain value, so checkpoints load with
``weights_only=True`` and the hyper-parameters round-trip through YAML.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from molchannel.nn.encoder import MultiChannelEncoder, encoder_config_for
from molchannel.pretrain.data import PretrainBatch
from molchannel.pretrain.losses import (
    LossWeights,
    adaptive_margin_loss,
    attention_uniform_loss,
    context_loss,
    motif_loss,
)
from molchannel.pretrain.targets import tanimoto_distance_matrix

MOTIF_DIM = 86  # 85 RDKit fr_* counts + QED


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
    """

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
        self.encoder = MultiChannelEncoder(config)
        dim = config.hidden_dim
        self.context_head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, vocab_size))
        self.motif_head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, MOTIF_DIM))
        self.weights = LossWeights.from_dict(dict(loss_weights or {}))
        # Knowledge term (reference: from epoch 20 on): a uniform channel mixture predicts the molecule's
        # Morgan fingerprint. The reference also regresses ~200 RDKit descriptors; that part is omitted.
        self.knowledge_head = nn.Linear(dim, fp_bits) if self.weights.knowledge > 0 else None

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    def on_train_epoch_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "set_epoch"):
            datamodule.set_epoch(self.current_epoch)

    def losses(self, batch: PretrainBatch) -> dict[str, Tensor]:
        """Every loss term of one batch (the total under ``"loss"``)."""
        hp = self.hparams
        graphs = batch.graphs
        b, p, q = batch.num_anchors, batch.n_mcd, batch.n_scd
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
        mcd_loss = adaptive_margin_loss(
            mcd[:b],
            mcd[b:].view(b, p, dim),
            tanimoto_distance_matrix(batch.fp),
            hp.margin,
            hp.triplet_gap,
            hp.max_triplets,
        )
        scd_loss = adaptive_margin_loss(
            scd_anchor.graph.float(),
            scd_pos.graph.float().view(b, q, dim),
            tanimoto_distance_matrix(batch.scaffold_fp),
            hp.margin,
            hp.triplet_gap,
            hp.max_triplets,
        )
        # context prediction: masked centres' classes and the view's motifs
        ctx_atom0 = int(graphs.ptr[ctx_start])
        center_atoms = cp_out.atoms[batch.context_centers - ctx_atom0]
        ctx = context_loss(self.context_head(center_atoms).float(), batch.context_labels)
        motif = motif_loss(self.motif_head(cp_out.graph).float(), batch.motif)
        # attention regularisers on the anchors' atoms
        n_atoms = batch.num_anchor_atoms
        anchor_batch = graphs.batch[:n_atoms]
        attn_mcd = attention_uniform_loss(mcd_out.attention[:n_atoms].float(), anchor_batch, None, b)
        attn_scd = attention_uniform_loss(scd_anchor.attention.float(), anchor_batch, batch.scaffold_mask, b)
        knowledge = None
        if self.knowledge_head is not None and self.weights.knowledge_active(self.current_epoch):
            channels = [mcd[:b], scd_anchor.graph]
            channels += [self.encoder.readout(hp.cp_channel, atoms, graphs, (0, b)).graph]
            logits = self.knowledge_head(torch.stack(channels, dim=1).mean(dim=1)).float()
            knowledge = F.binary_cross_entropy_with_logits(logits, batch.fp)
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
        }
        if knowledge is not None:
            terms["knowledge"] = knowledge
        return terms

    def _log_terms(self, stage: str, terms: dict[str, Tensor], batch_size: int) -> None:
        on_step = stage == "train"
        for name, value in terms.items():
            self.log(
                f"{stage}/{name}",
                value.detach(),
                on_step=on_step,
                on_epoch=True,
                batch_size=batch_size,
                prog_bar=name == "loss",
                sync_dist=not on_step,
            )

    def training_step(self, batch: PretrainBatch, batch_idx: int) -> Tensor:
        terms = self.losses(batch)
        self._log_terms("train", terms, batch.num_anchors)
        return terms["loss"]

    def validation_step(self, batch: PretrainBatch, batch_idx: int) -> None:
        self._log_terms("val", self.losses(batch), batch.num_anchors)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        if isinstance(batch, PretrainBatch):
            return batch.to(device)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)
