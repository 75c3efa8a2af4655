#!/usr/bin/env bash
# MoleculeACE: does adding ECFP4 counts beside the descriptors help the cliff RMSE? 6 sets, seed 0, 20 epochs
sets="CHEMBL1862_Ki CHEMBL1871_Ki CHEMBL2034_Ki CHEMBL2047_EC50 CHEMBL204_Ki CHEMBL2147_Ki"
OMP_NUM_THREADS=1 .venv/bin/molchannel benchmark moleculeace --datasets $sets --seeds 0 --epochs 20 --no-baseline \
  --output runs/ace-exp/rdkit2d -q
OMP_NUM_THREADS=1 .venv/bin/molchannel benchmark moleculeace --datasets $sets --seeds 0 --epochs 20 --no-baseline \
  --set 'model.extra_features=[rdkit2d, morgan_counts]' --output runs/ace-exp/rdkit2d-morgan -q
