#!/usr/bin/env bash
# MoleculeACE, 30 sets, seed 0: the same architecture from random weights (--scratch), with the blend
export MOLCHANNEL_DATA_DIR=$(cd ../shared/data && pwd)
all=(CHEMBL1862_Ki CHEMBL1871_Ki CHEMBL2034_Ki CHEMBL2047_EC50 CHEMBL204_Ki CHEMBL2147_Ki CHEMBL214_Ki CHEMBL218_EC50 CHEMBL219_Ki CHEMBL228_Ki CHEMBL231_Ki CHEMBL233_Ki CHEMBL234_Ki CHEMBL235_EC50 CHEMBL236_Ki CHEMBL237_EC50 CHEMBL237_Ki CHEMBL238_Ki CHEMBL239_EC50 CHEMBL244_Ki CHEMBL262_Ki CHEMBL264_Ki CHEMBL2835_Ki CHEMBL287_Ki CHEMBL2971_Ki CHEMBL3979_EC50 CHEMBL4005_Ki CHEMBL4203_Ki CHEMBL4616_EC50 CHEMBL4792_Ki)
half() { for i in "${!all[@]}"; do (( i % 2 == $1 )) && echo -n "${all[$i]} "; done; }
for h in 0 1; do
  OMP_NUM_THREADS=1 .venv/bin/molchannel benchmark moleculeace --datasets $(half $h) --seeds 0 --epochs 20 --scratch \
    --no-baseline --set model.kernel_blend=ecfp_svr --output runs/ace-blend/scratch$h -q > runs/ace-blend/scratch$h.log 2>&1 &
done
wait
# seeds 1 and 2 (2026-12-06 night: one process, beside two to three other one-thread jobs, ~110 min)
for s in 1 2; do
  OMP_NUM_THREADS=1 .venv/bin/molchannel benchmark moleculeace --datasets "${all[@]}" --seeds $s --epochs 20 --scratch \
    --no-baseline --set model.kernel_blend=ecfp_svr --output runs/ace-blend/scratch-seed$s -q
done
python benchmarks/summarize_kernel_blend.py --runs runs/ace-blend/scratch0 runs/ace-blend/scratch1 \
  runs/ace-blend/scratch-seed1 runs/ace-blend/scratch-seed2 --baselines runs/ace-blend/half0 runs/ace-blend/half1 \
  --seeds 0 1 2 --output results/moleculeace/kernel-blend-scratch-2026-12-06
