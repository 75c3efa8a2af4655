#!/usr/bin/env bash
# 2026-12-07, 02:53-04:44, the 2-core machine: "bash run.sh default" and "bash run.sh scratch" at once, beside
# other jobs (22-42 min per run); results-*.csv join the three per-seed results.csv of each start.
# MUV, seeds 0 1 2, shipped default (arg "default") or scratch (arg "scratch"), at most 5 epochs
export MOLCHANNEL_DATA_DIR=$(cd ../shared/data && pwd)
start=$1
if [ "$start" = default ]; then flag="--model default"; else flag="--scratch"; fi
for s in 0 1 2; do
  OMP_NUM_THREADS=1 molchannel benchmark moleculenet --datasets muv --seeds $s --epochs 5 $flag \
    --no-baseline --output runs/bench13/muv-$start-seed$s -q
done
