"""Run inference batches in forked worker processes, one per CPU thread.

On a CPU, embedding is half featurization (RDKit and Python, one core at a time) and half network
(matrix products that a second intra-op thread speeds up by only ~1.4x at these sizes). Giving each
core a whole share of the batches instead (featurize *and* encode, one thread each) keeps both
cores busy all the time: ~1.5x faster end to end on 2 cores (benchmarks/bench_embed_vs_chemprop.py).

:func:`map_batches` splits ``n_items`` inputs into batches of ``batch_size`` (batch ``j`` holds
inputs ``[j * batch_size, (j + 1) * batch_size)``, the same batches as a serial run, so the results
are the same), runs ``work(j)`` for every batch and yields ``(j, result)`` as results arrive. Worker
``p`` of ``P`` takes batches ``p, p + P, p + 2P, ...``; each has its own pipe to the parent.

Forking (not spawning) is what makes this cheap: a worker starts in milliseconds with the model and
the inputs already in memory, and ``work`` may be any closure. Where fork is not available (Windows,
macOS defaults), inside a daemonic process, for a few batches, or for one worker, batches run
serially in the calling process instead.

``stop_after(j)`` (the callback the caller gets back from :meth:`BatchRun.stop_after`) asks the
workers to skip every batch after ``j``: batches before it still run, so a caller that stops at its
first invalid molecule can still find the *first* one in input order.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import traceback
import warnings
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection, wait
from typing import Any, Generic, TypeVar, cast

import torch

R = TypeVar("R")

MIN_BATCHES_PER_WORKER = 2
"""Fewer batches than this per worker are not worth the fork: they run serially."""

_NO_STOP = 2**62


def default_workers() -> int:
    """Worker processes for CPU inference: one per torch intra-op thread, at most one per usable core.

    ``torch.set_num_threads(1)`` therefore also turns the workers off.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(torch.get_num_threads(), cores))


def can_fork() -> bool:
    """Whether worker processes can be forked here (Linux and other POSIX systems, not in a daemon)."""
    return "fork" in mp.get_all_start_methods() and not mp.current_process().daemon


class BatchRun(Generic[R]):
    """The batches of one call, run by :meth:`results` in workers or serially (see the module docstring)."""

    def __init__(self, n_batches: int, work: Callable[[int], R], workers: int) -> None:
        self.n_batches = n_batches
        self.work = work
        self.workers = workers if can_fork() else 1
        if n_batches < MIN_BATCHES_PER_WORKER * 2:
            self.workers = 1
        self.workers = max(1, min(self.workers, n_batches // MIN_BATCHES_PER_WORKER))
        self._stop = _NO_STOP
        self._shared_stop: Any = None

    def stop_after(self, batch: int) -> None:
        """Skip every batch after ``batch`` from now on (batches up to it still run)."""
        self._stop = min(self._stop, batch)
        if self._shared_stop is not None:
            with self._shared_stop.get_lock():
                self._shared_stop.value = min(self._shared_stop.value, batch)

    def results(self) -> Iterator[tuple[int, R]]:
        """``(batch index, work(batch index))`` for every batch that runs, in the order they finish."""
        if self.workers == 1:
            for j in range(self.n_batches):
                if j > self._stop:
                    return
                yield j, self.work(j)
            return
        yield from self._forked()

    def _forked(self) -> Iterator[tuple[int, R]]:
        ctx = mp.get_context("fork")
        self._shared_stop = ctx.Value("q", self._stop)
        pipes: dict[Any, mp.process.BaseProcess] = {}  # receiving end of each worker's pipe -> worker
        try:
            with warnings.catch_warnings():
                # Python >= 3.12 warns that fork() in a process with threads (torch's own thread pool)
                # may deadlock. The workers run featurization and one-thread torch ops only; logging,
                # the one lock they might share with the parent's threads, re-creates it after fork.
                warnings.simplefilter("ignore", DeprecationWarning)
                for p in range(self.workers):
                    receive, send = ctx.Pipe(duplex=False)
                    worker = ctx.Process(target=self._worker, args=(send, p), daemon=True)
                    worker.start()
                    send.close()
                    pipes[receive] = worker
            while pipes:
                for ready in wait(list(pipes)):
                    conn = cast(Connection, ready)
                    try:
                        message = conn.recv()
                    except EOFError:
                        process = pipes.pop(conn)
                        process.join()
                        raise RuntimeError(
                            f"an inference worker process died (exit code {process.exitcode}); "
                            "run with torch.set_num_threads(1) to work in this process only"
                        ) from None
                    kind, payload = message
                    if kind == "done":
                        pipes.pop(conn).join()
                    elif kind == "error":
                        raise cast(BaseException, payload)
                    else:
                        yield cast(tuple[int, R], payload)
        finally:
            for conn, process in pipes.items():
                process.terminate()
                process.join()
                conn.close()
            self._shared_stop = None

    def _worker(self, conn: Connection, rank: int) -> None:
        """Body of worker ``rank``: one intra-op thread, batches ``rank, rank + P, ...``."""
        torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                for j in range(rank, self.n_batches, self.workers):
                    if j > self._shared_stop.value:
                        break
                    conn.send(("result", (j, self.work(j))))
            conn.send(("done", None))
        except BaseException as exc:  # reported to the parent, which raises it there
            conn.send(("error", _picklable(exc)))
        finally:
            conn.close()


def _picklable(exc: BaseException) -> BaseException:
    """``exc`` itself when it survives pickling, else a RuntimeError carrying its traceback."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        text = "".join(traceback.format_exception(exc))
        return RuntimeError(f"an inference worker failed:\n{text}")


def map_batches(n_batches: int, work: Callable[[int], R], workers: int | None = None) -> BatchRun[R]:
    """A :class:`BatchRun` of ``work`` over ``n_batches`` batches (``workers=None``: one per core)."""
    return BatchRun(n_batches, work, default_workers() if workers is None else workers)
