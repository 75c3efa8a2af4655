"""Model folder round trip, strict loading, invalid-SMILES policies and embedding invariants."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from sample_molecules import SAMPLE_SMILES

import molchannel
from molchannel.api import MolChannelModel, init_model
from molchannel.chem.smiles import InvalidSmilesError
from molchannel.model_folder import ModelFolderError

TINY = {"num_layers": 2, "hidden_dim": 16, "aggregator_heads": 2}
SMILES = SAMPLE_SMILES


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> molchannel.api.MolChannelModel:
    model = init_model(TINY, seed=1)
    path = model.save(tmp_path_factory.mktemp("m") / "tiny")
    return molchannel.load(path)


def test_round_trip_is_bit_identical(tmp_path: Path) -> None:
    model = init_model(TINY, seed=3)
    folder = model.save(tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = molchannel.load(folder)
    for key, value in model.net.state_dict().items():
        assert torch.equal(value, loaded.net.state_dict()[key]), key
    np.testing.assert_array_equal(model.embed(SMILES, channel="all"), loaded.embed(SMILES, channel="all"))
    assert loaded.path == folder.resolve()
    assert loaded.info()["pretrained"] is False


def test_strict_load_reports_a_readable_diff(tmp_path: Path) -> None:
    folder = init_model(TINY, seed=0).save(tmp_path / "m")
    tensors = load_file(str(folder / "model.safetensors"))
    del tensors["mixing.weights"]
    tensors["encoder.extra.weight"] = torch.zeros(2)
    key = next(k for k in tensors if k.endswith("backbone.atom_embedding1.weight") or "embedding" in k)
    tensors[key] = torch.zeros(3, 3)
    save_file(tensors, str(folder / "model.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    from molchannel.model_folder import sha256_file

    config["weights_sha256"] = sha256_file(folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFolderError) as info:
        molchannel.load(folder)
    message = str(info.value)
    assert "- missing:    mixing.weights" in message
    assert "+ unexpected: encoder.extra.weight" in message
    assert f"~ shape:      {key} expected" in message and "found (3, 3)" in message


def test_modified_weights_fail_the_checksum(tmp_path: Path) -> None:
    folder = init_model(TINY, seed=0).save(tmp_path / "m")
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["mixing.weights"] = tensors["mixing.weights"] + 1
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(ModelFolderError, match="does not match the sha256"):
        molchannel.load(folder)


def test_checkpoint_file_is_refused_with_a_hint(tmp_path: Path) -> None:
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"not a model folder")
    with pytest.raises(ModelFolderError, match="molchannel export"):
        molchannel.load(ckpt)
    with pytest.raises(ModelFolderError, match="config.json is missing"):
        molchannel.load(tmp_path)


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    folder = init_model(TINY, seed=0).save(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["format_version"] = 99
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFolderError, match="upgrade molchannel"):
        molchannel.load(folder)


def test_invalid_smiles_policies(tiny) -> None:  # noqa: ANN001
    inputs = ["CCO", "C1CC", "", "c1ccccc1", None]
    with pytest.raises(InvalidSmilesError) as info:
        tiny.embed(inputs)
    assert info.value.index == 1 and "'C1CC'" in str(info.value)

    nan_rows = tiny.embed(inputs, on_invalid="nan")
    assert nan_rows.shape == (5, 16)
    assert np.isnan(nan_rows[[1, 2, 4]]).all() and np.isfinite(nan_rows[[0, 3]]).all()

    kept, report = tiny.embed(inputs, on_invalid="skip", return_report=True)
    assert report.indices == [0, 3]
    assert [r.index for r in report.invalid] == [1, 2, 4]
    assert all(r.reason for r in report.invalid)
    np.testing.assert_array_equal(kept, nan_rows[[0, 3]])


def test_embeddings_do_not_depend_on_batch_size(tiny) -> None:  # noqa: ANN001
    reference = tiny.embed(SMILES, channel="all", batch_size=len(SMILES))
    for batch_size in (1, 5):
        np.testing.assert_allclose(
            tiny.embed(SMILES, channel="all", batch_size=batch_size), reference, atol=1e-6
        )
    # a molecule's embedding also does not depend on its neighbours in the batch
    np.testing.assert_allclose(tiny.embed(SMILES[::-1], channel="all")[::-1], reference, atol=1e-6)


def test_channels_mix_and_shapes(tiny) -> None:  # noqa: ANN001
    every = tiny.embed(SMILES, channel="all")
    assert every.shape == (len(SMILES), 3, 16)
    assert tiny.channels == ["molsim", "scaffsim", "context"]
    for k, name in enumerate(tiny.channels):
        np.testing.assert_allclose(tiny.embed(SMILES, channel=name), every[:, k], atol=1e-6)
    # untrained prompt weights are uniform, so the mixture is the channel mean
    np.testing.assert_allclose(tiny.embed(SMILES), every.mean(axis=1), atol=1e-6)
    assert tiny.embed("CCO").shape == (16,)
    with pytest.raises(ValueError, match="channel must be"):
        tiny.embed(SMILES, channel="nope")


def test_embed_atoms_returns_one_row_per_heavy_atom(tiny) -> None:  # noqa: ANN001
    atoms = tiny.embed_atoms(["CCO", "bad((", "c1ccccc1"], on_invalid="nan")
    assert atoms[0].shape == (3, 16) and atoms[1] is None and atoms[2].shape == (6, 16)
    assert len(tiny.embed_atoms(["CCO", "bad((", "c1ccccc1"], on_invalid="skip")) == 2


def test_default_model_loads_offline_and_says_what_it_is() -> None:
    model = molchannel.load("default")
    info = model.info()
    assert info["channels"] == ["molsim", "scaffsim", "context"]
    assert Path(info["path"]).name == "default"
    assert info["pretrained"], "the shipped default must be a pre-trained model"
    emb = model.embed(["CCO", "c1ccccc1O"])
    assert emb.shape == (2, info["embedding_dim"]) and np.isfinite(emb).all()


def test_default_model_ships_its_model_card() -> None:
    info = molchannel.load("default").info()
    folder = Path(info["path"])
    card = (folder / "README.md").read_text()
    assert info["weights_sha256"] in card
    assert "## Command" in card and "molchannel pretrain" in card
    assert (folder / "losses.png").stat().st_size > 10_000
    assert info["provenance"]["corpus"]["molecules"] > 10_000


# a molecule and a side-chain variant of it (same Murcko scaffold), five scaffolds
SCAFFOLD_PAIRS = [
    ("Cc1ccc(C(=O)Nc2ccccn2)cc1", "CCc1ccc(C(=O)Nc2ccccn2)cc1"),
    ("COc1ccc2[nH]cc(CCN)c2c1", "COc1ccc2[nH]cc(CCNC)c2c1"),
    ("O=C(O)c1ccccc1OC(C)=O", "O=C(O)c1ccccc1OC(=O)CC"),
    ("CN1CCN(c2ccc(F)cc2)CC1", "CCN1CCN(c2ccc(Cl)cc2)CC1"),
    ("Cc1nc2ccccc2s1", "CCc1nc2ccccc2s1"),
]


def _scaffold_margin(model: MolChannelModel, channel: str) -> float:
    """Mean cosine of same-scaffold pairs minus mean cosine across scaffolds."""
    emb = model.embed([s for pair in SCAFFOLD_PAIRS for s in pair], channel=channel)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = emb[0::2] @ emb[1::2].T
    off = ~np.eye(len(SCAFFOLD_PAIRS), dtype=bool)
    return float(np.diag(sim).mean() - sim[off].mean())


def test_default_model_learnt_scaffold_similarity() -> None:
    # The scaffold-distancing channel of the pre-trained default puts side-chain variants together
    # and other scaffolds apart (measured margin ~0.97); random weights give ~0.00.
    assert _scaffold_margin(molchannel.load("default"), "scaffsim") > 0.5
    random_model = init_model(molchannel.load("default").net.config.encoder.to_dict(), seed=0)
    assert _scaffold_margin(random_model, "scaffsim") < 0.1


def test_embed_does_not_import_lightning_or_deepchem() -> None:
    code = (
        "import sys, molchannel; molchannel.load('default').embed(['CCO']); "
        "heavy = {'lightning', 'pytorch_lightning', 'deepchem'}; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


GOLDEN = Path(__file__).parent / "data" / "golden_v1"


def test_committed_v1_model_gives_golden_embeddings() -> None:
    """A tiny model written by format version 1 must keep loading and embedding identically."""
    model = molchannel.load(GOLDEN / "model")
    expected = np.load(GOLDEN / "embeddings.npy")
    smiles = (GOLDEN / "smiles.txt").read_text().split()
    np.testing.assert_allclose(model.embed(smiles, channel="all"), expected, atol=1e-5)
