"""Helpers of the bad-input tests: hypothesis strategies (valid molecules built from fragments, odd
but parsable molecules, huge molecules, garbage of every kind), the oracle that says which inputs
must be accepted, and a tiny fine-tuned model for ``predict``.

Imported by ``tests/test_bad_input*.py`` (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import torch
from hypothesis import strategies as st
from rdkit import Chem
from rdkit.rdBase import BlockLogs

from molchannel.api import MolChannelModel, build_model_config, init_model
from molchannel.nn.model import HeadConfig, MolChannelNet, NetConfig

FUZZ_SCALE = int(os.environ.get("MOLCHANNEL_FUZZ_SCALE", "1"))
"""Multiplier of every property's example budget: 1 in CI; benchmarks/fuzz_campaign.py raises it."""


def examples(n: int) -> int:
    """The ``max_examples`` of a property: ``n`` in CI, ``n * MOLCHANNEL_FUZZ_SCALE`` in a fuzz campaign."""
    return n * FUZZ_SCALE


# Pieces that can be written one after another in any order and still give a valid chain: each
# bonds to the previous piece through its first atom and to the next through its last atom.
CHAIN_PIECES = (
    "C", "CC", "O", "N", "S", "c1ccccc1", "c1ccncc1", "c1cc[nH]c1", "C(=O)", "C(=O)O", "C(F)(F)",
    "C(Cl)", "C(Br)", "C1CC1", "C1CCOC1", "C#C", "C=C", "C/C=C/C", "[C@@H](N)", "[C@H](O)", "[13CH2]",
    "*", "[*:1]", "[N+](C)(C)", "P(=O)(O)", "[Si](C)(C)",
)  # fmt: skip

# Whole components (joined to others only with "."): ions, isotopes, radicals, dummy atoms, metals.
ODD_COMPONENTS = (
    "C", "[Na+]", "[Cl-]", "[H]", "[2H]", "[H+]", "[H-]", "[CH3]", "[CH2]", "*", "[*:1]", "[*]",
    "[1*]", "[Fe+2]", "[U]", "[He]", "[Og]", "[NH4+]", "CC(=O)[O-]", "[O-]S(=O)(=O)[O-]", "[13C]",
    "[2H]C([2H])([2H])[2H]", "[H][H]", "[Cu+2]", "O", "[O]", "C~C", "[Mo]$[Mo]", "[NH3]->[Cu+2]",
    "F[Pt@SP1](Cl)(Br)I", "C[C@H](N)C(=O)O", "C |$;;$|",
)  # fmt: skip

# Odd inputs the issue names, all accepted (documented in parse_smiles), with their atom counts.
ODD_VALID = {
    "C": 1, "[Na+]": 1, "[H]": 1, "[2H]": 1, "CC(=O)[O-].[Na+]": 5, "[CH3]": 1, "*": 1, "[*:1]": 1,
    "C~C": 2, "[13CH3]O": 2, "[Na+].[Cl-]": 2, "*C(=O)*": 4, "[*:1]CC[*:2]": 4, "CCO |$;;$|": 3,
    "  CCO\t": 3, "[2H]C([2H])([2H])[2H]": 5, "[H]C([H])([H])[H]": 1,
}  # fmt: skip
# Rejected: SMARTS queries, reactions, broken rings and aromaticity, names after the SMILES.
SMARTS_AND_QUERIES = (
    "[#6,#7]", "[!C]", "[C;H3]", "[C&H3]", "C-,=C", "[$(CO)]", "C>>C", "CC>O>CC", "[R]", "*~[!#1]",
    "[CH3:1]>>[CH3:1]", "c1cc1", "C1CC", "CCO ethanol", "c1ccccc1 O", "C\nC",
)  # fmt: skip

SMILES_CHARS = "CNOSPFIBrlcnosp[]()=#$:~@/\\.%*+-0123456789H: |"
WHITESPACE = " \t\n\r\x0b\x0c\xa0\u2028\u3000"


@st.composite
def chains(draw: st.DrawFn, min_pieces: int = 1, max_pieces: int = 8) -> str:
    return "".join(draw(st.lists(st.sampled_from(CHAIN_PIECES), min_size=min_pieces, max_size=max_pieces)))


def valid_smiles() -> st.SearchStrategy[str]:
    """Valid SMILES: a chain of pieces, or a mixture of 1-3 chains and odd components."""
    component = st.one_of(chains(), st.sampled_from(ODD_COMPONENTS))
    mixtures = st.lists(component, min_size=1, max_size=3).map(".".join)
    # a CXSMILES extension is only allowed at the very end, so drop it inside mixtures
    return st.one_of(chains(), mixtures.filter(lambda s: "|" not in s or s.endswith("|")))


