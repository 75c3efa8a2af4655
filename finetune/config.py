"""Fine-tuning configuration: plain-value dataclasses that round-trip through YAML.

The defaults below are ``configs/finetune/base.yaml`` (a test keeps the two equal); a dataset file
such as ``configs/finetune/bbbp.yaml`` holds only what differs. Learning rates, temperature and
gradient clipping default to the MCL reference's BBBP recipe (Adam, weight decay 1e-6, cosine
annealing per epoch to eta_min 1e-4, batch 32; METHOD.md section 6), except three values chosen on
validation metrics (BENCHMARKS.md, "Fine-tuning defaults sweep" and "Fine-tuning against chemprop
v2"): the prompt learning rate (0.05; the reference's 5e-4 leaves the channel weights at uniform),
early stopping (patience 20; the reference trains every epoch) and the RDKit descriptors beside the
channel mixture (``model.extra_features: [rdkit2d]``; the reference's head reads the mixture alone).
Setting ``optim.lr_prompt: 5.0e-4``, ``optim.early_stopping: null`` and ``model.extra_features: []``
gives the reference's recipe back.
"""

from __future__ import annotations

import copy
import json
import numbers
import os
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from molchannel.chem.mol_features import check_mol_features

PROMPT_INITS = ("uniform", "given", "rogi")
SPLITS = ("auto", "scaffold", "random_scaffold", "random", "column")
TASK_TYPES = ("classification", "regression")


@dataclass
class DataConfig:
    """Which molecules, how they are split, how they are batched.

    Args:
        dataset: registered benchmark (``molchannel.data.list_datasets()``).
        path: your own CSV/TSV (optionally .gz) instead of ``dataset``; needs ``task_type``.
        smiles_col: SMILES column of ``path``.
        targets: label columns of ``path`` (null: every column but the SMILES column and, with
            ``split: column``, the split column).
        task_type: classification or regression (for ``path``; null for a registered dataset).
        split: auto (the benchmark's own split: MoleculeNet scaffold 80/10/10, MoleculeACE official
            test set; a scaffold split for ``path``), scaffold, random_scaffold, random, or column
            (your own split: ``split_col`` of ``path`` says train, valid or test for each row).
        split_col: the split column of ``path`` for ``split: column``; values train, valid (or val,
            validation) and test, case-insensitive. Valid rows are needed (they select the best
            epoch); without test rows the test metric is NaN.
        valid_frac: validation fraction (MoleculeACE auto: of the training rows; not used by column).
        test_frac: test fraction of the scaffold/random splits (not used by auto on a benchmark, nor by
            column); 0 gives no test set (the test metric is then NaN).
        limit: keep only the first N rows (tests, quick looks).
        batch_size: molecules per batch.
        num_workers: DataLoader worker processes.
        cache_dir: featurized-graph cache (null: $MOLCHANNEL_CACHE_DIR/graphs or ~/.cache/molchannel/graphs).
    """

    dataset: str | None = "bbbp"
    path: str | None = None
    smiles_col: str = "smiles"
    targets: list[str] | None = None
    task_type: str | None = None
    split: str = "auto"
    split_col: str = "split"
    valid_frac: float = 0.1
    test_frac: float = 0.1
    limit: int | None = None
    batch_size: int = 32
    num_workers: int = 0
    cache_dir: str | None = None


