#!/usr/bin/env bash
# MUV's ECFP4 + RF baseline (the SVM is skipped above 20,000 training molecules), seeds 0 1 2; 2026-12-07,
# the 2-core machine, one thread: 352 s for seed 0 beside a linear probe, 664 s in all.
set -e
OMP_NUM_THREADS=1 molchannel benchmark moleculenet --datasets muv --seeds 0 --baseline-only --output runs/bench12/ecfp-muv -q
OMP_NUM_THREADS=1 molchannel benchmark moleculenet --datasets muv --seeds 0 1 2 --baseline-only --output runs/bench12/ecfp-muv -q
