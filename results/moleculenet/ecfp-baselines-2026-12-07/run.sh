#!/usr/bin/env bash
# MUV's ECFP4 + RF baseline (the SVM is skipped above 20,000 training molecules), seeds 0 1 2; 2026-12-07,
# the 2-core machine, one thread: 352 s for seed 0 beside a linear probe, 664 s in all.
set -e
OMP_NUM_THREADS=1 molchannel benchmark moleculenet --datasets muv --seeds 0 --baseline-only --output runs/bench12/ecfp-muv -q
OMP_NUM_THREADS=1 molchannel benchmark moleculenet --datasets muv --seeds 0 1 2 --baseline-only --output runs/bench12/ecfp-muv -q
# ToxCast's ECFP4 + SVM (one Tanimoto Gram matrix sliced per task; the forests are not grown above 100 tasks),
# 2026-12-07, the 2-core machine, one thread beside three fine-tuning jobs: 1,004 s for the SVMs of 610 tasks.
OMP_NUM_THREADS=1 molchannel benchmark moleculenet --datasets toxcast --seeds 0 1 2 --baseline-only --output runs/bench13/ecfp-toxcast -q
# The two baseline records are kept in the benchmark's record layout (records/<dataset>/ecfp_moleculenet.json),
# which benchmarks/compare_finetune.py reads as a folder.
# ToxCast's ECFP4 + RF, seed 0 (one 500-tree forest per task: 7,036 s of one core beside two or three other
# jobs; toxcast-rf/ has its table), added to the record above with
# the SVM kept: copy records/toxcast/ecfp_moleculenet.json to runs/bench15/ecfp-toxcast/records/toxcast/ first.
OMP_NUM_THREADS=1 molchannel benchmark moleculenet --datasets toxcast --seeds 0 --baseline-only --rf-max-tasks 700 \
  --output runs/bench15/ecfp-toxcast -q
