#!/usr/bin/env bash
# Create (or reuse) a virtual environment and install molchannel into it.
#
#   bash scripts/setup.sh            # inference + training (the "train" extra)
#   bash scripts/setup.sh --dev      # everything, plus test and lint tools
#
# The environment lives in $MOLCHANNEL_VENV (default: .venv in the repository). When it has
# no torch yet, torch==2.13.0 is installed first, from $MOLCHANNEL_TORCH_INDEX when set: where
# the package index serves CUDA wheels by default (PyPI on Linux), set it to
# https://download.pytorch.org/whl/cpu for the CPU build, so pip does not pull several GB of CUDA
# libraries; to use a GPU, install a CUDA build of torch into the venv beforehand.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MOLCHANNEL_VENV:-$repo/.venv}"
extras="train,io"
[[ "${1:-}" == "--dev" ]] && extras="dev"

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "molchannel needs Python >= 3.11 (found $("$python" --version 2>&1)); set PYTHON=/path/to/python3.11+" >&2
  exit 1
fi
if [[ ! -x "$venv/bin/python" ]]; then
  echo "creating virtual environment $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
if ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
  index=()
  [[ -n "${MOLCHANNEL_TORCH_INDEX:-}" ]] && index=(--index-url "$MOLCHANNEL_TORCH_INDEX")
  echo "installing torch==2.13.0${MOLCHANNEL_TORCH_INDEX:+ from $MOLCHANNEL_TORCH_INDEX}"
  "${pip[@]}" "${index[@]}" "torch==2.13.0"
fi
echo "installing molchannel[$extras] (editable)"
"${pip[@]}" -e "$repo[$extras]"
echo "ready: $venv"
