"""GraphArrays / GraphBatch: the PyG-free inference batch equals a PyG Batch of the same graphs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from molchannel.api import init_model
from molchannel.chem.basic import BasicFeaturizer
from molchannel.chem.bulk import featurize_block
from molchannel.chem.graph_batch import GraphArrays, GraphBatch, collate_graphs, graph_from_arrays
from molchannel.chem.rich import RichFeaturizer
from molchannel.chem.smiles import InvalidSmilesError
from tests.sample_molecules import SAMPLE_SMILES

BASIC = BasicFeaturizer()
# dots (several fragments), a bracketed metal, a dative bond, explicit hydrogens and stereo
# (the featurizer's slow route), beside the shared samples
SMILES = [*SAMPLE_SMILES, "[Na+].[Cl-]", "C[NH3+]->[Cu]", "[2H]C([2H])O", "F/C=C/F"]


def test_array_twins_give_the_same_graphs() -> None:
    arrays = BASIC.featurize_batch_arrays([*SMILES, "C1CC"], start=10)
    graphs = BASIC.featurize_batch([*SMILES, "C1CC"], start=10)
    assert isinstance(arrays[-1], InvalidSmilesError) and arrays[-1].index == 10 + len(SMILES)
    for smiles, a, g in zip(SMILES, arrays, graphs, strict=False):
        assert isinstance(a, GraphArrays)
        for name in ("x", "edge_index", "edge_attr"):
            assert np.array_equal(getattr(a, name), getattr(g, name).numpy()), (smiles, name)
            assert getattr(a, name).dtype == np.int64
        single = BASIC.arrays(smiles)
        assert all(np.array_equal(u, v) for u, v in zip(single, a, strict=True))


def test_graph_batch_equals_pyg_batch() -> None:
    arrays = [BASIC.arrays(s) for s in SMILES]
    ours = GraphBatch.from_arrays(arrays)
    theirs = Batch.from_data_list([graph_from_arrays(a) for a in arrays])
    assert ours.num_graphs == theirs.num_graphs == len(SMILES)
    assert ours.num_nodes == theirs.num_nodes
    for name in ("x", "edge_index", "edge_attr", "batch", "ptr"):
        assert torch.equal(getattr(ours, name), getattr(theirs, name)), name
    assert ours.to("cpu") is ours
    with pytest.raises(ValueError, match="at least one graph"):
        GraphBatch.from_arrays([])


def test_collate_falls_back_to_pyg_for_featurizers_without_arrays() -> None:
    chunk = featurize_block(["CCO", "c1ccccc1"], RichFeaturizer(), "skip", arrays=True)
    assert isinstance(collate_graphs(chunk.graphs), Batch)  # type: ignore[arg-type]
    chunk = featurize_block(["CCO", "c1ccccc1"], BASIC, "skip", arrays=True)
    assert isinstance(collate_graphs(chunk.graphs), GraphBatch)  # type: ignore[arg-type]


def test_encoder_reads_both_batches_alike() -> None:
    model = init_model({"num_layers": 2, "hidden_dim": 16, "aggregator_heads": 2}, seed=0)
    arrays = [BASIC.arrays(s) for s in SMILES]
    ours = model.net.encoder.embed(GraphBatch.from_arrays(arrays))
    theirs = model.net.encoder.embed(Batch.from_data_list([graph_from_arrays(a) for a in arrays]))
    torch.testing.assert_close(ours.atoms, theirs.atoms)
    for name in ours.channels:
        torch.testing.assert_close(ours.channels[name], theirs.channels[name])
        torch.testing.assert_close(ours.attention[name], theirs.attention[name])
