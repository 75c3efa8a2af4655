#!/usr/bin/env bash
# Pre-train on one GPU machine in one call, offline: install what is missing from carried wheels,
# prepare a ZINC corpus, pre-train a recipe for a wall-time budget, export the model and its metrics.
# `bash scripts/gpu_pretrain.sh --help` explains the options; scripts/pack_gpu_bundle.sh (run where
# PyPI is reachable) fills the wheels folder and prints the command line for the GPU machine.
set -Eeuo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
helpers="$repo/scripts/gpu_pretrain_helpers.py"

usage() {
  cat <<'EOF'
usage: bash scripts/gpu_pretrain.sh [options] [-- extra `molchannel pretrain` options]

Five phases, each logged with a timestamp; the first error stops the script with what to do:
  check     python, torch, the accelerator, the inputs
  install   the packages that are missing, from --wheels (pip --no-index), then molchannel itself
            (editable, --no-deps --no-build-isolation; a linked source tree if that fails)
  prepare   `molchannel prepare` on the first --limit molecules of --smiles, --processes processes
  pretrain  `molchannel pretrain --config RECIPE` for at most --minutes (Lightning's max_time),
            capped so that the whole script ends within --deadline minutes
  export    `molchannel export` into OUT/model (checked: <= --max-model-mib, loads, embeds), then
            OUT/metrics.json (anchors/s over the timed part, steps, epochs, final losses, GPU,
            wall time of each phase), OUT/metrics.csv and OUT/config.yaml of the run, OUT/gpu_pretrain.log

options (default in brackets):
  --smiles FILE       SMILES file, .smi or .csv, gzipped or not
                      [WHEELS/data/moses_train.csv.gz, else $MOLCHANNEL_DATA_DIR/zinc/moses_train.csv.gz]
  --limit N           molecules taken from the top of --smiles [40000]
  --processes N       processes for `molchannel prepare` [all CPU cores]
  --workers N         DataLoader workers during training [--processes - 1]
  --minutes M         training budget in minutes, decimals allowed [5]
  --deadline M        the whole script's budget in minutes; training is shortened to fit [9]
  --recipe FILE       pre-training recipe [configs/pretrain/reference_gin.yaml]
  --accelerator A     Lightning accelerator: gpu, cpu, auto [gpu]
  --devices N         devices [1]
  --precision P       Lightning precision [bf16-mixed]; on a CPU use 32-true
  --wheels DIR        wheels to install from, offline [.whl]
  --heldout-keys FILE InChIKeys kept out of the corpus (leakage filter)
                      [WHEELS/data/heldout_inchikeys.txt.gz when it exists]
  --data-dir DIR      benchmark data for the leakage filter instead [$MOLCHANNEL_DATA_DIR]
  --no-leakage-filter keep benchmark molecules in the corpus (smoke tests only)
  --work DIR          corpus and run folder [runs/gpu_pretrain]
  --out DIR           model folder, metrics and log [WORK/out]
  --max-model-mib N   largest model folder accepted [16]
  --python PY         the Python that has torch [$PYTHON, else python3]
  -h, --help          this text

Paths given as options are relative to the current folder; the defaults, to the repository root.
Anything after `--` goes to `molchannel pretrain` last, so it overrides the recipe and the script,
e.g. `-- --data.batch_size 512 --trainer.max_epochs 3`.

On the GPU machine:  bash scripts/gpu_pretrain.sh --out "$OUT"
Here, on a CPU:      bash scripts/gpu_pretrain.sh --accelerator cpu --precision 32-true \
                       --recipe configs/pretrain/tiny.yaml --smiles examples/zinc_sample.smi --limit 60 \
                       --minutes 0.3 --no-leakage-filter
EOF
}

# ---- options ------------------------------------------------------------------------------------
smiles="" limit=40000 processes="" workers="" minutes=5 deadline=9
recipe=configs/pretrain/reference_gin.yaml accelerator=gpu devices=1 precision=bf16-mixed
wheels=.whl heldout="" data_dir="${MOLCHANNEL_DATA_DIR:-}" leakage=auto
work=runs/gpu_pretrain out="" max_mib=16 python="${PYTHON:-python3}"
extra=()

die() {
  echo "gpu_pretrain: error: $*" >&2
  exit 2
}
# paths given on the command line are relative to where the script is called from; the defaults
# and everything else to the repository root
abs() { if [[ "$1" == /* ]]; then echo "$1"; else echo "$PWD/$1"; fi; }
while [[ $# -gt 0 ]]; do
  opt="$1"
  case "$opt" in
    -h | --help) usage; exit 0 ;;
    --no-leakage-filter) leakage=off; shift; continue ;;
    --) shift; extra=("$@"); break ;;
    --smiles | --limit | --processes | --workers | --minutes | --deadline | --recipe | --accelerator | \
      --devices | --precision | --wheels | --heldout-keys | --data-dir | --work | --out | --max-model-mib | \
      --python)
      [[ $# -ge 2 ]] || die "$opt needs a value (see --help)"
      value="$2"
      shift 2 ;;
    *) die "unknown option '$opt' (see --help)" ;;
  esac
  case "$opt" in
    --smiles) smiles="$(abs "$value")" ;;
    --limit) limit="$value" ;;
    --processes) processes="$value" ;;
    --workers) workers="$value" ;;
    --minutes) minutes="$value" ;;
    --deadline) deadline="$value" ;;
    --recipe) recipe="$(abs "$value")" ;;
    --accelerator) accelerator="$value" ;;
    --devices) devices="$value" ;;
    --precision) precision="$value" ;;
    --wheels) wheels="$(abs "$value")" ;;
    --heldout-keys) heldout="$(abs "$value")"; leakage=keys ;;
    --data-dir) data_dir="$(abs "$value")"; leakage=data ;;
    --work) work="$(abs "$value")" ;;
    --out) out="$(abs "$value")" ;;
    --max-model-mib) max_mib="$value" ;;
    --python) if [[ "$value" == */* ]]; then python="$(abs "$value")"; else python="$value"; fi ;;
  esac
done

is_int() { [[ "$1" =~ ^[0-9]+$ ]]; }
is_number() { [[ "$1" =~ ^[0-9]+([.][0-9]+)?$ ]]; }
cores="$(nproc 2>/dev/null || echo 1)"
processes="${processes:-$cores}"
if ! is_int "$processes" || ((processes < 1)); then die "--processes must be a positive integer, not '$processes'"; fi
workers="${workers:-$((processes > 1 ? processes - 1 : 0))}"
is_int "$workers" || die "--workers must be an integer >= 0, not '$workers'"
if ! is_int "$limit" || ((limit < 2)); then die "--limit must be an integer >= 2, not '$limit'"; fi
is_number "$minutes" || die "--minutes must be a number of minutes, not '$minutes'"
is_number "$deadline" || die "--deadline must be a number of minutes, not '$deadline'"
is_number "$max_mib" || die "--max-model-mib must be a number, not '$max_mib'"

cd "$repo"
out="${out:-$work/out}"
mkdir -p "$work" "$out"
work="$(cd "$work" && pwd)"
out="$(cd "$out" && pwd)"
corpus="$work/corpus"
run="$work/run"
log_file="$out/gpu_pretrain.log"
: >"$log_file"
exec > >(tee -a "$log_file") 2>&1

to_seconds() { awk -v m="$1" 'BEGIN { printf "%d", m * 60 }'; }
deadline_s="$(to_seconds "$deadline")"
budget_s="$(to_seconds "$minutes")"
t0="$(date +%s.%N)"
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
elapsed_s() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%d", b - a }'; }
log() { printf '[%s +%5ss] %s\n' "$(date -u +%H:%M:%S)" "$(since "$t0")" "$*"; }

phase="options" hint="see --help"
phase_times=()
phase_start=""
begin() {
  phase="$1" hint="$2" phase_start="$(date +%s.%N)"
  log "== $phase: $3"
}
end_phase() {
  local s
  s="$(since "$phase_start")"
  phase_times+=("--phase" "$phase=$s")
  log "== $phase done in ${s}s"
}
on_error() {
  local rc=$?
  log "FAILED in phase '$phase' (exit $rc, line $1)"
  log "what to do: $hint"
  log "full log: $log_file"
  exit "$rc"
}
trap 'on_error $LINENO' ERR

py() { "$python" "$@"; }
molchannel_cli() { "$python" -m molchannel.cli.main "$@"; }

# ---- check --------------------------------------------------------------------------------------
begin check "run on a machine with Python >= 3.11 and torch (--python PY), or pass other options" \
  "python, torch, accelerator, inputs"
command -v "$python" >/dev/null || { hint="no '$python' here: pass --python /path/to/python3"; false; }
hint="'$python' is not Python >= 3.11 with torch (and a visible CUDA GPU for --accelerator gpu): pass --python PY, or --accelerator cpu --precision 32-true on a machine without a GPU"
py - "$accelerator" <<'EOF'
import os, platform, sys
if sys.version_info < (3, 11):
    sys.exit(f"molchannel needs Python >= 3.11, this is {sys.version.split()[0]}")
import torch
gpu = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) or "none"
print(f"python {sys.version.split()[0]} ({sys.executable}), torch {torch.__version__}, "
      f"CUDA {torch.version.cuda}, GPU {gpu}, {os.cpu_count()} CPU cores on {platform.machine()}")
if sys.argv[1] in ("gpu", "cuda") and not torch.cuda.is_available():
    sys.exit("no CUDA GPU is visible to torch")
EOF
[[ -f "$recipe" ]] || { hint="no recipe '$recipe': pass --recipe configs/pretrain/NAME.yaml"; false; }
if [[ -z "$smiles" ]]; then
  smiles="$wheels/data/moses_train.csv.gz"
  if [[ ! -f "$smiles" && -n "$data_dir" ]]; then smiles="$data_dir/zinc/moses_train.csv.gz"; fi
fi
[[ -f "$smiles" ]] || {
  hint="no SMILES file '$smiles': pass --smiles FILE, or run scripts/pack_gpu_bundle.sh, which copies the ZINC file into $wheels/data/"
  false
}
case "$leakage" in
  auto)
    if [[ -f "$wheels/data/heldout_inchikeys.txt.gz" ]]; then
      heldout="$wheels/data/heldout_inchikeys.txt.gz" leakage=keys
    elif [[ -n "$data_dir" && -d "$data_dir/moleculenet" ]]; then
      leakage=data
    else
      hint="no held-out keys ($wheels/data/heldout_inchikeys.txt.gz) and no benchmark data: run scripts/pack_gpu_bundle.sh, or pass --heldout-keys FILE, --data-dir DIR or --no-leakage-filter"
      false
    fi ;;
  keys) [[ -f "$heldout" ]] || { hint="no held-out key file '$heldout': pass --heldout-keys FILE"; false; } ;;
  data) [[ -d "$data_dir" ]] || { hint="no benchmark data folder '$data_dir': pass --data-dir DIR"; false; } ;;
