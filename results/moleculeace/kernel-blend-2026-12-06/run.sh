#!/usr/bin/env bash
# MoleculeACE, 30 sets: the shipped default + rdkit2d + ECFP-SVR blend, ECFP+SVM baseline in the same run.
# Two halves on one core each; seed-major so a stopped run leaves whole seeds.
export MOLCHANNEL_DATA_DIR=$(cd ../shared/data && pwd)
all=(CHEMBL1862_Ki CHEMBL1871_Ki CHEMBL2034_Ki CHEMBL2047_EC50 CHEMBL204_Ki CHEMBL2147_Ki CHEMBL214_Ki CHEMBL218_EC50 CHEMBL219_Ki CHEMBL228_Ki CHEMBL231_Ki CHEMBL233_Ki CHEMBL234_Ki CHEMBL235_EC50 CHEMBL236_Ki CHEMBL237_EC50 CHEMBL237_Ki CHEMBL238_Ki CHEMBL239_EC50 CHEMBL244_Ki CHEMBL262_Ki CHEMBL264_Ki CHEMBL2835_Ki CHEMBL287_Ki CHEMBL2971_Ki CHEMBL3979_EC50 CHEMBL4005_Ki CHEMBL4203_Ki CHEMBL4616_EC50 CHEMBL4792_Ki)
half() { for i in "${!all[@]}"; do (( i % 2 == $1 )) && echo -n "${all[$i]} "; done; }
run_half() {
  for seed in 0 1 2; do
    OMP_NUM_THREADS=1 .venv/bin/molchannel benchmark moleculeace --datasets $(half $1) --seeds $seed --epochs 20 \
      --set model.kernel_blend=ecfp_svr --output runs/ace-blend/half$1 -q
  done
}
run_half 0 > runs/ace-blend/half0.log 2>&1 &
run_half 1 > runs/ace-blend/half1.log 2>&1 &
wait
