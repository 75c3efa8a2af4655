#!/usr/bin/env bash
# The shipped default against scratch on every MoleculeNet set, in the two fine-tuning protocols, each joined
# from the sessions that ran it (same weights, splits, seeds 0 1 2 (regression with descriptors: 0-4) and
# configs; HIV at most 10 epochs, MUV at most 5, the others at most 50 with early stopping 20):
# - with rdkit2d, the fine-tuning default: 9sets-2026-12-06, hiv-2026-12-06, muv-2026-12-07;
# - graph only (model.extra_features=[], the MCL reference's protocol): graph-*-2026-12-06 (BBBP, BACE, ESOL,
#   FreeSolv), graph-*-2026-12-07 (ClinTox, SIDER, Lipophilicity, Tox21), graph-large-2026-12-07 (ToxCast,
#   HIV, MUV: ../../moleculenet/graph-large-2026-12-07/run.sh).
R=results/moleculenet
P=$R/pretrained-vs-scratch
G=$R/graph-large-2026-12-07
${PYTHON:-python} benchmarks/pretraining_gain.py --output results/comparison/pretraining-gain-all-sets-2026-12-07 \
  --protocol "with rdkit2d (the fine-tuning default)=$P/9sets-2026-12-06/default+$R/hiv-2026-12-06/default+$R/muv-2026-12-07/results-default.csv,$P/9sets-2026-12-06/scratch+$R/hiv-2026-12-06/scratch+$R/muv-2026-12-07/results-scratch.csv" \
  --protocol "graph only (the MCL reference's protocol)=$P/graph-default-2026-12-06+$P/graph-default-2026-12-07+$G/default,$P/graph-scratch+$P/graph-scratch-2026-12-07+$G/scratch"
