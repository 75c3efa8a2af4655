"""Regenerate tests/data/golden_v1 (only when the model format changes on purpose).

python tests/data/make_golden.py
"""

from pathlib import Path

import numpy as np

from molchannel.api import init_model

HERE = Path(__file__).parent / "golden_v1"
SMILES = ["CCO", "c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O", "C[C@@H](N)C(=O)O", "[NH4+]", "C", "Cc1ccc(Cl)cc1N"]

if __name__ == "__main__":
    model = init_model(
        {"num_layers": 2, "hidden_dim": 16, "aggregator_heads": 2},
        seed=7,
        description="golden test model (random weights)",
    )
    model.save(HERE / "model")
    (HERE / "smiles.txt").write_text("\n".join(SMILES) + "\n")
    np.save(HERE / "embeddings.npy", model.embed(SMILES, channel="all"))
