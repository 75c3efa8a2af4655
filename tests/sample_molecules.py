"""Inputs that several test modules share."""

from __future__ import annotations

#: small drug-like and edge-case molecules: neutral, aromatic, stereo, charged, single-atom, inorganic
SAMPLE_SMILES = [
    "CCO",
    "c1ccccc1",
    "CC(=O)Oc1ccccc1C(=O)O",
    "C[C@@H](N)C(=O)O",
    "[NH4+]",
    "C",
    "O=C=O",
    "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
    "c1ccc2ccccc2c1",
    "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O",
    "Cl",
    "C#N",
]
