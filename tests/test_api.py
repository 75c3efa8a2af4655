"""Model folder round trip, strict loading, invalid-SMILES policies and embedding invariants."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Literal, get_overloads, get_type_hints

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from sample_molecules import SAMPLE_SMILES

import molchannel
from molchannel.api import EmbedReport, MolChannelModel, init_model
from molchannel.chem.smiles import InvalidSmilesError, OnInvalid
from molchannel.model_folder import ModelFolderError
from molchannel.nn.model import HeadConfig, MolChannelNet, NetConfig

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


def test_embed_atoms_reports_invalid_rows(tiny) -> None:  # noqa: ANN001
    inputs = ["CCO", "bad((", "c1ccccc1"]
    atoms, report = tiny.embed_atoms(inputs, on_invalid="nan", return_report=True)
    assert atoms[1] is None and report.n_inputs == 3 and report.indices == [0, 2]
    assert [(r.index, r.smiles) for r in report.invalid] == [(1, "bad((")] and report.invalid[0].reason
    kept, skip_report = tiny.embed_atoms(inputs, on_invalid="skip", return_report=True, progress=True)
    assert skip_report.indices == [0, 2] and [a.shape for a in kept] == [(3, 16), (6, 16)]
    np.testing.assert_array_equal(kept[1], atoms[2])
    with pytest.raises(ValueError, match="batch_size"):
        tiny.embed_atoms(inputs, batch_size=0)


class _MoveSpy:
    """Wraps ``net.to`` to record the devices the network is moved to."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.net, self.to, self.devices = net, net.to, []

    def __call__(self, device: torch.device) -> torch.nn.Module:
        self.devices.append(torch.device(device))
        return self.to(device)


