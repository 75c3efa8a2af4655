#!/usr/bin/env bash
# ECFP4 + SVM / RF of Tox21 and HIV, computed by the benchmark itself (the SVM is skipped on HIV: 33k training molecules)
export MOLCHANNEL_DATA_DIR=$(cd ../shared/data && pwd)
OMP_NUM_THREADS=1 molchannel benchmark moleculenet --datasets tox21 hiv --seeds 0 1 2 --baseline-only \
  --output runs/bench11/ecfp-baselines -q
