"""Inference in forked worker processes (molchannel.parallel): same results, rows and errors as serial."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from sample_molecules import SAMPLE_SMILES

from molchannel.api import MolChannelModel, init_model
from molchannel.chem.smiles import InvalidSmilesError
from molchannel.parallel import can_fork, map_batches

pytestmark = pytest.mark.skipif(not can_fork(), reason="needs fork() (POSIX)")

# 48 molecules in batches of 4: 12 batches, so two workers take 6 each (0, 2, 4, ... and 1, 3, 5, ...)
SMILES = [s for _ in range(4) for s in SAMPLE_SMILES]
BATCH = 4


@pytest.fixture(scope="module")
def model() -> MolChannelModel:
    return init_model({"num_layers": 2, "hidden_dim": 16, "aggregator_heads": 2}, seed=3)


def with_workers(model: MolChannelModel, workers: int) -> MolChannelModel:
    model.num_workers = workers
    return model


@pytest.mark.parametrize("channel", ["mix", "all"])
def test_workers_give_the_serial_embeddings(model: MolChannelModel, channel: str) -> None:
    serial = with_workers(model, 1).embed(SMILES, channel=channel, batch_size=BATCH)
    forked = with_workers(model, 2).embed(SMILES, channel=channel, batch_size=BATCH)
    assert forked.shape == serial.shape == ((48, 16) if channel == "mix" else (48, 3, 16))
    np.testing.assert_allclose(forked, serial, rtol=1e-5, atol=1e-6)


def test_workers_give_the_serial_atom_embeddings(model: MolChannelModel) -> None:
    serial = with_workers(model, 1).embed_atoms(SMILES, batch_size=BATCH)
    forked = with_workers(model, 2).embed_atoms(SMILES, batch_size=BATCH)
    assert len(forked) == len(serial) == 48
    for a, b in zip(forked, serial, strict=True):
        assert a is not None and b is not None
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("policy", ["nan", "skip"])
def test_workers_keep_rows_aligned_around_invalid_molecules(model: MolChannelModel, policy: str) -> None:
    smiles = list(SMILES)
    for row in (5, 9, 30, 47):  # batches 1, 2, 7, 11: both workers see some
        smiles[row] = "C1CC" if row % 2 else "not a molecule"
    serial, serial_report = with_workers(model, 1).embed(
        smiles, batch_size=BATCH, on_invalid=policy, return_report=True
    )
    forked, report = with_workers(model, 2).embed(
        smiles, batch_size=BATCH, on_invalid=policy, return_report=True
    )
    assert report.indices == serial_report.indices == [i for i in range(48) if i not in (5, 9, 30, 47)]
    assert [r.index for r in report.invalid] == [5, 9, 30, 47]
    assert report.invalid == serial_report.invalid
    np.testing.assert_allclose(forked, serial, rtol=1e-5, atol=1e-6)
    if policy == "nan":
        assert (
            np.isnan(forked[[5, 9, 30, 47]]).all()
            and not np.isnan(np.delete(forked, [5, 9, 30, 47], 0)).any()
        )


@pytest.mark.parametrize("rows", [(9, 5), (30, 13)])
def test_workers_raise_for_the_first_invalid_row_in_input_order(
    model: MolChannelModel, rows: tuple[int, int]
) -> None:
    # the first invalid row sits in a batch of the *second* worker (odd batch), a later one in the first's
    smiles = list(SMILES)
    for row in rows:
        smiles[row] = "C1CC"
    with pytest.raises(InvalidSmilesError) as forked:
        with_workers(model, 2).embed(smiles, batch_size=BATCH)
    with pytest.raises(InvalidSmilesError) as serial:
        with_workers(model, 1).embed(smiles, batch_size=BATCH)
    assert forked.value.index == serial.value.index == min(rows)
    assert str(forked.value) == str(serial.value)


def test_map_batches_runs_every_batch_once_in_workers() -> None:
    run = map_batches(10, lambda j: (j, os.getpid()), workers=2)
    assert run.workers == 2
    results = dict(run.results())
    assert sorted(results) == list(range(10))
    assert {pid for _, pid in results.values()} - {os.getpid()}, "no batch ran in a worker"
    assert os.getpid() not in {pid for _, pid in results.values()}


def test_map_batches_runs_few_batches_here() -> None:
    run = map_batches(3, lambda j: os.getpid(), workers=2)
    assert run.workers == 1
    assert [pid for _, pid in run.results()] == [os.getpid()] * 3


def test_stop_after_skips_later_batches_serially() -> None:
    run = map_batches(8, lambda j: j, workers=1)
    seen = []
    for j, _ in run.results():
        seen.append(j)
        if j == 2:
            run.stop_after(2)
    assert seen == [0, 1, 2]


def test_stop_after_keeps_the_earlier_batches_in_workers() -> None:
    run = map_batches(40, lambda j: j, workers=2)
    seen = set()
    for j, _ in run.results():
        seen.add(j)
        if j == 20:
            run.stop_after(20)
    assert set(range(21)) <= seen  # every batch up to the stop ran, whichever worker had it


def _fail_on_batch_three(j: int) -> int:
    if j == 3:
        raise ValueError("batch three is bad")
    return j


def test_an_error_in_a_worker_is_raised_in_the_caller() -> None:
    with pytest.raises(ValueError, match="batch three is bad"):
        list(map_batches(8, _fail_on_batch_three, workers=2).results())


class _Unpicklable(Exception):
    def __init__(self, a: int, b: int) -> None:  # pickling calls __init__(message): fails
        super().__init__(f"{a}/{b}")

    def __reduce__(self):  # noqa: ANN204
        raise TypeError("no")


def test_an_unpicklable_worker_error_arrives_with_its_traceback() -> None:
    def work(j: int) -> int:
        if j == 1:
            raise _Unpicklable(1, 2)
        return j

    with pytest.raises(RuntimeError, match="_Unpicklable"):
        list(map_batches(8, work, workers=2).results())


def test_a_worker_that_dies_is_reported() -> None:
    def work(j: int) -> int:
        if j == 5:
            sys.stdout.flush()
            os._exit(3)
        return j

    with pytest.raises(RuntimeError, match="exit code 3"):
        list(map_batches(8, work, workers=2).results())
