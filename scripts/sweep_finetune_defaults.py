"""Validation-only sweep of the fine-tuning defaults: prompt learning rate, temperature, dropout, patience.

    MOLCHANNEL_DATA_DIR=... OMP_NUM_THREADS=1 python scripts/sweep_finetune_defaults.py run \\
        --datasets bbbp esol freesolv --epochs 30 --patience 10 --output runs/sweep/finetune-defaults
    python scripts/sweep_finetune_defaults.py table --output runs/sweep/finetune-defaults
    python scripts/sweep_finetune_defaults.py grad --dataset esol --epochs 5      # gradient of w per epoch

The test rows are never loaded: for each dataset the benchmark's own split is made once and only its
train and valid rows are written to ``OUTPUT/data/<dataset>.csv`` with a split column, so every run
(``configs/finetune/<dataset>.yaml`` with ``data.split: column``) has no test set and its test metric
is NaN. Each setting trains up to ``--epochs`` epochs with early stopping at ``--patience``; smaller
patiences are read off the same runs (early stopping does not change the epochs before it stops:
the run with patience p is the first epochs of the run with a larger one, up to where p runs out).
A finished run is not trained again (rerunning the command only re-reads it).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs" / "finetune"

#: What every setting starts from (on top of configs/finetune/<dataset>.yaml and --epochs/--patience): the
#: MCL reference's prompt selection and no dropout, whatever base.yaml says now.
BASELINE: dict[str, dict[str, Any]] = {
    "model": {"dropout": 0.0, "backbone_dropout": None},
    "optim": {"lr_prompt": 5.0e-4, "weight_decay_prompt": None},
}
_LR = {"lr_prompt": 5.0e-2}
#: name -> what the setting changes from BASELINE.
SETTINGS: dict[str, dict[str, Any]] = {
    "reference": {},
    "lr_prompt=0.01": {"optim": {"lr_prompt": 1.0e-2}},
    "lr_prompt=0.05": {"optim": _LR},
    "lr_prompt=0.01,tau=0.5": {"optim": {"lr_prompt": 1.0e-2}, "model": {"tau": 0.5}},
    # second stage, at the prompt learning rate the first stage chose
    "lr_prompt=0.05,dropout=0.1": {"optim": _LR, "model": {"dropout": 0.1}},
    "lr_prompt=0.05,backbone_dropout=0.1": {"optim": _LR, "model": {"backbone_dropout": 0.1}},
    # longer, for the patience: 5, 10, 15 and 20 are read off these runs
    "lr_prompt=0.05,epochs=60,patience=20": {"optim": {**_LR, "epochs": 60, "early_stopping": 20}},
}


def _validation_csv(dataset: str, out_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The benchmark split's train and valid rows of ``dataset`` as a CSV with a split column."""
    from molchannel.finetune import load_config
    from molchannel.finetune.data import load_table, make_split

    path = out_dir / "data" / f"{dataset}.csv"
    config = load_config(CONFIGS / f"{dataset}.yaml")
    table = load_table(config.data)
    split = make_split(table, config)
    data = {"path": str(path), "task_type": table.task_type, "split": "column", "smiles_col": "smiles",
            "split_col": "split", "targets": list(table.target_names)}  # fmt: skip
    if path.is_file():
        return path, data
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["smiles", "split", *table.target_names])
        for subset in ("train", "valid"):  # never the test rows
            for row in getattr(split, subset):
                labels = ["" if math.isnan(v) else repr(float(v)) for v in table.targets[row]]
                writer.writerow([table.smiles[row], subset, *labels])
    tmp.replace(path)
    print(f"{dataset}: {len(split.train)} train + {len(split.valid)} valid rows -> {path} "
          f"({len(split.test)} test rows left out)", flush=True)  # fmt: skip
    return path, data


def _history(run_dir: Path) -> list[dict[str, float]]:
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as fh:
        return [{k: float(v) if v not in ("", None) else math.nan for k, v in row.items()}
                for row in csv.DictReader(fh)]  # fmt: skip


