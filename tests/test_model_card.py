"""Every saved model folder gets a model card that describes the weights beside it."""

from __future__ import annotations

import json
from pathlib import Path

import molchannel
from molchannel.api import init_model
from molchannel.model_card import GENERATED_MARK, model_card_template, render_model_card


def test_saved_folder_has_a_card_naming_its_weights(tmp_path: Path) -> None:
    model = init_model({"backbone": "gin", "num_layers": 2, "hidden_dim": 16}, seed=3)
    folder = model.save(tmp_path / "tiny")
    card = (folder / "README.md").read_text()
    sha = json.loads((folder / "config.json").read_text())["weights_sha256"]
    assert sha in card
    assert "gin 2 x 16" in card and "random weights (not pre-trained)" in card
    assert f'molchannel.load("{folder.as_posix()}")' in card and "model.embed(" in card
    # loading ignores the card; a resave replaces an outdated generated card but never the author's own
    (folder / "README.md").write_text(GENERATED_MARK + "\n# old card, other weights\n")
    molchannel.load(folder).save(folder)
    assert sha in (folder / "README.md").read_text()
    (folder / "README.md").write_text("# My notes on this model\n")
    molchannel.load(folder).save(folder)
    assert (folder / "README.md").read_text() == "# My notes on this model\n"


def test_card_of_a_fine_tuned_model_names_its_data_and_predicts(tmp_path: Path) -> None:
    model = init_model({"backbone": "gin", "num_layers": 2, "hidden_dim": 16}, seed=3)
    config = dict(model.config, weights_sha256="ab" * 32)
    config["head"] = {"tasks": ["logp"], "task_type": "regression", "metric": "rmse"}
    config["provenance"] = {
        "finetuned": True, "pretrained": True, "dataset": None, "data_path": "data/my_logp.csv", "seed": 2,
        "epochs": 20, "epochs_run": 20, "best_epoch": 17, "prompt_init": "rogi",
        "base_model": {"name": "default"}, "metrics": {"valid_rmse": 0.41},
    }  # fmt: skip
    card = render_model_card(
        config, tmp_path / "run" / "model", num_parameters=1234, channel_weights=[0.2, 0.5, 0.3]
    )
    assert card.startswith(GENERATED_MARK)
    assert "# molchannel model fine-tuned on my_logp.csv (seed 2)" in card
    assert "model.predict(" in card and "values in the original units" in card
    assert "selected epoch 17" in card and "`default`" in card and "valid_rmse: 0.41" in card
    assert "molsim 0.200, scaffsim 0.500, context 0.300" in card


def test_template_has_the_author_sections() -> None:
    template = model_card_template()
    for section in ("Intended use (author)", "applicability domain (author)", "Limitations"):
        assert section in template
