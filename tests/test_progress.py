"""Progress bars: rich in a terminal, tqdm elsewhere, none when asked; log lines are not lost."""

from __future__ import annotations

import io
import logging

import pytest

from molchannel.progress import progress, progress_backend


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
    root = logging.getLogger()
    handler = logging.StreamHandler()  # bound to the (captured) stderr of this test
    before = handler.stream
    root.addHandler(handler)
    try:
        with progress(total=2, desc="work") as bar:
            logging.getLogger("molchannel.test").warning("halfway there")
            bar.update(2)
    finally:
        root.removeHandler(handler)
    assert handler.stream is before
    assert "halfway there" in capsys.readouterr().err
