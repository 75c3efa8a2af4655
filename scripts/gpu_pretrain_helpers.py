"""Small steps of ``scripts/gpu_pretrain.sh`` that are easier in Python than in bash.

Each sub-command prints its answer on stdout, or a message on stderr and exits 1:

    missing REPO [--with crem]   requirement specs that are not installed (one a line)
    prepare-flags RECIPE         the recipe's data.prepare as `molchannel prepare` options
    finish ...                   check the model folder (size, molchannel.load, embedding two SMILES),
                                 then write the metrics JSON of the run (see ``finish --help``)

``missing`` uses the standard library and ``packaging`` only, so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# Extras of pyproject.toml that `molchannel prepare`, `pretrain` and `export` import, and the
# packages of those extras they do not need (crem only for --perturb-method crem).
RUNTIME_EXTRAS = ("train",)
NOT_NEEDED = {"crem", "scikit-learn"}


def missing_requirements(repo: Path, also: list[str]) -> list[str]:
    """Requirement specs of pyproject.toml (dependencies + RUNTIME_EXTRAS) not satisfied here."""
    import tomllib
    from importlib import metadata

    from packaging.requirements import Requirement

    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in RUNTIME_EXTRAS:
        specs += project.get("optional-dependencies", {}).get(extra, [])
    wanted = [Requirement(s) for s in specs]
    wanted = [r for r in wanted if r.name not in NOT_NEEDED or r.name in also]

    def satisfied(req: Requirement) -> bool:
        if req.marker is not None and not req.marker.evaluate():
            return True
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            return False
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            return False
        for extra in req.extras:  # e.g. jsonargparse[signatures]: each requirement of the extra
            for line in metadata.requires(req.name) or []:
                sub = Requirement(line)
                in_extra = sub.marker is not None and sub.marker.evaluate({"extra": extra})
                if in_extra and not satisfied(Requirement(str(sub).split(";")[0])):
                    return False
        return True

    return [str(r).split(";")[0].strip() for r in wanted if not satisfied(r)]


# data.prepare key -> `molchannel prepare` option (None: a switch given when the value is False)
_PREPARE_OPTIONS = {
    "featurizer": "--featurizer",
    "n_stored": "--n-stored",
    "perturb_method": "--perturb-method",
    "crem_db": "--crem-db",
    "seed": "--seed",
}


def prepare_flags(recipe: Path) -> list[str]:
    """The recipe's ``data.prepare`` settings as `molchannel prepare` options (shard size left out)."""
    import yaml

    from molchannel.pretrain.corpus import CorpusConfig

    config = yaml.safe_load(recipe.read_text()) or {}
    prepare = dict((config.get("data") or {}).get("prepare") or {})
    defaults = CorpusConfig()
    flags: list[str] = []
    for key, value in prepare.items():
        if key == "shard_size":
            continue  # chosen by the script so that every process gets shards
        if key == "descriptors":
            if not value:
                flags.append("--no-descriptors")
        elif key in _PREPARE_OPTIONS:
            if value is not None:
                flags += [_PREPARE_OPTIONS[key], str(value)]
        elif not hasattr(defaults, key):
            raise ValueError(f"{recipe}: unknown data.prepare option {key!r}")
        elif getattr(defaults, key) != value:
            raise ValueError(
                f"{recipe}: data.prepare.{key}={value!r} cannot be set through `molchannel prepare`; "
                "prepare that corpus yourself and pass it with -- --data.corpus DIR"
            )
    return flags


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def check_model(model_dir: Path, max_mib: float) -> dict[str, Any]:
    """Size of the model folder (must be <= max_mib), then load it and embed two molecules."""
    size = folder_bytes(model_dir)
    if size > max_mib * 2**20:
        raise ValueError(
            f"model folder {model_dir} is {size / 2**20:.1f} MiB, over the limit of {max_mib:g} MiB: "
            "use a smaller encoder (model.encoder.hidden_dim / num_layers) or raise --max-model-mib"
        )
    import numpy as np

    import molchannel

    model = molchannel.load(model_dir)
    x = np.asarray(model.embed(["CCO", "c1ccccc1O"]))
    if x.shape[0] != 2 or not np.isfinite(x).all():
        raise ValueError(f"model {model_dir} embedded two molecules as {x.shape} with non-finite values")
    return {
        "model_bytes": size,
        "model_mib": size / 2**20,
        "embedding_dim": int(x.shape[1]),
        "channels": list(getattr(model, "channels", []) or []),
    }


