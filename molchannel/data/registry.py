"""The benchmark datasets molchannel knows: where each file lives, its checksum and its columns.

Every entry names a file relative to the data directory (see :mod:`molchannel.data.paths`) and the
sha256 of that exact file, so a run can state precisely which bytes it used. ``url`` is set only
where the file served there is known to be the same file (for MoleculeNet the independent md5/sha256
records of DeepChem's bucket match ours for BBBP, ESOL, FreeSolv and Lipophilicity; SIDER, ClinTox
and Tox21 are served gzip-compressed, so those entries say ``url_compression="gzip"`` and the
checksum is verified after decompression). HIV, BACE, MUV and ToxCast are different files from the
bucket's (other byte content, other columns, or another release), so they have no URL: put them in
the data directory by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Collection = Literal["moleculenet", "moleculeace"]
TaskType = Literal["classification", "regression"]
Metric = Literal["roc_auc", "rmse"]
SplitKind = Literal["scaffold", "official"]

DEEPCHEM_BUCKET = "https://deepchemdata.s3-us-west-1.amazonaws.com/datasets/"
MOLECULEACE_RAW = "https://raw.githubusercontent.com/molML/MoleculeACE/main/MoleculeACE/Data/benchmark_data/"


@dataclass(frozen=True)
class DataFile:
    """A file of the data directory: relative path, sha256, and where it can be downloaded.

    ``url_compression="gzip"`` means the URL serves a gzip of the file; the download is
    decompressed and the checksum is checked on the result.
    """

    file: str
    sha256: str
    url: str | None = None
    url_compression: Literal["gzip"] | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """One benchmark dataset.

    ``targets`` lists the label columns; an empty tuple means "every column except the SMILES
    column and ``extra_cols``" (ToxCast's 617 assays are read from the header this way).
    ``extra_cols`` are carried along unchanged (MoleculeACE's ``cliff_mol`` and ``split``).
    """

    name: str
    collection: Collection
    file: str
    sha256: str
    smiles_col: str
    targets: tuple[str, ...]
    task_type: TaskType
    metric: Metric
    url: str | None
    split: SplitKind
    url_compression: Literal["gzip"] | None = None
    extra_cols: tuple[str, ...] = ()


TOX21_TASKS = (
    "NR-AR", "NR-AR-LBD", "NR-AhR", "NR-Aromatase", "NR-ER", "NR-ER-LBD", "NR-PPAR-gamma",
    "SR-ARE", "SR-ATAD5", "SR-HSE", "SR-MMP", "SR-p53",
)  # fmt: skip
SIDER_TASKS = (
    "Hepatobiliary disorders", "Metabolism and nutrition disorders", "Product issues", "Eye disorders",
    "Investigations", "Musculoskeletal and connective tissue disorders", "Gastrointestinal disorders",
    "Social circumstances", "Immune system disorders", "Reproductive system and breast disorders",
    "Neoplasms benign, malignant and unspecified (incl cysts and polyps)",
    "General disorders and administration site conditions", "Endocrine disorders",
    "Surgical and medical procedures", "Vascular disorders", "Blood and lymphatic system disorders",
    "Skin and subcutaneous tissue disorders", "Congenital, familial and genetic disorders",
    "Infections and infestations", "Respiratory, thoracic and mediastinal disorders", "Psychiatric disorders",
    "Renal and urinary disorders", "Pregnancy, puerperium and perinatal conditions",
    "Ear and labyrinth disorders", "Cardiac disorders", "Nervous system disorders",
    "Injury, poisoning and procedural complications",
)  # fmt: skip
MUV_TASKS = tuple(
    f"MUV-{i}" for i in (466, 548, 600, 644, 652, 689, 692, 712, 713, 733, 737, 810, 832, 846, 852, 858, 859)
)


def _moleculenet(
    name: str,
    file: str,
    sha256: str,
    targets: tuple[str, ...],
    task_type: TaskType,
    bucket_name: str | None,
    gzip_url: bool = False,
) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        collection="moleculenet",
        file=f"moleculenet/{file}",
        sha256=sha256,
        smiles_col="smiles",
        targets=targets,
        task_type=task_type,
        metric="roc_auc" if task_type == "classification" else "rmse",
        url=DEEPCHEM_BUCKET + bucket_name if bucket_name else None,
        split="scaffold",
        url_compression="gzip" if gzip_url else None,
    )


_MOLECULENET = (
    _moleculenet("bbbp", "BBBP.csv", "d07a38487aeac5cee5508413e468043ef3097451d2a112701c2d60be9ec6b662",
                 ("p_np",), "classification", "BBBP.csv"),
    _moleculenet("tox21", "tox21.csv", "7d7e7facd853a63e79ddce4e9c3fcb7a0d83a1c300b603031c0f2c64fbe77761",
                 TOX21_TASKS, "classification", "tox21.csv.gz", gzip_url=True),
    _moleculenet("toxcast", "toxcast.csv.gz",
                 "4b9b4366b02ce7ec7a0831d60f8c46f153c53c5e122376df887476240496abd4",
                 (), "classification", None),
    _moleculenet("sider", "sider.csv", "71efc6ac4ca82d6545bc512509863281be0f17234afd7adaf71a71899988302e",
                 SIDER_TASKS, "classification", "sider.csv.gz", gzip_url=True),
    _moleculenet("clintox", "clintox.csv", "9999816e760dd838358b5d88e81cea2fc062be4458ffa412ceecdba4f88a67b6",
                 ("FDA_APPROVED", "CT_TOX"), "classification", "clintox.csv.gz", gzip_url=True),
    _moleculenet("muv", "muv.csv.gz", "ee68d1fad0b10440dc494ac3a74cf99168a0b0da9683556b2b48220b88172135",
                 MUV_TASKS, "classification", None),
    _moleculenet("hiv", "HIV.csv", "54713c3205055055ea4214e8c4b0d22d93af7e54ad2c48f4edc866e161e57262",
                 ("HIV_active",), "classification", None),
    _moleculenet("bace", "bace.csv", "d36f089649984f7bfaa4589ccc3ae907b831780a01ccfd065a5b604939e1a5df",
                 ("Class",), "classification", None),
    _moleculenet("esol", "delaney-processed.csv",
                 "8c06a76f0c6487d29ab0f903e6a7a7139f189ab3c1178f159c8be8964602f189",
                 ("measured log solubility in mols per litre",), "regression", "delaney-processed.csv"),
    _moleculenet("freesolv", "SAMPL.csv", "ab5895d914ee87cb563bd7b9611e869527bba45bec6b014d34dc495a0f9dcb72",
                 ("expt",), "regression", "SAMPL.csv"),
    _moleculenet("lipophilicity", "Lipophilicity.csv",
                 "aed41590cb30609d51d8e08ad3ff06495a76e80e211358801f596b10da69bacd",
                 ("exp",), "regression", "Lipophilicity.csv"),
)  # fmt: skip

_MOLECULEACE_SHA256 = (
    ("CHEMBL1862_Ki", "72a750426976bf5c17ca9129e86dff20962332f92a8ce16028d9fbcf152ca412"),
    ("CHEMBL1871_Ki", "62d05aa76d096fd5bd3575dcfd30dcab24873dc010de47b478b6617fbd95985e"),
    ("CHEMBL2034_Ki", "476668f39aae0e29a1ab8fa83a7087b179dc705b68cdc060c9958a0eed2048d4"),
    ("CHEMBL2047_EC50", "ea1bacf43377aac288840f2d2e37df7705a0d2d1f93bb52b0ce85e499e311f6e"),
    ("CHEMBL204_Ki", "6ccf17a5f1aa6322f2d68f24b923f2efb5779ff73d33035bb889bb922b18dba5"),
    ("CHEMBL2147_Ki", "5cbf4deba3e6312aff3a77ac3c70eb39a3cd58c9d8686a19a8b56c4a73377d02"),
    ("CHEMBL214_Ki", "68bffa3069340c51204ba23395626622559a10c3d39b1111cb9c47f9d9960962"),
    ("CHEMBL218_EC50", "9133aefc69efa92403107f78f747d4acbd370255ac0a2949cc5f86a30b5ebd11"),
    ("CHEMBL219_Ki", "f0d13b1bd8086e3fed746215b0ff8c4399518547bbba2146a0f235f1a9a59fa8"),
    ("CHEMBL228_Ki", "17158facfdc5788e22e020e398acd3bbf99edc9d66f7b323da778cd551d9796f"),
    ("CHEMBL231_Ki", "9e1c0a22c37e446d37d63e7b39d92cb022774333b4fa430e9f948b748215afb0"),
    ("CHEMBL233_Ki", "4d8aff053b3d1c12e8cc13102958bb4f3dce4ac7715452265231e5b68d1c9362"),
    ("CHEMBL234_Ki", "7a86fc3552953bb1ea727f4119b844ff3eadb33d7a79413b1f417cf236f5615a"),
    ("CHEMBL235_EC50", "a99b1d18870cc4d83da5fbedfee4504f8c46bb96e71ea7964b84ae7682d4963f"),
    ("CHEMBL236_Ki", "28227a570694a24325a3206bee2a1623e14949d54abe13e490402fb2f5a8c74e"),
    ("CHEMBL237_EC50", "37dce21b9ef158ac7d3075997e58896bb0083162c9c820d1996d898dfb0701f5"),
    ("CHEMBL237_Ki", "8bc5f0f4e512923d7878390f9c6336682dfd638e90d8110f44bfd3af77d605c3"),
    ("CHEMBL238_Ki", "5ca1bb99ea9123dc0369f19c1269fec3f9fc3eae3bf9a2b781419b268913761a"),
    ("CHEMBL239_EC50", "1985b2137bd64396ec980e8c6e1f234f6f9aa989c49a20aef71dd22bda68ed9c"),
    ("CHEMBL244_Ki", "aafc2e81810767397c8b5b3161b9eed3b33b6e9a827ed176336f388bef274a36"),
    ("CHEMBL262_Ki", "c438e8e18bc444890246607be107d9afb8c64012608a8a73838acad3eacfce21"),
    ("CHEMBL264_Ki", "6b380b5cf61b6985179779a9b9d0d1d3b197773fc3df5079d8932108f75e2bbf"),
    ("CHEMBL2835_Ki", "a6ff0b8c3df2c452a9210af5c3d57495846ed16978c339b463c7a4b90c73c66c"),
    ("CHEMBL287_Ki", "7f448c29138242dd64ec2a07742e33a1e186129ca4e794e287b67e5ffaea171e"),
    ("CHEMBL2971_Ki", "2fe0c20bab93c58f824fdb7f35b1c327e987b76e8403ededb0075cb7649651d3"),
    ("CHEMBL3979_EC50", "7e455ec476c0683414404b527d0bb98bf76671f7bd3748507aad505c21a6b44b"),
    ("CHEMBL4005_Ki", "183b163b6820d2c0db3190500e3a58cdda1f72d148f36605d7c2e2071d69c03e"),
    ("CHEMBL4203_Ki", "28d7139fdba99657584430ef793bf2850aaf806651930fc062d50f3f847f032d"),
    ("CHEMBL4616_EC50", "7b79538464cf4a811a9bd593d867d985b3f19d65302f241a7fba409b16230b0a"),
    ("CHEMBL4792_Ki", "088219b5b08fa90962f00e80d7ed66fe7a71e223b18b874fb000d0babc343659"),
)

_MOLECULEACE = tuple(
    DatasetSpec(
        name=name,
        collection="moleculeace",
        file=f"moleculeace/{name}.csv",
        sha256=sha256,
        smiles_col="smiles",
        targets=("y",),
        task_type="regression",
        metric="rmse",
        url=f"{MOLECULEACE_RAW}{name}.csv",
        split="official",
        extra_cols=("cliff_mol", "split"),
    )
    for name, sha256 in _MOLECULEACE_SHA256
)

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (*_MOLECULENET, *_MOLECULEACE)}

#: MoleculeACE's table of the 30 targets (compound counts of the official split per dataset).
MOLECULEACE_METADATA = DataFile(
    "moleculeace/metadata_datasets.csv",
    "1de8f22ab319ccaba453f31f48ca6c70b7033638cfe3cc96d75413d9f342cfa6",
    f"{MOLECULEACE_RAW}metadata/datasets.csv",
)

#: Pre-training corpora (ZINC). No URL: MOSES ships them inside the PyPI package ``molsets``.
CORPUS_FILES: dict[str, DataFile] = {
    "moses_train": DataFile(
        "zinc/moses_train.csv.gz", "786f0313aa6b9ba5514df685f885742a70ea8d86f1a4fa48115f7f80a634265c"
    ),
    "moses_test": DataFile(
        "zinc/moses_test.csv.gz", "f896fbf3764f88d94670b9959e5872c600c12152a18233823e820761b7a791b2"
    ),
    "moses_test_scaffolds": DataFile(
        "zinc/moses_test_scaffolds.csv.gz", "adffb2192c1bfe31ab0e13154d4af19a37dc18bdbf3cd7b4491e04405128adde"
    ),
    "zinc250k": DataFile(
        "zinc/250k_rndm_zinc_drugs_clean.smi.gz",
        "50b6b95dbdd4547344602c352b6e770daf8bda801fcd670fc487334d04a1ab36",
    ),
}

_BY_LOWER_NAME = {name.lower(): name for name in DATASETS}


def get_dataset_spec(name: str) -> DatasetSpec:
    """The registered dataset called ``name`` (case-insensitive)."""
    key = _BY_LOWER_NAME.get(name.strip().lower())
    if key is None:
        raise KeyError(
            f"unknown dataset {name!r}. Registered datasets: {', '.join(list_datasets())}. "
            "For your own data use molchannel.data.load_csv(path, smiles_col, target_cols)."
        )
    return DATASETS[key]


def list_datasets(collection: Collection | None = None) -> list[str]:
    """Names of the registered datasets, optionally of one collection, in registry order."""
    if collection is not None and collection not in ("moleculenet", "moleculeace"):
        raise ValueError(f"collection must be 'moleculenet' or 'moleculeace', got {collection!r}")
    return [name for name, spec in DATASETS.items() if collection is None or spec.collection == collection]
