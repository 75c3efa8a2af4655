"""Outputs that a later run trusts are never trusted half-written.

A process can die between the files of one output (weights then config, cache data then manifest,
shard parts then summary). Each test here makes a write fail at that point, as a kill would, and checks
that what is left is refused or rebuilt, never read as complete. (Kills inside a single file cannot
leave a half-written file at all: see :mod:`molchannel.atomic` and ``tests/test_kill_resume.py``.)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import molchannel
from molchannel.api import init_model
from molchannel.chem.featurizers import get_featurizer
from molchannel.data import cache
from molchannel.model_folder import FORMAT_VERSION, ModelFolderError

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "zinc_sample.smi"
TINY = {"num_layers": 2, "hidden_dim": 16, "aggregator_heads": 2}


class Killed(Exception):
    """Stands in for the process dying at this point."""


def _dies(*args: object, **kwargs: object) -> None:
    raise Killed


def test_the_same_weights_always_give_the_same_file(tmp_path: Path) -> None:
    """safetensors writes metadata keys in a random order; the model folder must not (sha256 fingerprints)."""
    model = init_model(TINY, seed=0)
    folders = [model.save(tmp_path / f"m{i}") for i in range(8)]
    digests = {json.loads((f / "config.json").read_text())["weights_sha256"] for f in folders}
    assert len(digests) == 1
    assert len({(f / "model.safetensors").read_bytes() for f in folders}) == 1
    with safe_open(str(folders[0] / "model.safetensors"), "pt") as fh:
        assert fh.metadata() == {"format": "molchannel-model", "format_version": str(FORMAT_VERSION)}
    loaded = molchannel.load(folders[0])
    assert all(torch.equal(v, loaded.net.state_dict()[k]) for k, v in model.net.state_dict().items())


def test_model_folder_killed_between_weights_and_config_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import molchannel.model_folder as model_folder

    folder = init_model(TINY, seed=0).save(tmp_path / "model")
    monkeypatch.setattr(model_folder, "write_bytes_atomic", _dies)  # config.json is written second
    with pytest.raises(Killed):
        init_model(TINY, seed=1).save(folder)  # re-exporting other weights into the same folder
    monkeypatch.undo()
    # new weights beside the old config: refused, not loaded as the old model (nor the new one)
    with pytest.raises(ModelFolderError, match="does not match the sha256"):
        molchannel.load(folder)
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]  # no temporaries left


def test_graph_cache_killed_before_its_manifest_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    featurizer = get_featurizer("basic")
    smiles = ["CCO", "c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O", "N", "C1CC"]
    monkeypatch.setattr(cache, "write_text_atomic", _dies)  # the manifest is written after the tensors
    with pytest.raises(Killed):
        cache.load_or_build_graphs(smiles, featurizer, tmp_path)
    monkeypatch.undo()
    assert [p.suffix for p in tmp_path.iterdir()] == [".safetensors"]  # tensors without their manifest
    (tmp_path / ".leftover.safetensors.x.tmp").write_bytes(b"what a kill mid-write leaves")
    with caplog.at_level(logging.WARNING, logger="molchannel.data.cache"):
        store = cache.load_or_build_graphs(smiles, featurizer, tmp_path)
    assert "unusable" in caplog.text and "rebuilding" in caplog.text
    fresh = cache.load_or_build_graphs(smiles, featurizer, None)
    assert len(store) == len(fresh) == 4 and store.path is not None
    for i in range(len(fresh)):
        assert all(torch.equal(store[i][k], v) for k, v in fresh[i].items())
    assert cache.load_or_build_graphs(smiles, featurizer, tmp_path).path == store.path  # now trusted


def test_interrupted_shard_rebuild_is_not_marked_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from molchannel.pretrain import corpus
    from molchannel.pretrain.corpus import CorpusConfig, prepare_corpus

    out, config = tmp_path / "corpus", CorpusConfig(shard_size=16)
    prepare_corpus(SAMPLE, out, config, limit=32, progress=False)
    shard = {p.name: p.read_bytes() for p in out.glob("shard-00000.*")}
    records = out / "shard-00000.records.safetensors"
    records.write_bytes(records.read_bytes()[:100])  # damaged, so shard 0 is built again

    def dies_while_writing(*args: object, **kwargs: object) -> None:
        raise Killed

    monkeypatch.setattr(corpus, "write_records", dies_while_writing)
    with pytest.raises(Killed):
        prepare_corpus(SAMPLE, out, config, limit=32, progress=False)
    monkeypatch.undo()
    # killed while rebuilding: the old summary must not declare the damaged shard complete
    assert not (out / "shard-00000.summary.json").exists()
    assert (out / "shard-00001.summary.json").is_file()  # the other shard is untouched
    prepare_corpus(SAMPLE, out, config, limit=32, progress=False)
    assert {p.name: p.read_bytes() for p in out.glob("shard-00000.*")} == shard
