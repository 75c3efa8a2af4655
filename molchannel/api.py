"""Python inference API: ``molchannel.load(path).embed(smiles)``.

Needs only the chemistry layer and the network blocks: importing this module (or calling
``embed``) never imports Lightning or DeepChem.

Longer than 500 lines on purpose: it is the one page a user reads for the whole Python API, and
the ``@overload`` signatures that let type checkers tell an array from ``(array, report)`` repeat
the three inference methods' parameters (a third of the module).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import numpy as np
import torch
from rdkit import rdBase

from molchannel.chem.base import Featurizer
from molchannel.chem.bulk import featurize_block
from molchannel.chem.featurizers import get_featurizer
from molchannel.chem.graph_batch import GraphBatch, collate_graphs
from molchannel.chem.mol_features import mol_features_dim, molecule_features
from molchannel.chem.smiles import InvalidRecord, InvalidSmilesError, OnInvalid, check_on_invalid
from molchannel.kernel_member import KernelMember
from molchannel.model_folder import (
    ModelFolderError,
    load_state_strict,
    read_config,
    read_weights,
    write_model_folder,
)
from molchannel.nn.encoder import FEATURIZER_OF_BACKBONE, encoder_config_for
from molchannel.nn.model import MIN_VARIANCE, MolChannelNet, NetConfig, raw_variances
from molchannel.parallel import map_batches
from molchannel.progress import Progress, progress

if TYPE_CHECKING:  # PyG batches come from featurizers without an array form (rich) only
    from torch_geometric.data import Batch

log = logging.getLogger(__name__)

BUILTIN_MODELS = ("default",)
R = TypeVar("R")


def builtin_model_path(name: str) -> Path:
    """Folder of a model shipped inside the package (``"default"``)."""
    if name not in BUILTIN_MODELS:
        raise ValueError(f"unknown built-in model {name!r}; available: {', '.join(BUILTIN_MODELS)}")
    return Path(str(resources.files("molchannel") / "assets" / name))


def resolve_model_path(path: str | os.PathLike[str]) -> Path:
    """A model folder path, or the folder of a built-in model name such as ``"default"``."""
    if isinstance(path, str) and path in BUILTIN_MODELS and not Path(path).exists():
        return builtin_model_path(path)
    return Path(path)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/"cpu" -> CPU; "auto" -> CUDA when available; anything else as torch reads it."""
    if device is None:
        return torch.device("cpu")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was requested but CUDA is not available; use device='cpu'")
    return dev


@dataclass
class EmbedReport:
    """Which input rows produced an output row, and why the others did not."""

    n_inputs: int
    indices: list[int] = field(default_factory=list)
    invalid: list[InvalidRecord] = field(default_factory=list)


