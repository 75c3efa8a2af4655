"""Chemistry layer: SMILES parsing, featurizers, scaffolds. Knows nothing of training.

Featurizers: :mod:`~molchannel.chem.base` (spec, protocol, registry), one module per scheme
(:mod:`~molchannel.chem.basic`, :mod:`~molchannel.chem.rich`) and :func:`get_featurizer`
(:mod:`~molchannel.chem.featurizers`).
"""

from molchannel.chem.base import Featurizer, FeaturizerSpec, register_featurizer
from molchannel.chem.basic import BasicFeaturizer
from molchannel.chem.bulk import FeaturizedSmiles, featurize_smiles, iter_featurized
from molchannel.chem.featurizers import featurizer_names, get_featurizer
from molchannel.chem.rich import RichFeaturizer, describe_rich_features
from molchannel.chem.scaffold import murcko_scaffold_smiles, scaffold_atom_indices, scaffold_mol
from molchannel.chem.smiles import InvalidRecord, InvalidSmilesError, OnInvalid, parse_smiles

__all__ = [
    "BasicFeaturizer",
    "FeaturizedSmiles",
    "Featurizer",
    "FeaturizerSpec",
    "InvalidRecord",
    "InvalidSmilesError",
    "OnInvalid",
    "RichFeaturizer",
    "describe_rich_features",
    "featurize_smiles",
    "featurizer_names",
    "get_featurizer",
    "iter_featurized",
    "murcko_scaffold_smiles",
    "parse_smiles",
    "register_featurizer",
    "scaffold_atom_indices",
    "scaffold_mol",
]