def huge_smiles() -> st.SearchStrategy[str]:
    """Molecules of 500 to ~900 heavy atoms: alkane chains, polymers, peptides, polyaromatics."""
    return st.one_of(
        st.integers(500, 900).map(lambda n: "C" * n),
        st.integers(170, 300).map(lambda n: "CC(C)" * n),  # polypropylene
        st.integers(125, 200).map(lambda n: "N" + "CC(=O)N" * n + "CC(=O)O"),  # polyglycine
        st.integers(84, 120).map(lambda n: "c1ccc(cc1)" * n),  # poly(p-phenylene)
        st.integers(100, 150).map(lambda n: "OCC(O)C" * n + ".[Na+]" * 3),  # with counter-ions
    )


def _mutate(args: tuple[str, int, str, int]) -> str:
    smiles, position, char, how = args
    i = position % (len(smiles) + 1)
    if how == 0:
        return smiles[:i] + char + smiles[i:]  # insert
    if how == 1:
        return smiles[:i] + smiles[i + 1 :]  # delete
    return smiles[:i] + char + smiles[i + 1 :]  # replace


def mutated_smiles() -> st.SearchStrategy[str]:
    """A valid SMILES with one character inserted, deleted or replaced: mostly invalid, not always."""
    return st.tuples(
        valid_smiles(), st.integers(0, 200), st.sampled_from(SMILES_CHARS), st.integers(0, 2)
    ).map(_mutate)


def garbage_text() -> st.SearchStrategy[str]:
    """Strings of every kind: arbitrary Unicode, SMILES-like soup, blanks, lone surrogates, NULs."""
    return st.one_of(
        st.text(max_size=30),
        st.text(alphabet=SMILES_CHARS, max_size=30),
        st.text(alphabet=WHITESPACE, max_size=6),
        st.sampled_from(SMARTS_AND_QUERIES),
        mutated_smiles(),
        # undecodable bytes read with errors="surrogateescape" arrive as lone surrogates
        st.tuples(chains(max_pieces=3), st.text(alphabet="\udc80\udcff\udcfe", min_size=1, max_size=3)).map(
            "".join
        ),
        chains(max_pieces=3).map(lambda s: s + "\x00"),
    )


def non_strings() -> st.SearchStrategy[object]:
    """Things a table cell can hold that are not text: None, NaN and other floats, ints, bytes."""
    return st.one_of(
        st.none(),
        st.just(math.nan),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(),
        st.booleans(),
        st.binary(max_size=12),
        chains(max_pieces=3).map(str.encode),  # UTF-8 bytes of a valid SMILES: decoded and accepted
    )


def any_input() -> st.SearchStrategy[object]:
    """Anything at all, weighted towards valid molecules so that lists mix both."""
    return st.one_of(
        valid_smiles(),
        valid_smiles(),
        st.sampled_from(tuple(ODD_VALID)),
        garbage_text(),
        non_strings(),
    )


def text_input() -> st.SearchStrategy[str]:
    """Strings only (what a file cell can hold), weighted towards valid molecules."""
    return st.one_of(valid_smiles(), valid_smiles(), st.sampled_from(tuple(ODD_VALID)), garbage_text())


# ---- oracle ------------------------------------------------------------------------------------
_WHITESPACE = re.compile(r"\s")


def expected_atoms(value: object) -> int | None:
    """Atom count the featurizers must give ``value``, or ``None`` when it must be rejected.

    The documented rules of :func:`molchannel.chem.parse_smiles`, written out independently: UTF-8
    bytes are decoded; other non-strings, blank text, NULs and undecodable text are invalid; RDKit
    decides the rest, except that text after inner whitespace must be a CXSMILES extension.
    """
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or "\x00" in text:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    with BlockLogs():
        mol = Chem.MolFromSmiles(text)
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    if _WHITESPACE.search(text) and not text.split(maxsplit=1)[1].startswith("|"):
        return None
    return mol.GetNumAtoms()


# ---- a fine-tuned model without training ---------------------------------------------------------
HEADED_TASKS = ["y", "z"]


def save_headed_model(path: Path) -> Path:
    """A tiny fine-tuned model folder: random 2x16 GIN, a 2-task regression head, a target scaler."""
    base = init_model({"num_layers": 2, "hidden_dim": 16, "aggregator_heads": 2}, seed=0)
    net_config = NetConfig(encoder=base.net.config.encoder, head=HeadConfig(len(HEADED_TASKS), hidden_dim=8))
    torch.manual_seed(1)
    net = MolChannelNet(net_config)
    assert net.target_scaler is not None
    net.target_scaler.mean.copy_(torch.tensor([1.0, -2.0]))
    net.target_scaler.std.copy_(torch.tensor([3.0, 0.5]))
    head = {"tasks": HEADED_TASKS, "task_type": "regression", "metric": "rmse"}
    config = build_model_config(
        net_config, base.featurizer, {"pretrained": False, "finetuned": True}, head=head
    )
    return MolChannelModel(net, base.featurizer, config).save(path)
