#!/usr/bin/env bash
# HIV, seeds 0 1 2, shipped default and scratch, at most 10 epochs (configs/finetune/hiv.yaml otherwise), one
# torch thread per run, two to four runs at once on the 2-core machine (2026-12-06, 21:29-23:50)
export MOLCHANNEL_DATA_DIR=$(cd ../shared/data && pwd)
for s in 0 1 2; do
  OMP_NUM_THREADS=1 molchannel benchmark moleculenet --datasets hiv --seeds $s --epochs 10 --model default \
    --output runs/bench11/hiv-default-seed$s -q
  OMP_NUM_THREADS=1 molchannel benchmark moleculenet --datasets hiv --seeds $s --epochs 10 --scratch \
    --output runs/bench11/hiv-scratch-seed$s -q
done
