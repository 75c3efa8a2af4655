"""Every saved model folder gets a model card that describes the weights beside it."""

from __future__ import annotations

import json
from pathlib import Path

import molchannel
from molchannel.api import init_model
from molchannel.model_card import model_card_template


def test_saved_folder_has_a_card_naming_its_weights(tmp_path: Path) -> None:
    model = init_model({"backbone": "gin", "num_layers": 2, "hidden_dim": 16}, seed=3)
    folder = model.save(tmp_path / "tiny")
    card = (folder / "README.md").read_text()
    sha = json.loads((folder / "config.json").read_text())["weights_sha256"]
    assert sha in card
    assert "gin 2 x 16" in card and "random weights (not pre-trained)" in card
    assert 'molchannel.load("tiny")' in card and "model.embed(" in card
    assert "{" + "provenance}" not in card  # every placeholder filled
    # the card is documentation only: loading ignores it, and a resave replaces a stale one
    (folder / "README.md").write_text("stale")
    molchannel.load(folder).save(folder)
    assert sha in (folder / "README.md").read_text()


def test_template_has_the_author_sections() -> None:
    template = model_card_template()
    for section in ("Intended use (author)", "applicability domain (author)", "Limitations"):
        assert section in template
