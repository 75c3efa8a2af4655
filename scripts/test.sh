#!/usr/bin/env bash
# Install molchannel with its test tools, lint it, and run the test suite.
#
#   bash scripts/test.sh [pytest args...]
#
# Tests that need the benchmark data read it from $MOLCHANNEL_DATA_DIR; when unset, the
# data folder beside the repository (../shared/data) is used if it exists.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup.sh" --dev
venv="${MOLCHANNEL_VENV:-$repo/.venv}"
if [[ -z "${MOLCHANNEL_DATA_DIR:-}" && -d "$repo/../shared/data" ]]; then
  export MOLCHANNEL_DATA_DIR="$(cd "$repo/../shared/data" && pwd)"
fi
echo "data directory: ${MOLCHANNEL_DATA_DIR:-<unset: data tests will be skipped>}"
cd "$repo"
"$venv/bin/ruff" check .
"$venv/bin/mypy" molchannel pretrain finetune
set +e
"$venv/bin/python" -m pytest "$@"
status=$?
set -e
if [[ $status -eq 5 ]]; then
  echo "pytest collected no tests (exit 5); treating as a failure of the suite's setup" >&2
  exit 1
fi
exit $status
