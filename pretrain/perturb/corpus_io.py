"""Reading a SMILES corpus and fingerprinting it, for the precompute and its readers.

:func:`corpus_sha256` identifies a corpus (its rows, in order), so that stored perturbations can be
matched to the corpus they were computed for.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

from molchannel.data.smiles_file import read_smiles_file


def read_smiles(path: str | os.PathLike[str]) -> list[str]:
    """SMILES of a corpus file, one per row, in file order (see :func:`read_smiles_file`)."""
    return read_smiles_file(path).smiles


def corpus_sha256(smiles: Sequence[str]) -> str:
    """Fingerprint of a corpus (its rows, in order): tells a precompute which corpus it belongs to."""
    digest = hashlib.sha256()
    for s in smiles:
        digest.update(s.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _as_corpus(corpus: str | os.PathLike[str] | Sequence[str]) -> list[str]:
    return read_smiles(corpus) if isinstance(corpus, str | os.PathLike) else list(corpus)
