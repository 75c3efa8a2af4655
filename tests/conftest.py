"""Shared fixtures.

Tests that need the real benchmark data read its location from ``MOLCHANNEL_DATA_DIR`` and
are skipped, with the reason shown, when it is unset (CI always sets it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    value = os.environ.get("MOLCHANNEL_DATA_DIR")
    if not value:
        pytest.skip("MOLCHANNEL_DATA_DIR is not set; point it at the benchmark data folder to run this test")
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"MOLCHANNEL_DATA_DIR={value!r} is not a directory")
    return path


@pytest.fixture(scope="session")
def zinc_smiles(data_dir: Path) -> list[str]:
    """The first 2,000 molecules of the MOSES ZINC15 training set."""
    import gzip

    with gzip.open(data_dir / "zinc" / "moses_train.csv.gz", "rt") as fh:
        next(fh)
        return [next(fh).strip() for _ in range(2000)]


# ---- property-based tests (hypothesis) --------------------------------------------------------
# One shared profile keeps them deterministic and CI-friendly: the same examples on every run
# (derandomize, no example database), no per-example deadline (CI machines are slow and shared).
# Tests pick their own ``max_examples`` on top of it.
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis is a dev dependency; the tests that need it import it themselves
    pass
else:
    settings.register_profile(
        "molchannel-ci",
        derandomize=True,
        database=None,
        deadline=None,
        max_examples=25,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )

_CASE_COUNTS = pytest.StashKey[dict[str, int]]()


@pytest.fixture(scope="session")
def count_case(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``count_case(name)`` once per generated example: the totals are printed after the run."""
    counts = request.config.stash.setdefault(_CASE_COUNTS, {})

    def count(name: str) -> None:
        counts[name] = counts.get(name, 0) + 1

    return count


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print how many generated cases each property ran, so CI logs show "N cases" per property."""
    counts = config.stash.get(_CASE_COUNTS, {})
    if counts:
        terminalreporter.section("property-based tests: generated cases")
        for name, n in sorted(counts.items()):
            terminalreporter.write_line(f"{name}: {n} cases")
        terminalreporter.write_line(f"total: {sum(counts.values())} cases")


@pytest.fixture(scope="module")
def one_thread_private_cache(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - a generator fixture
    """One torch thread (bitwise-reproducible training) and a private graph cache, for one test module."""
    threads = torch.get_num_threads()
    old_cache = os.environ.get("MOLCHANNEL_CACHE_DIR")
    torch.set_num_threads(1)
    os.environ["MOLCHANNEL_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    torch.set_num_threads(threads)
    if old_cache is None:
        os.environ.pop("MOLCHANNEL_CACHE_DIR", None)
    else:
        os.environ["MOLCHANNEL_CACHE_DIR"] = old_cache
