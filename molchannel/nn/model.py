"""The complete network behind a model folder: encoder, channel mixing and optional head.

``MolChannelNet`` is what both applications train and what :func:`molchannel.load` rebuilds:
the multi-channel encoder, the prompt-selection weights ``w`` (one per channel, mixed as
``softmax(w / tau)``) and, after fine-tuning, a prediction head. Its constructor takes only
plain values, so the config round-trips through JSON/YAML.

A head's outputs depend on the mode, as chemprop's output transforms do: in training mode the
raw values the losses read (logits; standardised means and pre-softplus variances), in eval mode
the predictions (probabilities; means and variances in the targets' units, through the
:class:`TargetScaler` buffers that travel with the weights).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from molchannel.nn.encoder import EncoderConfig, EncoderOutput, MultiChannelEncoder, mix_channels


@dataclass
class HeadConfig:
    """Prediction head: Linear(D + F, hidden) - ReLU - Dropout - Linear(hidden, num_tasks).

    ``extra_features`` names molecule-level feature generators
    (:mod:`molchannel.chem.mol_features`); their ``extra_dim`` = F standardised values are
    concatenated with the channel mixture before the head (F = 0: the mixture alone).
    ``variance`` (regression): a mean-variance head, whose last layer gives ``2 * num_tasks``
    outputs, the means then the raw variances (:func:`molchannel.api.split_head_outputs`).
    ``task_type`` decides the eval-mode transform: sigmoid (classification) or the target scaler
    (regression). ``calibration`` (classification): the network holds per-task Platt scaling,
    ``sigmoid(a * logit + b)`` (:class:`ProbabilityCalibrator`), fitted on a validation split.
    """

    num_tasks: int
    hidden_dim: int = 300
    dropout: float = 0.0
    extra_features: list[str] = field(default_factory=list)
    extra_dim: int = 0
    variance: bool = False
    task_type: str = "regression"
    calibration: bool = False

    @property
    def output_dim(self) -> int:
        return self.num_tasks * (2 if self.variance else 1)

    def __post_init__(self) -> None:
        self.extra_features = list(self.extra_features)
        if self.task_type not in ("classification", "regression"):
            raise ValueError(
                f"head task_type must be 'classification' or 'regression', got {self.task_type!r}"
            )
        if self.variance and self.task_type != "regression":
            raise ValueError("a mean-variance head (variance: true) is for regression tasks only")
        if self.calibration and self.task_type != "classification":
            raise ValueError("probability calibration (calibration: true) is for classification tasks only")
        if bool(self.extra_features) != (self.extra_dim > 0):
            raise ValueError(
                f"head extra_features {self.extra_features} and extra_dim {self.extra_dim} disagree"
            )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HeadConfig:
        """Inverse of ``asdict``; missing keys take defaults, unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown HeadConfig key(s) {unknown}; valid keys are {sorted(known)}")
        return cls(**d)


@dataclass
class NetConfig:
    encoder: EncoderConfig
    tau: float = 1.0
    head: HeadConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        head = None if self.head is None else asdict(self.head)
        if head is not None and not head["calibration"]:
            del head["calibration"]  # added later: model folders without calibration stay as they were
        return {"encoder": self.encoder.to_dict(), "tau": self.tau, "head": head}

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


class FeatureScaler(nn.Module):
    """Standardises raw molecule features with the training rows' statistics (buffers, so they travel
    in the model folder's weights): ``clamp((x - mean) / std, -clip, clip)``, NaN -> 0 (the mean)."""

    mean: Tensor
    std: Tensor

    def __init__(self, dim: int, clip: float = 6.0) -> None:
        super().__init__()
        self.clip = clip
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, features: Tensor | Any) -> dict[str, int]:
        """Set mean and std from raw training features ``[N, F]`` (NaN / inf ignored; a constant column
        gets std 1). Returns counts for a report: columns with any non-finite value, constant columns."""
        x = torch.as_tensor(features, dtype=torch.float64)
        finite = torch.isfinite(x)
        x = torch.where(finite, x, torch.zeros_like(x))
        count = finite.sum(0).clamp(min=1)
        mean = x.sum(0) / count
        var = (torch.where(finite, x - mean, torch.zeros_like(x)) ** 2).sum(0) / count
        std = var.sqrt()
        constant = std < 1e-6
        self.mean.copy_(mean.float())
        self.std.copy_(torch.where(constant, torch.ones_like(std), std).float())
        return {"nonfinite_columns": int((~finite).any(0).sum()), "constant_columns": int(constant.sum())}

    def forward(self, features: Tensor) -> Tensor:
        z = (features - self.mean) / self.std
        return torch.nan_to_num(z, nan=0.0, posinf=self.clip, neginf=-self.clip).clamp(-self.clip, self.clip)

    def extra_repr(self) -> str:
        return f"dim={self.mean.numel()}, clip={self.clip}"


