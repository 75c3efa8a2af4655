#!/usr/bin/env bash
# The network + ECFP-SVC blend on the four small MoleculeNet classification sets, shipped default, seeds 0 1 2,
# two or three other one-thread jobs beside it on the 2-core machine (2026-12-06, 21:55-22:50).
export MOLCHANNEL_DATA_DIR=$(cd ../shared/data && pwd)
# BACE, BBBP, ClinTox (this command was stopped during SIDER, which was then redone below with the reviewed
# calibration: Platt scale >= 0.05 and 5 labelled validation molecules of each class)
OMP_NUM_THREADS=1 molchannel benchmark moleculenet --datasets bace bbbp clintox sider --seeds 0 1 2 \
  --epochs 50 --model default --set model.kernel_blend=ecfp_svc --no-baseline --output runs/bench11/blend-cls -q
OMP_NUM_THREADS=1 molchannel benchmark moleculenet --datasets sider --seeds 0 1 2 \
  --epochs 50 --model default --set model.kernel_blend=ecfp_svc --no-baseline --output runs/bench11/blend-sider -q
python benchmarks/summarize_moleculenet_blend.py runs/bench11/blend-cls runs/bench11/blend-sider \
  --peers results/peers/ecfp/summary.csv results/peers/ecfp-more/summary.csv \
  --output results/moleculenet/kernel-blend-cls-2026-12-06