def metrics(args: argparse.Namespace, model_check: dict[str, Any]) -> dict[str, Any]:
    """One JSON with everything a reader of the run wants: throughput, losses, corpus, timings."""
    run = json.loads(Path(args.throughput).read_text())
    corpus = json.loads((Path(args.corpus) / "corpus.json").read_text())
    phases = {}
    for item in args.phase:
        name, _, seconds = item.partition("=")
        phases[name] = round(float(seconds), 1)
    import torch

    out: dict[str, Any] = {
        "anchors_per_s": run["anchors_per_s"],
        "anchors_per_s_global": run["anchors_per_s_global"],
        "steps": run["steps"],
        "epochs": run["epochs"],
        "epochs_completed": run["epochs_completed"],
        "final_losses": run["losses"],
        "gpu": run["device_name"] if run["device"].startswith("cuda") else None,
        "device": run["device"],
        "device_name": run["device_name"],
        "precision": run["precision"],
        "num_workers": run["num_workers"],
        "data_wait_fraction": run["data_wait_fraction"],
        "wall_s": phases,
        "wall_s_total": round(float(args.total_s), 1),
        "train_budget_s": float(args.train_budget_s),
        "throughput": run,
        "corpus": {
            "molecules": corpus["n_molecules"],
            "invalid": corpus["n_invalid"],
            "removed_heldout": corpus["n_removed_heldout"],
            "shards": len(corpus["shards"]),
            "source": corpus["settings"]["source"],
            "settings": corpus["settings"]["config"],
        },
        "model": model_check,
        "recipe": args.recipe,
        "command": args.command,
        "versions": {
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "python": sys.version.split()[0],
        },
    }
    try:
        import rdkit

        out["versions"]["rdkit"] = rdkit.__version__
    except ImportError:
        pass
    return out


def summary_line(m: dict[str, Any]) -> str:
    losses = m["final_losses"]
    return (
        f"{m['anchors_per_s']:.0f} anchors/s on {m['device_name']} ({m['precision']}), {m['steps']} steps, "
        f"{m['epochs'] or 0:.2f} epochs, train/loss {losses.get('train/loss')}, val/loss "
        f"{losses.get('val/loss')}, data wait {100 * m['data_wait_fraction']:.0f}%, wall s {m['wall_s']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("missing")
    p.add_argument("repo", type=Path)
    p.add_argument("--with", dest="also", action="append", default=[], help="also check this package")
    p = sub.add_parser("prepare-flags")
    p.add_argument("recipe", type=Path)
    p = sub.add_parser("finish")
    p.add_argument("--model", required=True, type=Path, help="the exported model folder")
    p.add_argument("--max-mib", required=True, type=float, help="largest model folder accepted")
    p.add_argument("--throughput", required=True, help="throughput.json of the run")
    p.add_argument("--corpus", required=True, help="the corpus folder")
    p.add_argument("--phase", action="append", default=[], help="NAME=SECONDS, once per phase")
    p.add_argument("--total-s", required=True)
    p.add_argument("--train-budget-s", required=True)
    p.add_argument("--recipe", required=True)
    p.add_argument("--command", required=True)
    p.add_argument("--out", required=True, type=Path, help="metrics JSON to write")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "missing":
            print("\n".join(missing_requirements(args.repo, args.also)))
        elif args.cmd == "prepare-flags":
            print("\n".join(prepare_flags(args.recipe)))
        else:
            checked = check_model(args.model, args.max_mib)
            print(f"model folder {args.model}: {json.dumps(checked)}")
            m = metrics(args, checked)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(m, indent=1) + "\n")
            print(summary_line(m))
    except (ValueError, OSError, KeyError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
