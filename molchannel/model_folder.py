"""The exported model folder: the contract between training and inference.

A model folder holds exactly two files that are read:

* ``config.json`` - format version, featurizer spec, encoder architecture, channel names,
  channel-mixing weights, optional prediction head (tasks, task type, target scaler) and
  training provenance, plus the sha256 of the weights file;
* ``model.safetensors`` - every tensor, flat, under the prefixes ``encoder.``, ``mixing.``
  and ``head.``.

Loading parses JSON and safetensors only: nothing is unpickled and no code from the folder
runs. Keys and shapes are checked strictly against the architecture the config describes,
and a mismatch is reported as a readable diff. Lightning ``.ckpt`` files are for resuming
training only; ``molchannel export`` turns one into a model folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from molchannel.atomic import atomic_path, write_bytes_atomic

FORMAT_NAME = "molchannel-model"
FORMAT_VERSION = 2  # 2: a head's target scaler is in the weights (1: JSON floats)
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class ModelFolderError(ValueError):
    """A model folder is missing, malformed, tampered with, or does not match its config."""


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_model_folder(
    path: str | os.PathLike[str], config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]
) -> Path:
    """Write ``config`` and ``tensors`` as a model folder at ``path`` (created if needed).

    The weights are written first, then the config that names their sha256, each atomically,
    so an interrupted export never leaves a config that points at half-written weights.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    metadata = {"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION)}
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        tmp.write_bytes(safetensors_bytes(flat, metadata))
        digest = sha256_file(tmp)
    full = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **config, "weights_sha256": digest}
    write_bytes_atomic(folder / CONFIG_FILE, (json.dumps(full, indent=2, sort_keys=False) + "\n").encode())
    return folder


def safetensors_bytes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> bytes:
    """A safetensors file whose bytes depend only on ``tensors`` and ``metadata``.

    safetensors keeps the metadata in a hash map and writes its keys in an order that changes from
    call to call, so the same weights would get another file (and ``weights_sha256``) on every export.
    Here the file is written without metadata, then its header gets the metadata in sorted key order
    (tensor offsets count from the end of the header, so only the header changes).
    """
    data = save(dict(tensors))
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    header = {"__metadata__": dict(sorted(metadata.items())), **header}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the tensor data starts 8-byte aligned, as safetensors writes it
    return len(text).to_bytes(8, "little") + text + data[8 + size :]


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate ``config.json`` of a model folder (no weights are touched)."""
    folder = Path(path)
    if folder.is_file():
        hint = (
            " It looks like a Lightning checkpoint, which is for resuming training only: "
            "turn it into a model folder with `molchannel export RUN_OR_CKPT -o MODEL_DIR`."
            if folder.suffix in {".ckpt", ".pt", ".pth", ".pkl"}
            else ""
        )
        raise ModelFolderError(
            f"{folder} is a file, but a model folder (config.json + {WEIGHTS_FILE}) was expected.{hint}"
        )
    cfg_path = folder / CONFIG_FILE
    if not cfg_path.is_file():
        raise ModelFolderError(
            f"{folder} is not a molchannel model folder: {CONFIG_FILE} is missing "
            f"(expected {CONFIG_FILE} and {WEIGHTS_FILE})"
        )
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFolderError(f"{cfg_path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        raise ModelFolderError(
            f'{cfg_path} is not a molchannel model config (missing "format": "{FORMAT_NAME}")'
        )
    version = config.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelFolderError(f"{cfg_path} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFolderError(
            f"{folder} uses model format version {version}, newer than this molchannel reads "
            f"({FORMAT_VERSION}); upgrade molchannel"
        )
    return config


def read_weights(
    path: str | os.PathLike[str], config: Mapping[str, Any], verify: bool = True
) -> dict[str, torch.Tensor]:
    """Read ``model.safetensors`` after checking its sha256 against the config."""
    weights = Path(path) / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelFolderError(f"{Path(path)} has no {WEIGHTS_FILE}")
    if verify:
        expected = config.get("weights_sha256")
        actual = sha256_file(weights)
        if expected != actual:
            raise ModelFolderError(
                f"{weights} does not match the sha256 recorded in {CONFIG_FILE} "
                f"(expected {expected}, found {actual}): the file is corrupt or was modified"
            )
    try:
        return load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types
        raise ModelFolderError(f"{weights} is not a valid safetensors file: {exc}") from exc


def state_dict_diff(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]) -> list[str]:
    """Lines describing missing keys, unexpected keys and shape mismatches (empty when they agree)."""
    lines = [
        f"  - missing:    {k} {tuple(expected[k].shape)}" for k in sorted(expected.keys() - found.keys())
    ]
    lines += [f"  + unexpected: {k} {tuple(found[k].shape)}" for k in sorted(found.keys() - expected.keys())]
    for k in sorted(expected.keys() & found.keys()):
        if tuple(expected[k].shape) != tuple(found[k].shape):
            lines.append(
                f"  ~ shape:      {k} expected {tuple(expected[k].shape)}, found {tuple(found[k].shape)}"
            )
    return lines


def load_state_strict(module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``tensors`` into ``module``, failing with a readable diff on any mismatch."""
    expected = module.state_dict()
    diff = state_dict_diff(expected, tensors)
    if diff:
        shown = diff[:40] + ([f"  ... and {len(diff) - 40} more"] if len(diff) > 40 else [])
        raise ModelFolderError(
            f"weights in {source} do not match the architecture in its {CONFIG_FILE} "
            f"({len(diff)} difference(s)):\n" + "\n".join(shown)
        )
    module.load_state_dict(dict(tensors), strict=True)