def at_patience(history: list[dict[str, float]], metric: str, patience: int | None) -> dict[str, Any]:
    """Best epoch, its validation metric and the epochs trained, had the run stopped at ``patience``."""
    key = f"valid_{metric}"
    best: float | None = None
    best_row: dict[str, float] | None = None
    wait = 0
    trained = 0
    for row in history:
        trained += 1
        value = row[key]
        better = not math.isnan(value) and (
            best is None or (value > best if metric == "roc_auc" else value < best)
        )
        if better:
            best, best_row, wait = value, row, 0
        else:
            wait += 1
        if patience is not None and wait >= patience:
            break
    assert best_row is not None
    weights = {k[len("weight_") :]: best_row[k] for k in best_row if k.startswith("weight_")}
    return {"best_epoch": int(best_row["epoch"]), "valid": best_row[key], "epochs": trained,
            "weights": weights}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Train every (setting, dataset) run that is not finished yet."""
    from molchannel.finetune import load_config, run_finetune
    from molchannel.finetune.config import merge

    out = Path(args.output)
    names = args.settings or list(SETTINGS)
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        print(f"unknown setting(s) {unknown}; choose from {list(SETTINGS)}", file=sys.stderr)
        return 2
    for dataset in args.datasets:
        path, data = _validation_csv(dataset, out)
        for name in names:
            run_dir = out / "runs" / name / dataset
            if (run_dir / "result.json").is_file():
                continue
            budget = {"epochs": args.epochs, "early_stopping": args.patience}
            setting = merge(BASELINE, SETTINGS[name])
            overrides = merge({"seed": args.seed, "data": data, "optim": budget}, setting)
            config = load_config(CONFIGS / f"{dataset}.yaml", overrides=overrides)
            started = time.perf_counter()
            result = run_finetune(config, run_dir, resume=True, quiet=True)
            print(f"{name:<40} {dataset:<9} best epoch {result.best_epoch:>3}/{len(_history(run_dir)):<3} "
                  f"valid {result.metric} {result.valid_metric:.4f}  weights "
                  f"{' '.join(f'{v:.3f}' for v in result.channel_weights.values())}  "
                  f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    return table(args)


def table(args: argparse.Namespace) -> int:
    """Two markdown tables of the finished runs under ``--output``: each setting at the patience it ran
    with (validation metric, best epoch / epochs trained, channel weights at the best epoch), then the
    validation metric each patience of ``--patiences`` would have given."""
    out = Path(args.output)
    runs: dict[str, dict[str, tuple[str, int | None, list[dict[str, float]]]]] = {}
    for result_file in sorted((out / "runs").glob("*/*/result.json")):
        result = json.loads(result_file.read_text(encoding="utf-8"))
        run_dir = result_file.parent
        config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
        runs.setdefault(run_dir.parent.name, {})[result["dataset"]] = (
            result["metric"],
            config["optim"]["early_stopping"],
            _history(run_dir),
        )
    if not runs:
        print(f"no finished runs under {out / 'runs'}", file=sys.stderr)
        return 1
    names = [n for n in SETTINGS if n in runs] + sorted(n for n in runs if n not in SETTINGS)
    datasets = sorted({d for per in runs.values() for d in per})
    metric_of = {d: next(per[d][0] for per in runs.values() if d in per) for d in datasets}
    channels = ""
    heads = [f"{d} valid {metric_of[d]} (best / trained epochs; weights)" for d in datasets]
    print("| setting | " + " | ".join(heads) + " |")
    print("|---" * (len(datasets) + 1) + "|")
    for name in names:
        cells = []
        for d in datasets:
            if d not in runs[name]:
                cells.append("")
                continue
            metric, patience, history = runs[name][d]
            got = at_patience(history, metric, patience)
            channels = " / ".join(got["weights"])
            weights = " / ".join(f"{v:.2f}" for v in got["weights"].values())
            cells.append(f"{got['valid']:.4f} ({got['best_epoch']} / {got['epochs']}; {weights})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nweights: softmax(w / tau) of {channels} at the best epoch\n")
    print("| setting | dataset | " + " | ".join(f"patience {p}" for p in args.patiences) + " |")
    print("|---|---" + "|---:" * len(args.patiences) + "|")
    for name in names:
        for d in datasets:
            if d not in runs[name]:
                continue
            metric, ran_with, history = runs[name][d]
            cells = []
            for p in args.patiences:
                if ran_with is not None and p > ran_with:
                    cells.append("")
                    continue
                got = at_patience(history, metric, p)
                cells.append(f"{got['valid']:.4f} ({got['best_epoch']} / {got['epochs']})")
            print(f"| {name} | {d} | " + " | ".join(cells) + " |")
    return 0


def grad(args: argparse.Namespace) -> int:
    """Per epoch: the gradient of w (mean |g|, |mean g|, their ratio) and w itself, on the training rows."""
    import numpy as np

    from molchannel.api import load
    from molchannel.data import load_or_build_graphs
    from molchannel.finetune import load_config
    from molchannel.finetune.data import FinetuneDataModule, graph_cache_dir, load_table, make_split
    from molchannel.finetune.module import FinetuneModule
    from molchannel.finetune.run import _head_section, _initial_net

    # the channel mixture alone: this probe of the prompt's gradient reads no molecule features
    overrides: dict[str, Any] = {"optim": {"epochs": args.epochs}, "model": {"extra_features": []}}
    if args.lr_prompt is not None:
        overrides["optim"]["lr_prompt"] = args.lr_prompt
    cfg = load_config(CONFIGS / f"{args.dataset}.yaml", overrides=overrides)
    table_ = load_table(cfg.data)
    split = make_split(table_, cfg)
    base = load(cfg.model.pretrained)
    store = load_or_build_graphs(table_, base.featurizer, graph_cache_dir(cfg.data), progress=False)
    net = _initial_net(base, cfg, len(table_.target_names), table_.task_type, table_.targets[split.train])
    module = FinetuneModule(net.config.to_dict(), _head_section(table_), asdict(cfg.optim), cfg.seed)
    module.net.load_state_dict(net.state_dict())
    datamodule = FinetuneDataModule(store, split, table_.targets, cfg.data.batch_size, 0, cfg.seed)
    datamodule.setup("fit")
    optimizer = module.configure_optimizers()["optimizer"]
    module.train()
    w = module.net.mixing.weights
    o = cfg.optim
    decay = o.weight_decay if o.weight_decay_prompt is None else o.weight_decay_prompt
    print(f"{args.dataset}: lr_prompt {o.lr_prompt}, tau {cfg.model.tau}, weight decay of w {decay}")
    for epoch in range(args.epochs):
        datamodule.set_epoch(epoch)
        grads = []
        start = w.detach().clone()
        for batch in datamodule.train_dataloader():
            optimizer.zero_grad()
            module.loss(module.net(batch).float(), batch.y).backward()
            assert w.grad is not None
            grads.append(w.grad.detach().numpy().copy())
            optimizer.step()
        g = np.array(grads)
        mean, spread = np.abs(g.mean(axis=0)), g.std(axis=0)
        probabilities = module.net.mixing.probabilities().tolist()
        print(f"epoch {epoch + 1}: {len(g)} steps, mean |g_w| {np.abs(g).mean():.2e}, |mean g_w| "
              f"{_join(mean, '.1e')}, |mean|/std {_join(mean / spread, '.2f')}, "
              f"w moved {float((w.detach() - start).abs().max()):.1e}, softmax(w/tau) "
              f"{_join(probabilities, '.3f')}", flush=True)  # fmt: skip
    return 0


def _join(values: Any, spec: str) -> str:
    return " ".join(format(float(v), spec) for v in values)


def main(argv: list[str] | None = None) -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="train the sweep's runs (validation only), then print the table")
    p_run.add_argument("--datasets", nargs="+", default=["bbbp", "esol", "freesolv"])
    p_run.add_argument("--settings", nargs="+", help=f"a subset of {list(SETTINGS)} (default: all)")
    p_run.add_argument("--epochs", type=int, default=30)
    p_run.add_argument("--patience", type=int, default=10)
    p_run.add_argument("--seed", type=int, default=0)
    for p in (p_run, sub.add_parser("table", help="print the table of the finished runs")):
        p.add_argument("--output", default="runs/sweep/finetune-defaults")
        p.add_argument(
            "--patiences",
            type=int,
            nargs="+",
            default=[5, 10, 15, 20],
            help="patiences read off the runs (each up to the one a run was trained with)",
        )
    p_grad = sub.add_parser("grad", help="gradient of the channel logits w per epoch, on the training rows")
    p_grad.add_argument("--dataset", default="esol")
    p_grad.add_argument("--epochs", type=int, default=5)
    p_grad.add_argument("--lr_prompt", type=float, default=None)
    args = parser.parse_args(argv)
    return {"run": run, "table": table, "grad": grad}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
