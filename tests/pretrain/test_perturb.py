"""Scaffold-invariant perturbations (SCD positives) and their sharded, restartable precompute."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from molchannel.pretrain.perturb import (
    CremPerturber,
    PerturbationAlignmentError,
    ShardError,
    SideChainPerturber,
    build_crem_db,
    load_perturbations,
    main,
    make_perturber,
    perturber_names,
    precompute_perturbations,
    read_shard,
    read_smiles,
    scaffold_key,
    shard_path,
)

# Drug-like molecules plus the awkward cases: no side chain (benzene), no scaffold (ethanol,
# metformin), an aromatic N substituent (N-methylpyrrole), charges (nitro), stereo, and one SMILES
# that does not parse (row 6).
CORPUS = [
    "CC(=O)Oc1ccccc1C(=O)O",
    "CC(=O)Nc1ccc(O)cc1",
    "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
    "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "c1ccccc1",
    "CCO",
    "C1CC",
    "COc1ccc2cc(ccc2c1)C(C)C(=O)O",
    "CN1C(=O)CN=C(c2ccccc2)c2cc(Cl)ccc21",
    "CCN(CC)CC(=O)Nc1c(C)cccc1C",
    "CN(C)C(=N)N=C(N)N",
    "CN1CCC[C@H]1c1cccnc1",
    "CC(C)NCC(O)COc1cccc2ccccc12",
    "CC(C)NCC(O)COc1ccc(CC(N)=O)cc1",
    "CC(C)(C)NCC(O)c1ccc(O)c(CO)c1",
    "CNCCC(Oc1ccc(cc1)C(F)(F)F)c1ccccc1",
    "CN[C@H]1CC[C@@H](c2ccc(Cl)c(Cl)c2)c2ccccc21",
    "OC1(CCN(CCCC(=O)c2ccc(F)cc2)CC1)c1ccc(Cl)cc1",
    "COc1ccc2[nH]c(nc2c1)S(=O)Cc1ncc(C)c(OC)c1C",
    "COCCc1ccc(OCC(O)CNC(C)C)cc1",
    "Cc1ccc(cc1)-c1cc(nn1-c1ccc(cc1)S(N)(=O)=O)C(F)(F)F",
    "CC(=O)CC(c1ccccc1)c1c(O)c2ccccc2oc1=O",
    "O=C1NC(=O)C(N1)(c1ccccc1)c1ccccc1",
    "NC(=O)N1c2ccccc2C=Cc2ccccc21",
    "Cn1c2nc[nH]c2c(=O)n(C)c1=O",
    "CCN(CC)CCOC(=O)c1ccc(N)cc1",
    "CCOC(=O)c1ccc(N)cc1",
    "Cc1ccccc1",
    "Oc1ccccc1",
    "O=[N+]([O-])c1ccc(CC)cc1",
    "COc1ccc2n(C(=O)c3ccc(Cl)cc3)c(C)c(CC(=O)O)c2c1",
    "CC(C(=O)O)c1cccc(c1)C(=O)c1ccccc1",
    "CN(C)C[C@H]1CCCC[C@@]1(O)c1cccc(OC)c1",
    "CN(C)CC(c1ccc(OC)cc1)C1(O)CCCCC1",
    "CC(N)COc1c(C)cccc1C",
    "Cc1ccncc1",
    "OC1CCCCC1",
    "Cn1cccc1",
    "CC(=O)Nc1ccccc1",
    "CC(C)c1ccccc1",
]
BENZENE_ROW, ETHANOL_ROW, INVALID_ROW = 4, 5, 6

# Monosubstituted benzenes: a corpus whose CReM database has an obvious content.
BENZENES = [
    "Cc1ccccc1",
    "CCc1ccccc1",
    "Oc1ccccc1",
    "Clc1ccccc1",
    "Fc1ccccc1",
    "COc1ccccc1",
    "Nc1ccccc1",
    "CC(=O)Nc1ccccc1",
    "c1ccccc1",
    "CCCc1ccccc1",
]


def scaffold_of(smiles: str) -> str:
    mol = Chem.MolFromSmiles(smiles)
    assert mol is not None, f"stored perturbation {smiles!r} does not parse"
    return scaffold_key(mol)


def assert_valid_perturbations(anchor: str, found: list[str]) -> None:
    own = Chem.MolToSmiles(Chem.MolFromSmiles(anchor))
    assert len(set(found)) == len(found)
    for smiles in found:
        assert scaffold_of(smiles) == scaffold_of(anchor), (anchor, smiles)
        assert Chem.MolToSmiles(Chem.MolFromSmiles(smiles)) == smiles  # canonical
        assert smiles != own


def shard_files(out: Path) -> list[Path]:
    return sorted(out.glob("shard-*.jsonl.gz"))


def run(out: Path, **kwargs) -> object:
    kwargs = {"method": "sidechain", "shard_size": 7, "seed": 0, "progress": False, **kwargs}
    return precompute_perturbations(CORPUS, out, **kwargs)


# ---------------------------------------------------------------------------------------------
# scaffolds and the side-chain perturber
# ---------------------------------------------------------------------------------------------
def test_scaffold_key_ignores_stereo_and_side_chains() -> None:
    assert scaffold_key(Chem.MolFromSmiles("CC(=O)Nc1ccc(O)cc1")) == "c1ccccc1"
    assert scaffold_key(Chem.MolFromSmiles("CN[C@H]1CC[C@@H](c2ccccc2)CC1")) == "c1ccc(C2CCCCC2)cc1"
    assert scaffold_key(Chem.MolFromSmiles("CCO")) == ""


def test_sidechain_toluene_hand_checked() -> None:
    # the methyl may grow (C, N, O, F, Cl on it), become N/O/F/Cl, or go (benzene keeps the scaffold)
    expected = {
        "CCc1ccccc1",
        "NCc1ccccc1",
        "OCc1ccccc1",
        "FCc1ccccc1",
        "ClCc1ccccc1",
        "Nc1ccccc1",
        "Oc1ccccc1",
        "Fc1ccccc1",
        "Clc1ccccc1",
        "c1ccccc1",
    }
    assert SideChainPerturber().candidates("Cc1ccccc1") == sorted(expected)


def test_sidechain_removing_an_n_substituent_gives_nh() -> None:
    assert "c1cc[nH]c1" in SideChainPerturber().candidates("Cn1cccc1")


@pytest.mark.parametrize("smiles", [s for i, s in enumerate(CORPUS) if i != INVALID_ROW])
def test_sidechain_keeps_the_scaffold(smiles: str) -> None:
    assert_valid_perturbations(smiles, SideChainPerturber().candidates(smiles))


def test_sidechain_never_creates_heteroatom_pairs_or_touches_charges() -> None:
    found = SideChainPerturber().candidates("O=[N+]([O-])c1ccc(CC)cc1")
    assert found
    nitro_on_ring = Chem.MolFromSmarts("c[N+](=O)[O-]")
    assert all(Chem.MolFromSmiles(s).HasSubstructMatch(nitro_on_ring) for s in found)
    for smiles in SideChainPerturber().candidates("CC(=O)Nc1ccc(O)cc1"):
        mol = Chem.MolFromSmiles(smiles)
        for bond in mol.GetBonds():
            ends = {bond.GetBeginAtom().GetAtomicNum(), bond.GetEndAtom().GetAtomicNum()}
            assert 6 in ends or bond.IsInRing(), smiles


def test_no_side_chain_or_no_scaffold_means_no_perturbation() -> None:
    perturber = SideChainPerturber()
    assert perturber.candidates("c1ccccc1") == []
    assert perturber.candidates("CCO") == []
    decorated = SideChainPerturber(decorate_scaffold=True).candidates("c1ccccc1")
    assert "Cc1ccccc1" in decorated and "Clc1ccccc1" in decorated
    assert_valid_perturbations("c1ccccc1", decorated)


def test_sample_is_a_subset_and_deterministic() -> None:
    perturber = SideChainPerturber()
    anchor = CORPUS[12]
    everything = set(perturber.candidates(anchor))
    first = perturber.sample(anchor, 5, np.random.default_rng([0, 12]))
    assert len(first) == 5 and set(first) <= everything
    assert perturber.sample(anchor, 5, np.random.default_rng([0, 12])) == first
    assert perturber.sample(anchor, 5, np.random.default_rng([1, 12])) != first


def test_perturb_caps_at_max_per_molecule() -> None:
    anchor = CORPUS[12]
    capped = SideChainPerturber(max_per_molecule=3, seed=4).perturb(anchor)
    assert len(capped) == 3 and set(capped) <= set(SideChainPerturber().candidates(anchor))
    assert SideChainPerturber(max_per_molecule=3, seed=4).perturb(anchor) == capped


def test_registry_lists_the_methods_and_names_them_on_an_unknown_one() -> None:
    assert {"sidechain", "crem"} <= set(perturber_names())
    assert isinstance(make_perturber("sidechain", seed=3), SideChainPerturber)
    with pytest.raises(ValueError, match="unknown perturbation method 'nope'") as excinfo:
        make_perturber("nope")
    assert all(name in str(excinfo.value) for name in ("sidechain", "crem"))
    with pytest.raises(ValueError, match="db_path"):
        make_perturber("crem")


# ---------------------------------------------------------------------------------------------
# CReM
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def benzene_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_crem_db(BENZENES, tmp_path_factory.mktemp("crem") / "benzenes.db", radius=2)


def test_crem_replaces_the_substituent_with_those_of_the_corpus(benzene_db: Path) -> None:
    perturber = CremPerturber(benzene_db, radius=2)
    # the methyl of toluene is replaced by every substituent of the corpus that is at most 2 heavy
    # atoms larger (CReM's default max_inc), or by H; acetamido (4 atoms) is one too many
    assert perturber.candidates("Cc1ccccc1") == sorted(
        [
            "CCc1ccccc1",
            "Oc1ccccc1",
            "Clc1ccccc1",
            "Fc1ccccc1",
            "COc1ccccc1",
            "Nc1ccccc1",
            "CCCc1ccccc1",
            "c1ccccc1",
        ]
    )
    assert "CC(=O)Nc1ccccc1" in perturber.candidates("CC(C)c1ccccc1")  # 3 -> 4 heavy atoms
    # same environment on a pyridine: the ring itself is never touched
    assert_valid_perturbations("Cc1ccncc1", perturber.candidates("Cc1ccncc1"))
    assert perturber.candidates("c1ccccc1") == []


def test_crem_keeps_the_scaffold_on_drug_like_molecules(tmp_path: Path) -> None:
    db = build_crem_db(CORPUS[:30], tmp_path / "drugs.db", radius=1)
    perturber = CremPerturber(db, radius=1)
    total = 0
    for smiles in CORPUS[:30]:
        if smiles == CORPUS[INVALID_ROW]:
            continue
        found = perturber.candidates(smiles)
        total += len(found)
        assert_valid_perturbations(smiles, found)
    assert total > 20


def test_crem_database_errors_say_what_to_do(tmp_path: Path, benzene_db: Path) -> None:
    with pytest.raises(FileNotFoundError, match="build_crem_db"):
        CremPerturber(tmp_path / "missing.db")
    with pytest.raises(ValueError, match="no table for radius 3"):
        CremPerturber(benzene_db, radius=3)


def test_crem_precompute(tmp_path: Path, benzene_db: Path) -> None:
    corpus = ["Cc1ccccc1", "c1ccccc1", "CC(C)c1ccccc1", "Cc1ccncc1", "CCO"]
    options = {"db_path": str(benzene_db), "radius": 2}
    report = precompute_perturbations(
        corpus,
        tmp_path / "out",
        method="crem",
        shard_size=2,
        processes=1,
        perturber_options=options,
        progress=False,
    )
    assert report.computed_shards == [0, 1, 2]
    store = load_perturbations(tmp_path / "out", corpus)
    assert [store[i].n_real for i in range(5)] == [5, 0, 5, 5, 0]
    for i, anchor in enumerate(corpus):
        assert_valid_perturbations(anchor, list(store[i].perturbations[: store[i].n_real]))


# ---------------------------------------------------------------------------------------------
# the precompute
# ---------------------------------------------------------------------------------------------
def test_alignment_with_two_processes_and_padding(tmp_path: Path) -> None:
    report = run(tmp_path / "out", processes=2)
    assert report.n_shards == 6 and report.computed_shards == list(range(6))
    assert report.rows_failed == 1  # the SMILES that does not parse
    store = load_perturbations(tmp_path / "out", CORPUS)
    assert len(store) == len(CORPUS)
    for i, anchor in enumerate(CORPUS):
        record = store[i]
        assert record.row == i and record.anchor == anchor
        assert len(record.perturbations) == 5
        real, padding = list(record.perturbations[: record.n_real]), record.perturbations[record.n_real :]
        assert all(p == anchor for p in padding)
        if i != INVALID_ROW:
            assert_valid_perturbations(anchor, real)
    for row in (BENZENE_ROW, ETHANOL_ROW, INVALID_ROW):
        assert store[row].n_real == 0 and store[row].perturbations == (CORPUS[row],) * 5
    assert "invalid SMILES" in store[INVALID_ROW].error
    assert store[0].n_real == 5 and store[0].error is None
    run(tmp_path / "one_process", shard_size=40, processes=1)
    one_process = load_perturbations(tmp_path / "one_process", CORPUS)
    assert [one_process[i] for i in range(len(CORPUS))] == [store[i] for i in range(len(CORPUS))]


def test_result_does_not_depend_on_shard_size_or_process_count(tmp_path: Path) -> None:
    run(tmp_path / "a", shard_size=7, processes=1)
    run(tmp_path / "b", shard_size=40, processes=1)
    a, b = load_perturbations(tmp_path / "a"), load_perturbations(tmp_path / "b")
    assert [a[i] for i in range(len(CORPUS))] == [b[i] for i in range(len(CORPUS))]
    run(tmp_path / "c", seed=1)
    c = load_perturbations(tmp_path / "c")
    assert sum(a[i] != c[i] for i in range(len(CORPUS))) > 5  # another seed draws other positives


def test_restart_recomputes_only_the_missing_shard(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(out)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in shard_files(out)}
    shard_path(out, 2).unlink()
    report = run(out)
    assert report.computed_shards == [2]
    assert report.skipped_shards == [0, 1, 3, 4, 5]
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in shard_files(out)}
    assert after.keys() == before.keys()
    for name, (mtime, content) in after.items():
        assert content == before[name][1]  # byte-identical (gzip header without a timestamp)
        if name != shard_path(out, 2).name:
            assert mtime == before[name][0]


def test_corrupt_or_misaligned_shards_are_detected_and_recomputed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(out)
    good = {p.name: p.read_bytes() for p in shard_files(out)}
    shard_path(out, 1).write_bytes(good[shard_path(out, 1).name][:40])  # truncated
    rows = read_shard(shard_path(out, 3))
    rows[0], rows[1] = rows[1], rows[0]  # the reference's bug: rows stored out of order
    with gzip.open(shard_path(out, 3), "wt") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)

    with pytest.raises(ShardError, match="corrupt"):
        load_perturbations(out, CORPUS)[7]
    with pytest.raises(ShardError, match="row 21"):
        load_perturbations(out, CORPUS)[21]

    report = run(out)
    assert sorted(report.recomputed_shards) == [1, 3] and report.computed_shards == [1, 3]
    assert {p.name: p.read_bytes() for p in shard_files(out)} == good


def test_stored_anchor_of_another_molecule_is_an_alignment_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(out)
    rows = read_shard(shard_path(out, 0))
    rows[3]["anchor"] = CORPUS[4]
    with gzip.open(shard_path(out, 0), "wt") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    with pytest.raises(PerturbationAlignmentError, match="row 3"):
        load_perturbations(out, CORPUS)[0]
    assert run(out).computed_shards == [0]


def test_wrong_corpus_or_changed_settings_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(out)
    with pytest.raises(PerturbationAlignmentError, match="not the one"):
        load_perturbations(out, CORPUS[1:] + CORPUS[:1])
    with pytest.raises(ValueError, match="seed"):
        run(out, seed=3)
    with pytest.raises(ValueError, match="n_keep"):
        run(out, n_keep=3)


def test_cli_reads_a_csv_corpus(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.csv"
    corpus.write_text("zinc_id,smiles\n" + "".join(f"z{i},{s}\n" for i, s in enumerate(CORPUS[:10])))
    assert read_smiles(corpus) == CORPUS[:10]
    smi = tmp_path / "corpus.smi"
    smi.write_text("".join(f"{s} name{i}\n" for i, s in enumerate(CORPUS[:10])))
    assert read_smiles(smi) == CORPUS[:10]
    code = main([str(corpus), str(tmp_path / "out"), "--n-keep", "3", "--shard-size", "4", "--no-progress"])
    assert code == 0
    store = load_perturbations(tmp_path / "out", corpus)
    assert len(store) == 10 and len(store[0].perturbations) == 3
