"""Bad fine-tuning configs: random sections, keys and values, YAML files and ``--set`` overrides.

Property-based like ``tests/test_bad_input.py``: whatever a user writes, the config loaders return a
validated config or raise one of the errors the command line reports as a user error (a message, no
traceback: ``molchannel.cli.main.USER_ERRORS``), naming what is wrong. Nothing else may escape.
"""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path
from typing import Any

from bad_input_helpers import examples
from hypothesis import example, given, settings
from hypothesis import strategies as st

from finetune.benchmark import parse_overrides
from finetune.config import SECTIONS, FinetuneConfig, as_config, load_config
from molchannel.cli.main import USER_ERRORS

CI = settings.get_profile("molchannel-ci")
SECTION_KEYS = sorted({f.name for cls in SECTIONS.values() for f in fields(cls)})
TOP_KEYS = [*SECTIONS, "seed"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        ["", "auto", "scaffold", "random", "column", "bbbp", "esol", "regression", "gpu", "rogi"]
    ),
    st.text(max_size=12),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.text(max_size=6), scalars, max_size=2),
)
odd_keys = st.one_of(st.text(max_size=8), st.none(), st.integers(-2, 2))  # YAML keys need not be strings
sections = st.dictionaries(st.one_of(st.sampled_from(SECTION_KEYS), odd_keys), values, max_size=4)
configs = st.dictionaries(
    st.one_of(st.sampled_from(TOP_KEYS), odd_keys), st.one_of(sections, values), max_size=4
)


def check_outcome(make: Any, count: Any, name: str) -> None:
    """``make()`` gives a validated config or raises a user error with a message."""
    count(name)
    try:
        config = make()
    except USER_ERRORS as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        return
    assert isinstance(config, FinetuneConfig)
    config.validate()  # a returned config stays valid
    assert config.optim.epochs >= 1 and config.data.batch_size >= 1
    for value in (config.model.tau, config.optim.lr_head, config.data.valid_frac):
        assert math.isfinite(value) or value == math.inf, value


@given(config=configs)
@settings(CI, max_examples=examples(150))
def test_config_dicts_give_a_config_or_a_user_error(config: dict[str, Any], count_case: Any) -> None:
    check_outcome(lambda: FinetuneConfig.from_dict(config), count_case, "config: random nested dicts")
    check_outcome(lambda: as_config(config), count_case, "config: random partial dicts over the defaults")


@given(text=st.one_of(st.text(max_size=200), configs.map(repr)))
@example(text="?")  # the mapping {None: None}: a key that is not a string (found by the fuzz campaign)
@settings(CI, max_examples=examples(60))
def test_yaml_files_give_a_config_or_a_user_error(tmp_path_factory: Any, text: str, count_case: Any) -> None:
    path = Path(tmp_path_factory.mktemp("yaml")) / "config.yaml"
    path.write_text(text, encoding="utf-8")
    check_outcome(lambda: load_config(path), count_case, "config: random YAML files")


keys = st.one_of(st.sampled_from([f"{s}.{k}" for s in SECTIONS for k in SECTION_KEYS]), st.text(max_size=12))
items = st.one_of(
    st.tuples(keys, st.text(max_size=12)).map("=".join),
    st.text(max_size=20),
)


@given(overrides=st.lists(items, max_size=4))
@settings(CI, max_examples=examples(100))
def test_set_overrides_give_a_config_or_a_user_error(overrides: list[str], count_case: Any) -> None:
    check_outcome(lambda: as_config(parse_overrides(overrides)), count_case, "config: random --set overrides")
