"""scikit-learn estimators that take SMILES: an embedder and fine-tuned regressor / classifier.

Kept as one module: it is the one page a scikit-learn user reads, and the three estimators share its
input checks and, for the two supervised ones, the fine-tuning plumbing of ``_FinetunedEstimator``.

* :class:`MolChannelEmbedder` (transformer): SMILES in, molchannel embeddings out, e.g. as the
  first step of a ``Pipeline`` in front of any scikit-learn model.
* :class:`MolChannelRegressor` / :class:`MolChannelClassifier`: ``fit`` fine-tunes the whole
  multi-channel model (encoder, channel prompt and head) with molchannel's own fine-tuning
  (:func:`molchannel.finetune.finetune`, on a table held in memory), ``predict`` runs the
  fine-tuned model.

``X`` is a sequence of SMILES: a list, a 1-D array, a pandas Series, or a one-column 2-D array or
DataFrame. Invalid SMILES raise :class:`~molchannel.InvalidSmilesError` naming the row, or with
``on_invalid="nan"`` give NaN output rows. Needs scikit-learn >= 1.6 (estimator tags).

Importing this module and using :class:`MolChannelEmbedder` never imports Lightning; the
supervised estimators import the fine-tuning application inside ``fit``.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import random
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

try:
    import sklearn
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.validation import check_is_fitted
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "molchannel.sklearn needs scikit-learn >= 1.6: pip install 'molchannel[train]' "
        "(or pip install 'scikit-learn>=1.6')"
    ) from exc

from molchannel.api import MolChannelModel, load, resolve_model_path
from molchannel.chem.smiles import InvalidSmilesError, OnInvalid, parse_smiles
from molchannel.data.datasets import MoleculeTable
from molchannel.data.registry import TaskType
from molchannel.data.splits import Split

if tuple(int(p) for p in sklearn.__version__.split(".")[:2] if p.isdigit()) < (1, 6):  # pragma: no cover
    raise ImportError(
        f"molchannel.sklearn needs scikit-learn >= 1.6 (estimator tags), found {sklearn.__version__}; "
        "pip install -U 'scikit-learn>=1.6'"
    )

ON_INVALID = ("raise", "nan")
FINETUNE_MODES = ("full", "probe")

__all__ = ["MolChannelClassifier", "MolChannelEmbedder", "MolChannelRegressor"]


# ---- shared helpers ------------------------------------------------------------------------------
def _smiles_input(X: Any, caller: str) -> tuple[list[object], Any]:
    """``X`` as a list of SMILES, and its column name (``None`` without one; 1-D input gives ``False``).

    Accepts a list / tuple / 1-D array / pandas Series, or a one-column 2-D array or DataFrame.
    """
    if isinstance(X, (str, bytes)):
        raise TypeError(
            f"{caller} expects a sequence of SMILES (a list, a 1-D array or one column), got a single "
            f"string; wrap it in a list: [{X!r}]"
        )
    if hasattr(X, "toarray") or hasattr(X, "tocsr"):
        raise TypeError(f"{caller} expects SMILES strings, got a sparse matrix ({type(X).__name__})")
    column: Any = False
    if hasattr(X, "columns") and hasattr(X, "iloc"):  # pandas DataFrame
        if X.shape[1] != 1:
            raise ValueError(
                f"{caller} expects one column of SMILES, got a DataFrame with {X.shape[1]} columns "
                f"{list(X.columns)[:5]}; select the SMILES column, e.g. df[['smiles']] or df['smiles']"
            )
        values = X.iloc[:, 0].tolist()
        column = X.columns[0] if isinstance(X.columns[0], str) else None
    elif hasattr(X, "iloc"):  # pandas Series
        values = X.tolist()
    else:
        try:
            array = np.asarray(X, dtype=object)
        except ValueError as exc:
            raise ValueError(f"{caller} could not read X as a column of SMILES: {exc}") from exc
        if array.ndim == 2 and array.shape[1] == 0:
            raise ValueError(
                f"{caller}: found 0 feature(s) (shape={array.shape}) while a minimum of 1 is required; "
                "X must be one column of SMILES"
            )
        if array.ndim == 2 and array.shape[1] == 1:
            values, column = array[:, 0].tolist(), None
        elif array.ndim == 1:
            values = array.tolist()
        else:
            raise ValueError(
                f"{caller} expects SMILES as a 1-D sequence or one column, got an array of shape "
                f"{array.shape}; pass the SMILES column only"
            )
    if not values:
        raise ValueError(f"{caller} got 0 samples (an empty X); at least 1 SMILES is required")
    return values, column


def _record_input(estimator: BaseEstimator, column: Any) -> None:
    """Set ``n_features_in_`` (and ``feature_names_in_``) for 2-D input, remove them for 1-D input."""
    for name in ("n_features_in_", "feature_names_in_"):
        estimator.__dict__.pop(name, None)
    if column is not False:
        estimator.n_features_in_ = 1
        if column is not None:
            estimator.feature_names_in_ = np.asarray([column], dtype=object)


def _check_choice(value: object, name: str, choices: Sequence[object]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def _check_positive_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _input_tags(tags: Any) -> Any:
    """SMILES estimators read strings, as a 1-D sequence or one column; nothing numeric or sparse."""
    tags.input_tags.one_d_array = True
    tags.input_tags.two_d_array = True
    tags.input_tags.string = True
    tags.input_tags.sparse = False
    return tags


def _model_source(model: str | os.PathLike[str]) -> str:
    """How to find ``model`` again: a built-in name stays a name, a folder becomes an absolute path."""
    folder = resolve_model_path(model)
    if isinstance(model, str) and folder != Path(model):
        return model
    return str(folder.resolve())


def _predict_device(device: str | torch.device | None) -> str | torch.device:
    return "cpu" if device is None else device


# ---- embedder ------------------------------------------------------------------------------------
class MolChannelEmbedder(TransformerMixin, BaseEstimator):
    """SMILES -> molchannel embeddings, as a scikit-learn transformer.

    ``fit`` loads the model folder (nothing is learnt from ``X``) and keeps it; ``transform``
    returns ``molchannel.load(model).embed(X, channel=channel)`` as float32 ``[N, D]``
    (``[N, K*D]`` for ``channel="all"``, channels in the model's order). Pickling keeps the model
    reference, not the weights: an unpickled embedder reloads the folder on first use and checks
    that its weights are the ones it was fitted with.

    Args:
        model: ``"default"`` (the model shipped with molchannel) or a model-folder path.
        channel: ``"mix"`` (the prompt-weighted mixture), a channel name of the model, or ``"all"``
            (every channel, concatenated).
        batch_size: molecules per forward pass (changes the result only by float rounding).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"`` (CUDA when available), ...
        on_invalid: ``"raise"`` (an :class:`~molchannel.InvalidSmilesError` naming the row) or
            ``"nan"`` (the row is NaN).

    Attributes:
        model_: the loaded :class:`~molchannel.api.MolChannelModel`.
        channels_: the model's channel names.
        embedding_dim_: ``D``, the width of one channel's embedding.
        n_features_out_: output columns (``D``, or ``K*D`` for ``channel="all"``).
        n_features_in_: 1, set when ``X`` was 2-D (one column); ``feature_names_in_`` for a DataFrame.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "default",
        channel: str = "mix",
        batch_size: int = 128,
        device: str | None = "cpu",
        on_invalid: str = "raise",
    ) -> None:
        self.model = model
        self.channel = channel
        self.batch_size = batch_size
        self.device = device
        self.on_invalid = on_invalid

    def __sklearn_tags__(self) -> Any:
        tags = _input_tags(super().__sklearn_tags__())
        tags.transformer_tags.preserves_dtype = []  # always float32, whatever comes in
        return tags

    def _check_params(self, channels: Sequence[str]) -> None:
        _check_choice(self.channel, "channel", ["mix", "all", *channels])
        _check_choice(self.on_invalid, "on_invalid", ON_INVALID)
        _check_positive_int(self.batch_size, "batch_size")

    def fit(self, X: Any, y: Any = None) -> MolChannelEmbedder:
        """Load the model (``X`` is only checked for shape: an embedder learns nothing from data).

        Args:
            X: SMILES (1-D sequence or one column).
            y: ignored.

        Returns:
            self.
        """
        _, column = _smiles_input(X, f"{type(self).__name__}.fit")
        source = _model_source(self.model)
        model = load(source, device=self.device)
        self._check_params(model.channels)
        self._model = model
        self.model_source_ = source
        self.weights_sha256_ = model.config.get("weights_sha256")
        self.channels_ = list(model.channels)
        self.embedding_dim_ = model.embedding_dim
        width = len(self.channels_) if self.channel == "all" else 1
        self.n_features_out_ = width * self.embedding_dim_
        _record_input(self, column)
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return "model_source_" in self.__dict__

    @property
    def model_(self) -> MolChannelModel:
        """The loaded model (reloaded from its folder after unpickling)."""
        check_is_fitted(self)
        if self.__dict__.get("_model") is None:
            model = load(self.model_source_, device=self.device)
            if model.config.get("weights_sha256") != self.weights_sha256_:
                raise ValueError(
                    f"the model folder {self.model_source_} has changed since this {type(self).__name__} "
                    f"was fitted (weights sha256 {model.config.get('weights_sha256')} instead of "
                    f"{self.weights_sha256_}); fit the embedder again to use the new model"
                )
            self._model = model
        return self._model

    def transform(self, X: Any) -> np.ndarray:
        """Embed SMILES.

        Args:
            X: SMILES (1-D sequence or one column).

        Returns:
            float32 ``[N, n_features_out_]``; NaN rows for invalid SMILES under ``on_invalid="nan"``.
        """
        check_is_fitted(self)
        smiles, _ = _smiles_input(X, f"{type(self).__name__}.transform")
        model = self.model_
        self._check_params(model.channels)
        out = model.embed(
            smiles,
            channel=self.channel,
            batch_size=self.batch_size,
            device=_predict_device(self.device),
            on_invalid=cast(OnInvalid, self.on_invalid),  # checked by _check_choice
        )
        return np.ascontiguousarray(out.reshape(len(smiles), -1), dtype=np.float32)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Output column names: ``mix_0 ... mix_{D-1}`` (``{channel}_{i}`` per channel for ``"all"``).

        Args:
            input_features: ignored apart from a consistency check with ``feature_names_in_``.
        """
        check_is_fitted(self)
        names_in = getattr(self, "feature_names_in_", None)
        if input_features is not None and names_in is not None and list(input_features) != list(names_in):
            raise ValueError(
                f"input_features {list(input_features)} differ from the column seen in fit {list(names_in)}"
            )
        channels = self.channels_ if self.channel == "all" else [self.channel]
        names = [f"{ch}_{i}" for ch in channels for i in range(self.embedding_dim_)]
        return np.asarray(names, dtype=object)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # object.__getstate__ returns the live __dict__
        state.pop("_model", None)  # reloaded from model_source_ on first use
        return state


# ---- fine-tuned estimators -----------------------------------------------------------------------
# estimator parameter -> the FinetuneConfig key it sets (``config`` may not set these)
_PARAM_KEYS = {
    "model": "model.pretrained",
    "scratch": "model.scratch",
    "head_hidden": "model.head_hidden",
    "extra_features": "model.extra_features",
    "prompt_init": "prompt.init",
    "epochs": "optim.epochs",
    "lr_backbone": "optim.lr_backbone",
    "lr_prompt": "optim.lr_prompt",
    "lr_head": "optim.lr_head",
    "finetune": "optim.freeze_backbone",
    "early_stopping": "optim.early_stopping",
    "batch_size": "data.batch_size",
    "valid_frac": "data.valid_frac",
    "random_state": "seed",
    "device": "trainer.accelerator",
}
# the column of the run folder's train.csv that says which rows trained and which validated
_SPLIT_COL = "split"
# set from the data the estimator writes; not configurable at all
_DATA_KEYS = (
    "dataset",
    "path",
    "smiles_col",
    "targets",
    "task_type",
    "split",
    "split_col",
    "test_frac",
    "limit",
    "cache_dir",
)


def _flatten(d: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in d.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def _n_valid(n_rows: int, valid_frac: float) -> int:
    """Validation rows of ``n_rows`` usable molecules: ``int(valid_frac * n_rows)``, at least one."""
    return max(1, int(valid_frac * n_rows))


@contextlib.contextmanager
def _global_state_restored() -> Iterator[None]:
    """Undo what a Lightning run changes process-wide: RNG states, deterministic mode, seed env vars."""
    py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    env = {k: os.environ.get(k) for k in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS", "CUBLAS_WORKSPACE_CONFIG")}
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _model_to_files(model: MolChannelModel) -> dict[str, bytes]:
    """A model as the bytes of its model-folder files (for pickling)."""
    with tempfile.TemporaryDirectory(prefix="molchannel-") as tmp:
        folder = model.save(Path(tmp) / "model")
        return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _model_from_files(files: dict[str, bytes]) -> MolChannelModel:
    with tempfile.TemporaryDirectory(prefix="molchannel-") as tmp:
        folder = Path(tmp) / "model"
        folder.mkdir()
        for name, data in files.items():
            (folder / Path(name).name).write_bytes(data)
        model = load(folder)
    model.path = None
    return model


class _FinetunedEstimator(BaseEstimator):
    """Fit = one molchannel fine-tuning run on ``(X, y)``; predict = the exported model's ``predict``.

    Subclasses say how ``y`` becomes a ``[N, T]`` float label matrix (``_encode_y``).
    """

    _task_type: str = ""

    def __init__(
        self,
        model: str | os.PathLike[str] = "default",
        finetune: str = "full",
        epochs: int = 100,
        batch_size: int = 32,
        lr_backbone: float = 3e-4,
        lr_prompt: float = 5e-2,
        lr_head: float = 5e-4,
        head_hidden: int = 300,
        extra_features: Sequence[str] = ("rdkit2d",),
        prompt_init: str = "uniform",
        valid_frac: float = 0.1,
        early_stopping: int | None = 20,
        scratch: bool = False,
        random_state: int | np.random.RandomState | None = 0,
        device: str = "cpu",
        on_invalid: str = "raise",
        run_dir: str | os.PathLike[str] | None = None,
        config: dict[str, Any] | None = None,
        verbose: bool = False,
        ensemble_size: int = 1,
    ) -> None:
        self.model = model
        self.finetune = finetune
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr_backbone = lr_backbone
        self.lr_prompt = lr_prompt
        self.lr_head = lr_head
        self.head_hidden = head_hidden
        self.extra_features = extra_features
        self.prompt_init = prompt_init
        self.valid_frac = valid_frac
        self.early_stopping = early_stopping
        self.scratch = scratch
        self.random_state = random_state
        self.device = device
        self.on_invalid = on_invalid
        self.run_dir = run_dir
        self.config = config
        self.verbose = verbose
        self.ensemble_size = ensemble_size

    def __sklearn_tags__(self) -> Any:
        return _input_tags(super().__sklearn_tags__())

    # ---- parameters --------------------------------------------------------------------------
    def _check_params(self) -> None:
        from molchannel.finetune.config import PROMPT_INITS

        _check_choice(self.finetune, "finetune", FINETUNE_MODES)
        _check_choice(self.prompt_init, "prompt_init", PROMPT_INITS)
        _check_choice(self.on_invalid, "on_invalid", ON_INVALID)
        _check_positive_int(self.epochs, "epochs")
        _check_positive_int(self.batch_size, "batch_size")
        _check_positive_int(self.ensemble_size, "ensemble_size")
        from molchannel.chem.mol_features import check_mol_features

        check_mol_features(self.extra_features)
        if not 0 < self.valid_frac < 1:
            raise ValueError(
                f"valid_frac must be in (0, 1) (the validation rows pick the best epoch), "
                f"got {self.valid_frac!r}"
            )
        _accelerator(self.device)
        if self.config is not None and not isinstance(self.config, dict):
            raise ValueError(
                "config must be a nested dict of fine-tuning config sections or None, "
                f"got {type(self.config).__name__}"
            )
        for key in _flatten(self.config or {}):
            section, _, name = key.partition(".")
            params = [p for p, k in _PARAM_KEYS.items() if k == key]
            if params:
                raise ValueError(
                    f"config sets {key!r}, which the estimator parameter {params[0]!r} controls; "
                    f"set {params[0]}=... instead"
                )
            if section == "data" and name in _DATA_KEYS:
                raise ValueError(
                    f"config sets {key!r}, but the estimator writes the data section itself from X and y; "
                    "remove it"
                )

    def _seed(self) -> int:
        if isinstance(self.random_state, (int, np.integer)) and not isinstance(self.random_state, bool):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _finetune_config(self, seed: int) -> dict[str, Any]:
        """The fine-tuning config of one fit; the data come from ``(X, y)`` (a table held in memory)."""
        from molchannel.finetune.config import merge

        config = {
            "seed": seed,
            "data": {
                "dataset": None,
                "valid_frac": float(self.valid_frac),  # as recorded; fit chooses the validation rows
                "test_frac": 0.0,
                "batch_size": int(self.batch_size),
            },
            "model": {
                "scratch": bool(self.scratch),
                "head_hidden": int(self.head_hidden),
                "extra_features": list(self.extra_features),
            },
            "prompt": {"init": self.prompt_init},
            "optim": {
                "epochs": int(self.epochs),
                "lr_backbone": float(self.lr_backbone),
                "lr_prompt": float(self.lr_prompt),
                "lr_head": float(self.lr_head),
                "freeze_backbone": self.finetune == "probe",
                "early_stopping": self.early_stopping,
            },
            "trainer": {"accelerator": _accelerator(self.device)},
        }
        return merge(config, self.config or {})

    # ---- fit ---------------------------------------------------------------------------------
    def _encode_y(self, y: Any, n: int) -> tuple[np.ndarray, list[str], dict[str, Any]]:  # pragma: no cover
        """``y`` -> (labels ``[N, T]`` float with NaN = missing, task names, attributes to set after fit)."""
        raise NotImplementedError

    def fit(self, X: Any, y: Any) -> _FinetunedEstimator:
        """Fine-tune the model on ``(X, y)``.

        A ``valid_frac`` of the rows is held out to pick the best epoch (``random_state`` seeds
        the choice and the training); the model of that epoch is kept in ``model_``.

        Args:
            X: SMILES (1-D sequence or one column).
            y: labels, one per row (see the class docstring); NaN marks a missing label.

        Returns:
            self.
        """
        name = type(self).__name__
        self._check_params()
        smiles, column = _smiles_input(X, f"{name}.fit")
        if y is None:
            raise ValueError(f"{name} requires y to be passed, but the target y is None")
        targets, tasks, fitted = self._encode_y(y, len(smiles))
        keep = self._valid_rows(smiles)
        n_real = len(keep)
        n_valid = _n_valid(n_real, self.valid_frac)
        if n_real - n_valid < 2:
            raise ValueError(
                f"{name}.fit needs at least 2 training molecules besides the {n_valid} validation "
                f"molecule(s), got {n_real} valid SMILES; give more data"
            )
        seed = self._seed()
        source = _model_source(self.model)
        kept = targets[keep]
        chosen = _choose_valid(n_real, self._stratify_key(kept), n_valid, seed, self._valid_groups(kept))
        is_valid = np.zeros(n_real, dtype=bool)
        is_valid[chosen] = True
        table = MoleculeTable(
            name="train",
            smiles=[_smiles_text(smiles[i]) for i in keep],
            targets=np.ascontiguousarray(kept, dtype=np.float32),
            target_names=tuple(tasks),
            task_type=cast(TaskType, self._task_type),
            metric="roc_auc" if self._task_type == "classification" else "rmse",
        )
        split = Split(
            train=np.flatnonzero(~is_valid),
            valid=np.flatnonzero(is_valid),
            test=np.empty(0, dtype=np.int64),
            method="estimator",
            params={"valid_frac": float(self.valid_frac), "seed": seed},
        )
        run_dir = self._prepare_run_dir()
        if run_dir is not None:  # a record of the rows as fine-tuned
            _write_csv(run_dir / "train.csv", table, is_valid)

        from molchannel.finetune.run import finetune

        results = []
        for k in range(int(self.ensemble_size)):  # members: seeds seed .. seed + N - 1, one split
            member_dir = run_dir if run_dir is None or self.ensemble_size == 1 else run_dir / f"member{k}"
            with _global_state_restored():
                results.append(
                    finetune(source, table, split, self._finetune_config(seed + k), run_dir=member_dir,
                             quiet=not self.verbose)
                )  # fmt: skip
            model = results[-1].model
            assert model is not None  # finetune always returns the selected epoch's model
            model.path = results[-1].model_dir  # None without run_dir: the weights live in memory only
        result = results[0]
        model = result.model if len(results) == 1 else self._ensemble(results, table, split)
        if not math.isfinite(result.valid_metric):
            warnings.warn(
                f"{name}.fit: the validation {result.metric} was undefined (NaN) in every epoch (e.g. a "
                f"class missing from the {len(chosen)} validation rows), so no epoch could be selected and "
                f"that of epoch {result.best_epoch} was kept; give more data, a larger valid_frac, or more "
                "than one row of every class",
                UserWarning,
                stacklevel=2,
            )
        self.model_ = model
        for key, value in fitted.items():
            setattr(self, key, value)
        self.tasks_ = tasks
        self.seed_ = seed
        self.best_epoch_ = int(result.best_epoch)  # of the first member in an ensemble
        self.valid_score_ = float(result.valid_metric)
        self.member_valid_scores_ = [float(r.valid_metric) for r in results]
        self.valid_metric_ = result.metric
        self.channel_weights_ = dict(result.channel_weights)
        self.run_dir_ = run_dir
        _record_input(self, column)
        return self

    def _ensemble(self, results: list[Any], table: MoleculeTable, split: Split) -> Any:
        """The members as one :class:`~molchannel.ensemble.EnsembleModel`; a regression ensemble is
        conformally calibrated on the validation rows, as ``molchannel finetune --ensemble-size``."""
        from molchannel.ensemble import ConformalCalibration, EnsembleModel

        ensemble = EnsembleModel([r.model for r in results])
        if self._task_type == "regression":
            valid = [table.smiles[i] for i in split.valid]
            mean, std = ensemble.predict(valid, batch_size=int(self.batch_size), return_std=True)
            ensemble.calibration = ConformalCalibration.fit(table.targets[split.valid], mean, std)
        return ensemble

    def _stratify_key(self, targets: np.ndarray) -> np.ndarray | None:
        """What the validation rows are spread over: the single target's value (None: no key)."""
        return targets[:, 0] if targets.shape[1] == 1 else None

    def _valid_groups(self, targets: np.ndarray) -> list[np.ndarray]:
        """Row masks the validation rows should each meet for a defined validation metric (none here)."""
        return []

    def _valid_rows(self, smiles: list[object]) -> list[int]:
        """Rows whose SMILES parse; an invalid one raises (``on_invalid="raise"``) or is left out."""
        keep, bad = [], []
        for i, s in enumerate(smiles):
            try:
                parse_smiles(s, i)
            except InvalidSmilesError:
                if self.on_invalid == "raise":
                    raise  # names the row
                bad.append(i)
            else:
                keep.append(i)
        if bad:
            warnings.warn(
                f"{type(self).__name__}.fit: left out {len(bad)} of {len(smiles)} rows with invalid SMILES "
                f"(rows {bad[:10]}{' ...' if len(bad) > 10 else ''}); on_invalid='raise' makes this an error",
                UserWarning,
                stacklevel=3,
            )
        return keep

    def _prepare_run_dir(self) -> Path | None:
        if self.run_dir is None:
            return None
        run_dir = Path(self.run_dir)
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise ValueError(
                f"run_dir {run_dir} exists and is not an empty folder; every fit writes a new fine-tuning "
                "run, so give a new folder (or run_dir=None to keep nothing but the fitted model)"
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir

    # ---- predict -----------------------------------------------------------------------------
    def _predict_raw(self, X: Any, caller: str) -> np.ndarray:
        """The fine-tuned model's ``predict``: float32 ``[N, T]`` (probabilities / original units)."""
        check_is_fitted(self)
        _check_choice(self.on_invalid, "on_invalid", ON_INVALID)
        smiles, _ = _smiles_input(X, f"{type(self).__name__}.{caller}")
        return self.model_.predict(
            smiles,
            batch_size=int(self.batch_size),
            device=_load_device(self.device),
            on_invalid=cast(OnInvalid, self.on_invalid),  # checked by _check_choice
        )

    def __sklearn_is_fitted__(self) -> bool:
        return "model_" in self.__dict__

    # ---- pickling ----------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        from molchannel.ensemble import EnsembleModel

        state = dict(super().__getstate__())  # object.__getstate__ returns the live __dict__
        model = state.get("model_")
        if isinstance(model, EnsembleModel):  # each member as model-folder bytes, and the calibration
            calibration = None if model.calibration is None else model.calibration.to_dict()
            state["model_"] = {"ensemble_member_files": [_model_to_files(m) for m in model.members],
                               "calibration": calibration}  # fmt: skip
        elif model is not None:  # the fine-tuned weights travel as model-folder bytes
            state["model_"] = {"model_folder_files": _model_to_files(model)}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from molchannel.ensemble import ConformalCalibration, EnsembleModel

        packed = state.get("model_")
        if isinstance(packed, dict) and "model_folder_files" in packed:
            state = {**state, "model_": _model_from_files(packed["model_folder_files"])}
        elif isinstance(packed, dict) and "ensemble_member_files" in packed:
            members = [_model_from_files(files) for files in packed["ensemble_member_files"]]
            calibration = packed.get("calibration")
            ensemble = EnsembleModel(
                members,
                calibration=None if calibration is None else ConformalCalibration.from_dict(calibration),
            )
            state = {**state, "model_": ensemble}
        super().__setstate__(state)


def _accelerator(device: object) -> str:
    """The Lightning accelerator of a ``device`` parameter (fine-tuning uses one device)."""
    if device in ("cpu", "auto"):
        return str(device)
    if device in ("cuda", "gpu", "cuda:0"):
        return "gpu"
    raise ValueError(
        f"device must be 'cpu', 'cuda' or 'auto', got {device!r}; to train on another GPU, select it "
        "with CUDA_VISIBLE_DEVICES"
    )


def _load_device(device: str) -> str:
    return "cuda" if device in ("cuda", "gpu", "cuda:0") else device


def _smiles_text(smiles: object) -> str:
    """A parsed row's SMILES as text (``bytes`` decoded, surrounding whitespace removed)."""
    return (smiles.decode("utf-8") if isinstance(smiles, bytes) else str(smiles)).strip()


def _write_csv(path: Path, table: MoleculeTable, is_valid: np.ndarray) -> None:
    """The rows as fine-tuned, for the run folder: SMILES, the label columns and train / valid."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["smiles", *table.target_names, _SPLIT_COL])
        for s, row, valid in zip(table.smiles, table.targets, is_valid, strict=True):
            labels = ("" if np.isnan(v) else str(np.float32(v)) for v in row)  # shortest float32 text
            writer.writerow([s, *labels, "valid" if valid else "train"])


def _choose_valid(
    n_rows: int, key: np.ndarray | None, n_valid: int, seed: int, groups: Sequence[np.ndarray] = ()
) -> np.ndarray:
    """Positions (sorted, of ``n_rows`` rows) of the validation rows; the others train.

    The validation rows select the best epoch. ``n_valid`` of them are picked systematically along
    ``key`` (class or target value of each row, NaN last, ties in seeded random order), so they spread
    over the classes / the target range; without a key they are a seeded random sample.

    ``groups`` are boolean row masks that the validation set should each meet (a class; a task's
    positives and its negatives), or its metric is undefined (ROC-AUC needs both classes). A group of at
    least 2 rows that the pick missed gets one of its rows (one that no group needs for training, which
    keeps at least one row of every group): it replaces a validation row that no group needs there, or
    else it is added, so the validation set may be a little larger than ``n_valid``.
    """
    ranked = np.random.default_rng(seed).permutation(n_rows)
    if key is not None:
        sort_key = np.where(np.isnan(key[ranked]), np.inf, key[ranked])
        ranked = ranked[np.argsort(sort_key, kind="stable")]
    chosen = np.zeros(n_rows, dtype=bool)
    chosen[ranked[((np.arange(n_valid) + 0.5) * n_rows / n_valid).astype(np.int64)]] = True
    member = np.array([g for g in groups if g.sum() >= 2], dtype=bool).reshape(-1, n_rows)[:, ranked]
    if len(member):
        chosen_r = chosen[ranked]  # from here on, positions along ``ranked``
        for _ in range(len(member)):
            in_valid = (member & chosen_r).sum(axis=1)
            in_train = (member & ~chosen_r).sum(axis=1)
            missed = in_valid == 0
            if not missed.any():
                break
            # rows that would meet a missed group without taking the last training row of any group
            spare = ~chosen_r & ~(member & (in_train <= 1)[:, None]).any(axis=0)
            gain = np.where(spare, member[missed].sum(axis=0), 0)
            if gain.max() == 0:
                break
            add = int(np.argmax(gain))
            chosen_r[add] = True
            # a validation row that every group it is in can spare there makes room for it
            need = np.where(member, (member & chosen_r).sum(axis=1)[:, None], np.iinfo(np.int64).max)
            slack = np.where(chosen_r, need.min(axis=0), -1)
            slack[add] = -1
            if slack.max() >= 2:
                chosen_r[int(np.argmax(slack))] = False
            elif (~chosen_r).sum() < 2:  # no room: training keeps at least 2 rows
                chosen_r[add] = False
                break
        chosen[ranked] = chosen_r
    return np.flatnonzero(chosen)


def _labels_1d(y: Any, n: int, name: str) -> np.ndarray:
    array = np.asarray(y)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{name}: y must be 1-D here, got shape {array.shape}")
    if len(array) != n:
        raise ValueError(f"{name}: X has {n} rows but y has {len(array)}; give one label per SMILES")
    return array


class MolChannelRegressor(RegressorMixin, _FinetunedEstimator):
    """Fine-tune a molchannel model on SMILES -> value(s) (scikit-learn regressor).

    ``fit`` runs :func:`molchannel.finetune.run_finetune` on ``(X, y)``: the pre-trained encoder, the
    channel prompt and a new head are trained together (``finetune="probe"`` keeps the encoder
    fixed and trains only the prompt and the head). A ``valid_frac`` of the rows, spread over the
    range of ``y`` (over the classes for the classifier; a seeded random sample for several
    targets), is held out to pick the best epoch, whose model is kept; every other row trains.
    Defaults follow ``configs/finetune/base.yaml``. Targets are standardised for training and
    predicted in their own units; NaN marks a missing label.

    Args:
        model: ``"default"`` or a model-folder path to start from.
        finetune: ``"full"`` (train encoder, prompt and head) or ``"probe"`` (encoder fixed).
        epochs: training epochs; the best validation epoch is kept.
        batch_size: molecules per batch (training and prediction).
        lr_backbone: learning rate of the GNN encoder.
        lr_prompt: learning rate of the channel prompt (the channel-mixing logits).
        lr_head: learning rate of the prediction head.
        head_hidden: hidden width of the head.
        extra_features: molecule-level features the head reads beside the embedding (see
            ``molchannel.chem.mol_features``; standardised on the training rows). Default
            ``("rdkit2d",)``, as ``molchannel finetune``; ``()`` for the embedding alone.
        prompt_init: initial channel weights: ``"uniform"``, ``"rogi"`` (lowest roughness index of the
            training labels over the channel embeddings) or ``"given"`` (with
            ``config={"prompt": {"weights": [...]}}``, one logit per channel).
        valid_frac: fraction of the rows held out to select the best epoch (at least one row).
        early_stopping: stop after this many epochs without validation improvement (None: never).
            The best validation epoch is kept either way.
        scratch: start from random weights of the same architecture (a no-pre-training baseline).
        random_state: seed of the split and the training (an int gives reproducible fits).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``, for training and prediction.
        on_invalid: ``"raise"``: an invalid SMILES is an error naming the row; ``"nan"``: ``fit``
            leaves such rows out (with a warning) and ``predict`` gives NaN for them.
        run_dir: keep the fine-tuning run folder here (metrics, learning curve, ``model/``, and
            ``train.csv``: the rows as fine-tuned, with a ``split`` column of train / valid; the run
            has no test set, so its test metric is NaN); must be new or empty. None: a temporary
            folder, deleted after ``fit`` (the fine-tuned model stays in ``model_``).
        config: more fine-tuning settings as a nested dict of config sections, e.g.
            ``{"optim": {"grad_clip": 1.0}, "model": {"dropout": 0.1}}``; keys that a parameter
            above sets are refused.
        verbose: show Lightning's progress and log lines.
        ensemble_size: fine-tune N members (seeds ``random_state`` .. ``random_state + N - 1``, one
            split) and predict their mean; ``model_`` is then an
            :class:`~molchannel.ensemble.EnsembleModel` (a regressor's is conformally calibrated on the
            validation rows: ``model_.predict_interval(X, coverage=0.9)``).

    Attributes:
        model_: the fine-tuned :class:`~molchannel.api.MolChannelModel` (an
            :class:`~molchannel.ensemble.EnsembleModel` with ``ensemble_size > 1``; kept in pickles).
        tasks_: target names (``y`` or ``y_0 ... y_{T-1}``).
        n_outputs_: number of targets ``T``.
        best_epoch_, valid_score_, valid_metric_: the selected epoch and its validation metric (of the
            first member in an ensemble; ``member_valid_scores_``: every member's).
        channel_weights_: channel-mixing weights of the fine-tuned prompt.
        run_dir_: the run folder (None without ``run_dir``).
        seed_: the seed used.
    """

    _task_type = "regression"

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _encode_y(self, y: Any, n: int) -> tuple[np.ndarray, list[str], dict[str, Any]]:
        name = f"{type(self).__name__}.fit"
        try:
            targets = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: y must be numeric for regression ({exc})") from exc
        one_d = targets.ndim == 1
        if one_d:
            targets = targets[:, None]
        if targets.ndim != 2 or targets.shape[0] != n:
            raise ValueError(f"{name}: y must have shape ({n},) or ({n}, T), got {np.shape(y)}")
        if np.isinf(targets).any():
            raise ValueError(f"{name}: y holds inf; use NaN for a missing label")
        empty = [t for t in range(targets.shape[1]) if np.isnan(targets[:, t]).all()]
        if empty:
            raise ValueError(f"{name}: target column(s) {empty} hold no labels (all NaN)")
        tasks = ["y"] if one_d else [f"y_{t}" for t in range(targets.shape[1])]
        return targets, tasks, {"n_outputs_": targets.shape[1], "_y_1d": one_d}

    def predict(self, X: Any, return_std: bool = False) -> Any:
        """Predicted values, ``[N]`` for a 1-D ``y`` in ``fit``, else ``[N, T]``.

        Args:
            X: SMILES (1-D sequence or one column).
            return_std: also return the predicted standard deviation, ``(mean, std)`` (as scikit-learn's
                ``GaussianProcessRegressor``): the spread over members with ``ensemble_size > 1``, or the
                mean-variance head's, fitted with ``config={"model": {"variance_head": True}}``.
        """
        if not return_std:
            out = self._predict_raw(X, "predict")
            return out[:, 0] if self._y_1d else out
        check_is_fitted(self)
        if self.ensemble_size == 1 and not self.model_.has_variance_head:
            raise ValueError(
                "return_std needs an ensemble (ensemble_size=N, N > 1: the spread over members) or a "
                "mean-variance head (config={'model': {'variance_head': True}})"
            )
        _check_choice(self.on_invalid, "on_invalid", ON_INVALID)
        smiles, _ = _smiles_input(X, f"{type(self).__name__}.predict")
        mean, std = self.model_.predict(
            smiles,
            batch_size=int(self.batch_size),
            device=_load_device(self.device),
            on_invalid=cast(OnInvalid, self.on_invalid),
            return_std=True,
        )
        return (mean[:, 0], std[:, 0]) if self._y_1d else (mean, std)


class MolChannelClassifier(ClassifierMixin, _FinetunedEstimator):
    """Fine-tune a molchannel model on SMILES -> class (scikit-learn classifier).

    Fitting works as for :class:`MolChannelRegressor` (same parameters). ``y`` may be

    * 1-D with two classes (any labels; ``classes_`` sorted, the second is the positive one):
      ``predict_proba`` is ``[N, 2]``;
    * 1-D with more classes: one binary task per class (one-vs-rest on a shared encoder),
      ``predict_proba`` normalises the per-class probabilities to sum to 1;
    * 2-D of 0/1 (multi-label, NaN = missing label): ``predict_proba`` is ``[N, T]``, one
      probability per label, and ``predict`` a 0/1 matrix.

    With ``on_invalid="nan"``, ``predict_proba`` gives NaN rows for invalid SMILES, while
    ``predict`` raises (there is no class to give them).

    Attributes:
        classes_: class labels (``0 ... T-1`` for multi-label).
        model_, tasks_, best_epoch_, valid_score_, valid_metric_, channel_weights_, run_dir_, seed_:
            as for :class:`MolChannelRegressor`.
    """

    _task_type = "classification"

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _encode_y(self, y: Any, n: int) -> tuple[np.ndarray, list[str], dict[str, Any]]:
        name = f"{type(self).__name__}.fit"
        array = np.asarray(y)
        if array.ndim == 2 and array.shape[1] > 1:
            if array.shape[0] != n:
                raise ValueError(f"{name}: X has {n} rows but y has {array.shape[0]}")
            try:
                targets = array.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}: a 2-D y is multi-label and must hold 0/1 (NaN: missing)") from exc
            labelled = targets[~np.isnan(targets)]
            if not np.isin(labelled, (0.0, 1.0)).all():
                raise ValueError(
                    f"{name}: a 2-D y is multi-label and must hold 0/1 (NaN: missing), found "
                    f"{np.unique(labelled[~np.isin(labelled, (0.0, 1.0))])[:5].tolist()}"
                )
            fitted = {"classes_": np.arange(targets.shape[1]), "_mode": "multilabel"}
            return targets, [f"label_{t}" for t in range(targets.shape[1])], fitted
        labels = _labels_1d(array, n, name)
        if labels.dtype.kind == "f" and np.isnan(labels).any():
            raise ValueError(f"{name}: y holds NaN; every row needs a class label")
        if labels.dtype.kind == "f" and not np.all(labels == np.round(labels)):
            raise ValueError(
                f"{name}: Unknown label type: y holds continuous values; use MolChannelRegressor for "
                "regression, or give class labels"
            )
        try:
            classes, encoded = np.unique(labels, return_inverse=True)
        except TypeError as exc:
            raise ValueError(f"{name}: Unknown label type: cannot sort the labels of y ({exc})") from exc
        if len(classes) < 2:
            raise ValueError(
                f"{name} needs samples of at least 2 classes in y, but y holds only class {classes[0]!r}"
            )
        if len(classes) == 2:
            return encoded.astype(np.float64)[:, None], ["y"], {"classes_": classes, "_mode": "binary"}
        tasks = [f"class_{k}" for k in range(len(classes))]
        return np.eye(len(classes))[encoded], tasks, {"classes_": classes, "_mode": "multiclass"}

    def _stratify_key(self, targets: np.ndarray) -> np.ndarray | None:
        """Classes (binary or one-vs-rest), so that each class is in the validation set when it can be."""
        if targets.shape[1] == 1:
            return targets[:, 0]
        one_hot = ~np.isnan(targets).any() and np.all(targets.sum(axis=1) == 1)
        return np.argmax(targets, axis=1).astype(np.float64) if one_hot else None

    def _valid_groups(self, targets: np.ndarray) -> list[np.ndarray]:
        """Each task's positives and negatives: validation ROC-AUC needs both classes of a task (a class of
        a binary or multiclass ``y`` is such a task: its one-vs-rest column)."""
        return [targets[:, t] == value for t in range(targets.shape[1]) for value in (0.0, 1.0)]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities: ``[N, 2]`` (binary), ``[N, K]`` (K classes) or ``[N, T]`` (multi-label).

        Args:
            X: SMILES (1-D sequence or one column).
        """
        p = self._predict_raw(X, "predict_proba").astype(np.float64)
        if self._mode == "binary":
            return np.column_stack([1.0 - p[:, 0], p[:, 0]])
        if self._mode == "multiclass":
            total = p.sum(axis=1, keepdims=True)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(total > 0, p / total, 1.0 / p.shape[1])
        return p

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (``classes_`` values), or a 0/1 ``[N, T]`` matrix for multi-label.

        Args:
            X: SMILES (1-D sequence or one column).
        """
        proba = self.predict_proba(X)
        missing = np.flatnonzero(np.isnan(proba).any(axis=1))
        if len(missing):
            raise ValueError(
                f"{type(self).__name__}.predict: rows {missing[:10].tolist()} have invalid SMILES and no "
                "class; use predict_proba (NaN rows) or remove them"
            )
        if self._mode == "multilabel":
            return (proba >= 0.5).astype(np.int64)
        if self._mode == "binary":
            return self.classes_[(proba[:, 1] >= 0.5).astype(np.int64)]
        return self.classes_[np.argmax(proba, axis=1)]
