#!/usr/bin/env bash
# Gather the HIV runs and the ECFP baseline records (Tox21 from runs/bench11/ecfp-baselines, HIV's forests
# from the HIV runs, which computed them beside the fine-tuning) into committed CSV files
set -e
out=results/moleculenet/hiv-2026-12-06
for start in default scratch; do
  mkdir -p $out/$start
  files=(runs/bench11/hiv-$start-seed*/results.csv)
  { head -1 "${files[0]}"; for f in "${files[@]}"; do tail -n +2 "$f"; done; } > $out/$start/results.csv
done
python - <<'PY'
import csv, glob, json
rows = []
for path in sorted(glob.glob("runs/bench11/ecfp-baselines/records/*/ecfp_moleculenet.json")
                   + glob.glob("runs/bench11/hiv-*-seed*/records/hiv/ecfp_moleculenet.json")):
    d = json.load(open(path))
    if d["svm_skipped"] is None:
        rows.append({"dataset": d["dataset"], "method": "ECFP4 + SVM", "seed": "-", "metric": d["metric"],
                     "test_metric": d["svm_test_metric"]})
    rows += [{"dataset": d["dataset"], "method": "ECFP4 + RF", "seed": k, "metric": d["metric"], "test_metric": v}
             for k, v in d["rf_test_metric"].items()]
seen, unique = set(), []
for r in rows:  # one row per (dataset, method, seed)
    key = (r["dataset"], r["method"], str(r["seed"]))
    if key not in seen:
        seen.add(key)
        unique.append(r)
with open("results/moleculenet/ecfp-baselines-2026-12-06/results.csv", "w", newline="") as fh:
    writer = csv.DictWriter(fh, fieldnames=["dataset", "method", "seed", "metric", "test_metric"])
    writer.writeheader()
    writer.writerows(unique)
PY
