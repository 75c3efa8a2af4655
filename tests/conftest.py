"""Shared fixtures.

Tests that need the real benchmark data read its location from ``MOLCHANNEL_DATA_DIR`` and
are skipped, with the reason shown, when it is unset (CI always sets it).
"""

from __future__ import annotations

import os
from pathlib import Path

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
