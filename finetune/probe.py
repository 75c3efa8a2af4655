"""Linear probe: how much a model's frozen embeddings know, beside a random-init copy and ECFP4.

Kept as one module (its report is apart, in :mod:`molchannel.finetune.probe_report`): the fits, the
feature sets and the loop over datasets share the plan and split conventions described below.

``run_probe(model)`` (or ``molchannel benchmark probe --model M``) does, for every MoleculeNet dataset
asked for (all 11 by default), on the registry's split (the deterministic scaffold split 80/10/10):

1. featurize the molecules once (the graph cache of fine-tuning) and embed them once per network, every
   channel at a time: the model itself and a **random-init copy** (the same config with fresh weights drawn
   under ``seed``, as ``--model.scratch`` builds its start). Each gives the feature sets "one channel alone"
   (one per channel), ``mix`` (the model's default ``embed`` output, the prompt-weighted mixture; uniform
   for an untrained prompt) and ``concat`` (all channels side by side);
2. compute ECFP4 (RDKit Morgan bits, radius 2, 2,048 bits) as the third peer;
3. fit a linear model per feature set: logistic regression per task for classification (missing labels
   left out; ROC-AUC averaged over the tasks with both classes), ridge regression for regression (RMSE
   in the original units, averaged over tasks). Features are standardised with the training rows'
   statistics. The regularisation strength is chosen on the **validation** rows from a grid (C in
   10^-5 .. 10^3, alpha in 10^-3 .. 10^5; one value per dataset and feature set, shared by its tasks; ties
   go to the stronger regularisation), and the test metric at that strength is reported.

With ``with_descriptors`` (``--with-descriptors``) it also probes RDKit's 2D descriptors (``rdkit2d``,
what fine-tuning puts beside the channel mixture by default) alone and beside each network's ``concat``
(``concat+rdkit2d``): whether an embedding adds anything a head with descriptors does not already have.
Descriptors RDKit cannot compute are set to the training mean, and all are standardised with the training
rows' statistics and clipped to +-6, as in fine-tuning.

Then it writes ``results.csv`` (one row per dataset x model x feature set), ``probe.md`` (the table and a
"wins" summary) and ``probe.png`` (see :mod:`molchannel.finetune.probe_report`).

Kept cheap so that it can close a pre-training run: logistic regressions walk the grid from strong to weak
regularisation with warm starts (scikit-learn's L-BFGS), ECFP4 stays a sparse matrix (scaled, not centred:
with an unpenalised intercept, centring does not change the fitted model), and a dataset with more than
``max_tasks`` tasks (ToxCast's 617 assays) is probed on a seeded sample of its tasks that have both classes
in train, valid and test (the table notes say so). Molecules without a graph (unparseable SMILES) are left
out of every feature set alike.

Needs scikit-learn and matplotlib (the ``train`` extra); Lightning is never imported.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from molchannel.api import MolChannelModel, load, resolve_device
from molchannel.data import MoleculeTable, Split
from molchannel.data.cache import GraphStore
from molchannel.finetune.metrics import HIGHER_IS_BETTER, mean_rmse, roc_auc_per_task

log = logging.getLogger("molchannel.probe")

#: Logistic regression's C (inverse strength) 10^-5 .. 10^3 and ridge's alpha (strength) 10^-3 .. 10^5: the
#: usual 10^-3 .. 10^3 plus two decades of stronger regularisation, which standardised ECFP4 bits (and the
#: concatenated channels of small datasets) often need.
DEFAULT_C_GRID: tuple[float, ...] = tuple(10.0**k for k in range(-5, 4))
DEFAULT_ALPHA_GRID: tuple[float, ...] = tuple(10.0**k for k in range(-3, 6))
#: Datasets with more tasks than this (ToxCast) are probed on a seeded sample of their tasks.
DEFAULT_MAX_TASKS = 50
ECFP_RADIUS = 2
ECFP_BITS = 2048
#: Model labels of the three peers, in table order.
PEERS: tuple[str, ...] = ("model", "random_init", "ecfp4")
DESCRIPTORS = "rdkit2d"
"""The molecule features ``with_descriptors`` probes (fine-tuning's default ``model.extra_features``)."""
DESCRIPTOR_CLIP = 6.0  # standardised descriptors are clipped like fine-tuning's extra features
#: L-BFGS iterations per fit (scikit-learn's default); weak strengths on separable tasks stop there.
LR_MAX_ITER = 100

#: ``load_table(name) -> MoleculeTable`` (default :func:`molchannel.data.load_dataset`); tests pass their own.
TableLoader = Callable[[str], MoleculeTable]


# ---- the linear models ----------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeFit:
    """A linear probe of one feature set on one dataset.

    ``value`` is the test metric at ``reg``, the strength chosen on validation (``valid_value``);
    ``valid_by_reg`` holds the validation metric of every grid point, ``test_by_reg`` the test metric of
    every grid point (for inspection only: nothing is chosen on it).
    """

    metric: str
    value: float
    valid_value: float
    reg: float
    reg_name: str
    valid_by_reg: dict[float, float]
    test_by_reg: dict[float, float]
    n_tasks: int


def fit_linear_probe(
    x_train: Any,
    y_train: np.ndarray,
    x_valid: Any,
    y_valid: np.ndarray,
    x_test: Any,
    y_test: np.ndarray,
    task_type: str,
    grid: Sequence[float] | None = None,
) -> ProbeFit:
    """Standardise with train statistics, fit per task over ``grid``, choose on validation, score test.

    ``x_*`` are dense arrays or scipy sparse matrices ``[n, d]``; ``y_*`` are ``[n, T]`` with NaN for a
    missing label (classification labels 0/1). Classification: logistic regression (C in ``grid``, default
    :data:`DEFAULT_C_GRID`), ROC-AUC over the tasks with both classes; a task with one class in train
    scores every molecule alike (ROC-AUC 0.5 where it is scored). Regression: ridge (alpha in ``grid``,
    default :data:`DEFAULT_ALPHA_GRID`), RMSE in the units of ``y``. One strength serves all tasks.
    """
    from threadpoolctl import threadpool_limits

    if task_type not in ("classification", "regression"):
        raise ValueError(f"task_type must be 'classification' or 'regression', got {task_type!r}")
    y_train, y_valid, y_test = (_as_2d(y) for y in (y_train, y_valid, y_test))
    if not (y_train.shape[1] == y_valid.shape[1] == y_test.shape[1]):
        raise ValueError(
            f"train/valid/test labels have {y_train.shape[1]}/{y_valid.shape[1]}/{y_test.shape[1]} tasks"
        )
    if x_train.shape[0] != len(y_train) or x_valid.shape[0] != len(y_valid) or x_test.shape[0] != len(y_test):
        raise ValueError("features and labels have different numbers of rows")
    if x_train.shape[0] == 0:
        raise ValueError("no training molecules to fit the probe on")
    x_train, x_valid, x_test = _standardise(x_train, x_valid, x_test, dense=task_type == "regression")
    classification = task_type == "classification"
    grid = sorted(float(g) for g in (grid or (DEFAULT_C_GRID if classification else DEFAULT_ALPHA_GRID)))
    if not grid or any(not g > 0 for g in grid):
        raise ValueError(f"the regularisation grid must hold positive values, got {grid}")
    metric = "roc_auc" if classification else "rmse"
    # strong to weak regularisation: small C first (warm starts), large alpha first
    order = grid if classification else grid[::-1]
    scores = _logistic_path if classification else _ridge_path
    valid_by_reg: dict[float, float] = {}
    test_by_reg: dict[float, float] = {}
    # Many small fits: BLAS threads buy nothing here and, on a shared machine, oversubscribed threads
    # that spin-wait make the fits many times slower. One thread each, for this call only.
    with threadpool_limits(limits=1):
        for reg, pred_valid, pred_test in scores(x_train, y_train, x_valid, x_test, order):
            valid_by_reg[reg] = _score(metric, y_valid, pred_valid)
            test_by_reg[reg] = _score(metric, y_test, pred_test)
    reg = _choose(metric, valid_by_reg, order)
    return ProbeFit(
        metric=metric,
        value=test_by_reg[reg],
        valid_value=valid_by_reg[reg],
        reg=reg,
        reg_name="C" if classification else "alpha",
        valid_by_reg=valid_by_reg,
        test_by_reg=test_by_reg,
        n_tasks=y_train.shape[1],
    )


def _as_2d(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    return y.reshape(len(y), -1)


def _standardise(x_train: Any, x_valid: Any, x_test: Any, dense: bool) -> tuple[Any, Any, Any]:
    """Scale (and centre, for dense input) with the training rows' mean and std; constant columns unscaled.

    Sparse input is only scaled, which keeps it sparse; with an unpenalised intercept this fits the same
    model as centring would. ``dense=True`` densifies sparse input first (ridge on small datasets).
    """
    import scipy.sparse as sp
    from sklearn.preprocessing import StandardScaler

    if dense and sp.issparse(x_train):
        x_train, x_valid, x_test = (x.toarray() for x in (x_train, x_valid, x_test))
    sparse = sp.issparse(x_train)
    if not sparse:
        x_train, x_valid, x_test = (np.asarray(x, dtype=np.float64) for x in (x_train, x_valid, x_test))
    scaler = StandardScaler(with_mean=not sparse).fit(x_train)
    return scaler.transform(x_train), scaler.transform(x_valid), scaler.transform(x_test)


def _logistic_path(
    x_train: Any, y_train: np.ndarray, x_valid: Any, x_test: Any, grid: Sequence[float]
) -> Iterator[tuple[float, np.ndarray, np.ndarray]]:
    """Per grid value (increasing C), the decision values of one warm-started logistic regression per task."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    n_tasks = y_train.shape[1]
    models: list[Any] = [None] * n_tasks
    for c in grid:
        pred_valid = np.zeros((x_valid.shape[0], n_tasks))
        pred_test = np.zeros((x_test.shape[0], n_tasks))
        for t in range(n_tasks):
            labelled = np.flatnonzero(np.isfinite(y_train[:, t]))
            y = y_train[labelled, t]
            if y.size == 0 or y.min() == y.max():
                continue  # one class only: no model; every molecule gets the same score
            if models[t] is None:
                models[t] = LogisticRegression(C=c, max_iter=LR_MAX_ITER, warm_start=True)
            models[t].C = c
            with warnings.catch_warnings():
                # the weakest strengths on (nearly) separable tasks stop at max_iter; a probe needs no more
                warnings.simplefilter("ignore", ConvergenceWarning)
                models[t].fit(x_train[labelled], y)
            pred_valid[:, t] = models[t].decision_function(x_valid)
            pred_test[:, t] = models[t].decision_function(x_test)
        yield c, pred_valid, pred_test


def _ridge_path(
    x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, x_test: np.ndarray, grid: Sequence[float]
) -> Iterator[tuple[float, np.ndarray, np.ndarray]]:
    """Per grid value, the predictions of one ridge regression per task (fitted on its labelled rows)."""
    from sklearn.linear_model import Ridge

    n_tasks = y_train.shape[1]
    for alpha in grid:
        pred_valid = np.zeros((x_valid.shape[0], n_tasks))
        pred_test = np.zeros((x_test.shape[0], n_tasks))
        for t in range(n_tasks):
            labelled = np.flatnonzero(np.isfinite(y_train[:, t]))
            if labelled.size == 0:
                pred_valid[:, t] = pred_test[:, t] = math.nan
                continue
            ridge = Ridge(alpha=alpha).fit(x_train[labelled], y_train[labelled, t])
            pred_valid[:, t] = ridge.predict(x_valid)
            pred_test[:, t] = ridge.predict(x_test)
        yield alpha, pred_valid, pred_test


def _score(metric: str, targets: np.ndarray, predictions: np.ndarray) -> float:
    if len(targets) == 0:
        return math.nan
    if metric == "roc_auc":
        values = [v for v in roc_auc_per_task(targets, predictions) if v is not None]
        return float(np.mean(values)) if values else math.nan
    return mean_rmse(targets, predictions)


def _choose(metric: str, valid_by_reg: Mapping[float, float], order: Sequence[float]) -> float:
    """The grid value with the best validation metric; ties (and an unscorable validation set: the middle
    of the grid) go to the stronger regularisation, i.e. the earlier value of ``order``."""
    finite = [(v, r) for r, v in valid_by_reg.items() if math.isfinite(v)]
    if not finite:
        return order[len(order) // 2]
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    best = max(sign * v for v, _ in finite)
    return next(r for r in order if math.isfinite(valid_by_reg[r]) and sign * valid_by_reg[r] == best)


def select_tasks(
    y_train: np.ndarray, y_valid: np.ndarray, y_test: np.ndarray, max_tasks: int | None, seed: int
) -> np.ndarray:
    """Task columns to probe: all of them when there are at most ``max_tasks``; otherwise a seeded sample
    (``numpy.random.default_rng(seed)``) of ``max_tasks`` among the tasks with both classes in all three
    subsets, in column order."""
    n_tasks = y_train.shape[1]
    if max_tasks is None or n_tasks <= max_tasks:
        return np.arange(n_tasks)
    if max_tasks < 1:
        raise ValueError(f"max_tasks must be a positive integer, got {max_tasks}")

    def both_classes(y: np.ndarray) -> np.ndarray:
        return (np.nansum(y == 1, axis=0) > 0) & (np.nansum(y == 0, axis=0) > 0)

    eligible = np.flatnonzero(both_classes(y_train) & both_classes(y_valid) & both_classes(y_test))
    if len(eligible) <= max_tasks:
        return eligible
    return np.sort(np.random.default_rng(seed).choice(eligible, size=max_tasks, replace=False))


# ---- features -------------------------------------------------------------------------------
def random_init_copy(model: MolChannelModel, seed: int = 0) -> MolChannelModel:
    """The same architecture (network config, featurizer, channels) with fresh weights drawn under ``seed``.

    Built as fine-tuning's ``--model.scratch`` builds its start: ``torch.manual_seed(seed)``, then a new
    :class:`~molchannel.nn.model.MolChannelNet` of the model's config (the prompt logits start at zero: a
    uniform mixture). The caller's torch random state is left as it was.
    """
    from molchannel.nn.model import MolChannelNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = MolChannelNet(model.net.config)
    provenance = {
        "pretrained": False,
        "description": f"random-init copy (seed {seed}) of the architecture of {model.path or 'a model'}",
        "seed": seed,
    }
    config = {**model.config, "provenance": provenance, "weights_sha256": None}
    return MolChannelModel(net, model.featurizer, config, path=None, device=model.device)


@torch.inference_mode()
def embed_graphs(
    model: MolChannelModel, store: GraphStore, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Frozen embeddings of every graph of ``store`` (store order): channels ``[n, K, D]`` and the mixture
    ``[n, D]`` (what ``model.embed(..., channel="all")`` and ``channel="mix"`` return)."""
    from torch_geometric.data import Batch

    net = model.net.eval()
    n, k, d = len(store), len(model.channels), model.embedding_dim
    stacked = np.empty((n, k, d), dtype=np.float32)
    mixed = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        batch = Batch.from_data_list([store[i] for i in range(start, stop)]).to(model.device)
        channels = net.stack(net.encode(batch))
        stacked[start:stop] = channels.float().cpu().numpy()
        mixed[start:stop] = net.mixing(channels).float().cpu().numpy()
    return stacked, mixed


def embedding_feature_sets(
    channels: Sequence[str], stacked: np.ndarray, mixed: np.ndarray
) -> dict[str, np.ndarray]:
    """``{channel: [n, D] for each channel, "mix": [n, D], "concat": [n, K*D]}`` (views, no copies)."""
    out = {name: stacked[:, i, :] for i, name in enumerate(channels)}
    out["mix"] = mixed
    out["concat"] = stacked.reshape(len(stacked), -1)
    return out


def ecfp4_features(smiles: Sequence[str], radius: int = ECFP_RADIUS, n_bits: int = ECFP_BITS) -> Any:
    """ECFP bits (RDKit Morgan, no chirality, no counts) as a ``scipy.sparse`` CSR ``float32 [n, n_bits]``.

    Raises on a SMILES RDKit cannot parse: pass the rows that have a graph.
    """
    import scipy.sparse as sp
    from rdkit.Chem import rdFingerprintGenerator

    from molchannel.chem.smiles import parse_smiles

    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    indptr = [0]
    indices: list[int] = []
    for i, s in enumerate(smiles):
        indices.extend(generator.GetFingerprint(parse_smiles(s, i)).GetOnBits())
        indptr.append(len(indices))
    data = np.ones(len(indices), dtype=np.float32)
    return sp.csr_matrix(
        (data, np.asarray(indices, dtype=np.int64), np.asarray(indptr)), (len(smiles), n_bits)
    )


# ---- one run --------------------------------------------------------------------------------
def descriptor_features(
    table: MoleculeTable,
    rows: np.ndarray,
    train: np.ndarray,
    cache_dir: str | os.PathLike[str] | None,
) -> np.ndarray:
    """RDKit 2D descriptors of ``table``'s molecules ``rows``, close to what fine-tuning's head sees:
    values RDKit cannot compute (NaN, inf) set to the training mean, standardised with the statistics of
    the training positions ``train`` (here after that filling, and only constant columns left unscaled;
    fine-tuning's scaler uses the finite values and a 1e-6 floor) and clipped to
    +-:data:`DESCRIPTOR_CLIP`; ``float32 [len(rows), D]``.
    Cached beside the graphs (the cache fine-tuning fills) when ``cache_dir`` is set."""
    from molchannel.chem.mol_features import cached_molecule_features

    cache = Path(cache_dir) if cache_dir is not None else None
    x = cached_molecule_features(table.smiles, [DESCRIPTORS], cache)[np.asarray(rows)].astype(np.float64)
    x[~np.isfinite(x)] = np.nan
    with warnings.catch_warnings():  # a column RDKit never computes on the training rows: all NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(x[train], axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        x = np.where(np.isnan(x), mean, x)
        std = x[train].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return np.clip((x - mean) / std, -DESCRIPTOR_CLIP, DESCRIPTOR_CLIP).astype(np.float32)


@dataclass
class ProbeResult:
    """What :func:`run_probe` computed and wrote.

    ``rows`` are the rows of ``results.csv`` (dicts); ``summary`` one dict per dataset (the table's row);
    ``wins`` the counts of the "wins" line; ``files`` the paths written.
    """

    output_dir: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    wins: dict[str, Any] = field(default_factory=dict)
    markdown: str = ""
    files: dict[str, Path] = field(default_factory=dict)
    wall_time_s: float = 0.0


def default_output_dir(model: str | os.PathLike[str] | MolChannelModel) -> Path:
    """``runs/benchmark/probe-<model>``: the built-in name or the model folder's name."""
    if isinstance(model, MolChannelModel):
        name = model.path.name if model.path is not None else "model"
    else:
        name = Path(model).name or "model"
    return Path("runs") / "benchmark" / f"probe-{name}"


def load_probe_model(
    model: str | os.PathLike[str] | MolChannelModel, device: str | None = None
) -> MolChannelModel:
    """A loaded model as given (a model folder, a built-in name such as ``"default"``, or a loaded model)."""
    if isinstance(model, MolChannelModel):
        return model if device is None else model.to(device)
    try:
        return load(model, device=device)
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"cannot load the model {str(model)!r} to probe: {exc}. Give --model a model folder "
            "(config.json + model.safetensors, e.g. from `molchannel export`) or 'default'."
        ) from exc