esac
log "smiles $smiles (first $limit), recipe $recipe, leakage filter: $leakage, budget ${budget_s}s of ${deadline_s}s"
end_phase

# ---- install ------------------------------------------------------------------------------------
begin install "carry the wheels: run 'bash scripts/pack_gpu_bundle.sh' where PyPI is reachable and name '$wheels' in carry" \
  "missing packages from $wheels, then molchannel"
with=()
if grep -Eq 'perturb_method: *crem' "$recipe"; then with=(--with crem); fi
missing="$(py "$helpers" missing "$repo" "${with[@]}")"
if [[ -n "$missing" ]]; then
  mapfile -t specs <<<"$missing"
  log "missing: ${specs[*]}"
  compgen -G "$wheels/*.whl" >/dev/null || {
    hint="'$wheels' holds no wheels for ${specs[*]}: run 'bash scripts/pack_gpu_bundle.sh' where PyPI is reachable and carry '$wheels'"
    false
  }
  hint="pip could not install ${specs[*]} from '$wheels' (see above): where PyPI is reachable, run 'bash scripts/pack_gpu_bundle.sh --python-version X.Y --packages \"NAME ...\"' with every package pip names, and carry '$wheels'"
  PIP_ROOT_USER_ACTION=ignore py -m pip install --quiet --disable-pip-version-check --no-cache-dir \
    --no-index --find-links "$wheels" "${specs[@]}"
  still="$(py "$helpers" missing "$repo" "${with[@]}")"
  [[ -z "$still" ]] || { hint="still missing after the install: $still; add their wheels to $wheels"; false; }