# Smallest Platt scale: where the validation ranking is poor the log-loss optimum is a -> 0, which would
# squeeze float32 probabilities into ties and so change the ranking (ROC-AUC) it must keep.
MIN_PLATT_SCALE = 0.05
# Labelled validation molecules of each class a task needs before its probabilities are rescaled.
MIN_PLATT_CLASS_COUNT = 5


def _fit_platt(logits: Tensor, target: Tensor, steps: int) -> tuple[float, float]:
    """``(a, b)`` minimising the log-loss of ``sigmoid(a * logits + b)`` against ``target``, with
    ``a >= MIN_PLATT_SCALE``."""
    free = torch.zeros((), dtype=torch.float64, requires_grad=True)  # a = MIN + (1 - MIN) * exp(free)
    shift = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([free, shift], max_iter=steps, line_search_fn="strong_wolfe")

    def scale() -> Tensor:
        return MIN_PLATT_SCALE + (1.0 - MIN_PLATT_SCALE) * free.exp()

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(scale() * logits + shift, target)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]
    return float(scale().detach()), float(shift.detach())


def logits_of(probabilities: Any) -> Any:
    """float64 log-odds of probabilities (clipped to [1e-7, 1 - 1e-7]): what :class:`ProbabilityCalibrator`
    is fitted on when only a model's probabilities are at hand."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


class ProbabilityCalibrator(nn.Module):
    """Platt scaling per task, ``p = sigmoid(scale * logit + shift)``, as buffers of the network.

    ``scale`` stays positive, so the ranking of molecules (ROC-AUC) is unchanged and only the
    probabilities move. Fitted on held-out rows (:meth:`fit`); identity until then.
    """

    scale: Tensor
    shift: Tensor

    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(num_tasks))
        self.register_buffer("shift", torch.zeros(num_tasks))

    def fit(
        self,
        logits: Tensor | Any,
        labels: Tensor | Any,
        steps: int = 200,
        min_count: int = MIN_PLATT_CLASS_COUNT,
    ) -> list[bool]:
        """Per task, minimise the log-loss of ``sigmoid(a * logit + b)`` over the labelled rows of
        ``logits`` / ``labels`` ``[n, T]`` (NaN labels skipped), with Platt's smoothed targets
        ``(n+ + 1) / (n+ + 2)`` and ``1 / (n- + 2)`` against over-confidence on small sets, and
        ``a >= MIN_PLATT_SCALE``. A task with fewer than ``min_count`` labelled molecules of either
        class keeps the identity. Returns which tasks were fitted."""
        z = torch.as_tensor(logits, dtype=torch.float64)
        y = torch.as_tensor(labels, dtype=torch.float64)
        fitted = []
        for t in range(z.shape[1]):
            keep = ~torch.isnan(y[:, t]) & torch.isfinite(z[:, t])
            zt, yt = z[keep, t], y[keep, t]
            positives = int((yt > 0.5).sum())
            negatives = len(yt) - positives
            if min(positives, negatives) < max(min_count, 1):
                fitted.append(False)
                continue
            target = torch.where(yt > 0.5, (positives + 1.0) / (positives + 2.0), 1.0 / (negatives + 2.0))
            scale, shift = _fit_platt(zt, target, steps)
            self.scale[t] = scale
            self.shift[t] = shift
            fitted.append(True)
        return fitted

    def forward(self, logits: Tensor) -> Tensor:
        return logits * self.scale.to(logits.dtype) + self.shift.to(logits.dtype)

    def extra_repr(self) -> str:
        return f"num_tasks={self.scale.numel()}"


# Smallest predicted variance of a mean-variance head, in standardised target units (keeps the
# Gaussian likelihood finite).
MIN_VARIANCE = 1e-6


def raw_variances(raw: Tensor) -> Tensor:
    """Pre-softplus outputs of a mean-variance head -> variances in standardised units."""
    return nn.functional.softplus(raw) + MIN_VARIANCE


class TargetScaler(nn.Module):
    """Regression targets' per-task training mean and std as buffers, so that they are part of the
    weights: the head learns ``(y - mean) / std`` and predicts in the targets' units in eval mode."""

    mean: Tensor
    std: Tensor

    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(num_tasks))
        self.register_buffer("std", torch.ones(num_tasks))

    def fit(self, targets: Tensor | Any) -> TargetScaler:
        """Set mean and std from training labels ``[n, T]`` (NaN ignored); a constant or unlabelled
        task gets std 1 (and an unlabelled one mean 0)."""
        y = torch.as_tensor(targets, dtype=torch.float64)
        labelled = ~torch.isnan(y)
        count = labelled.sum(0)
        filled = torch.where(labelled, y, torch.zeros_like(y))
        mean = filled.sum(0) / count.clamp(min=1)
        var = (torch.where(labelled, y - mean, torch.zeros_like(y)) ** 2).sum(0) / count.clamp(min=1)
        std = var.sqrt()
        self.mean.copy_(mean.float())
        self.std.copy_(torch.where((count > 1) & (std > 1e-12), std, torch.ones_like(std)).float())
        return self

    def transform(self, y: Tensor) -> Tensor:
        """Targets -> standardised targets."""
        return (y - self.mean) / self.std

    def inverse(self, z: Tensor) -> Tensor:
        """Standardised values -> the targets' units."""
        return z * self.std + self.mean

    def extra_repr(self) -> str:
        return f"num_tasks={self.mean.numel()}"


