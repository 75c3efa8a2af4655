"""Chemistry layer: SMILES parsing, featurizers, scaffolds. Knows nothing of training."""

from molchannel.chem.bulk import FeaturizedSmiles, featurize_smiles, iter_featurized
from molchannel.chem.featurizers import BasicFeaturizer, Featurizer, FeaturizerSpec, get_featurizer
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
    "get_featurizer",
    "iter_featurized",
    "murcko_scaffold_smiles",
    "parse_smiles",
    "scaffold_atom_indices",
    "scaffold_mol",
]
