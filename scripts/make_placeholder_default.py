"""Write the placeholder default model: the CPU-sized architecture with random weights.

The package ships this until a pre-trained default replaces it; ``info()`` says it is not
pre-trained. Deterministic: the same seed writes the same weights.

    python scripts/make_placeholder_default.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from molchannel.api import init_model

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=REPO / "configs/model/gin_cpu.yaml", type=Path)
    parser.add_argument("--output", default=REPO / "molchannel/assets/default", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    encoder = yaml.safe_load(args.config.read_text())
    model = init_model(
        encoder,
        seed=args.seed,
        description=(
            "PLACEHOLDER: randomly initialised, not pre-trained. Embeddings carry no learned chemistry; "
            "use it to try the API and command line only."
        ),
    )
    model.save(args.output)
    print(f"wrote {args.output}: {model}")


if __name__ == "__main__":
    main()
