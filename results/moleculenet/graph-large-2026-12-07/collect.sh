#!/usr/bin/env bash
# Gather the graph-only ToxCast, HIV and MUV runs of run.sh into one results.csv per start (MUV's default
# seeds 1 and 2 ran in folders of their own, runs/bench14/graph-muv-default-seed{1,2}, at once with seed 0; the
# stopped chain's MUV table was rebuilt from its record by the same command with --seeds 0)
set -e
out=results/moleculenet/graph-large-2026-12-07
for start in default scratch; do
  mkdir -p $out/$start
  files=(runs/bench14/graph-{toxcast,hiv,muv}-$start/results.csv)
  [ "$start" = default ] && files+=(runs/bench14/graph-muv-default-seed{1,2}/results.csv)
  { head -1 "${files[0]}"; for f in "${files[@]}"; do tail -n +2 "$f"; done; } > $out/$start/results.csv
done
