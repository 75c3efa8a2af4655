"""Molecule -> PyG graph featurizers: :func:`get_featurizer` and the names the schemes export.

Two schemes, each in its own module and registered under its name
(:func:`~molchannel.chem.base.register_featurizer`):

* ``basic`` (:mod:`molchannel.chem.basic`, Hu et al. 2020, the GIN baselines): integer atom and
  bond vocabularies with mask tokens;
* ``rich`` (:mod:`molchannel.chem.rich`, the GraphGPS variant): float one-hot atom/bond vectors
  plus a random-walk positional encoding.

A :class:`FeaturizerSpec` (scheme, version, options) selects one; it is saved with every model
folder and every processed-data cache. The spec, the protocol and the graph constructor are in
:mod:`molchannel.chem.base`; they, and the basic scheme's vocabulary, are importable from here too.
"""

from __future__ import annotations

import inspect
from typing import Any

from molchannel.chem import rich  # noqa: F401 - importing a scheme's module registers it
from molchannel.chem.base import (
    FEATURIZERS,
    Featurizer,
    FeaturizerSpec,
    new_graph,
    register_featurizer,
)
from molchannel.chem.basic import (
    ATOM_MASK,
    ATOM_UNKNOWN,
    BOND_DIR_OTHER,
    BOND_DIRS,
    BOND_MASK,
    BOND_SELF_LOOP,
    BOND_TYPES,
    BOND_UNKNOWN,
    CHIRALITY_OTHER,
    CHIRALITY_TAGS,
    NUM_ATOM_TYPES,
    NUM_BOND_DIRS,
    NUM_BOND_TYPES,
    NUM_CHIRALITY_TAGS,
    NUM_ELEMENTS,
    BasicFeaturizer,
)


def featurizer_names() -> tuple[str, ...]:
    """The registered featurization schemes, sorted (``("basic", "rich")`` in this release)."""
    return FEATURIZERS.names()


def get_featurizer(spec: FeaturizerSpec | dict[str, Any] | str) -> Featurizer:
    """Build the featurizer a spec (or a spec dict, or a scheme name) describes.

    A scheme name gives its latest version with default options. Raises ``ValueError`` when the
    scheme is unknown, when an option is not one the scheme takes, or when the version is one this
    release does not produce (an old cache or model folder from an incompatible release).
    """
    if isinstance(spec, str):
        return FEATURIZERS.lookup(spec)()
    if isinstance(spec, dict):
        spec = FeaturizerSpec.from_dict(spec)
    factory = FEATURIZERS.lookup(spec.name)
    try:
        inspect.signature(factory).bind(**spec.options)
    except TypeError as exc:
        raise ValueError(f"featurizer {spec.name!r} does not take options {spec.options}: {exc}") from None
    featurizer = factory(**spec.options)
    if featurizer.spec.version != spec.version:
        raise ValueError(
            f"featurizer {spec.name!r} version {spec.version} is not produced by this release "
            f"(it makes version {featurizer.spec.version}); re-featurize or install a matching molchannel"
        )
    return featurizer


__all__ = [
    "ATOM_MASK",
    "ATOM_UNKNOWN",
    "BOND_DIRS",
    "BOND_DIR_OTHER",
    "BOND_MASK",
    "BOND_SELF_LOOP",
    "BOND_TYPES",
    "BOND_UNKNOWN",
    "CHIRALITY_OTHER",
    "CHIRALITY_TAGS",
    "FEATURIZERS",
    "NUM_ATOM_TYPES",
    "NUM_BOND_DIRS",
    "NUM_BOND_TYPES",
    "NUM_CHIRALITY_TAGS",
    "NUM_ELEMENTS",
    "BasicFeaturizer",
    "Featurizer",
    "FeaturizerSpec",
    "featurizer_names",
    "get_featurizer",
    "new_graph",
    "register_featurizer",
]