@dataclass
class ModelConfig:
    """Starting model and prediction head.

    Args:
        pretrained: model folder to start from, or "default" (the shipped model).
        scratch: same architecture, random initial weights (the no-pre-training baseline).
        tau: prompt temperature: channels are mixed with softmax(w / tau).
        head_hidden: hidden width of the head Linear(D, hidden)-ReLU-Dropout-Linear(hidden, T).
        dropout: dropout in the head (the Dropout before its last Linear).
        backbone_dropout: dropout after every backbone layer while fine-tuning (null: the starting
            model's own value, 0 for the shipped one). Not used with ``optim.freeze_backbone``.
        extra_features: molecule-level features concatenated with the channel mixture before the
            head, e.g. [rdkit2d] or [rdkit2d, morgan_counts] (``molchannel.chem.mol_features``);
            standardised with the training rows' statistics, which the model folder keeps.
            Default [rdkit2d]: better on the validation split of all five datasets measured
            (BENCHMARKS.md); [] is the MCL reference (the channel mixture alone).
        variance_head: regression only: the head also predicts a variance per task and trains on
            the Gaussian negative log-likelihood instead of the squared error (a mean-variance
            head); ``predict(return_std=True)`` then gives the predicted spread.
        kernel_blend: regression: ``ecfp_svr`` also fits an ECFP4 support-vector regressor per task
            on the training split (MoleculeACE's search) and predicts ``w * network + (1 - w) * svr``,
            ``w`` chosen on the validation split; the model folder carries the SVR
            (``molchannel.kernel_member``). Classification: ``ecfp_svc``, a Tanimoto SVC on ECFP4 bits
            per task whose Platt-scaled probability is blended the same way. Null (default): the
            network alone.
        calibration: classification only: ``platt`` (default) fits Platt scaling per task,
            ``sigmoid(a * logit + b)`` with ``a > 0``, on the validation split after training and
            puts it into the network, so that predicted probabilities match observed rates; the
            ranking (ROC-AUC) is unchanged. Null: the head's raw sigmoid (the MCL reference).
    """

    pretrained: str = "default"
    scratch: bool = False
    tau: float = 1.0
    head_hidden: int = 300
    dropout: float = 0.0
    backbone_dropout: float | None = None
    extra_features: list[str] = field(default_factory=lambda: ["rdkit2d"])
    variance_head: bool = False
    kernel_blend: str | None = None
    calibration: str | None = "platt"

    def __post_init__(self) -> None:
        self.extra_features = check_mol_features(self.extra_features)
        if self.kernel_blend not in (None, "ecfp_svr", "ecfp_svc"):
            raise ValueError(
                f"model.kernel_blend must be null, 'ecfp_svr' (regression) or 'ecfp_svc' (classification), "
                f"got {self.kernel_blend!r}"
            )
        if self.calibration not in (None, "platt"):
            raise ValueError(f"model.calibration must be null or 'platt', got {self.calibration!r}")


@dataclass
class PromptConfig:
    """Initial channel logits w of the prompt selection.

    Args:
        init: uniform (w = 0), given (``weights``) or rogi (lowest roughness index among
            ``rogi_candidates`` random candidates and uniform, on the frozen channel embeddings of
            the training molecules).
        weights: one logit per channel, in the model's channel order (with init: given).
        rogi_candidates: random candidates of the ROGI search.
        rogi_max_molecules: training molecules the ROGI search uses at most (seeded subsample).
    """

    init: str = "uniform"
    weights: list[float] | None = None
    rogi_candidates: int = 50
    rogi_max_molecules: int = 2000


@dataclass
class OptimConfig:
    """Optimisation: Adam with three learning rates, cosine annealing per epoch.

    Args:
        epochs: training epochs; the test metric is reported at the best validation epoch.
        lr_backbone: learning rate of the GNN backbone (and of unfrozen aggregators).
        lr_prompt: learning rate of the channel logits w. The reference's 5e-4 leaves w at uniform
            (Adam moves w by at most about the learning rate per step, and its gradient is noisy).
            Under Adam, ``model.tau`` acts like a factor 1/tau on this learning rate.
        lr_head: learning rate of the prediction head.
        weight_decay: Adam weight decay of the backbone and the head.
        weight_decay_prompt: Adam weight decay of w (null: ``weight_decay``, as the reference); a
            decay pulls w towards the uniform mixture.
        grad_clip: gradient-norm clipping (null: none).
        eta_min: floor of the cosine schedule (a group whose learning rate is below it stays constant).
        freeze_aggregators: keep the pre-trained channel read-outs fixed (the reference does).
        freeze_backbone: keep the backbone fixed too (a linear probe of the mixed embedding).
        freeze_backbone_epochs: keep the backbone fixed for the first N epochs only, while the prompt
            logits and the head (and unfrozen aggregators) train on its features, then train it too
            ("LP-FT": a head fitted first sends the pre-trained features smaller, less distorting
            gradients). 0: from the start. The backbone's cosine schedule starts when it starts to
            train (at ``lr_backbone``; unfrozen aggregators share its group, so their rate stays at
            ``lr_backbone`` until then); early stopping counts the fixed epochs too.
        early_stopping: patience: stop after this many epochs without a better validation metric
            (null: train all ``epochs``, as the reference). The reported epoch is the best one either
            way. Must exceed the longest wait before a later improvement (up to 9 epochs measured).
    """

    epochs: int = 100
    lr_backbone: float = 3.0e-4
    lr_prompt: float = 5.0e-2
    lr_head: float = 5.0e-4
    weight_decay: float = 1.0e-6
    weight_decay_prompt: float | None = None
    grad_clip: float | None = None
    eta_min: float = 1.0e-4
    freeze_aggregators: bool = True
    freeze_backbone: bool = False
    freeze_backbone_epochs: int = 0
    early_stopping: int | None = 20


