#!/usr/bin/env bash
# chemprop 2.3.1 on the six MoleculeNet sets it had not run on (its defaults, our splits and seeds 0 1 2).
# HIV and MUV are capped at the epochs molchannel's own runs of them allowed (10 and 5); the others use
# chemprop's default of 50. Two streams at once, one thread each, on the 2-core machine (2026-12-07):
#   bash run-more-sets.sh a   # ClinTox, SIDER, Tox21, then HIV
#   bash run-more-sets.sh b   # ToxCast, then MUV
# Rerunning a stream skips the (dataset, seed) pairs already recorded; the last command rebuilds the tables.
# The committed ToxCast and MUV records leave out their test predictions (8 MB per ToxCast seed as JSON); the
# metrics and the tables do not need them.
set -euo pipefail
cd "$(dirname "$0")/../../.."
: "${MOLCHANNEL_DATA_DIR:?set MOLCHANNEL_DATA_DIR to the data folder}"
PY=${PYTHON:-.venv/bin/python}
peer() { OMP_NUM_THREADS=1 "$PY" benchmarks/chemprop_peer.py --seeds 0 1 2 "$@"; }
case "${1:-}" in
  a) peer --datasets clintox sider tox21
     peer --datasets hiv --epochs 10 ;;
  b) peer --datasets toxcast
     peer --datasets muv --epochs 5 ;;
  tables) peer --datasets bbbp bace esol freesolv lipophilicity ;;
  *) echo "usage: $0 a|b|tables" >&2; exit 2 ;;
esac
