"""Data layer: dataset registry, verified file access, loaders, splits and the graph cache.

Knows nothing of Lightning or of models; depends only on :mod:`molchannel.chem`.
"""

from molchannel.data.cache import GraphStore, graph_cache_key, load_or_build_graphs
from molchannel.data.datasets import MissingColumnError, MoleculeTable, load_csv, load_dataset
from molchannel.data.paths import (
    ChecksumMismatchError,
    DataNotFoundError,
    fetch_file,
    resolve_cache_dir,
    resolve_data_dir,
    sha256_of_file,
    verify_file,
)
from molchannel.data.registry import (
    CORPUS_FILES,
    DATASETS,
    MOLECULEACE_METADATA,
    DataFile,
    DatasetSpec,
    get_dataset_spec,
    list_datasets,
)
from molchannel.data.smiles_file import SmilesTable, read_smiles_file
from molchannel.data.splits import (
    Split,
    column_split,
    official_split,
    random_scaffold_split,
    random_split,
    scaffold_groups,
    scaffold_split,
)

__all__ = [
    "CORPUS_FILES",
    "DATASETS",
    "MOLECULEACE_METADATA",
    "ChecksumMismatchError",
    "DataFile",
    "DataNotFoundError",
    "DatasetSpec",
    "GraphStore",
    "MissingColumnError",
    "MoleculeTable",
    "SmilesTable",
    "Split",
    "column_split",
    "fetch_file",
    "get_dataset_spec",
    "graph_cache_key",
    "list_datasets",
    "load_csv",
    "load_dataset",
    "load_or_build_graphs",
    "official_split",
    "random_scaffold_split",
    "random_split",
    "read_smiles_file",
    "resolve_cache_dir",
    "resolve_data_dir",
    "scaffold_groups",
    "scaffold_split",
    "sha256_of_file",
    "verify_file",
]
