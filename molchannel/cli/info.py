"""Describe a model folder: architecture, featurizer, channels, provenance.

Example:
    molchannel info default
"""

from __future__ import annotations

import argparse
import json

from molchannel.api import load


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help='model folder, or "default" for the model shipped with molchannel')
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace) -> int:
    info = load(args.model).info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    width = max(len(k) for k in info)
    for key, value in info.items():
        if key == "provenance":
            continue
        if key == "channel_weights":
            value = ", ".join(f"{k}={v:.3f}" for k, v in value.items())
        print(f"{key:<{width}}  {value}")
    if not info["pretrained"]:
        print(
            "\nNOTE: this model is NOT pre-trained; its weights are random, "
            "so embeddings carry no learned chemistry."
        )
    return 0