@dataclass
class TrainerConfig:
    """Lightning Trainer settings.

    Args:
        accelerator: cpu, gpu, auto, ...
        devices: number of devices (1: a run uses one device; run seeds in parallel instead).
        deterministic: deterministic algorithms (same seed and config give the same metrics).
        precision: 32-true, bf16-mixed, 16-mixed, ...
        tensorboard: also log to TensorBoard (``RUN/tensorboard``; needs ``pip install tensorboard``),
            next to metrics.csv, which is always written.
    """

    accelerator: str = "cpu"
    devices: int = 1
    deterministic: bool = True
    precision: str = "32-true"
    tensorboard: bool = False


@dataclass
class FinetuneConfig:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FinetuneConfig:
        """Build and validate; unknown keys are an error naming the valid ones."""
        _check_keys(d, {f.name for f in fields(cls)}, "")
        sections = {}
        for f in fields(cls):
            if f.name == "seed":
                continue
            section_cls = SECTIONS[f.name]
            value = d.get(f.name) or {}
            if not isinstance(value, dict):
                raise ValueError(f"config section {f.name!r} must be a mapping, got {value!r}")
            _check_keys(value, {g.name for g in fields(section_cls)}, f"{f.name}.")
            _check_types(value, section_cls, f"{f.name}.")
            sections[f.name] = section_cls(**value)
        seed = d.get("seed", 0)
        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        config = cls(seed=int(seed), **sections)
        config.validate()
        return config

    @property
    def name(self) -> str:
        """Dataset name, or the CSV file's stem."""
        if self.data.dataset:
            return self.data.dataset
        return Path(self.data.path or "data").name.split(".")[0]

    def require_data_source(self) -> None:
        """A run that reads its data (``run_finetune``, the command line) needs a dataset or a file; the
        in-memory core (:func:`molchannel.finetune.finetune`) is given its table instead."""
        if self.data.dataset is None and self.data.path is None:
            raise ValueError("set data.dataset (a registered benchmark) or data.path (your CSV file)")

    def validate(self) -> None:
        """Raise ``ValueError`` with what to change when values do not fit together (the data source is
        checked by :meth:`require_data_source`)."""
        d, m, p, o = self.data, self.model, self.prompt, self.optim
        if d.path is not None:
            d.dataset = None  # your own file replaces the benchmark of a dataset config
        if d.path is not None and d.task_type not in TASK_TYPES:
            raise ValueError(
                f"data.task_type must be one of {TASK_TYPES} for a user CSV (data.path), got {d.task_type!r}"
            )
        if d.task_type is not None and d.task_type not in TASK_TYPES:
            raise ValueError(f"data.task_type must be one of {TASK_TYPES} or null, got {d.task_type!r}")
        if d.split not in SPLITS:
            raise ValueError(f"data.split must be one of {SPLITS}, got {d.split!r}")
        if d.split == "column":
            if d.path is None:
                raise ValueError(
                    "data.split: column reads the split from a column of your own file (data.path); a "
                    "registered benchmark has its own split (data.split: auto)"
                )
            if d.split_col == d.smiles_col or d.split_col in (d.targets or []):
                raise ValueError(
                    f"data.split_col {d.split_col!r} is also the SMILES column or a target (data.smiles_col "
                    f"{d.smiles_col!r}, data.targets {d.targets!r}); name the column of train/valid/test"
                )
        if not (0 <= d.valid_frac < 1 and 0 <= d.test_frac < 1 and d.valid_frac + d.test_frac < 1):
            raise ValueError(
                f"data.valid_frac and data.test_frac must be in [0, 1) with a sum below 1, "
                f"got {d.valid_frac}, {d.test_frac}"
            )
        if d.limit is not None and d.limit < 1:
            raise ValueError(f"data.limit must be a positive row count or null, got {d.limit}")
        if d.batch_size < 1 or d.num_workers < 0:
            raise ValueError(f"data.batch_size must be >= 1 and num_workers >= 0, got {d.batch_size}, "
                             f"{d.num_workers}")  # fmt: skip
        if m.tau <= 0 or m.head_hidden < 1 or not 0 <= m.dropout < 1:
            raise ValueError(
                f"model.tau must be > 0, head_hidden >= 1 and dropout in [0, 1); "
                f"got {m.tau}, {m.head_hidden}, {m.dropout}"
            )
        if m.backbone_dropout is not None and not 0 <= m.backbone_dropout < 1:
            raise ValueError(
                f"model.backbone_dropout must be in [0, 1) or null (the starting model's value), "
                f"got {m.backbone_dropout}"
            )
        if p.init not in PROMPT_INITS:
            raise ValueError(f"prompt.init must be one of {PROMPT_INITS}, got {p.init!r}")
        if (p.init == "given") != (p.weights is not None):
            raise ValueError(
                "prompt.weights (one logit per channel) goes with prompt.init: given and only with it; "
                f"got init={p.init!r}, weights={p.weights!r}"
            )
        if p.rogi_candidates < 1 or p.rogi_max_molecules < 3:
            raise ValueError("prompt.rogi_candidates must be >= 1 and prompt.rogi_max_molecules >= 3")
        if o.epochs < 1:
            raise ValueError(f"optim.epochs must be >= 1, got {o.epochs}")
        for name in ("lr_backbone", "lr_prompt", "lr_head", "weight_decay", "eta_min"):
            if getattr(o, name) < 0:
                raise ValueError(f"optim.{name} must be >= 0, got {getattr(o, name)}")
        if o.weight_decay_prompt is not None and o.weight_decay_prompt < 0:
            raise ValueError(
                "optim.weight_decay_prompt must be >= 0 or null (null: optim.weight_decay), "
                f"got {o.weight_decay_prompt}"
            )
        if o.grad_clip is not None and o.grad_clip <= 0:
            raise ValueError(f"optim.grad_clip must be positive or null, got {o.grad_clip}")
        if self.trainer.devices != 1:
            raise ValueError(
                f"trainer.devices must be 1, got {self.trainer.devices}: a fine-tuning run uses one device "
                "(datasets are small); run seeds or datasets in parallel instead"
            )
        if not 0 <= o.freeze_backbone_epochs < o.epochs:
            raise ValueError(
                f"optim.freeze_backbone_epochs must be >= 0 and below optim.epochs ({o.epochs}), got "
                f"{o.freeze_backbone_epochs}; for a backbone fixed throughout, set "
                "optim.freeze_backbone: true"
            )
        if o.freeze_backbone and o.freeze_backbone_epochs:
            raise ValueError(
                "optim.freeze_backbone fixes the backbone throughout, optim.freeze_backbone_epochs for "
                "the first epochs only: set one of them"
            )
        if o.early_stopping is not None and o.early_stopping < 1:
            raise ValueError(f"optim.early_stopping must be a patience >= 1 or null, got {o.early_stopping}")


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "prompt": PromptConfig,
    "optim": OptimConfig,
    "trainer": TrainerConfig,
}