class MolChannelModel:
    """A loaded model folder: featurizer + multi-channel network, ready for inference.

    Use :func:`molchannel.load` to get one. The network runs in eval mode, so results do not
    depend on batch size or on which other molecules share a batch.
    """

    def __init__(
        self,
        net: MolChannelNet,
        featurizer: Featurizer,
        config: dict[str, Any],
        path: Path | None = None,
        device: torch.device | None = None,
        kernel_member: KernelMember | None = None,
    ) -> None:
        self.net = net.eval()
        self.featurizer = featurizer
        self.config = config
        # an ECFP SVR blended with the network's predictions (fine-tuned with --model.kernel_blend)
        self.kernel_member = kernel_member
        self.path = path
        self.device = device or torch.device("cpu")
        self.net.to(self.device)

    # ---- description ------------------------------------------------------------------------
    @property
    def channels(self) -> list[str]:
        """Channel names, in the order of the ``channel="all"`` axis."""
        return self.net.channel_names

    @property
    def embedding_dim(self) -> int:
        return self.net.config.encoder.hidden_dim

    @property
    def tasks(self) -> list[str]:
        head = self.config.get("head") or {}
        return list(head.get("tasks", []))

    def info(self) -> dict[str, Any]:
        """A summary of the model: architecture, featurizer, channels, provenance."""
        enc = self.net.config.encoder
        prov = self.config.get("provenance", {})
        return {
            "path": str(self.path) if self.path else None,
            "format_version": self.config.get("format_version"),
            "featurizer": self.featurizer.spec.key(),
            "backbone": enc.backbone,
            "num_layers": enc.num_layers,
            "embedding_dim": enc.hidden_dim,
            "channels": self.channels,
            "channel_weights": dict(
                zip(self.channels, self.net.mixing.probabilities().tolist(), strict=True)
            ),
            "tasks": self.tasks,
            "extra_features": self.net.extra_features,
            "kernel_blend": None
            if self.kernel_member is None
            else {"kind": self.kernel_member.kind, "network_weights": self.kernel_member.network_weights},
            "num_parameters": sum(p.numel() for p in self.net.parameters()),
            "pretrained": bool(prov.get("pretrained", False)),
            "description": prov.get("description", ""),
            "provenance": prov,
            "weights_sha256": self.config.get("weights_sha256"),
        }

    def __repr__(self) -> str:
        i = self.info()
        state = "pre-trained" if i["pretrained"] else "NOT pre-trained (random weights)"
        return (
            f"MolChannelModel({i['backbone']} {i['num_layers']}x{i['embedding_dim']}, "
            f"featurizer={i['featurizer']}, channels={i['channels']}, {state}, path={i['path']})"
        )

    def to(self, device: str | torch.device) -> MolChannelModel:
        """Move the model to ``device`` for good (``"cpu"``, ``"cuda"``, ``"auto"``, ...); returns it.

        The inference methods' own ``device`` argument, by contrast, only lasts for that call.
        """
        self.device = resolve_device(device)
        self.net.to(self.device)
        return self

    # ---- inference --------------------------------------------------------------------------
    @contextmanager
    def _running_on(self, device: str | torch.device | None) -> Iterator[torch.device]:
        """The device of one call: the network moves there for the call and back to :attr:`device` after.

        The moves happen outside inference mode, so the parameters stay ordinary tensors that can
        still be trained or saved.
        """
        target = self.device if device is None else resolve_device(device)
        if target == self.device:
            yield target
            return
        try:
            self.net.to(target)
            yield target
        finally:
            self.net.to(self.device)

    num_workers: int | None = None
    """Processes for CPU inference (see :mod:`molchannel.parallel`): ``None`` (default) forks one per
    torch thread and usable core, ``1`` works in this process only. GPU calls always use one."""

    def _featurized_batch(
        self, items: Sequence[object], start: int, stop: int
    ) -> tuple[list[int], GraphBatch | Batch | None, list[InvalidRecord]]:
        """Inputs ``[start, stop)`` featurized (bulk path) and collated: (input rows, batch, invalid rows).

        Invalid rows are left out of the batch and listed; ``None`` when none is valid. The
        ``basic`` featurization is batched as a :class:`GraphBatch`, without PyG.
        """
        chunk = featurize_block(items[start:stop], self.featurizer, "skip", start, arrays=True)
        if not chunk.graphs:
            return chunk.indices, None, chunk.invalid
        batch = collate_graphs(chunk.graphs)  # type: ignore[arg-type]  # "skip" leaves no None
        extra = self.net.extra_features
        if extra:  # the head reads molecule-level features beside the graph
            batch.mol_features = torch.from_numpy(molecule_features([items[i] for i in chunk.indices], extra))
        if self.kernel_member is not None:  # predict() blends them with the network's
            svr = self.kernel_member.svr_predictions([items[i] for i in chunk.indices])
            batch.kernel_predictions = torch.from_numpy(svr.astype(np.float32))
        return chunk.indices, batch, chunk.invalid

    def _run(
        self,
        items: Sequence[object],
        compute: Callable[[GraphBatch | Batch], R],
        store: Callable[[list[int], R], None],
        batch_size: int,
        device: str | torch.device | None,
        on_invalid: OnInvalid,
        progress: bool,
        desc: str,
    ) -> EmbedReport:
        """``store(input rows, compute(batch on the call's device))`` for every featurized batch.

        ``compute`` may run in a forked worker process (see :attr:`num_workers`), ``store`` always
        runs here, in whatever order the batches finish; the report lists rows in input order.
        Under ``on_invalid="raise"`` the first invalid row in input order raises, as in a serial run.
        """
        n = len(items)
        report = EmbedReport(n_inputs=n)
        n_batches = -(-n // batch_size)
        first_invalid: InvalidRecord | None = None
        # the bar is closed, and the network moved back, also when an invalid row raises
        with self._running_on(device) as dev, torch.inference_mode(), _progress(n, progress, desc) as bar:

            def work(j: int) -> tuple[list[int], R | None, list[InvalidRecord]]:
                rows, batch, invalid = self._featurized_batch(items, j * batch_size, (j + 1) * batch_size)
                return rows, (compute(batch.to(dev)) if batch is not None else None), invalid

            workers = self.num_workers if dev.type == "cpu" else 1
            run = map_batches(n_batches, work, workers)
            for j, (rows, result, invalid) in run.results():
                if invalid and on_invalid == "raise":
                    run.stop_after(j)
                    if first_invalid is None or invalid[0].index < first_invalid.index:
                        first_invalid = invalid[0]
                if first_invalid is None:
                    if result is not None:
                        store(rows, result)
                    report.indices.extend(rows)
                    report.invalid.extend(invalid)
                bar.update(min(n, (j + 1) * batch_size) - j * batch_size)
        if first_invalid is not None:
            raise InvalidSmilesError(items[first_invalid.index], first_invalid.reason, first_invalid.index)
        report.indices.sort()
        report.invalid.sort(key=lambda record: record.index)
        if report.invalid:
            log.warning("%d of %d SMILES were invalid (%s)", len(report.invalid), n, on_invalid)
        return report

    @overload
    def embed(
        self,
        smiles: str | Iterable[object],
        channel: str = ...,
        batch_size: int = ...,
        device: str | torch.device | None = ...,
        on_invalid: OnInvalid = ...,
        progress: bool = ...,
        return_report: Literal[False] = ...,
    ) -> np.ndarray: ...

    @overload
    def embed(
        self,
        smiles: str | Iterable[object],
        channel: str = ...,
        batch_size: int = ...,
        device: str | torch.device | None = ...,
        on_invalid: OnInvalid = ...,
        progress: bool = ...,
        *,
        return_report: Literal[True],
    ) -> tuple[np.ndarray, EmbedReport]: ...

    @overload
    def embed(
        self,
        smiles: str | Iterable[object],
        channel: str = ...,
        batch_size: int = ...,
        device: str | torch.device | None = ...,
        on_invalid: OnInvalid = ...,
        progress: bool = ...,
        return_report: bool = ...,
    ) -> np.ndarray | tuple[np.ndarray, EmbedReport]: ...

    def embed(
        self,
        smiles: str | Iterable[object],
        channel: str = "mix",
        batch_size: int = 128,
        device: str | torch.device | None = None,
        on_invalid: OnInvalid = "raise",
        progress: bool = False,
        return_report: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, EmbedReport]:
        """Embed molecules.

        Args:
            smiles: one SMILES or an iterable of them (list, array, Series, generator). Anything
                that is not iterable (``None``, a ``NaN`` cell, a number) and ``bytes`` count as
                one input, so they follow ``on_invalid`` too (see :func:`~molchannel.chem.parse_smiles`
                for what is valid: salts, isotopes, dummy atoms ``*`` are; SMARTS queries are not).
            channel: ``"mix"`` (the prompt-weighted mixture, [N, D]), a channel name ([N, D]),
                or ``"all"`` ([N, K, D], channels in :attr:`channels` order).
            batch_size: molecules per forward pass (does not change the result).
            device: run this call on this device (``"cpu"``, ``"cuda"``, ``"auto"``, ...). The
                network moves there for the call and back afterwards, so :attr:`device` is
                unchanged; ``None`` (default) uses :attr:`device`. Use :meth:`to` to move the
                model for good, which spares the two copies per call.
            on_invalid: ``"raise"`` (default) raises :class:`InvalidSmilesError` naming the row;
                ``"nan"`` fills the row with NaN; ``"skip"`` drops it (rows then no longer line up
                with the input: use ``return_report=True`` to get the kept row indices).
            progress: show a progress bar.
            return_report: also return an :class:`EmbedReport`.

        Returns:
            float32 numpy array; ``(array, report)`` with ``return_report=True``.
        """
        if channel not in ("mix", "all", *self.channels):
            raise ValueError(f"channel must be 'mix', 'all' or one of {self.channels}, got {channel!r}")
        width = (len(self.channels), self.embedding_dim) if channel == "all" else (self.embedding_dim,)
        return self._map_batches(
            smiles,
            lambda batch: self._embed_batch(batch, channel),
            width,
            batch_size,
            device,
            on_invalid,
            progress,
            return_report,
            "embedding",
        )

    def _map_batches(
        self,
        smiles: str | Iterable[object],
        fn: Callable[[GraphBatch | Batch], np.ndarray],
        width: tuple[int, ...],
        batch_size: int,
        device: str | torch.device | None,
        on_invalid: OnInvalid,
        progress: bool,
        return_report: bool,
        desc: str,
    ) -> np.ndarray | tuple[np.ndarray, EmbedReport]:
        """Run ``fn`` on featurized batches; rows aligned with the input under the invalid policy."""
        single, items = _as_items(smiles)
        _check_options(on_invalid, batch_size)
        out = np.full((len(items), *width), np.nan, dtype=np.float32)

        def store(rows: list[int], values: np.ndarray) -> None:
            out[rows] = values

        report = self._run(items, fn, store, batch_size, device, on_invalid, progress, desc)
        if on_invalid == "skip":
            out = out[report.indices]
        if single and on_invalid != "skip":
            out = out[0]
        return (out, report) if return_report else out

    def _embed_batch(self, batch: GraphBatch | Batch, channel: str) -> np.ndarray:
        output = self.net.encode(batch)
        if channel == "all":
            emb = self.net.stack(output)
        elif channel == "mix":
            emb = self.net.mixing(self.net.stack(output))
        else:
            emb = output.channels[channel]
        return emb.float().cpu().numpy()

    @overload
    def predict(
        self,
        smiles: str | Iterable[object],
        batch_size: int = ...,
        device: str | torch.device | None = ...,
        on_invalid: OnInvalid = ...,
        progress: bool = ...,
        return_report: Literal[False] = ...,
        return_std: Literal[False] = ...,
    ) -> np.ndarray: ...

    @overload
    def predict(
        self,
        smiles: str | Iterable[object],
        batch_size: int = ...,
        device: str | torch.device | None = ...,
        on_invalid: OnInvalid = ...,
        progress: bool = ...,
        *,
        return_report: Literal[True],
        return_std: Literal[False] = ...,
    ) -> tuple[np.ndarray, EmbedReport]: ...

    @overload
    def predict(
        self,
        smiles: str | Iterable[object],
        batch_size: int = ...,
        device: str | torch.device | None = ...,
        on_invalid: OnInvalid = ...,
        progress: bool = ...,
        return_report: Literal[False] = ...,
        *,
        return_std: Literal[True],
    ) -> tuple[np.ndarray, np.ndarray]: ...

    @overload
    def predict(
        self,
        smiles: str | Iterable[object],
        batch_size: int = ...,
        device: str | torch.device | None = ...,
        on_invalid: OnInvalid = ...,
        progress: bool = ...,
        *,
        return_report: Literal[True],
        return_std: Literal[True],
    ) -> tuple[np.ndarray, np.ndarray, EmbedReport]: ...

    @overload
    def predict(
        self,
        smiles: str | Iterable[object],
        batch_size: int = ...,
        device: str | torch.device | None = ...,
        on_invalid: OnInvalid = ...,
        progress: bool = ...,
        return_report: bool = ...,
        return_std: bool = ...,
    ) -> (
        np.ndarray
        | tuple[np.ndarray, EmbedReport]
        | tuple[np.ndarray, np.ndarray]
        | tuple[np.ndarray, np.ndarray, EmbedReport]
    ): ...

    def predict(
        self,
        smiles: str | Iterable[object],
        batch_size: int = 128,
        device: str | torch.device | None = None,
        on_invalid: OnInvalid = "raise",
        progress: bool = False,
        return_report: bool = False,
        return_std: bool = False,
    ) -> Any:
        """Predict the properties of a fine-tuned model: float32 ``[N, T]`` (tasks in :attr:`tasks` order).

        Classification tasks give probabilities, regression tasks values in the original units
        (the saved target scaler is undone). ``batch_size``, ``device`` (for this call only),
        ``on_invalid``, ``progress`` and ``return_report`` work as in :meth:`embed`; a single
        SMILES gives ``[T]``. ``return_std`` (models fine-tuned with ``--model.variance_head true``)
        also returns the predicted standard deviation, ``(mean, std)``, in the targets' units.
        """
        head = self.config.get("head")
        if self.net.head is None or not head:
            where = f" {self.path}" if self.path else ""
            raise ValueError(
                f"model{where} has no prediction head: it only embeds molecules. Fine-tune it on labelled "
                "data with `molchannel finetune` (see README, 'Fine-tune on your own data') and predict with "
                "the model/ folder of that run."
            )
        t = len(self.tasks)
        if not return_std:
            return self._map_batches(
                smiles,
                lambda batch: self._blend(batch, head_predictions(self.net(batch), head))[0],
                (t,),
                batch_size,
                device,
                on_invalid,
                progress,
                return_report,
                "predicting",
            )
        if not self.has_variance_head:
            raise ValueError(
                "return_std needs a model with a predicted spread: fine-tune with "
                "`--model.variance_head true` (regression), or fine-tune an ensemble (`--ensemble-size N`) "
                "and load it with molchannel.load_ensemble"
            )

        def with_std(batch: Any) -> np.ndarray:
            mean, std = self._blend(batch, *head_predictions_with_std(self.net(batch), head))
            assert std is not None
            return np.concatenate([mean, std], axis=-1)

        out, report = self._map_batches(
            smiles, with_std, (2 * t,), batch_size, device, on_invalid, progress, True, "predicting"
        )
        result = (out[..., :t], out[..., t:])
        return (*result, report) if return_report else result

    def _blend(
        self, batch: Any, mean: torch.Tensor, std: torch.Tensor | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The network's predictions of ``batch`` (numpy), blended with the kernel member's when there is
        one; the SVR adds no spread, so a predicted std is scaled by the network's weight."""
        out = mean.float().cpu().numpy()
        spread = None if std is None else std.float().cpu().numpy()
        if self.kernel_member is None:
            return out, spread
        svr = batch.kernel_predictions.cpu().numpy()
        if spread is not None:
            spread = spread * np.asarray(self.kernel_member.network_weights, dtype=np.float32)
        return self.kernel_member.blend(out, svr), spread

    @property
    def has_variance_head(self) -> bool:
        """True for a regression model fine-tuned with a mean-variance head (``predict(return_std=True)``)."""
        head = self.config.get("head") or {}
        return bool(head.get("variance"))

    @overload
    def embed_atoms(
        self,
        smiles: str | Iterable[object],
        batch_size: int = ...,
        on_invalid: OnInvalid = ...,
        device: str | torch.device | None = ...,
        progress: bool = ...,
        return_report: Literal[False] = ...,
    ) -> list[np.ndarray | None]: ...

    @overload
    def embed_atoms(
        self,
        smiles: str | Iterable[object],
        batch_size: int = ...,
        on_invalid: OnInvalid = ...,
        device: str | torch.device | None = ...,
        progress: bool = ...,
        *,
        return_report: Literal[True],
    ) -> tuple[list[np.ndarray | None], EmbedReport]: ...

    @overload
    def embed_atoms(
        self,
        smiles: str | Iterable[object],
        batch_size: int = ...,
        on_invalid: OnInvalid = ...,
        device: str | torch.device | None = ...,
        progress: bool = ...,
        return_report: bool = ...,
    ) -> list[np.ndarray | None] | tuple[list[np.ndarray | None], EmbedReport]: ...

    def embed_atoms(
        self,
        smiles: str | Iterable[object],
        batch_size: int = 128,
        on_invalid: OnInvalid = "raise",
        device: str | torch.device | None = None,
        progress: bool = False,
        return_report: bool = False,
    ) -> list[np.ndarray | None] | tuple[list[np.ndarray | None], EmbedReport]:
        """Per-atom backbone embeddings: one [n_atoms, D] array per molecule, atoms in RDKit order.

        The atoms are those of the featurized graph: heavy atoms, plus the hydrogens RDKit keeps
        (isotopes such as ``[2H]``, a lone ``[H]``); dummy atoms ``*`` count as atoms. Invalid
        molecules give ``None`` with ``on_invalid="nan"`` and are dropped with ``"skip"``; a single
        SMILES (or other single object, as in :meth:`embed`) gives a list of one. ``device`` (for
        this call only), ``progress`` and ``return_report`` (then ``(arrays, report)``) work as in
        :meth:`embed`.
        """
        _, items = _as_items(smiles)
        _check_options(on_invalid, batch_size)
        result: list[np.ndarray | None] = [None] * len(items)

        def per_molecule(batch: GraphBatch | Batch) -> list[np.ndarray]:
            atoms = self.net.encode(batch).atoms.float().cpu().numpy()
            bounds = batch.ptr.tolist()
            return [atoms[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

        def store(rows: list[int], arrays: list[np.ndarray]) -> None:
            for row, array in zip(rows, arrays, strict=True):
                result[row] = array

        report = self._run(
            items, per_molecule, store, batch_size, device, on_invalid, progress, "embedding atoms"
        )
        if on_invalid == "skip":
            result = [result[i] for i in report.indices]
        return (result, report) if return_report else result

    # ---- persistence ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], card: bool = True) -> Path:
        """Write this model as a model folder (see :mod:`molchannel.model_folder`).

        With ``card`` (default), also a model card ``README.md`` rendered from the config (see
        :mod:`molchannel.model_card`); it replaces an older card in that folder.
        """
        config = {
            k: v for k, v in self.config.items() if k not in ("format", "format_version", "weights_sha256")
        }
        tensors = dict(self.net.state_dict())
        config.pop("kernel_member", None)
        if self.kernel_member is not None:
            config["kernel_member"] = self.kernel_member.to_dict()
            tensors.update(self.kernel_member.tensors())
        folder = write_model_folder(path, config, tensors)
        if card:
            from molchannel.model_card import write_model_card

            write_model_card(
                folder,
                read_config(folder),
                sum(p.numel() for p in self.net.parameters()),
                self.net.mixing.probabilities().tolist(),
            )
        return folder


def _as_items(smiles: object) -> tuple[bool, Sequence[object]]:
    """``(single, rows)`` of the ``smiles`` argument of the inference methods.

    A ``str`` or ``bytes`` is one SMILES, and so is any other object that is not iterable
    (``None``, a float ``NaN`` from a table, a number): one input row, which the invalid-SMILES
    policy then handles, instead of an unrelated ``TypeError`` (or, for ``bytes``, one row per
    byte). Other iterables (lists, tuples, numpy arrays, pandas Series, generators) give one row
    per element. Tables (a DataFrame, a 2-D array) are refused: pass their SMILES column.
    """
    if isinstance(smiles, str | bytes) or not isinstance(smiles, Iterable):
        return True, [smiles]
    if hasattr(smiles, "columns") or getattr(smiles, "ndim", 1) > 1:
        raise TypeError(
            f"expected SMILES as a string or a 1-D sequence, got a table ({type(smiles).__name__} of shape "
            f"{getattr(smiles, 'shape', '?')}); pass its SMILES column, e.g. df['smiles']"
        )
    return False, smiles if isinstance(smiles, Sequence) else list(smiles)


def split_head_outputs(
    outputs: torch.Tensor, head: dict[str, Any]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Raw (training-mode) head outputs -> ``(outputs [B, T], variance [B, T] or None)``.

    A mean-variance head (``head["variance"]``) gives ``[B, 2T]``: the standardised means, then raw
    values that ``softplus(.) + MIN_VARIANCE`` turns into variances in standardised units.
    """
    if not head.get("variance"):
        return outputs, None
    t = outputs.shape[-1] // 2
    return outputs[..., :t], raw_variances(outputs[..., t:])


def head_predictions(outputs: torch.Tensor, head: dict[str, Any]) -> torch.Tensor:
    """Outputs of a headed network in eval mode ``[B, T]`` (``[B, 2T]`` with a variance) -> predictions:
    probabilities (classification) or values in the targets' units (the network's target scaler has
    already been applied)."""
    return head_predictions_with_std(outputs, head)[0]


def head_predictions_with_std(
    outputs: torch.Tensor, head: dict[str, Any]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """As :func:`head_predictions`, plus the predicted standard deviation in the targets' units for a
    mean-variance head (None for other heads)."""
    task_type = head.get("task_type")
    if task_type == "classification":
        return outputs, None
    if task_type != "regression":
        raise ValueError(f"head task_type must be 'classification' or 'regression', got {task_type!r}")
    if not head.get("variance"):
        return outputs, None
    t = outputs.shape[-1] // 2
    return outputs[..., :t], outputs[..., t:].clamp(min=0).sqrt()


def build_model_config(
    net_config: NetConfig,
    featurizer: Featurizer,
    provenance: dict[str, Any],
    head: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``config.json`` body of a model folder (without format fields and weights hash)."""
    return {
        "featurizer": featurizer.spec.to_dict(),
        "network": net_config.to_dict(),
        "channels": list(net_config.encoder.channels),
        "head": head,
        "provenance": provenance,
    }


def load(
    path: str | os.PathLike[str] = "default", device: str | torch.device | None = None
) -> MolChannelModel:
    """Load a model folder (or a built-in model name such as ``"default"``).

    The folder of an ensemble (``molchannel finetune --ensemble-size N``) is loaded with
    :func:`molchannel.load_ensemble` instead (its members are model folders of their own).
    """
    folder = resolve_model_path(path)
    from molchannel.ensemble import is_ensemble_folder  # ensemble builds on this module

    if is_ensemble_folder(folder):
        raise ModelFolderError(
            f"{folder} is an ensemble of fine-tuned models: load it with "
            f"molchannel.load_ensemble({str(path)!r}), or one member with molchannel.load(FOLDER/members/0)"
        )
    return load_single(folder, device=device)


def load_single(path: str | os.PathLike[str], device: str | torch.device | None = None) -> MolChannelModel:
    """Load one model folder (not an ensemble) as a :class:`MolChannelModel`."""
    folder = resolve_model_path(path)
    config = read_config(folder)
    try:
        encoder_channels = config["network"]["encoder"]["channels"]
        if config["channels"] != encoder_channels:
            raise ValueError(f"channels {config['channels']} disagree with the encoder's {encoder_channels}")
        featurizer = get_featurizer(config["featurizer"])
        scaler_v1 = _upgrade_format_1(config)
        net = MolChannelNet(NetConfig.from_dict(config["network"]))
        _check_head(config, net)
        _check_extra_features(net)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFolderError(f"{folder}/config.json does not describe a valid model: {exc}") from exc
    weights = read_weights(folder, config)
    if scaler_v1 is not None and net.target_scaler is not None:
        n = net.target_scaler.mean.numel()
        mean, std = scaler_v1
        weights["target_scaler.mean"] = torch.tensor(mean if mean is not None else [0.0] * n)
        weights["target_scaler.std"] = torch.tensor(std if std is not None else [1.0] * n)
    member = None
    if config.get("kernel_member") is not None:
        try:
            member = KernelMember.from_folder(config["kernel_member"], weights)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFolderError(f"{folder}: its kernel_member does not match its weights: {exc}") from exc
    load_state_strict(net, weights, str(folder))
    return MolChannelModel(
        net, featurizer, config, path=folder.resolve(), device=resolve_device(device), kernel_member=member
    )


def _upgrade_format_1(config: dict[str, Any]) -> tuple[list[float] | None, list[float] | None] | None:
    """Bring a format-1 config with a head to format 2, in place: the task type moves into
    ``network.head``, and the target scaler, then JSON floats of the ``head`` section, is returned for
    the weights (format 2 keeps it as the network's ``target_scaler`` buffers). None otherwise."""
    head, net_head = config.get("head"), config["network"].get("head")
    if config.get("format_version") != 1 or head is None or net_head is None:
        return None
    net_head.setdefault("task_type", head.get("task_type"))
    mean, std = head.pop("target_mean", None), head.pop("target_std", None)
    n = int(net_head["num_tasks"])
    for key, values in (("target_mean", mean), ("target_std", std)):
        if values is not None and len(values) != n:
            raise ValueError(f"head {key} has {len(values)} values for {n} tasks")
    return mean, std


def _check_extra_features(net: MolChannelNet) -> None:
    """The molecule features the head reads must have the width it was trained with."""
    head = net.config.head
    if head is None or not head.extra_features:
        return
    width = mol_features_dim(head.extra_features)
    if width != head.extra_dim:
        raise ValueError(
            f"its head reads {head.extra_dim} molecule features ({'+'.join(head.extra_features)}), but this "
            f"RDKit ({rdBase.rdkitVersion}) computes {width}: use the RDKit version in the model's "
            "provenance, or fine-tune again"
        )


def _check_head(config: dict[str, Any], net: MolChannelNet) -> None:
    """The ``head`` section (tasks, task type, scaler) must describe the network's head."""
    head, net_head = config.get("head"), net.config.head
    if (head is None) != (net_head is None):
        raise ValueError(
            "config 'head' and network.head must both be set (a fine-tuned model) or both be null"
        )
    if head is None or net_head is None:
        return
    n = net_head.num_tasks
    if len(head.get("tasks", [])) != n:
        raise ValueError(f"head lists {len(head.get('tasks', []))} tasks but the network predicts {n}")
    if head.get("task_type") not in ("classification", "regression"):
        raise ValueError(
            f"head task_type must be 'classification' or 'regression', got {head.get('task_type')!r}"
        )
    if head["task_type"] != net_head.task_type:
        raise ValueError(
            f"config 'head' is for {head['task_type']} but network.head for {net_head.task_type}"
        )
    if bool(head.get("variance")) != net_head.variance:
        raise ValueError("config 'head' and network.head disagree on whether the head predicts a variance")
    if net_head.variance and head.get("task_type") != "regression":
        raise ValueError("a mean-variance head is for regression tasks only")


def _check_options(on_invalid: str, batch_size: int) -> None:
    check_on_invalid(on_invalid)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def _progress(total: int, enabled: bool, desc: str) -> Progress:
    return progress(total=total, desc=desc, unit="mol", disable=not enabled)


def init_model(
    encoder: dict[str, Any] | None = None,
    featurizer: str | dict[str, Any] | None = None,
    seed: int = 0,
    description: str = "randomly initialised (not pre-trained)",
) -> MolChannelModel:
    """A freshly initialised (random-weight) model, e.g. for tests or as a training start.

    ``encoder`` is an :class:`~molchannel.nn.encoder.EncoderConfig` dict (default: the reference
    GIN). The featurizer defaults to the one the backbone reads; for ``gps`` the atom/bond/PE
    dimensions are filled in from the rich featurizer.
    """
    from molchannel import __version__

    enc = dict(encoder or {})
    feat = get_featurizer(featurizer or FEATURIZER_OF_BACKBONE[enc.get("backbone", "gin")])
    net_config = NetConfig(encoder=encoder_config_for(enc, feat))
    torch.manual_seed(seed)
    net = MolChannelNet(net_config)
    provenance = {
        "pretrained": False,
        "description": description,
        "seed": seed,
        "molchannel_version": __version__,
        "torch_version": torch.__version__,
    }
    config = build_model_config(net_config, feat, provenance)
    return MolChannelModel(net, feat, config)


__all__ = [
    "MIN_VARIANCE",
    "EmbedReport",
    "MolChannelModel",
    "build_model_config",
    "head_predictions",
    "head_predictions_with_std",
    "split_head_outputs",
    "init_model",
    "load",
    "load_single",
]
