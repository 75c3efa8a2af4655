"""Progress bars: rich in a terminal, tqdm elsewhere, none when asked; log lines are not lost."""

from __future__ import annotations

import io
import logging

import pytest

from molchannel.progress import progress, progress_backend, rich_bar_is_live


@pytest.mark.parametrize("setting", ["tqdm", "rich", "none"])
def test_backend_follows_the_environment_setting(monkeypatch: pytest.MonkeyPatch, setting: str) -> None:
    monkeypatch.setenv("MOLCHANNEL_PROGRESS", setting)
    assert progress_backend() == setting
    with progress(total=3, desc="work") as bar:
        assert bar.backend == setting
        bar.update(2)
        bar.set_postfix_str("x")
        bar.update(1)
    assert bar.backend == "none"  # closed


def test_bad_setting_names_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOLCHANNEL_PROGRESS", "fancy")
    with pytest.raises(ValueError, match="rich, tqdm, none"):
        progress_backend()


def test_without_a_terminal_auto_is_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOLCHANNEL_PROGRESS", raising=False)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert progress_backend() == "tqdm"


def test_disabled_bar_still_yields_every_item(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOLCHANNEL_PROGRESS", "tqdm")
    assert list(progress(range(5), disable=True)) == [0, 1, 2, 3, 4]
    assert list(progress(iter("abc"), desc="letters")) == ["a", "b", "c"]


@pytest.mark.parametrize("setting", ["tqdm", "rich"])
def test_log_lines_during_a_bar_reach_the_log_and_handlers_are_restored(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], setting: str
) -> None:
    monkeypatch.setenv("MOLCHANNEL_PROGRESS", setting)
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich treats the captured stderr as a terminal and redirects it
    root = logging.getLogger()
    handler = logging.StreamHandler()  # bound to the (captured) stderr of this test
    before = handler.stream
    root.addHandler(handler)
    try:
        with progress(total=2, desc="work") as bar:
            if setting == "rich":
                assert handler.stream is not before  # swapped for rich's proxy while the bar is live
            logging.getLogger("molchannel.test").warning("halfway there")
            bar.update(2)
    finally:
        root.removeHandler(handler)
    assert handler.stream is before
    assert "halfway there" in capsys.readouterr().err


def test_nested_rich_bars_share_one_live_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOLCHANNEL_PROGRESS", "rich")
    monkeypatch.setenv("FORCE_COLOR", "1")
    with progress(total=2, desc="outer") as outer:
        assert rich_bar_is_live()
        with progress(range(3), desc="inner") as inner:  # rich alone would raise LiveError here
            assert list(inner) == [0, 1, 2]
        outer.update(2)
    assert not rich_bar_is_live()


def test_a_bar_abandoned_by_an_exception_gives_logging_back(monkeypatch: pytest.MonkeyPatch) -> None:
    import molchannel
    from molchannel.chem.smiles import InvalidSmilesError

    monkeypatch.setenv("MOLCHANNEL_PROGRESS", "tqdm")
    handlers = list(logging.getLogger().handlers)
    with pytest.raises(InvalidSmilesError):
        molchannel.load("default").embed(["CCO", "not a molecule"], progress=True)
    assert logging.getLogger().handlers == handlers  # tqdm's logging redirect was undone


def test_lightning_bars_count_epochs_from_one() -> None:
    from types import SimpleNamespace

    from molchannel.training import _epoch_label

    assert _epoch_label(SimpleNamespace(max_epochs=10), 0) == "Epoch 1/10"
    assert _epoch_label(SimpleNamespace(max_epochs=-1), 4) == "Epoch 5"
