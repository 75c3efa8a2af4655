"""SMILES parsing with an explicit policy for invalid input.

RDKit's own logging is never silenced globally: parse failures are turned into
:class:`InvalidSmilesError` with a reason, and RDKit's log lines are blocked only for the
duration of a parse call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from rdkit import Chem
from rdkit.rdBase import BlockLogs

OnInvalid = Literal["raise", "nan", "skip"]
ON_INVALID_CHOICES: tuple[str, ...] = ("raise", "nan", "skip")


class InvalidSmilesError(ValueError):
    """A SMILES string could not be turned into a molecule.

    Attributes:
        smiles: the offending input (as given).
        index: its position in the input sequence, when known.
        reason: why it was rejected (RDKit's sanitisation message where there is one).
    """

    def __init__(self, smiles: object, reason: str, index: int | None = None) -> None:
        self.smiles = smiles
        self.reason = reason
        self.index = index
        where = f" at index {index}" if index is not None else ""
        shown = (
            repr(smiles) if not isinstance(smiles, str) or len(smiles) <= 200 else repr(smiles[:200] + "...")
        )
        super().__init__(
            f"invalid SMILES{where}: {shown} ({reason}). "
            "Fix or remove it, or pass on_invalid='nan' / 'skip' to keep going."
        )


@dataclass(frozen=True)
class InvalidRecord:
    """One rejected input of a bulk call: where it was, what it was, and why."""

    index: int
    smiles: str
    reason: str


def check_on_invalid(on_invalid: str) -> None:
    if on_invalid not in ON_INVALID_CHOICES:
        raise ValueError(f"on_invalid must be one of {ON_INVALID_CHOICES}, got {on_invalid!r}")


def _diagnose(smiles: str) -> str:
    """Explain why RDKit rejected ``smiles`` (called only on failure, so speed does not matter)."""
    mol = Chem.MolFromSmiles(smiles, sanitize=False)
    if mol is None:
        return "RDKit could not parse the SMILES syntax"
    try:
        Chem.SanitizeMol(mol)
    except Exception as exc:  # RDKit raises several sanitisation exception types
        return f"RDKit sanitisation failed: {str(exc).strip()}"
    return "RDKit returned no molecule"


def parse_smiles(smiles: object, index: int | None = None) -> Chem.Mol:
    """Parse one SMILES into a sanitised RDKit molecule or raise :class:`InvalidSmilesError`.

    Surrounding whitespace is stripped (some public CSVs carry trailing spaces). UTF-8 ``bytes``
    are decoded. Invalid: empty or blank strings, other non-strings (``None``, ``NaN``, numbers),
    text with undecodable bytes (a file read with ``errors="surrogateescape"``), NUL characters,
    molecules without atoms, anything RDKit cannot parse or sanitise (SMARTS queries such as
    ``[#6,#7]`` or ``[!C]``, reactions, bad valences, unkekulizable rings), and text after
    whitespace inside the SMILES ("CCO ethanol", "c1ccccc1 O": RDKit would silently read the rest
    as a name); only a CXSMILES extension (``"CCO |$;;$|"``) may follow a space.

    Accepted as RDKit reads them (every featurizer handles them, unusual ones in "unknown"
    slots): single atoms and ions (``"C"``, ``"[Na+]"``, ``"[H]"``), salts and mixtures
    (``"CC(=O)[O-].[Na+]"``: one graph with several components), isotopes (``"[2H]"``,
    ``"[13C]"``; explicit isotope hydrogens stay atoms), radicals (``"[CH3]"``), atom maps, dummy
    atoms ``"*"`` / ``"[*:1]"`` (atomic number 0) and RDKit's any-bond ``"C~C"``.
    """
    if isinstance(smiles, bytes):
        try:
            smiles = smiles.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidSmilesError(smiles, "bytes that are not valid UTF-8", index) from exc
    if not isinstance(smiles, str):
        if isinstance(smiles, float) and math.isnan(smiles):
            raise InvalidSmilesError(smiles, "missing value (NaN)", index)
        raise InvalidSmilesError(smiles, f"expected a string, got {type(smiles).__name__}", index)
    text = smiles.strip()
    if not text:
        raise InvalidSmilesError(smiles, "empty string", index)
    if "\x00" in text:
        raise InvalidSmilesError(smiles, "contains a NUL character", index)
    if not text.isascii():
        _check_encodable(smiles, text, index)
    with BlockLogs():
        mol = Chem.MolFromSmiles(text)
        if mol is None:
            raise InvalidSmilesError(smiles, _diagnose(text), index)
    if _WHITESPACE.search(text):
        # RDKit read the part before the whitespace and took the rest as the molecule's name
        rest = text.split(maxsplit=1)[1]
        if not rest.startswith("|"):
            raise InvalidSmilesError(
                smiles, f"text after the SMILES ({rest[:40]!r}); a name belongs in another column", index
            )
    if mol.GetNumAtoms() == 0:
        raise InvalidSmilesError(smiles, "molecule has no atoms", index)
    return mol


_WHITESPACE = re.compile(r"\s")


def _check_encodable(smiles: str, text: str, index: int | None) -> None:
    """RDKit takes UTF-8: lone surrogates (undecodable input bytes) would make it raise UnicodeEncodeError."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidSmilesError(smiles, "bytes that are not valid UTF-8 (undecodable input)", index) from exc


def iter_mols(smiles: Iterable[object]) -> Iterator[tuple[int, Chem.Mol | None, InvalidSmilesError | None]]:
    """Yield ``(index, mol, error)`` for each input; exactly one of mol/error is set."""
    for i, s in enumerate(smiles):
        try:
            yield i, parse_smiles(s, i), None
        except InvalidSmilesError as err:
            yield i, None, err


def canonical_smiles(smiles: str, isomeric: bool = True) -> str:
    """Canonical RDKit SMILES of ``smiles`` (raises :class:`InvalidSmilesError`)."""
    return Chem.MolToSmiles(parse_smiles(smiles), isomericSmiles=isomeric)