@pytest.mark.parametrize("method", ["embed", "embed_atoms", "predict"])
def test_device_of_a_call_does_not_move_the_model(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # "cpu:1" is a device other than the model's "cpu" that every machine has
    model = init_model(TINY, seed=1)
    if method == "predict":
        head = HeadConfig(1, hidden_dim=8, task_type="regression")
        net = MolChannelNet(NetConfig(encoder=model.net.config.encoder, tau=1.0, head=head))
        net.encoder.load_state_dict(model.net.encoder.state_dict())
        model.net, model.config["head"] = net.eval(), {"tasks": ["t"], "task_type": "regression"}
    reference = getattr(model, method)(SMILES)
    spy = _MoveSpy(model.net)
    monkeypatch.setattr(model.net, "to", spy)
    result = getattr(model, method)(SMILES, device="cpu:1")
    assert spy.devices == [torch.device("cpu:1"), torch.device("cpu")]  # there and back
    assert model.device == torch.device("cpu")
    for got, want in zip(result, reference, strict=True):
        np.testing.assert_array_equal(got, want)
    getattr(model, method)(SMILES, device="cpu")  # the model's own device: no move at all
    assert len(spy.devices) == 2


def test_device_of_a_call_moves_back_when_a_row_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    model = init_model(TINY, seed=1)
    spy = _MoveSpy(model.net)
    monkeypatch.setattr(model.net, "to", spy)
    with pytest.raises(InvalidSmilesError):
        model.embed(["CCO", "bad(("], device="cpu:1")
    assert spy.devices == [torch.device("cpu:1"), torch.device("cpu")]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_for_one_call_leaves_a_trainable_cpu_model() -> None:
    model = init_model(TINY, seed=1)
    reference = model.embed(SMILES, channel="all")
    np.testing.assert_allclose(model.embed(SMILES, channel="all", device="cuda"), reference, atol=1e-5)
    atoms = model.embed_atoms(SMILES, device="cuda")
    np.testing.assert_allclose(atoms[2], model.embed_atoms(SMILES)[2], atol=1e-5)
    params = list(model.net.parameters())
    assert model.device.type == "cpu" and all(p.device.type == "cpu" for p in params)
    assert not any(p.is_inference() for p in params)  # moved outside inference mode: still trainable
    model.to("cuda")
    assert model.embed("CCO").shape == (16,) and next(model.net.parameters()).device.type == "cuda"


def test_inference_methods_have_typed_overloads() -> None:
    for name, n in (("embed", 3), ("predict", 5), ("embed_atoms", 3)):
        overloads = get_overloads(getattr(MolChannelModel, name))
        assert len(overloads) == n, name
        hints = [get_type_hints(o, vars(molchannel.api)) for o in overloads]
        reports = [h["return_report"] for h in hints]
        if name == "predict":  # return_std doubles the combinations
            assert reports == [Literal[False], Literal[True], Literal[False], Literal[True], bool]
            assert [h["return_std"] for h in hints] == [Literal[False]] * 2 + [Literal[True]] * 2 + [bool]
        else:
            assert reports == [Literal[False], Literal[True], bool], name
        assert all(h["on_invalid"] == OnInvalid for h in hints), name
    returns = [
        get_type_hints(o, vars(molchannel.api))["return"] for o in get_overloads(MolChannelModel.embed)
    ]
    assert returns[:2] == [np.ndarray, tuple[np.ndarray, EmbedReport]]


MYPY_SNIPPET = """
import molchannel

model = molchannel.load("default")
flag: bool = bool(len("x"))
reveal_type(model.embed(["CCO"]))
reveal_type(model.embed(["CCO"], return_report=True))
reveal_type(model.embed(["CCO"], return_report=flag))
reveal_type(model.predict("CCO", on_invalid="nan"))
reveal_type(model.predict("CCO", return_report=True))
reveal_type(model.predict("CCO", return_std=True))
reveal_type(model.predict("CCO", return_std=True, return_report=True))
reveal_type(model.embed_atoms(["CCO"]))
reveal_type(model.embed_atoms(["CCO"], return_report=True))
model.embed(["CCO"], on_invalid="drop")
"""


def _plain_type(revealed: str) -> str:
    """A revealed type without what differs between numpy and mypy releases (shape/dtype, ``builtins.``)."""
    revealed = re.sub(r"numpy\.ndarray\[(?:[^\[\]]|\[(?:[^\[\]]|\[[^\[\]]*\])*\])*\]", "ndarray", revealed)
    return revealed.replace("builtins.", "")


def test_mypy_reads_the_overloads(tmp_path: Path) -> None:
    import mypy.api as mypy_api

    (tmp_path / "snippet.py").write_text(MYPY_SNIPPET)
    # only the API module and the Literal it uses are read; everything behind them counts as Any
    skipped = "torch.*,torch_geometric.*,rdkit.*,safetensors.*,scipy.*,pandas.*,molchannel.nn.*"
    skipped += ",molchannel.model_folder,molchannel.progress,molchannel.chem.bulk,molchannel.chem.featurizers"
    (tmp_path / "mypy.ini").write_text(
        "[mypy]\nfollow_imports = silent\nignore_missing_imports = True\n"
        f"[mypy-{skipped}]\nfollow_imports = skip\n"
    )
    args = ["--config-file", str(tmp_path / "mypy.ini"), "--cache-dir", str(tmp_path / "cache")]
    stdout, _, _ = mypy_api.run([*args, "--hide-error-context", str(tmp_path / "snippet.py")])
    revealed = [
        _plain_type(line.split("Revealed type is ")[1].strip('"'))
        for line in stdout.splitlines()
        if "Revealed" in line
    ]
    atoms = "list[ndarray | None]"
    assert revealed == [
        "ndarray",
        "tuple[ndarray, molchannel.api.EmbedReport]",
        "ndarray | tuple[ndarray, molchannel.api.EmbedReport]",
        "ndarray",
        "tuple[ndarray, molchannel.api.EmbedReport]",
        "tuple[ndarray, ndarray]",
        "tuple[ndarray, ndarray, molchannel.api.EmbedReport]",
        atoms,
        f"tuple[{atoms}, molchannel.api.EmbedReport]",
    ], stdout
    assert 'No overload variant of "embed"' in stdout or "incompatible type" in stdout, stdout  # "drop"


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
    # and other scaffolds apart (measured margin 0.76; the 0.1 default: 0.97); random weights give ~0.00.
    assert _scaffold_margin(molchannel.load("default"), "scaffsim") > 0.5
    random_model = init_model(molchannel.load("default").net.config.encoder.to_dict(), seed=0)
    assert _scaffold_margin(random_model, "scaffsim") < 0.1


def test_embed_does_not_import_lightning_deepchem_or_pyg() -> None:
    # PyG's import alone is ~2 s of the ~10 s `molchannel embed` of 20k molecules (BENCHMARKS.md, issue 12)
    code = (
        "import sys, molchannel; m = molchannel.load('default'); m.embed(['CCO', 'c1ccccc1O']); "
        "m.embed_atoms(['CCN']); "
        "heavy = {'lightning', 'pytorch_lightning', 'deepchem', 'torch_geometric'}; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


GOLDEN = Path(__file__).parent / "fixtures" / "golden_v1"


def test_committed_v1_model_gives_golden_embeddings() -> None:
    """A tiny model written by format version 1 must keep loading and embedding identically."""
    model = molchannel.load(GOLDEN / "model")
    expected = np.load(GOLDEN / "embeddings.npy")
    smiles = (GOLDEN / "smiles.txt").read_text().split()
    np.testing.assert_allclose(model.embed(smiles, channel="all"), expected, atol=1e-5)


def test_committed_v1_headed_models_give_golden_predictions(tmp_path: Path) -> None:
    """Fine-tuned folders of format 1 kept the target scaler in JSON; they must still load, predict
    the same values, and re-save as format 2 with the scaler in the weights."""
    from safetensors.torch import load_file

    smiles = (GOLDEN / "smiles.txt").read_text().split()
    regression = molchannel.load(GOLDEN / "model_regression_mve")
    mean, std = regression.predict(smiles, return_std=True)
    expected = np.load(GOLDEN / "predictions_regression_mve.npy")
    np.testing.assert_allclose(np.stack([mean, std]), expected, rtol=1e-5, atol=1e-5)
    classification = molchannel.load(GOLDEN / "model_classification")
    np.testing.assert_allclose(
        classification.predict(smiles)[None], np.load(GOLDEN / "predictions_classification.npy"), atol=1e-6
    )

    resaved = regression.save(tmp_path / "resaved")
    config = json.loads((resaved / "config.json").read_text())
    assert config["format_version"] == 2
    assert "target_mean" not in config["head"] and config["network"]["head"]["task_type"] == "regression"
    weights = load_file(str(resaved / "model.safetensors"))
    assert weights["target_scaler.mean"].tolist() == [10.0, -2.0]
    assert weights["target_scaler.std"].tolist() == [3.0, 0.5]
    again, again_std = molchannel.load(resaved).predict(smiles, return_std=True)
    np.testing.assert_allclose(again, mean, atol=1e-6)
    np.testing.assert_allclose(again_std, std, atol=1e-6)
