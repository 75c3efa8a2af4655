#!/usr/bin/env bash
# Graph only (model.extra_features=[]), the shipped default ("default") or scratch ("scratch"), seeds 0 1 2,
# at most 50 epochs (early stopping 20), configs/finetune/*.yaml otherwise
export MOLCHANNEL_DATA_DIR=$(cd ../shared/data && pwd)
start=$1
if [ "$start" = default ]; then flag="--model default"; else flag="--scratch"; fi
OMP_NUM_THREADS=1 molchannel benchmark moleculenet \
  --datasets clintox sider lipophilicity tox21 --seeds 0 1 2 --epochs 50 $flag \
  --set 'model.extra_features=[]' --no-baseline --output runs/bench13/graph-$start -q
