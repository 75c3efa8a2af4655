#!/usr/bin/env bash
# Pre-trained (shipped default) against scratch under two more fine-tuning protocols, beside the defaults'
# runs (BENCHMARKS.md, "Fine-tuned: pre-trained against scratch"). 2026-12-07, the 2-core machine, one torch
# thread per run, four commands at once (~45 min).
set -e
export OMP_NUM_THREADS=1
sets="freesolv esol bace clintox sider bbbp"
for start in default scratch; do
  if [[ $start == default ]]; then from="--model default"; else from="--scratch"; fi
  molchannel benchmark moleculenet --datasets $sets --seeds 0 1 2 --epochs 50 $from --no-baseline \
    --set optim.lr_backbone=1e-4 --output runs/bench12/lrb1e-4-$start -q
  molchannel benchmark moleculenet --datasets $sets --seeds 0 1 2 --epochs 50 $from --no-baseline \
    --set optim.freeze_backbone_epochs=10 --output runs/bench12/lpft10-$start -q
done
python benchmarks/pretraining_gain.py --output results/comparison/finetune-protocols-2026-12-07 \
  --protocol "defaults (lr_backbone 3e-4)=results/moleculenet/pretrained-vs-scratch/rdkit2d-default-2026-12-06,results/moleculenet/pretrained-vs-scratch/rdkit2d-scratch" \
  --protocol "lr_backbone 1e-4=results/comparison/finetune-protocols-2026-12-07/lrb1e-4-default,results/comparison/finetune-protocols-2026-12-07/lrb1e-4-scratch" \
  --protocol "freeze_backbone_epochs 10=results/comparison/finetune-protocols-2026-12-07/lpft10-default,results/comparison/finetune-protocols-2026-12-07/lpft10-scratch"
