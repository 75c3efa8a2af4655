"""`molchannel embed` against `chemprop fingerprint` end to end on the same SMILES, and where our time goes.

Two parts, on the first N molecules of ``zinc/moses_train.csv.gz``:

1. **Paired runs** (``--repeats`` pairs, alternating which command goes first): the two command lines
   as a user runs them, each in a fresh process, wall time, CPU time (user + sys, worker processes
   included) and the peak RSS of the largest process:

   * ``molchannel embed -q -m default -i zinc.smi -o emb.npy`` (the shipped default, CPU);
   * ``chemprop fingerprint -i zinc.csv --model-paths best.pt --ffn-block-index 0 --accelerator cpu``
     with chemprop v2 from its own environment (``benchmarks/chemprop_peer.py`` installs the pinned
     release); the model is a chemprop model trained for 3 epochs on ESOL with its defaults: the
     fingerprint's cost does not depend on the weights.

   The figure is the ratio of the medians.
2. **Stage profile** of one molchannel run, in a fresh interpreter, one stage at a time in one
   process: imports, model load, reading the file, a bare ``Chem.MolFromSmiles`` of every SMILES (the
   floor of any featurizer), featurization, collation, the network's forward pass, writing the
   ``.npy``; then ``model.embed`` as the command runs it (featurize + collate + forward, in worker
   processes). The stage sum is the serial cost; the gap to the end-to-end time is the parallelism.

Writes ``OUTPUT/embed_vs_chemprop.json``, ``.md`` and ``.png`` (bars: end-to-end medians beside the
stages); ``OUTPUT`` defaults to ``results/bench``. Progress goes to stderr.

    MOLCHANNEL_DATA_DIR=<data> python benchmarks/bench_embed_vs_chemprop.py --n 20000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))  # run by path: the sibling benchmark's helpers

import chemprop_peer as peer  # noqa: E402
from bench_featurize import cpu_model, read_zinc  # noqa: E402


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def timed_run(cmd: list[str], cwd: Path) -> dict[str, float]:
    """Wall time, CPU time and peak RSS of one command (its reaped worker processes included)."""
    start = time.perf_counter()
    process = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({process.returncode}):\n{stderr[-3000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mib": usage.ru_maxrss / 1024}


def chemprop_model(exe: Path, data_dir: Path, work: Path) -> Path:
    """A chemprop model (3 epochs on ESOL, chemprop's defaults) for ``chemprop fingerprint``; reused."""
    model = work / "chemprop-esol" / "model_0" / "best.pt"
    if model.is_file():
        return model
    import csv

    with open(data_dir / "moleculenet" / "delaney-processed.csv", newline="") as fh:
        rows = [(r["smiles"], r["measured log solubility in mols per litre"]) for r in csv.DictReader(fh)]
    train = work / "esol.csv"
    with open(train, "w", newline="") as fh:
        csv.writer(fh).writerows([("smiles", "logS"), *rows])
    log("training the chemprop model that `chemprop fingerprint` reads (3 epochs on ESOL)")
    cmd = [str(exe), "train", "-i", str(train), "-t", "regression", "--epochs", "3"]
    subprocess.run(
        [*cmd, "-o", str(work / "chemprop-esol"), "--accelerator", "cpu"], check=True, capture_output=True
    )
    return model


STAGES = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import molchannel.cli.main
import numpy as np
from rdkit import Chem, RDLogger
from molchannel.chem.bulk import featurize_block
from molchannel.chem.graph_batch import collate_graphs
t2 = time.perf_counter()
model = molchannel.load("default")
t3 = time.perf_counter()
smiles = open(sys.argv[1]).read().split()
t4 = time.perf_counter()
RDLogger.DisableLog("rdApp.*")
mols = [Chem.MolFromSmiles(s) for s in smiles]
t5 = time.perf_counter()
graphs = featurize_block(smiles, model.featurizer, "skip", arrays=True).graphs
t6 = time.perf_counter()
batches = [collate_graphs(graphs[i : i + 128]) for i in range(0, len(graphs), 128)]
t7 = time.perf_counter()
with torch.inference_mode():
    out = np.concatenate([model._embed_batch(b, "mix") for b in batches])
t8 = time.perf_counter()
np.save(sys.argv[2], out)
t9 = time.perf_counter()
again = model.embed(smiles)
t10 = time.perf_counter()
assert np.allclose(again, out, atol=1e-5)
print(json.dumps({
    "import torch": t1 - t0, "import molchannel (rest)": t2 - t1, "torch_geometric imported": float(
        "torch_geometric" in sys.modules), "load model": t3 - t2, "read file": t4 - t3,
    "bare RDKit parse": t5 - t4, "featurize": t6 - t5, "collate": t7 - t6, "forward": t8 - t7,
    "write .npy": t9 - t8, "embed() in workers": t10 - t9, "workers": molchannel.parallel.default_workers(),
}))
"""


def stage_profile(smi: Path, work: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", STAGES, str(smi), str(work / "stages.npy")],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = {
        k: v
        for k, v in result["stages"].items()
        if k not in ("embed() in workers", "workers", "bare RDKit parse", "torch_geometric imported")
    }
    fig, ax = plt.subplots(figsize=(8, 3.2))
    runs = {name: statistics.median(r["wall_s"] for r in rows) for name, rows in result["runs"].items()}
    labels = ["chemprop fingerprint", "molchannel embed", "molchannel stages (serial)"]
    ax.barh(0, runs["chemprop"], color="#999999")
    ax.barh(1, runs["molchannel"], color="#1f77b4")
    left = 0.0
    for i, (name, seconds) in enumerate(stages.items()):
        ax.barh(2, seconds, left=left, color=plt.cm.tab20(i), label=name)
        left += seconds
    ax.set_yticks(range(3), labels)
    ax.invert_yaxis()
    ax.set_xlabel(f"seconds for {result['n']:,} ZINC molecules (median of {result['repeats']} paired runs)")
    ax.legend(fontsize=7, ncol=3, loc="lower right")
    ax.set_title(
        f"molchannel embed {runs['chemprop'] / runs['molchannel']:.2f}x faster than chemprop fingerprint"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| command | wall (s), median | CPU (s) | peak RSS (MiB) | runs (wall s) |",
        "|---|---:|---:|---:|---|",
    ]
    for name, rows in result["runs"].items():
        med = {k: statistics.median(r[k] for r in rows) for k in ("wall_s", "cpu_s", "peak_rss_mib")}
        walls = ", ".join(f"{r['wall_s']:.1f}" for r in rows)
        lines.append(
            f"| {name} | {med['wall_s']:.1f} | {med['cpu_s']:.1f} | {med['peak_rss_mib']:.0f} | {walls} |"
        )
    lines += ["", f"ratio (chemprop / molchannel, medians): **{result['ratio']:.2f}x**", ""]
    lines += [f"- `{cmd}`" for cmd in result["commands"].values()] + [""]
    lines += ["| molchannel stage (one process, serial) | s |", "|---|---:|"]
    lines += [
        f"| {k} | {v:.2f} |"
        for k, v in result["stages"].items()
        if k not in ("workers", "torch_geometric imported")
    ]
    s = result["stages"]
    lines += [
        "",
        f"featurize / bare parse time: {s['featurize'] / s['bare RDKit parse']:.2f} "
        f"(rate ratio {s['bare RDKit parse'] / s['featurize']:.2f}x); workers: {s['workers']}; "
        f"torch_geometric imported: {bool(s['torch_geometric imported'])}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("MOLCHANNEL_DATA_DIR"))
    parser.add_argument("--n", type=int, default=20000, help="molecules (%(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="paired runs (%(default)s)")
    parser.add_argument(
        "--venv", type=Path, default=REPO / ".cache" / "chemprop-venv", help="chemprop environment"
    )
    parser.add_argument("--work-dir", type=Path, default=REPO / ".cache" / "embed-vs-chemprop")
    parser.add_argument("--output", type=Path, default=REPO / "results" / "bench")
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("give --data-dir or set MOLCHANNEL_DATA_DIR")
    work, out = args.work_dir, args.output
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    smiles = read_zinc(args.data_dir, args.n)
    smi, csv_file = work / "zinc.smi", work / "zinc.csv"
    smi.write_text("\n".join(smiles) + "\n")
    csv_file.write_text("smiles\n" + "\n".join(smiles) + "\n")
    exe = peer.ensure_chemprop(args.venv)
    model = chemprop_model(exe, args.data_dir, work)
    # run in the work folder with relative paths, so the recorded command lines hold no local paths
    model_arg = str(model.relative_to(work))
    commands = {
        "molchannel": [
            str(Path(sys.executable).parent / "molchannel"),
            "embed",
            "-q",
            "-m",
            "default",
            "-i",
            smi.name,
            "-o",
            "emb.npy",
        ],
        "chemprop": [
            str(exe),
            "fingerprint",
            "-i",
            csv_file.name,
            "-o",
            "fp.npz",
            "--model-paths",
            model_arg,
            "--ffn-block-index",
            "0",
            "--accelerator",
            "cpu",
        ],
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
    for k in range(args.repeats):
        order = list(commands) if k % 2 == 0 else list(reversed(commands))
        for name in order:
            runs[name].append(timed_run(commands[name], work))
            log(f"pair {k + 1}/{args.repeats} {name}: {runs[name][-1]['wall_s']:.1f} s")
    log("stage profile")
    stages = stage_profile(smi, work)
    medians = {name: statistics.median(r["wall_s"] for r in rows) for name, rows in runs.items()}
    result = {
        "n": args.n,
        "repeats": args.repeats,
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "chemprop_version": peer.chemprop_version(exe),
        "commands": {name: " ".join([Path(cmd[0]).name, *cmd[1:]]) for name, cmd in commands.items()},
        "runs": runs,
        "ratio": medians["chemprop"] / medians["molchannel"],
        "stages": stages,
    }
    (out / "embed_vs_chemprop.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "embed_vs_chemprop.md").write_text(markdown(result) + "\n")
    plot(result, out / "embed_vs_chemprop.png")
    print(markdown(result))


if __name__ == "__main__":
    main()
