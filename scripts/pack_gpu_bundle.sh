#!/usr/bin/env bash
# Fill the wheels folder that scripts/gpu_pretrain.sh installs from on a GPU machine with no
# internet, run HERE (where PyPI is reachable):
#   - wheels of the packages that machine lacks, for its Python and platform (pip download);
#   - data/moses_train.csv.gz, the ZINC SMILES file to pre-train on;
#   - data/heldout_inchikeys.txt.gz, the InChIKeys of the benchmarks' validation and test molecules,
#     so that the corpus leaves them out without the benchmark data travelling;
# then print the command line to use there.
#
#   bash scripts/pack_gpu_bundle.sh                   # defaults below
#   bash scripts/pack_gpu_bundle.sh --help
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

usage() {
  cat <<'EOF'
usage: bash scripts/pack_gpu_bundle.sh [options]

options (default in brackets):
  --out DIR             the wheels folder to fill, ignored by git [.whl]
  --python-version V    the GPU machine's Python [3.12]
  --platforms "P ..."   its pip platform tags [manylinux_2_28_x86_64 ... manylinux1_x86_64]
  --packages "N ..."    what that machine lacks; each at the version installed here when it is
                        [rdkit jsonargparse docstring-parser typeshed-client zstandard]
  --smiles FILE         SMILES file to carry [$MOLCHANNEL_DATA_DIR/zinc/moses_train.csv.gz,
                        else ../shared/data/zinc/moses_train.csv.gz]; --smiles none carries none
  --data-dir DIR        benchmark data for the held-out keys [$MOLCHANNEL_DATA_DIR, else ../shared/data];
                        --data-dir none writes no keys
  --python PY           Python that runs pip here and has molchannel [.venv/bin/python, else python3]
  --limit-mib N         warn when what travels would exceed this [64]
EOF
}

out=.whl
python_version=3.12
platforms="manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64"
packages="rdkit jsonargparse docstring-parser typeshed-client zstandard"
data_dir="${MOLCHANNEL_DATA_DIR:-}"
if [[ -z "$data_dir" && -d ../shared/data ]]; then data_dir=../shared/data; fi
smiles=""
python=python3
[[ ! -x .venv/bin/python ]] || python=.venv/bin/python
limit_mib=64

die() {
  echo "pack_gpu_bundle: error: $*" >&2
  exit 1
}
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --out | --python-version | --platforms | --packages | --smiles | --data-dir | --python | --limit-mib)
      [[ $# -ge 2 ]] || die "$1 needs a value (see --help)"
      case "$1" in
        --out) out="$2" ;;
        --python-version) python_version="$2" ;;
        --platforms) platforms="$2" ;;
        --packages) packages="$2" ;;
        --smiles) smiles="$2" ;;
        --data-dir) data_dir="$2" ;;
        --python) python="$2" ;;
        --limit-mib) limit_mib="$2" ;;
      esac
      shift 2 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
if [[ -z "$smiles" && -n "$data_dir" && "$data_dir" != none ]]; then
  smiles="$data_dir/zinc/moses_train.csv.gz"
fi
[[ "$smiles" == none || -f "$smiles" ]] || die "no SMILES file '$smiles': pass --smiles FILE (or --smiles none)"
"$python" -m pip --version >/dev/null || die "'$python' has no pip: pass --python PY"

# ---- wheels -------------------------------------------------------------------------------------
read -r -a names <<<"$packages"
read -r -a tags <<<"$platforms"
specs=()
for name in "${names[@]}"; do
  version="$("$python" -c 'import sys; from importlib.metadata import version; print(version(sys.argv[1]))' \
    "$name" 2>/dev/null || true)"
  specs+=("$name${version:+==$version}")
done
platform_args=()
for tag in "${tags[@]}"; do platform_args+=(--platform "$tag"); done
mkdir -p "$out/data"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "downloading ${specs[*]} for CPython $python_version (${tags[0]} ...)"
"$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version "$python_version" --implementation cp "${platform_args[@]}" -d "$tmp" "${specs[@]}" ||
  die "pip download failed: check the names and versions (--packages), or add --platforms tags"
# one version of each package only: an older wheel of the same name would stop the install there
for wheel in "$tmp"/*.whl; do
  base="$(basename "$wheel")"
  project="${base%%-*}"
  for old in "$out/$project"-*.whl; do
    [[ -e "$old" && "$(basename "$old")" != "$base" ]] || continue
    echo "removing $(basename "$old") (another version)"
    rm -f "$old"
  done
  mv -f "$wheel" "$out/$base"
done

# ---- data ---------------------------------------------------------------------------------------
if [[ "$smiles" != none ]]; then
  rm -f "$out/data/moses_train.csv.gz"
  cp "$smiles" "$out/data/moses_train.csv.gz"
  chmod u+w "$out/data/moses_train.csv.gz"
  echo "copied $smiles to $out/data/moses_train.csv.gz"
fi
if [[ -n "$data_dir" && "$data_dir" != none ]]; then
  echo "computing the held-out InChIKeys of the benchmarks in $data_dir (cached after the first time)"
  "$python" - "$data_dir" "$out/data/heldout_inchikeys.txt.gz" <<'EOF'
import logging, sys
from molchannel.pretrain.leakage import heldout_inchikeys, write_heldout_keys
logging.basicConfig(level=logging.WARNING)
keys, counts = heldout_inchikeys(None, sys.argv[1])
n = write_heldout_keys(sys.argv[2], keys)
print(f"wrote {n} held-out InChIKeys from {len(counts)} benchmarks to {sys.argv[2]}")
EOF
else
  echo "no benchmark data: no held-out keys written (the GPU run then needs --no-leakage-filter)"
fi

# ---- size and the command line ------------------------------------------------------------------
bundle_bytes="$(du -sb "$out" | cut -f1)"
tree_bytes="$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)"
awk -v o="$out" -v b="$bundle_bytes" -v t="$tree_bytes" -v l="$limit_mib" 'BEGIN {
  printf "bundle %s: %.1f MiB; with the working tree %.1f MiB (limit %d MiB)\n", o, b / 2^20, (b + t) / 2^20, l
  if (b + t > l * 2^20) printf "WARNING: over the limit: carry less (--smiles none, fewer --packages)\n"
}'
ls -l "$out" "$out/data"
cat <<EOF

On the GPU machine: the device tool's run, from the repository root, with
  command:   bash scripts/gpu_pretrain.sh --wheels $out --out "\$OUT"
  carry:     ["$out"]
  timeout_s: 600
It installs what is missing from $out, prepares 40,000 ZINC molecules on all cores, pre-trains
configs/pretrain/reference_gin.yaml in bf16-mixed for up to 5 minutes (the whole script ends within 9) and
exports the model; \$OUT then holds model/ (3 files), metrics.json, metrics.csv, config.yaml and
gpu_pretrain.log. Elsewhere: copy the repository with $out to the GPU machine and run the same command
with --out DIR.
EOF
