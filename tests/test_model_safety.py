"""Loading a model folder or a checkpoint never runs code from the file.

The files here carry a real pickle payload: unpickling it calls ``open(marker, "w")``, which creates a
marker file (a harmless stand-in for any code, inside the test's temporary folder).
``test_the_payload_fires_when_unpickled_unsafely`` shows that it does. Every molchannel entry point that
reads such a file (``molchannel.load``, ``molchannel info``, ``molchannel export``, fine-tuning
``--resume``, ``load_checkpoint_safely``, Lightning's checkpoint loading as fine-tuning calls it) must
refuse it with a clear error, and the marker must not exist afterwards.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import molchannel
from molchannel.api import init_model
from molchannel.cli.main import main
from molchannel.model_folder import ModelFolderError, sha256_file

TINY = {"num_layers": 2, "hidden_dim": 16, "aggregator_heads": 2}


class Payload:
    """Unpickled, this calls ``open(marker, "w")``: the marker file appearing means code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.marker, "w"))


def _plant(path: Path, marker: Path, kind: str) -> Path:
    """A file at ``path`` whose unpickling creates ``marker``: a torch checkpoint or a plain pickle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "torch":  # looks like a Lightning checkpoint: tensors, plain values and one payload
        checkpoint = {"epoch": 0, "global_step": 1, "state_dict": {"net.w": torch.zeros(2)},
                      "hyper_parameters": {"encoder": {}}, "callbacks": Payload(marker)}  # fmt: skip
        torch.save(checkpoint, path)
    else:
        path.write_bytes(pickle.dumps({"weights": Payload(marker)}))
    return path


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    return init_model(TINY, seed=0).save(tmp_path / "model")


@pytest.mark.parametrize("kind", ["torch", "pickle"])
def test_the_payload_fires_when_unpickled_unsafely(tmp_path: Path, kind: str) -> None:
    """The control: unpickled without weights_only, the planted file does run code."""
    marker = tmp_path / "marker"
    planted = _plant(tmp_path / "payload.bin", marker, kind)
    if kind == "torch":
        torch.load(planted, weights_only=False)
    else:
        pickle.loads(planted.read_bytes())
    assert marker.is_file()


@pytest.mark.parametrize("kind", ["torch", "pickle"])
@pytest.mark.parametrize("sha", ["stale", "matching"])
def test_pickled_weights_in_a_model_folder_are_refused(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, sha: str
) -> None:
    marker = tmp_path / "marker"
    weights = _plant(model_dir / "model.safetensors", marker, kind)
    expected = "does not match the sha256"
    if sha == "matching":  # whoever planted the file also fixed the recorded checksum
        config = json.loads((model_dir / "config.json").read_text())
        config["weights_sha256"] = sha256_file(weights)
        (model_dir / "config.json").write_text(json.dumps(config))
        expected = "is not a valid safetensors file"
    with pytest.raises(ModelFolderError, match=expected):
        molchannel.load(model_dir)
    assert main(["info", str(model_dir)]) == 1
    assert expected in capsys.readouterr().err
    assert not marker.exists()


@pytest.mark.parametrize("name", ["last.ckpt", "model.pt", "pytorch_model.bin"])
def test_a_checkpoint_where_a_model_folder_is_expected_is_refused(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "marker"
    planted = _plant(tmp_path / "run" / name, marker, "torch")
    if planted.suffix in (".ckpt", ".pt"):
        with pytest.raises(ModelFolderError, match="molchannel export"):
            molchannel.load(planted)
    else:
        with pytest.raises(ModelFolderError, match="a model folder"):
            molchannel.load(planted)
    with pytest.raises(ModelFolderError, match="config.json is missing"):
        molchannel.load(planted.parent)  # a folder with a checkpoint but no model folder files
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["torch", "pickle"])
def test_load_checkpoint_safely_refuses_a_payload(tmp_path: Path, kind: str) -> None:
    from molchannel.training import AtomicCheckpointIO, load_checkpoint_safely

    marker = tmp_path / "marker"
    planted = _plant(tmp_path / "last.ckpt", marker, kind)
    with pytest.raises(ValueError, match="was refused|not a molchannel training checkpoint") as info:
        load_checkpoint_safely(planted)
    if kind == "torch":  # a plain pickle fails earlier, at an opcode torch's safe unpickler lacks
        assert "was refused: it references io.open" in str(info.value)
    assert "weights_only=False" not in str(info.value)  # no advice to load it the unsafe way
    # what trainer.fit(ckpt_path=..., weights_only=True) does when fine-tuning or pre-training resumes
    with pytest.raises(pickle.UnpicklingError):
        AtomicCheckpointIO().load_checkpoint(planted, weights_only=True)
    assert not marker.exists()


def test_export_refuses_a_pickled_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "marker"
    planted = _plant(tmp_path / "run" / "checkpoints" / "last.ckpt", marker, "torch")
    for source in (planted, tmp_path / "run"):  # a checkpoint, and a run folder holding it
        out = tmp_path / f"exported-{source.name}"
        assert main(["export", str(source), "-o", str(out)]) == 1
        assert "was refused: it references io.open" in capsys.readouterr().err
        assert not (out / "config.json").exists()
    assert not marker.exists()


def test_finetune_resume_refuses_a_pickled_last_checkpoint(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from molchannel.finetune import FinetuneConfig, run_finetune

    marker = tmp_path / "marker"
    run = tmp_path / "run"
    config = FinetuneConfig.from_dict({"model": {"pretrained": str(model_dir)}, "optim": {"epochs": 2}})
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    _plant(run / "checkpoints" / "last.ckpt", marker, "torch")
    # refused before any data is read (so this needs no benchmark data)
    with pytest.raises(ValueError, match="was refused"):
        run_finetune(config, run, resume=True, quiet=True)
    argv = ["finetune", "--model.pretrained", str(model_dir), "--optim.epochs", "2", "--output", str(run),
            "--resume", "--quiet"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "molchannel finetune: error:" in err and "was refused" in err and "Traceback" not in err
    assert not marker.exists()


def _rewrite_config(folder: Path, **changes: Any) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def test_config_json_with_extra_or_malicious_fields_runs_nothing(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Instantiation conventions of other tools (Hydra, jsonargparse, jsonpickle, YAML tags) are data here."""
    marker = str(tmp_path / "marker")
    hooks = {
        "_target_": "builtins.open", "_args_": [marker, "w"],
        "class_path": "builtins.open", "init_args": {"file": marker, "mode": "w"},
        "py/reduce": [{"py/function": "builtins.open"}, {"py/tuple": [marker, "w"]}],
        "yaml": f"!!python/object/apply:builtins.open ['{marker}', 'w']",
    }  # fmt: skip
    config = json.loads((model_dir / "config.json").read_text())
    _rewrite_config(model_dir, **hooks, provenance={**config["provenance"], **hooks})
    model = molchannel.load(model_dir)  # unknown top-level and provenance keys are kept as plain data
    assert model.info()["provenance"]["_target_"] == "builtins.open"
    assert model.embed("CCO").shape == (16,)
    assert main(["info", str(model_dir), "--json"]) == 0 and "builtins.open" in capsys.readouterr().out

    # where keys are interpreted (featurizer options, architecture), unknown ones are refused
    network, encoder = config["network"], config["network"]["encoder"]
    for section, value in (
        ("featurizer", {"name": "rich", "version": 1, "options": hooks}),
        ("featurizer", {"name": "builtins.open", "version": 1, "options": {}}),
        ("network", {**network, "encoder": {**encoder, **hooks}}),
        ("network", {**network, "encoder": {**encoder, "backbone": "builtins.open"}}),
        ("network", {**network, "head": hooks}),
    ):
        _rewrite_config(model_dir, **{section: value})
        with pytest.raises(ModelFolderError, match="does not describe a valid model"):
            molchannel.load(model_dir)
        _rewrite_config(model_dir, **{section: config[section]})
    assert not Path(marker).exists()