class MolChannelNet(nn.Module):
    def __init__(self, config: NetConfig | dict[str, Any]) -> None:
        super().__init__()
        if isinstance(config, dict):
            config = NetConfig.from_dict(config)
        self.config = config
        self.encoder = MultiChannelEncoder(config.encoder)
        self.mixing = ChannelMixer(len(self.encoder.channel_names), config.tau)
        self.head: nn.Module | None = None
        self.extra_scaler: FeatureScaler | None = None
        self.target_scaler: TargetScaler | None = None
        self.calibrator: ProbabilityCalibrator | None = None
        if config.head is not None:
            if config.head.task_type == "regression":
                self.target_scaler = TargetScaler(config.head.num_tasks)
            if config.head.calibration:
                self.calibrator = ProbabilityCalibrator(config.head.num_tasks)
            dim = config.encoder.hidden_dim + config.head.extra_dim
            if config.head.extra_dim:
                self.extra_scaler = FeatureScaler(config.head.extra_dim)
            self.head = nn.Sequential(
                nn.Linear(dim, config.head.hidden_dim),
                nn.ReLU(),
                nn.Dropout(config.head.dropout),
                nn.Linear(config.head.hidden_dim, config.head.output_dim),
            )

    @property
    def channel_names(self) -> list[str]:
        return list(self.encoder.channel_names)

    def encode(self, batch: Any) -> EncoderOutput:
        return self.encoder(batch)

    def stack(self, output: EncoderOutput) -> Tensor:
        """[B, K, D] channel embeddings in ``channel_names`` order."""
        return self.encoder.stack(output)

    @property
    def extra_features(self) -> list[str]:
        """Molecule feature generators the head reads (``batch.mol_features``); empty for most models."""
        return [] if self.config.head is None else list(self.config.head.extra_features)

    def forward(self, batch: Any) -> Tensor:
        """Mixed embedding [B, D], or head outputs [B, T] ([B, 2T] for a mean-variance head: means,
        then variances): raw in training mode, predictions in eval mode (see the module docstring)."""
        mixed = self.mixing(self.stack(self.encode(batch)))
        if self.head is None:
            return mixed
        if self.extra_scaler is not None:
            features = getattr(batch, "mol_features", None)
            if features is None:
                raise ValueError(
                    f"this model's head reads molecule features {self.extra_features} but the batch has "
                    "no mol_features; predict through molchannel.load(MODEL).predict, which computes them"
                )
            mixed = torch.cat([mixed, self.extra_scaler(features.to(mixed.dtype))], dim=1)
        outputs = self.head(mixed)
        return outputs if self.training else self.predictions(outputs)

    def predictions(self, raw: Tensor) -> Tensor:
        """Raw head outputs -> predictions: probabilities, or means (and variances) in target units."""
        head = self.config.head
        assert head is not None
        if head.task_type == "classification":
            return torch.sigmoid(raw if self.calibrator is None else self.calibrator(raw))
        assert self.target_scaler is not None
        scaler = self.target_scaler
        if not head.variance:
            return scaler.inverse(raw.to(scaler.mean.dtype)).to(raw.dtype)
        t = head.num_tasks
        means = scaler.inverse(raw[..., :t].to(scaler.mean.dtype))
        variances = raw_variances(raw[..., t:].to(scaler.mean.dtype)) * scaler.std**2
        return torch.cat([means, variances], dim=-1).to(raw.dtype)