def _check_keys(d: dict[str, Any], known: set[str], prefix: str) -> None:
    # sorted by text: YAML keys need not be strings (`?` alone is the mapping {None: None})
    unknown = sorted((k for k in d if k not in known), key=str)
    if unknown:
        raise ValueError(
            f"unknown fine-tuning config key(s) {[f'{prefix}{k}' for k in unknown]}; "
            f"valid keys{' of ' + prefix.rstrip('.') if prefix else ''}: {sorted(known)}"
        )


_KINDS = {
    bool: ("true or false", bool),
    int: ("an integer", numbers.Integral),
    float: ("a number", numbers.Real),
}


def _check_types(d: dict[str, Any], section_cls: type, prefix: str) -> None:
    """Numbers and switches of the right kind, so that ``epochs: ten`` is named here, not failing in a run
    (YAML files and ``--set`` values reach :meth:`FinetuneConfig.from_dict` without a type check)."""
    hints = typing.get_type_hints(section_cls)
    for key, value in d.items():
        hint = hints[key]
        kinds = set(typing.get_args(hint)) if isinstance(hint, types.UnionType) else {hint}
        nullable = type(None) in kinds
        kinds.discard(type(None))
        if (value is None and nullable) or len(kinds) != 1 or not kinds <= _KINDS.keys():
            continue  # text and lists: validate() checks them where it matters
        (kind,) = kinds
        what, accepted = _KINDS[kind]
        if not isinstance(value, accepted) or (kind is not bool and isinstance(value, bool)):
            raise ValueError(f"{prefix}{key} must be {what}{' or null' if nullable else ''}, got {value!r}")


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``override``, section by section (a nested dict merges, anything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(*paths: str | os.PathLike[str], overrides: dict[str, Any] | None = None) -> FinetuneConfig:
    """Defaults, then each YAML file in turn, then ``overrides`` (a nested dict), validated.

    ``load_config("configs/finetune/bbbp.yaml", overrides={"optim": {"epochs": 5}})``.
    """
    merged = FinetuneConfig().to_dict()
    for path in paths:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ValueError(f"{path} is not a valid YAML config: {exc}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"{path} must hold a YAML mapping of config sections")
        merged = merge(merged, loaded)
    return FinetuneConfig.from_dict(merge(merged, overrides or {}))


def as_config(config: dict[str, Any] | FinetuneConfig) -> FinetuneConfig:
    """A validated :class:`FinetuneConfig` from itself or from a (possibly partial) nested dict."""
    if isinstance(config, FinetuneConfig):
        config.validate()
        return config
    return FinetuneConfig.from_dict(merge(FinetuneConfig().to_dict(), config))


#: Config keys that cannot change a run's numbers (how it is executed and logged): a run may be resumed,
#: and a benchmark record kept, when only these differ.
EXECUTION_ONLY_KEYS: tuple[tuple[str, str], ...] = (
    ("data", "num_workers"),
    ("data", "cache_dir"),
    ("trainer", "tensorboard"),
)


#: Keys added later whose null means what a config without them did (the starting model's backbone dropout,
#: w decayed with ``optim.weight_decay``): left out of :func:`comparable_config` when null.
INERT_WHEN_NULL: tuple[tuple[str, str], ...] = (
    ("model", "backbone_dropout"),
    ("optim", "weight_decay_prompt"),
)


def comparable_config(config: dict[str, Any] | FinetuneConfig) -> dict[str, Any]:
    """What of ``config`` determines a run's numbers, as a plain JSON-like dict: "the same run" is equality.

    The validated config with keys it lacks (added since it was written) at their defaults, less
    :data:`EXECUTION_ONLY_KEYS` and less keys that are inert at the value they had implicitly before they
    existed (``data.split_col`` at its default ``"split"`` is only read by ``data.split: column``; the
    :data:`INERT_WHEN_NULL` keys at null), so that older run folders and benchmark records still match.
    Used for the benchmark's config hash, for resuming an unfinished benchmark run and for
    ``finetune --resume``. Raises ``ValueError`` (or ``TypeError``) for an invalid config.
    """
    if not isinstance(config, (dict, FinetuneConfig)):
        raise TypeError(f"a fine-tuning config must be a mapping of config sections, got {config!r}")
    out = json.loads(json.dumps(as_config(copy.deepcopy(config)).to_dict(), default=str))
    for section, key in EXECUTION_ONLY_KEYS:
        out[section].pop(key, None)
    data = out["data"]
    if data["split"] != "column" and data["split_col"] == "split":
        del data["split_col"]
    for section, key in INERT_WHEN_NULL:
        if out[section].get(key, None) is None:
            out[section].pop(key, None)
    if not out["model"].get("extra_features"):  # added later; [] is what a config without it did
        out["model"].pop("extra_features", None)
    if not out["model"].get("variance_head"):  # added later; false is what a config without it did
        out["model"].pop("variance_head", None)
    if out["model"].get("kernel_blend") is None:  # added later; null is what a config without it did
        out["model"].pop("kernel_blend", None)
    if not out["optim"].get("freeze_backbone_epochs"):  # added later; 0 is what a config without it did
        out["optim"].pop("freeze_backbone_epochs", None)
    else:  # the backbone's cosine has started when it unfreezes since schedule 2 (runs before: not the same)
        out["optim"]["backbone_schedule"] = 2
    # added later: Platt scaling moves probabilities monotonically per task, so the ranking metrics a
    # record holds are those of the same run without it; older records stand for the default
    if out["model"].get("calibration") == "platt":
        out["model"].pop("calibration", None)
    return out


def config_differences(saved: Any, current: dict[str, Any] | FinetuneConfig) -> list[str]:
    """Why ``saved`` (a run folder's config.yaml, a benchmark's marker) is not the run of ``current``:
    ``"key: saved -> current"`` lines of :func:`comparable_config`, or one line saying that ``saved`` is
    not a valid config; empty when they are the same run. An invalid ``current`` raises."""
    now = comparable_config(current)
    try:
        before = comparable_config(saved)
    except (TypeError, ValueError, AttributeError) as exc:
        return [f"the saved config is not a valid fine-tuning config ({exc})"]
    return _differences(before, now)


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')}: {a!r} -> {b!r}"]
