"""Predict properties of the molecules of a file with a fine-tuned model folder.

Input: .smi/.txt (one SMILES per line) or .csv/.tsv with a SMILES column, optionally gzipped.
Output: .csv (or .tsv) with the input columns, one column per task (probabilities for
classification, original units for regression; an ensemble or a mean-variance model adds
``<task>_std``, the predicted spread) and a ``valid`` column. Rows line up with the
input; invalid molecules get empty predictions (or are dropped with --on-invalid skip) and are
listed in OUT.invalid.csv (``out.csv`` -> ``out.invalid.csv``).

Example:
    molchannel predict -m runs/finetune/bbbp-seed0/model -i molecules.csv -o predictions.csv
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from molchannel.atomic import write_text_atomic
from molchannel.cli.common import (
    add_input_arguments,
    csv_text,
    escape_undecodable,
    map_in_chunks,
    report_invalid,
)
from molchannel.data.smiles_file import SmilesTable, read_smiles_file
from molchannel.ensemble import EnsembleModel, load_any

log = logging.getLogger("molchannel.predict")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--model", required=True, help="fine-tuned model folder (a run's model/)")
    p.add_argument("-o", "--output", required=True, help="output .csv or .tsv")
    add_input_arguments(p, "invalid SMILES: empty predictions (default), drop the row, or stop with an error")


def run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    delimiter = {".csv": ",", ".tsv": "\t"}.get(out.suffix.lower())
    if delimiter is None:
        raise ValueError(f"output must end in .csv or .tsv, got {out.name!r}")
    table = read_smiles_file(args.input, args.smiles_col)
    model = load_any(args.model, device=args.device)
    if not model.tasks:
        raise ValueError(
            f"model {args.model} has no prediction head: it only embeds molecules. Fine-tune it with "
            "`molchannel finetune` and pass the run's model/ folder (or use `molchannel embed`)."
        )

    # an ensemble, or a model with a mean-variance head, adds a predicted spread per task
    with_std = isinstance(model, EnsembleModel) or model.has_variance_head
    t = len(model.tasks)

    def predict_chunk(chunk: list[str], policy: str) -> Any:
        if not with_std:
            return model.predict(chunk, batch_size=args.batch_size, on_invalid=policy, return_report=True)
        mean, std, report = model.predict(
            chunk, batch_size=args.batch_size, on_invalid=policy, return_std=True, return_report=True
        )
        return np.concatenate([mean, std], axis=-1), report

    start = time.perf_counter()
    width = 2 * t if with_std else t
    predictions, kept, invalid = map_in_chunks(
        predict_chunk, table.smiles, (width,), args.on_invalid, args.quiet, "predicting"
    )
    elapsed = time.perf_counter() - start
    n = len(table)
    rows = kept if args.on_invalid == "skip" else list(range(n))
    names = [*model.tasks, *[f"{task}_std" for task in model.tasks]] if with_std else model.tasks
    write_text_atomic(out, _table_text(table, names, predictions, rows, set(kept), delimiter))
    report_invalid(out, invalid, n)
    log.info("predicted %d molecules in %.1f s -> %s", n - len(invalid), elapsed, out)
    return 0


def prediction_columns(input_columns: list[str], tasks: list[str]) -> list[str]:
    """One column per task, named after it; ``<task>_pred`` where the input already has that name."""
    names = []
    for task in tasks:
        name = task
        while name in input_columns or name in names or name == "valid":
            name += "_pred"
        if name != task:
            log.warning("the input already has a column %r; its predictions go to %r", task, name)
        names.append(name)
    return names


def _table_text(
    table: SmilesTable,
    tasks: list[str],
    predictions: np.ndarray,
    rows: list[int],
    valid: set[int],
    delimiter: str,
) -> str:
    header = table.header or [table.smiles_col or "smiles"]
    smiles_col = table.smiles_col or header[0]
    columns = {smiles_col: table.smiles, **table.columns}
    task_columns = prediction_columns(header, tasks)
    lines = [[*header, *task_columns, "valid"]]
    for i in rows:
        values = [escape_undecodable(columns[h][i]) for h in header]
        scores = ["" if np.isnan(v) else repr(float(v)) for v in predictions[i]]
        lines.append([*values, *scores, str(i in valid)])
    return csv_text(lines, delimiter)