def run_probe(
    model: str | os.PathLike[str] | MolChannelModel = "default",
    datasets: Sequence[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    seed: int = 0,
    *,
    limit: int | None = None,
    max_tasks: int | None = DEFAULT_MAX_TASKS,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    alpha_grid: Sequence[float] = DEFAULT_ALPHA_GRID,
    batch_size: int = 256,
    device: str | None = None,
    cache_dir: str | os.PathLike[str] | None = "default",
    quiet: bool = False,
    load_table: TableLoader | None = None,
    command: str | None = None,
    with_descriptors: bool = False,
) -> ProbeResult:
    """Linear-probe ``model`` on MoleculeNet beside its random-init copy and ECFP4; write the tables.

    Args:
        model: a model folder, ``"default"`` or a loaded :class:`~molchannel.api.MolChannelModel`.
        datasets: MoleculeNet names (default: all 11, registry order).
        output: output folder (default :func:`default_output_dir`).
        seed: seeds the random-init copy's weights and the task sample of ToxCast.
        limit: only the first N molecules of each dataset (quick looks; not comparable with full runs).
        max_tasks: probe at most this many tasks per dataset (a seeded sample; None: all).
        c_grid / alpha_grid: the regularisation grids of logistic and ridge regression.
        batch_size / device: of the embedding passes.
        cache_dir: graph cache folder; ``"default"`` is fine-tuning's (``$MOLCHANNEL_CACHE_DIR/graphs``),
            None featurizes in memory.
        quiet: no progress bars.
        load_table: ``name -> MoleculeTable`` (default :func:`molchannel.data.load_dataset`).
        command: the command line, recorded in ``probe.md``.
        with_descriptors: also probe RDKit 2D descriptors alone and beside each network's ``concat``.

    Raises:
        ValueError: an unknown dataset name, or a model that cannot be loaded.
    """
    from molchannel.data import resolve_cache_dir
    from molchannel.finetune import probe_report
    from molchannel.finetune.benchmark import resolve_datasets
    from molchannel.progress import progress

    started = time.perf_counter()
    names = resolve_datasets("moleculenet", datasets)
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be a positive integer, got {limit}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if device is not None:
        resolve_device(device)  # a clear error for an unavailable device before any work
    base = load_probe_model(model, device)
    nets = {"model": base, "random_init": random_init_copy(base, seed)}
    out = Path(output) if output is not None else default_output_dir(model)
    plan = _Plan(
        nets=nets,
        cache_dir=resolve_cache_dir() / "graphs" if cache_dir == "default" else cache_dir,
        grids={"classification": tuple(c_grid), "regression": tuple(alpha_grid)},
        max_tasks=max_tasks,
        seed=seed,
        batch_size=batch_size,
        quiet=quiet,
        descriptors=with_descriptors,
    )
    load_table = load_table or _load_dataset
    steps = len(names) * plan.steps_per_dataset
    with progress(total=steps, desc="linear probe", unit="step", disable=quiet) as bar:
        for name in names:
            bar.set_postfix_str(f"{name}: loading")
            _probe_dataset(plan, name, _first_rows(load_table(name), limit), bar)
    result = ProbeResult(output_dir=out, rows=plan.rows, wall_time_s=time.perf_counter() - started)
    context = probe_report.ProbeContext(
        model=_model_label(model, base),
        channels=list(base.channels),
        seed=seed,
        limit=limit,
        max_tasks=max_tasks,
        c_grid=list(c_grid),
        alpha_grid=list(alpha_grid),
        task_notes=plan.task_notes,
        command=command,
        with_descriptors=with_descriptors,
        wall_time_s=result.wall_time_s,
        embed_time_s=plan.embed_time_s,
    )
    probe_report.write_outputs(result, context)
    return result


@dataclass
class _Plan:
    """What every dataset of a run is probed with, and what the run has gathered so far."""

    nets: dict[str, MolChannelModel]
    cache_dir: str | os.PathLike[str] | None
    grids: dict[str, tuple[float, ...]]
    max_tasks: int | None
    seed: int
    batch_size: int
    quiet: bool
    descriptors: bool = False
    rows: list[dict[str, Any]] = field(default_factory=list)
    task_notes: dict[str, str] = field(default_factory=dict)
    embed_time_s: dict[str, float] = field(default_factory=dict)

    @property
    def steps_per_dataset(self) -> int:
        """Progress steps: loading, per network its embedding and its feature sets, ECFP4 bits and fit."""
        per_net = [1 + len(net.channels) + 2 + int(self.descriptors) for net in self.nets.values()]
        return 1 + sum(per_net) + 2 + 2 * int(self.descriptors)


def _probe_dataset(plan: _Plan, name: str, table: MoleculeTable, bar: Any) -> None:
    """Every feature set of one dataset: the networks' embeddings (computed once each), then ECFP4."""
    from molchannel.data import load_or_build_graphs
    from molchannel.data.splits import benchmark_split

    split = benchmark_split(table)
    featurizer = plan.nets["model"].featurizer
    store = load_or_build_graphs(table, featurizer, plan.cache_dir, progress=not plan.quiet)
    positions = _subset_positions(store, split)
    labels = [table.targets[store.row_index[p]] for p in positions]
    tasks = select_tasks(labels[0], labels[1], labels[2], plan.max_tasks, plan.seed)
    if len(tasks) < table.targets.shape[1]:
        plan.task_notes[name] = f"{len(tasks)} of {table.targets.shape[1]} tasks"
    labels = [y[:, tasks] for y in labels]
    sizes = {"n_train": len(positions[0]), "n_valid": len(positions[1]), "n_test": len(positions[2])}
    grid = plan.grids[table.task_type]
    bar.update(1)

    def probe(peer: str, features: str, x: Any) -> None:
        bar.set_postfix_str(f"{name}: {peer} {features}")
        t0 = time.perf_counter()
        xs = [x[p] for p in positions]
        fit = fit_linear_probe(xs[0], labels[0], xs[1], labels[1], xs[2], labels[2], table.task_type, grid)
        plan.rows.append(_row(name, peer, features, x.shape[1], fit, sizes, time.perf_counter() - t0))
        log.info("%s %s %s: test %s %.4f (valid %.4f, %s=%g)", name, peer, features, fit.metric,
                 fit.value, fit.valid_value, fit.reg_name, fit.reg)  # fmt: skip
        bar.update(1)

    descriptors = None
    if plan.descriptors:
        bar.set_postfix_str(f"{name}: {DESCRIPTORS}")
        descriptors = descriptor_features(table, store.row_index, positions[0], plan.cache_dir)
        bar.update(1)
        probe(DESCRIPTORS, DESCRIPTORS, descriptors)
    for peer, net in plan.nets.items():
        bar.set_postfix_str(f"{name}: embedding ({peer})")
        t0 = time.perf_counter()
        stacked, mixed = embed_graphs(net, store, plan.batch_size)
        plan.embed_time_s[peer] = plan.embed_time_s.get(peer, 0.0) + time.perf_counter() - t0
        bar.update(1)
        sets = embedding_feature_sets(net.channels, stacked, mixed)
        for features, x in sets.items():
            probe(peer, features, x)
        if descriptors is not None:
            probe(peer, f"concat+{DESCRIPTORS}", np.hstack([sets["concat"], descriptors]))
    bar.set_postfix_str(f"{name}: ECFP4 bits")
    bits = ecfp4_features([table.smiles[r] for r in store.row_index])
    bar.update(1)
    probe("ecfp4", "ecfp4", bits)


def _load_dataset(name: str) -> MoleculeTable:
    from molchannel.data import load_dataset

    return load_dataset(name)


def _first_rows(table: MoleculeTable, limit: int | None) -> MoleculeTable:
    if limit is None or limit >= len(table):
        return table
    return dataclasses.replace(
        table,
        smiles=table.smiles[:limit],
        targets=table.targets[:limit],
        extra={k: v[:limit] for k, v in table.extra.items()},
        invalid=[rec for rec in table.invalid if rec.index < limit],
    )


def _subset_positions(store: GraphStore, split: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Store positions (rows of the feature matrices) of the train, valid and test rows that have a graph."""
    subsets = tuple(store.positions_for_rows(rows) for rows in (split.train, split.valid, split.test))
    if len(subsets[0]) == 0:
        raise ValueError(f"{store.n_rows} molecules gave no training molecule with a graph; nothing to probe")
    return subsets  # type: ignore[return-value]


def _row(
    dataset: str, peer: str, features: str, dim: int, fit: ProbeFit, sizes: Mapping[str, int], seconds: float
) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "model": peer,
        "features": features,
        "metric": fit.metric,
        "value": fit.value,
        "valid_value": fit.valid_value,
        "reg_name": fit.reg_name,
        "reg": fit.reg,
        **sizes,
        "n_tasks": fit.n_tasks,
        "n_features": int(dim),
        "fit_time_s": seconds,
    }


def _model_label(model: str | os.PathLike[str] | MolChannelModel, loaded: MolChannelModel) -> str:
    if isinstance(model, MolChannelModel):
        return str(loaded.path) if loaded.path is not None else "a model given in Python"
    return str(model)


__all__ = [
    "DEFAULT_ALPHA_GRID",
    "DEFAULT_C_GRID",
    "DEFAULT_MAX_TASKS",
    "PEERS",
    "ProbeFit",
    "ProbeResult",
    "default_output_dir",
    "descriptor_features",
    "ecfp4_features",
    "embed_graphs",
    "embedding_feature_sets",
    "fit_linear_probe",
    "load_probe_model",
    "random_init_copy",
    "run_probe",
    "select_tasks",
]
