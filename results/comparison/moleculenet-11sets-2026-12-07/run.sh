#!/usr/bin/env bash
# MoleculeNet, all eleven sets, with the shipped default (fine-tuning defaults: rdkit2d, early stopping) beside
# scratch, ECFP4 + SVM / RF and chemprop v2 on the same splits and seeds; the network + ECFP-SVM blend where it
# was run. Supersedes results/comparison/moleculenet-11sets-2026-12-06 (which had no MUV row, no ToxCast ECFP
# figure and chemprop on five sets). HIV ran at most 10 epochs, MUV at most 5, for every method.
set -euo pipefail
cd "$(dirname "$0")/../../.."
export MOLCHANNEL_DATA_DIR=${MOLCHANNEL_DATA_DIR:-$(cd ../shared/data && pwd)}
NINE=results/moleculenet/pretrained-vs-scratch/9sets-2026-12-06
ECFP7=results/moleculenet/ecfp-baselines-2026-12-07
${PYTHON:-python} benchmarks/compare_finetune.py --output results/comparison/moleculenet-11sets-2026-12-07 \
  --reference scratch \
  --run "shipped default=$NINE/default/results.csv" \
  --run "shipped default=results/moleculenet/hiv-2026-12-06/default/results.csv" \
  --run "shipped default=results/moleculenet/muv-2026-12-07/results-default.csv" \
  --run "scratch=$NINE/scratch/results.csv" \
  --run "scratch=results/moleculenet/hiv-2026-12-06/scratch/results.csv" \
  --run "scratch=results/moleculenet/muv-2026-12-07/results-scratch.csv" \
  --run "ECFP=results/peers/ecfp/results.csv" --run "ECFP=results/peers/ecfp-more/results.csv" \
  --run "ECFP=results/moleculenet/ecfp-baselines-2026-12-06/results.csv" --run "ECFP=$ECFP7" \
  --run "default + ECFP-SVM blend=results/moleculenet/kernel-blend-cls-2026-12-06/results.csv" \
  --run "default + ECFP-SVM blend=results/moleculenet/kernel-blend-2026-12-06/results.csv" \
  --run "chemprop 2.3.1=results/peers/chemprop/results.csv"