else
  log "nothing missing"
fi
hint="molchannel could not be installed from $repo: check that setuptools is installed, or set PYTHONPATH yourself"
molchannel_here() {
  py - "$repo" <<'EOF' 2>/dev/null
import os, sys
import molchannel, molchannel.cli.main, molchannel.pretrain
ok = os.path.realpath(molchannel.__file__).startswith(os.path.realpath(sys.argv[1]) + os.sep)
sys.exit(0 if ok else 1)
EOF
}
if molchannel_here; then
  log "molchannel already importable from $repo"
elif PIP_ROOT_USER_ACTION=ignore py -m pip install --quiet --disable-pip-version-check --no-cache-dir \
  --no-index --no-deps --no-build-isolation -e "$repo" && molchannel_here; then
  log "installed molchannel (editable) from $repo"
else
  # the package maps pretrain/ and finetune/ under molchannel: mirror that layout with links
  log "editable install failed; using a linked source tree"
  tree="$work/pysrc/molchannel"
  rm -rf "$work/pysrc"
  mkdir -p "$tree"
  for entry in "$repo"/molchannel/*; do ln -s "$entry" "$tree/"; done
  ln -s "$repo/pretrain" "$tree/pretrain"
  ln -s "$repo/finetune" "$tree/finetune"
  export PYTHONPATH="$work/pysrc${PYTHONPATH:+:$PYTHONPATH}"
  py -c 'import molchannel.cli.main, molchannel.pretrain'
fi
end_phase

# ---- prepare ------------------------------------------------------------------------------------
begin prepare "see the error above; to start afresh delete $corpus" \
  "corpus of $limit molecules with $processes processes"
hint="the recipe's data.prepare cannot be used as it is (see above)"
flags="$(py "$helpers" prepare-flags "$recipe")"
prepare_flags=()
[[ -z "$flags" ]] || mapfile -t prepare_flags <<<"$flags"
case "$leakage" in
  keys) prepare_flags+=(--heldout-keys "$heldout") ;;
  data) prepare_flags+=(--data-dir "$data_dir") ;;
  off) prepare_flags+=(--no-leakage-filter) ;;
esac
shard_size=$(((limit + 2 * processes - 1) / (2 * processes)))  # two shards per process
reserve_s=75   # pre-training start-up, last validation, export and checks
min_train_s=30
prepare_limit_s=$((deadline_s - $(elapsed_s) - reserve_s - min_train_s))
((prepare_limit_s > 0)) || { hint="--deadline ${deadline} min leaves no time to prepare: raise --deadline"; false; }
hint="prepare did not finish (see above); if it ran out of time (${prepare_limit_s}s), lower --limit: rerunning the same command keeps the finished shards"
timeout --kill-after=10 "$prepare_limit_s" "$python" -m molchannel.cli.main prepare \
  -i "$smiles" -o "$corpus" --limit "$limit" --processes "$processes" --shard-size "$shard_size" \
  "${prepare_flags[@]}"
end_phase

# ---- pretrain -----------------------------------------------------------------------------------
begin pretrain "see the error above; the run folder is $run" "recipe $recipe on $accelerator ($precision)"
left_s=$((deadline_s - $(elapsed_s) - reserve_s))
train_s=$budget_s
if ((left_s < train_s)); then
  train_s=$left_s
  log "shortened the training budget from ${budget_s}s to ${train_s}s to end within --deadline ${deadline} min"
  ((train_s >= 10)) || { hint="no time left to train: lower --limit (prepare) or raise --deadline"; false; }
fi
((train_s >= 1)) || train_s=1
max_time="$(printf '00:%02d:%02d:%02d' $((train_s / 3600)) $((train_s % 3600 / 60)) $((train_s % 60)))"
rm -rf "$run"
pretrain_args=(
  pretrain --config "$recipe"
  --data.corpus "$corpus" --data.source null --data.limit null --data.num_workers "$workers"
  --trainer.accelerator "$accelerator" --trainer.devices "$devices" --trainer.precision "$precision"
  --trainer.max_time "$max_time" --trainer.max_epochs -1
  --trainer.default_root_dir "$run" --trainer.logger.init_args.save_dir "$run"
  --trainer.enable_progress_bar false
  "--trainer.callbacks+=molchannel.pretrain.callbacks.ThroughputMonitor"
  "--trainer.callbacks.log_every_s=30"
  "${extra[@]}"
)
log "molchannel ${pretrain_args[*]}"
hard_s=$((deadline_s - $(elapsed_s) - 20))
hint="pre-training failed or ran past ${hard_s}s (see above): check the recipe and the extra options; lower --minutes if it was cut off"
PYTHONUNBUFFERED=1 timeout --kill-after=15 "$hard_s" "$python" -m molchannel.cli.main "${pretrain_args[@]}"
[[ -f "$run/throughput.json" ]] || { hint="the run wrote no $run/throughput.json: did training start?"; false; }
end_phase

# ---- export -------------------------------------------------------------------------------------
begin export "see the error above; the checkpoints are in $run/checkpoints" "model folder and metrics into $out"
rm -rf "$out/model"
molchannel_cli export "$run" -o "$out/model"
for name in metrics.csv config.yaml; do
  file="$(find "$run" -name "$name" -print -quit)"
  [[ -z "$file" ]] || cp "$file" "$out/$name"
done
end_phase
phase=finish
hint="the model folder is too large, does not load or does not embed, or the metrics could not be written (see above)"
py "$helpers" finish --model "$out/model" --max-mib "$max_mib" --throughput "$run/throughput.json" \
  --corpus "$corpus" "${phase_times[@]}" --total-s "$(since "$t0")" --train-budget-s "$train_s" \
  --recipe "$recipe" --command "molchannel ${pretrain_args[*]}" --out "$out/metrics.json"
log "done in $(since "$t0")s: $out/model, $out/metrics.json"
