"""Bad input, with nothing lost: featurizers, bulk featurization and the Python API.

Property-based (hypothesis, the deterministic ``molchannel-ci`` profile of ``conftest.py``): valid
molecules built from fragments, odd but parsable ones (salts, isotopes, radicals, dummy atoms),
huge ones (500+ heavy atoms) and garbage of every kind (arbitrary text, SMARTS queries, blanks,
undecodable bytes, ``None``/``NaN``/numbers/bytes). Every input gives its documented result:
a graph (with the atoms RDKit reads) or an :class:`InvalidSmilesError` naming it; in bulk calls
the rows stay aligned with the input under every ``on_invalid`` policy and the invalid ones are
reported with their index. ``tests/test_bad_input_files.py`` does the same for files and the CLI.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from bad_input_helpers import (
    ODD_VALID,
    SMARTS_AND_QUERIES,
    any_input,
    examples,
    expected_atoms,
    huge_smiles,
    non_strings,
    save_headed_model,
    valid_smiles,
)
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch_geometric.data import Data

import molchannel
from molchannel.api import MolChannelModel
from molchannel.chem import (
    BasicFeaturizer,
    FeaturizedSmiles,
    InvalidSmilesError,
    RichFeaturizer,
    featurize_smiles,
    get_featurizer,
    iter_featurized,
    parse_smiles,
)
from molchannel.chem.rich import DENSE_PE_MAX_ATOMS, _sparse_random_walk_pe, random_walk_pe

CI = settings.get_profile("molchannel-ci")
BASIC = get_featurizer("basic")
RICH = get_featurizer("rich")
FEATURIZERS = {"basic": BASIC, "rich": RICH}
CountCase = Callable[[str], None]


def same_graph(a: Data, b: Data) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a.keys())  # noqa: SIM118 (Data is no dict)


def check_graph(graph: Data, featurizer: BasicFeaturizer | RichFeaturizer, n_atoms: int) -> None:
    """Shapes and dtypes every graph of ``featurizer`` must have."""
    assert graph.num_nodes == n_atoms and graph.x.shape[0] == n_atoms
    assert graph.edge_index.dtype == torch.long and graph.edge_index.shape[0] == 2
    assert graph.edge_attr.shape[0] == graph.edge_index.shape[1]
    if graph.edge_index.numel():
        assert int(graph.edge_index.min()) >= 0 and int(graph.edge_index.max()) < n_atoms
    if isinstance(featurizer, RichFeaturizer):
        assert graph.x.shape[1] == featurizer.atom_dim and graph.pe.shape == (n_atoms, featurizer.pe_dim)
        assert torch.isfinite(graph.x).all() and torch.isfinite(graph.pe).all()


def check_rejected(err: InvalidSmilesError, value: object, index: int | None) -> None:
    """The error names the input (as given, or decoded from bytes), its row and a reason."""
    assert err.reason and err.index == index
    if isinstance(value, bytes):
        assert err.smiles in (value, value.decode("utf-8", "replace"))
    elif not (isinstance(value, float) and math.isnan(value)):
        assert err.smiles == value
    if index is not None:
        assert f"at index {index}" in str(err)


# ---- one molecule at a time ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["basic", "rich"])
@settings(CI, max_examples=examples(300))
@given(value=any_input())
@example(value=None)
@example(value=math.nan)
@example(value=b"\xff\xfe")
@example(value="")
@example(value="C" * 2000)  # beyond the dense random-walk limit of the rich featurizer
def test_featurizer_gives_a_graph_or_names_the_input(name: str, value: object, count_case: CountCase) -> None:
    count_case(f"featurizer[{name}]: any input -> graph or InvalidSmilesError")
    featurizer = FEATURIZERS[name]
    n_atoms = expected_atoms(value)
    if n_atoms is None:
        with pytest.raises(InvalidSmilesError) as info:
            featurizer(value)  # type: ignore[arg-type]  # non-strings on purpose
        check_rejected(info.value, value, None)
        return
    graph = featurizer(value)  # type: ignore[arg-type]
    check_graph(graph, featurizer, n_atoms)
    if name == "basic":  # the fast route and the general route must agree on everything they accept
        assert same_graph(graph, BASIC.featurize_mol(parse_smiles(value)))


@pytest.mark.parametrize("name", ["basic", "rich"])
@settings(CI, max_examples=examples(10))
@given(smiles=huge_smiles())
def test_huge_molecules_featurize(name: str, smiles: str, count_case: CountCase) -> None:
    count_case(f"featurizer[{name}]: huge molecules (500+ heavy atoms)")
    n_atoms = expected_atoms(smiles)
    assert n_atoms is not None and n_atoms >= 500
    check_graph(FEATURIZERS[name](smiles), FEATURIZERS[name], n_atoms)


def test_sparse_random_walk_equals_dense() -> None:
    """Above DENSE_PE_MAX_ATOMS atoms the rich featurizer switches to sparse powers: same numbers."""
    graph = RICH("c1ccc(cc1)" * 20 + "C(C)(C)" * 60 + ".[Na+]")  # rings, branches, an isolated atom
    edge_index, n = graph.edge_index.numpy(), graph.num_nodes
    assert n < DENSE_PE_MAX_ATOMS
    dense = random_walk_pe(edge_index, n, 20)
    sparse = _sparse_random_walk_pe(edge_index, n, 20)
    np.testing.assert_allclose(sparse, dense, atol=1e-6)
    assert (sparse[-1] == 0).all()  # the isolated sodium ion never returns


@pytest.mark.parametrize(("smiles", "n_atoms"), ODD_VALID.items())
def test_odd_but_parsable_molecules_are_accepted(smiles: str, n_atoms: int) -> None:
    """Salts, isotopes, radicals, dummy atoms, any-bonds: documented as accepted (parse_smiles)."""
    for featurizer in (BASIC, RICH):
        assert featurizer(smiles).num_nodes == n_atoms == expected_atoms(smiles)


@pytest.mark.parametrize("smiles", SMARTS_AND_QUERIES)
def test_queries_reactions_and_trailing_names_are_rejected(smiles: str) -> None:
    with pytest.raises(InvalidSmilesError) as info:
        BASIC(smiles)
    assert info.value.smiles == smiles and info.value.reason


def test_trailing_name_and_undecodable_bytes_have_clear_reasons() -> None:
    with pytest.raises(InvalidSmilesError, match="text after the SMILES"):
        parse_smiles("c1ccccc1 O")  # RDKit alone would silently read benzene named "O"
    with pytest.raises(InvalidSmilesError, match="not valid UTF-8"):
        parse_smiles("CC\udcffO")  # a non-UTF-8 byte read with errors="surrogateescape"
    assert parse_smiles("CCO |$;;$|").GetNumAtoms() == 3  # a CXSMILES extension may follow


# ---- bulk featurization --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["basic", "rich"])
@settings(CI, max_examples=examples(60))
@given(values=st.lists(any_input(), max_size=20), chunk_size=st.integers(1, 8))
def test_bulk_rows_stay_aligned(
    name: str, values: list[object], chunk_size: int, count_case: CountCase
) -> None:
    count_case(f"bulk[{name}]: featurize_smiles/iter_featurized alignment")
    featurizer = FEATURIZERS[name]
    expected = [expected_atoms(v) for v in values]
    bad = [i for i, n in enumerate(expected) if n is None]
    good = [i for i, n in enumerate(expected) if n is not None]

    kept = featurize_smiles(values, featurizer, on_invalid="nan")
    assert kept.indices == list(range(len(values))) and len(kept) == len(values)
    assert [r.index for r in kept.invalid] == bad
    for i, graph in enumerate(kept.graphs):
        if i in bad:
            assert graph is None
        else:  # row i is the graph of value i alone
            assert same_graph(graph, featurizer(values[i]))  # type: ignore[arg-type]
    for record in kept.invalid:
        value = values[record.index]
        assert record.reason and record.smiles == (value if isinstance(value, str) else repr(value))

    chunks = list(iter_featurized(iter(values), featurizer, on_invalid="skip", chunk_size=chunk_size))
    streamed = FeaturizedSmiles()
    for chunk in chunks:
        streamed.extend(chunk)
    assert streamed.indices == good and [r.index for r in streamed.invalid] == bad
    assert all(same_graph(a, b) for a, b in zip(streamed.graphs, [kept.graphs[i] for i in good], strict=True))

    if bad:
        with pytest.raises(InvalidSmilesError) as info:
            featurize_smiles(values, featurizer)
        check_rejected(info.value, values[bad[0]], bad[0])
    else:
        assert len(featurize_smiles(values, featurizer)) == len(values)


# ---- the Python API ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_model() -> MolChannelModel:
    return molchannel.load("default")


@pytest.fixture(scope="module")
def headed_model(tmp_path_factory: pytest.TempPathFactory) -> MolChannelModel:
    return molchannel.load(save_headed_model(tmp_path_factory.mktemp("bad-input") / "model"))


def _check_aligned(
    run: Callable[..., np.ndarray | tuple[np.ndarray, object]],
    values: list[object],
    batch_size: int,
) -> None:
    """``run(items, on_invalid=..., ...)`` (embed or predict): the three policies, row by row."""
    bad = [i for i, v in enumerate(values) if expected_atoms(v) is None]
    good = [i for i in range(len(values)) if i not in bad]
    alone = {i: run(values[i], batch_size=1) for i in good}  # each valid molecule on its own

    out, report = run(values, on_invalid="nan", batch_size=batch_size, return_report=True)
    assert out.shape[0] == len(values) and out.dtype == np.float32
    assert report.indices == good and [r.index for r in report.invalid] == bad
    assert np.isnan(out[bad]).all()
    for i in good:
        assert np.isfinite(out[i]).all()
        np.testing.assert_allclose(out[i], alone[i], rtol=1e-4, atol=1e-5)

    skipped, report = run(values, on_invalid="skip", batch_size=batch_size, return_report=True)
    assert report.indices == good and [r.index for r in report.invalid] == bad
    np.testing.assert_array_equal(skipped, out[good])

    if bad:
        with pytest.raises(InvalidSmilesError) as info:
            run(values, batch_size=batch_size)
        check_rejected(info.value, values[bad[0]], bad[0])
    else:
        np.testing.assert_array_equal(run(values, batch_size=batch_size), out)


@settings(CI, max_examples=examples(40))
@given(
    values=st.lists(st.one_of(any_input(), huge_smiles().filter(lambda s: len(s) < 1200)), max_size=10),
    batch_size=st.integers(1, 6),
    channel=st.sampled_from(["mix", "all", "scaffsim"]),
)
def test_embed_rows_stay_aligned(
    default_model: MolChannelModel, values: list[object], batch_size: int, channel: str, count_case: CountCase
) -> None:
    count_case("embed: mixed valid/invalid lists, 3 policies, row i == SMILES i alone")

    def run(items: object, **kwargs: object) -> np.ndarray:
        return default_model.embed(items, channel=channel, **kwargs)  # type: ignore[arg-type]

    _check_aligned(run, values, batch_size)


@settings(CI, max_examples=examples(25))
@given(values=st.lists(any_input(), max_size=10), batch_size=st.integers(1, 6))
def test_predict_rows_stay_aligned(
    headed_model: MolChannelModel, values: list[object], batch_size: int, count_case: CountCase
) -> None:
    count_case("predict: mixed valid/invalid lists, 3 policies, row i == SMILES i alone")
    _check_aligned(headed_model.predict, values, batch_size)  # type: ignore[arg-type]


@settings(CI, max_examples=examples(25))
@given(values=st.lists(any_input(), max_size=10), batch_size=st.integers(1, 6))
def test_embed_atoms_rows_stay_aligned(
    default_model: MolChannelModel, values: list[object], batch_size: int, count_case: CountCase
) -> None:
    count_case("embed_atoms: one [atoms, D] array per row, None for invalid rows")
    expected = [expected_atoms(v) for v in values]
    result = default_model.embed_atoms(values, batch_size=batch_size, on_invalid="nan")
    assert len(result) == len(values)
    for value, n_atoms, atoms in zip(values, expected, result, strict=True):
        if n_atoms is None:
            assert atoms is None
        else:
            assert atoms is not None and atoms.shape == (n_atoms, default_model.embedding_dim)
            np.testing.assert_allclose(atoms, default_model.embed_atoms(value)[0], rtol=1e-4, atol=1e-5)
    skipped = default_model.embed_atoms(values, batch_size=batch_size, on_invalid="skip")
    assert len(skipped) == sum(n is not None for n in expected)
    bad = [i for i, n in enumerate(expected) if n is None]
    if bad:
        with pytest.raises(InvalidSmilesError) as info:
            default_model.embed_atoms(values, batch_size=batch_size)
        check_rejected(info.value, values[bad[0]], bad[0])


@settings(CI, max_examples=examples(30))
@given(value=st.one_of(non_strings(), valid_smiles().map(str.encode)))
def test_a_single_non_string_is_one_row(
    default_model: MolChannelModel, value: object, count_case: CountCase
) -> None:
    """``embed(None)``, ``embed(nan)``, ``embed(b"CCO")``: one input row under the policy, as a str is."""
    count_case("embed/embed_atoms: one non-str object (None, NaN, int, bytes)")
    dim = default_model.embedding_dim
    out = default_model.embed(value, on_invalid="nan")  # type: ignore[arg-type]
    assert out.shape == (dim,)
    atoms = default_model.embed_atoms(value, on_invalid="nan")  # type: ignore[arg-type]
    assert len(atoms) == 1
    if expected_atoms(value) is None:
        assert np.isnan(out).all() and atoms[0] is None
        assert default_model.embed(value, on_invalid="skip").shape == (0, dim)  # type: ignore[arg-type]
        with pytest.raises(InvalidSmilesError) as info:
            default_model.embed(value)  # type: ignore[arg-type]
        check_rejected(info.value, value, 0)
    else:
        assert isinstance(value, bytes)
        np.testing.assert_array_equal(out, default_model.embed(value.decode()))


def test_iterables_other_than_lists(default_model: MolChannelModel) -> None:
    smiles = ["CCO", "C1CC", "c1ccccc1"]
    expected = default_model.embed(smiles, on_invalid="nan")
    for items in (tuple(smiles), np.array(smiles), iter(smiles), (s for s in smiles)):
        np.testing.assert_array_equal(default_model.embed(items, on_invalid="nan"), expected)
    assert default_model.embed([], on_invalid="nan").shape == (0, default_model.embedding_dim)


def test_path_objects_are_rejected_by_name(default_model: MolChannelModel) -> None:
    """A Path is iterable in no useful way: it is one invalid input, not a crash."""
    with pytest.raises(InvalidSmilesError, match="expected a string, got PosixPath|WindowsPath"):
        default_model.embed(Path("molecules.smi"))  # type: ignore[arg-type]
