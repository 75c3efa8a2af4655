#!/bin/bash
# Multi-node pre-training with SLURM: 2 nodes x 4 GPUs, one task per GPU (Lightning reads the
# SLURM environment and sets up DDP; do not launch with torchrun as well).
#
#   sbatch examples/slurm_pretrain.sh
#
# Prepare the corpus once beforehand (it is shared read-only by every process):
#   molchannel prepare -i $MOLCHANNEL_DATA_DIR/zinc/moses_train.csv.gz -o runs/corpora/moses-rich \
#       --featurizer rich --processes 32
#SBATCH --job-name=molchannel-pretrain
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=8
#SBATCH --time=48:00:00
#SBATCH --signal=SIGUSR1@120   # Lightning saves a checkpoint and requeues on this signal

set -euo pipefail
source .venv/bin/activate
srun molchannel pretrain --config configs/pretrain/reference_gps.yaml \
    --trainer.num_nodes "$SLURM_NNODES" --trainer.devices "$SLURM_NTASKS_PER_NODE" --trainer.strategy ddp \
    --data.num_workers "$((SLURM_CPUS_PER_TASK - 2))" \
    --ckpt_path last    # picks up the run's last.ckpt after a requeue or a crash (none on the first start)
