"""Scaffold-invariant perturbations: the positives of the scaffold-distancing (SCD) channel.

METHOD section 4: for every anchor molecule, molecules with the *identical* Bemis-Murcko scaffold that
differ outside it. Two generators are offered, both filtered by exact scaffold equality and selected by
name through a small registry (:func:`make_perturber`, :func:`register_perturber`):

- ``"crem"``, :class:`CremPerturber`, as in the reference: CReM fragment replacement (fragments of at
  most 5 heavy atoms among the non-scaffold atoms and their neighbours) from a database built from the
  corpus with CReM's own tools (:func:`build_crem_db`).
- ``"sidechain"``, :class:`SideChainPerturber`: single edits of the side chains (change an element, add
  or delete a terminal atom, lengthen or shorten a chain). It needs no database and is much faster (see
  BENCHMARKS.md).

Perturbations are a precompute step (:func:`precompute_perturbations`): the corpus is split into shards
by row index, shards are computed in parallel processes and written atomically, a rerun skips every
shard that exists and verifies, and every stored row carries its row index and anchor SMILES so that
:func:`load_perturbations` can prove that each molecule's perturbations belong to that molecule. (The
reference precompute loses exactly this alignment.) The positives drawn for a molecule depend only on
``(seed, row index)``, never on the shard size or the number of processes.

Modules: ``base`` (perturber protocol, row record), ``registry`` (method names), ``sidechain`` and
``crem`` (the two methods; ``crem`` also builds the fragment database), ``corpus_io`` (corpus reading
and fingerprint), ``shards`` (sharded precompute and shard files), ``store`` (reading it back) and
``cli`` (``molchannel perturb``).
"""

from __future__ import annotations

from molchannel.pretrain.perturb.base import (
    PerturbationRecord,
    ScaffoldInvariantPerturber,
    perturbation_row,
    scaffold_key,
)
from molchannel.pretrain.perturb.cli import build_parser, main
from molchannel.pretrain.perturb.corpus_io import corpus_sha256, read_smiles
from molchannel.pretrain.perturb.crem import CremPerturber, build_crem_db
from molchannel.pretrain.perturb.registry import (
    make_perturber,
    perturber_class,
    perturber_names,
    register_perturber,
)
from molchannel.pretrain.perturb.shards import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    PerturbationAlignmentError,
    PrecomputeReport,
    ShardError,
    precompute_perturbations,
    read_shard,
    shard_path,
    verify_shard_rows,
)
from molchannel.pretrain.perturb.sidechain import Edit, SideChainPerturber
from molchannel.pretrain.perturb.store import PerturbationStore, load_perturbations

METHODS: tuple[str, ...] = perturber_names()
"""The perturbation methods shipped with molchannel: ``("crem", "sidechain")``."""

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "METHODS",
    "CremPerturber",
    "Edit",
    "PerturbationAlignmentError",
    "PerturbationRecord",
    "PerturbationStore",
    "PrecomputeReport",
    "ScaffoldInvariantPerturber",
    "ShardError",
    "SideChainPerturber",
    "build_crem_db",
    "build_parser",
    "corpus_sha256",
    "load_perturbations",
    "main",
    "make_perturber",
    "perturbation_row",
    "perturber_class",
    "perturber_names",
    "precompute_perturbations",
    "read_shard",
    "read_smiles",
    "register_perturber",
    "scaffold_key",
    "shard_path",
    "verify_shard_rows",
]
