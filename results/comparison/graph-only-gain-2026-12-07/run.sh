#!/usr/bin/env bash
# Graph only (model.extra_features=[]): the shipped default against scratch, seeds 0 1 2, at most 50 epochs.
# 2026-12-07, the 2-core machine, one torch thread per run, beside two MUV fine-tuning jobs.
# The fine-tuning: "bash finetune.sh default" and "bash finetune.sh scratch" at once (ClinTox, SIDER,
# Lipophilicity, Tox21). Then the gain, with the 2026-12-06 graph-only runs of the same weights on BBBP, BACE,
# ESOL and FreeSolv:
python benchmarks/pretraining_gain.py --output results/comparison/graph-only-gain-2026-12-07 \
  --protocol "graph only, 2026-12-07=runs/bench13/graph-default,runs/bench13/graph-scratch" \
  --protocol "graph only, 2026-12-06=results/moleculenet/pretrained-vs-scratch/graph-default-2026-12-06,results/moleculenet/pretrained-vs-scratch/graph-scratch"
