"""Progress bars for long jobs: ``rich`` in an interactive terminal, ``tqdm`` elsewhere.

Every command that runs for more than a moment shows one bar through :func:`progress`. In a
terminal, with ``rich`` installed, it is a rich bar (log lines print above it); in logs, pipes and
notebooks without a terminal it falls back to tqdm, whose carriage-return updates read well in a
log file. ``MOLCHANNEL_PROGRESS=rich|tqdm|none`` forces one (``none`` hides every bar), and each
command's ``--quiet`` hides its bars.
"""

from __future__ import annotations

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


class Progress:
    """A progress bar with the part of tqdm's interface that molchannel uses.

    ``update(n)``, ``set_postfix_str(text)``, ``close()``, use as a context manager, or iterate
    over the wrapped iterable. Disabled bars accept every call and draw nothing.
    """

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        disable: bool = False,
    ) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        self.desc = desc
        backend = "none" if disable else progress_backend()
        self.backend = backend
        self._bar: Any = None
        self._handlers: list[tuple[logging.StreamHandler, Any]] = []
        if backend == "tqdm":
            from tqdm.auto import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)
            # log lines print above the bar instead of through it
            self._redirect = logging_redirect_tqdm()
            self._redirect.__enter__()
        elif backend == "rich":
            self._start_rich(unit)

    def _start_rich(self, unit: str) -> None:
        from rich import progress as rp

        self._bar = rp.Progress(
            rp.TextColumn("[bold]{task.description}"),
            rp.BarColumn(),
            rp.MofNCompleteColumn(),
            rp.TextColumn(f"{unit}"),
            rp.TimeElapsedColumn(),
            rp.TextColumn("<"),
            rp.TimeRemainingColumn(),
            rp.TextColumn("{task.fields[postfix]}"),
            transient=False,
            redirect_stderr=True,
        )
        self._task = self._bar.add_task(self.desc, total=self.total, postfix="")
        self._bar.start()
        # Logging handlers captured the real stderr when they were made; point them at rich's
        # redirected stderr while the bar is live, so log lines print above the bar, not through it.
        redirected = sys.stderr  # rich's proxy while live in a terminal, else the stream itself
        originals = (sys.__stderr__, getattr(redirected, "rich_proxied_file", None))
        for handler in logging.getLogger().handlers:
            plain = type(handler) is logging.StreamHandler
            if plain and handler.stream is not redirected and handler.stream in originals:
                self._handlers.append((handler, handler.stream))
                handler.setStream(redirected)

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
        if self._bar is None:
            return
        if self.backend == "tqdm":
            self._bar.close()
            self._redirect.__exit__(None, None, None)
        else:
            self._bar.stop()
            for handler, stream in self._handlers:
                handler.setStream(stream)
        self._bar = None
        self.backend = "none"

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
) -> Progress:
    """A :class:`Progress` bar (see the module docstring for which kind)."""
    return Progress(iterable, total=total, desc=desc, unit=unit, disable=disable)
