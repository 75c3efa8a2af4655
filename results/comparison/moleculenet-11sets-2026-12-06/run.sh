#!/usr/bin/env bash
# MoleculeNet with the shipped default: every set measured, pre-trained beside scratch, ECFP4 + SVM / RF and
# chemprop v2 where they were run (the 9-set table, HIV at most 10 epochs, the Tox21 / HIV ECFP baselines), and
# the network + ECFP-SVM blend (kernel_blend ecfp_svc / ecfp_svr) where it was run
export MOLCHANNEL_DATA_DIR=$(cd ../shared/data && pwd)
NINE=results/moleculenet/pretrained-vs-scratch/9sets-2026-12-06
python benchmarks/compare_finetune.py --output results/comparison/moleculenet-11sets-2026-12-06 --reference scratch \
  --run "shipped default=$NINE/default/results.csv" \
  --run "shipped default=results/moleculenet/hiv-2026-12-06/default/results.csv" \
  --run "scratch=$NINE/scratch/results.csv" \
  --run "scratch=results/moleculenet/hiv-2026-12-06/scratch/results.csv" \
  --run "ECFP=results/peers/ecfp/results.csv" --run "ECFP=results/peers/ecfp-more/results.csv" \
  --run "ECFP=results/moleculenet/ecfp-baselines-2026-12-06/results.csv" \
  --run "default + ECFP-SVM blend=results/moleculenet/kernel-blend-cls-2026-12-06/results.csv" \
  --run "default + ECFP-SVM blend=results/moleculenet/kernel-blend-2026-12-06/results.csv" \
  --run "chemprop 2.3.1=results/peers/chemprop/results.csv"
