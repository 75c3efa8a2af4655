"""Progress bars for long jobs: ``rich`` in an interactive terminal, ``tqdm`` elsewhere.

Every command that runs for more than a moment shows one bar through :func:`progress`. In a
terminal, with ``rich`` installed, it is a rich bar (log lines print above it); in logs, pipes and
notebooks without a terminal it falls back to tqdm, whose carriage-return updates read well in a
log file. ``MOLCHANNEL_PROGRESS=rich|tqdm|none`` forces one (``none`` hides every bar), and each
command's ``--quiet`` hides its bars.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any

BACKENDS = ("auto", "rich", "tqdm", "none")


def progress_backend() -> str:
    """The backend a bar gets now: ``MOLCHANNEL_PROGRESS`` if set, else rich in a terminal, else tqdm."""
    choice = os.environ.get("MOLCHANNEL_PROGRESS", "auto").strip().lower() or "auto"
    if choice not in BACKENDS:
        raise ValueError(f"MOLCHANNEL_PROGRESS must be one of {', '.join(BACKENDS)}, got {choice!r}")
    if choice == "auto":
        return "rich" if rich_available() and sys.stderr.isatty() else "tqdm"
    if choice == "rich" and not rich_available():
        return "tqdm"
    return choice


def rich_available() -> bool:
    try:
        import rich.progress  # noqa: F401
    except ImportError:
        return False
    return True


class _RichLive:
    """The one rich display all open rich bars share (rich allows one live display at a time).

    The first bar starts it and points logging at rich's redirected stderr; nested bars (a
    featurizing bar inside a benchmark's bar) are extra rows; the last bar to close stops it.
    """

    def __init__(self) -> None:
        from rich import progress as rp
        from rich.console import Console

        self.display = rp.Progress(
            rp.TextColumn("[bold]{task.description}"),
            rp.BarColumn(),
            rp.MofNCompleteColumn(),
            rp.TextColumn("{task.fields[unit]}"),
            rp.TimeElapsedColumn(),
            rp.TextColumn("<"),
            rp.TimeRemainingColumn(),
            rp.TextColumn("{task.fields[postfix]}"),
            console=Console(stderr=True),  # bars on stderr, like tqdm's: stdout stays the command's output
            redirect_stderr=True,
        )
        self.open_bars = 0
        self.handlers: list[tuple[logging.StreamHandler, Any]] = []

    def start(self) -> None:
        self.display.start()
        # Logging handlers captured the real stderr when they were made; point them at rich's
        # redirected stderr while the bar is live, so log lines print above the bar, not through it.
        redirected = sys.stderr  # rich's proxy while live in a terminal, else the stream itself
        originals = (sys.__stderr__, getattr(redirected, "rich_proxied_file", None))
        for handler in logging.getLogger().handlers:
            if not isinstance(handler, logging.StreamHandler) or type(handler) is not logging.StreamHandler:
                continue  # only plain stream handlers (a FileHandler is a StreamHandler too)
            if handler.stream is not redirected and handler.stream in originals:
                self.handlers.append((handler, handler.stream))
                handler.setStream(redirected)

    def stop(self) -> None:
        self.display.stop()
        for handler, stream in self.handlers:
            handler.setStream(stream)
        self.handlers.clear()


_live: _RichLive | None = None


def rich_bar_is_live() -> bool:
    """True while a molchannel rich bar is drawn (another live display, e.g. Lightning's, would clash)."""
    return _live is not None


class Progress:
    """A progress bar with the part of tqdm's interface that molchannel uses.

    ``update(n)``, ``set_postfix_str(text)``, ``close()``, use as a context manager, or iterate
    over the wrapped iterable. Disabled bars accept every call and draw nothing. ``initial`` counts
    work done before (a resumed job), so the rate and the time left count only the new work.
    """

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        disable: bool = False,
        initial: float = 0,
    ) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        self.desc = desc
        self.backend = "none" if disable else progress_backend()
        self._bar: Any = None
        if self.backend == "tqdm":
            from tqdm.auto import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, initial=initial, dynamic_ncols=True)
            # log lines print above the bar instead of through it
            self._redirect = logging_redirect_tqdm()
            self._redirect.__enter__()
        elif self.backend == "rich":
            global _live
            if _live is None:
                _live = _RichLive()
                _live.start()
            _live.open_bars += 1
            self._bar = _live.display
            # rich estimates the rate from advance() calls only, so work done before does not count
            self._task = self._bar.add_task(desc, total=total, completed=initial, unit=unit, postfix="")

    def update(self, n: float = 1) -> None:
        if self.backend == "tqdm":
            self._bar.update(n)
        elif self.backend == "rich":
            self._bar.advance(self._task, n)

    def set_postfix_str(self, text: str) -> None:
        if self.backend == "tqdm":
            self._bar.set_postfix_str(text)
        elif self.backend == "rich":
            self._bar.update(self._task, postfix=text)

    def close(self) -> None:
        """Finish the bar and give logging its stream back (idempotent; also runs on garbage collection)."""
        if self._bar is None:
            return
        if self.backend == "tqdm":
            self._bar.close()
            self._redirect.__exit__(None, None, None)
        elif self.backend == "rich":
            global _live
            assert _live is not None
            _live.open_bars -= 1
            if _live.open_bars == 0:
                _live.stop()
                _live = None
            else:
                self._bar.remove_task(self._task)  # a finished inner bar makes room
        self._bar = None
        self.backend = "none"

    def __del__(self) -> None:
        # a bar abandoned by an exception must not leave logging redirected for the rest of the process
        with contextlib.suppress(Exception):  # at interpreter shutdown there is nothing left to restore
            self.close()

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("this progress bar wraps no iterable; call update() instead")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: float | None = None,
    desc: str = "",
    unit: str = "it",
    disable: bool = False,
    initial: float = 0,
) -> Progress:
    """A :class:`Progress` bar (see the module docstring for which kind)."""
    return Progress(iterable, total=total, desc=desc, unit=unit, disable=disable, initial=initial)
