#!/usr/bin/env bash
# Training throughput of Cnn14, Wavegram-Logmel-CNN14 and MobileNetV1 on one GPU through
# Keras 3 on JAX (benchmarks/train_step_jax.py), for a machine with JAX (CUDA) but no Keras
# and no internet.
#
#   bash benchmarks/gpu_run.sh OUTDIR      (from anywhere; the repository is found from here)
#
# 1. Unless Keras already imports, installs the wheels carried in benchmarks/wheels (Keras,
#    namex, optree, ml-collections; PyYAML and typing_extensions only when missing) with
#    pip --no-index --no-deps into a fresh folder that goes first on PYTHONPATH, so the
#    machine's own JAX with CUDA, NumPy, h5py, rich, ... stay the ones used and nothing
#    outside that folder is changed. Without pip, the wheels are unpacked there instead.
#    panns_keras is not installed either: a copy of the package with the top-level configs/
#    inside (as setup.py installs it) goes on PYTHONPATH after the wheels.
# 2. Prints nvidia-smi, jax.devices() and the versions.
# 3. Runs one process per group below under `timeout`, each appending to
#    OUTDIR/train_step_jax.json (rewritten atomically after every configuration, so partial
#    results survive a timeout); everything printed also goes to OUTDIR/log.
#    A global deadline (BENCH_BUDGET_S, default 390 s from the start) caps every group's
#    timeout so the whole script ends in under 7 minutes; a group is not started with less
#    than 40 s left. One failure does not stop the rest. The first group (Cnn14, bfloat16,
#    batch 128) is also profiled over 5 steps after its timing and the profile reduced
#    (tools/profile_reduce.py) into OUTDIR/profile/: device time per kind of op, per
#    pass and per layer, the top 20 HLO instructions (.md, .json), the gzipped trace, XSpace
#    and compiled HLO. Groups go from the fastest compiles to the slowest (Cnn14 batch 256).
#
# Compiles: every process uses JAX's persistent compilation cache (with XLA's per-fusion
# autotuning cache) in BENCH_CACHE_DIR (default REPO/build/jax_cache, an ignored folder that
# a warm device machine keeps between calls), so a second call compiles only what the first
# did not finish; each result says cache_hit and compile_s_uncached (the compile time when
# it was compiled). The timed parts run one process at a time: compiling several
# configurations in parallel would share the GPU during XLA's autotuning (timed kernel
# runs) and its memory, and could change the kernels picked.
#
# Environment: PYTHON (default python3); BENCH_BUDGET_S; BENCH_CACHE_DIR; BENCH_FIRST_GROUP
# (N: skip the groups before the N-th, 1-based, e.g. those a first call finished); BENCH_GROUPS
# ("SECONDS:FLAGS;..." replaces the default groups); BENCH_EXTRA_ARGS, appended to every
# run's flags (later flags win), e.g. "--batch_size=2 --steps=2 --clip_seconds=1" for a
# CPU smoke run of the script itself; XLA_PYTHON_CLIENT_MEM_FRACTION (default 0.92 here).
set -uo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
OUTDIR=$1
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
BUDGET=${BENCH_BUDGET_S:-390}
read -r -a EXTRA <<< "${BENCH_EXTRA_ARGS:-}"
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
JSON=$OUTDIR/train_step_jax.json
LOG=$OUTDIR/log
PROFILE=$OUTDIR/profile
CACHE=${BENCH_CACHE_DIR:-$REPO/build/jax_cache}
mkdir -p "$CACHE"
rm -f "$JSON"
exec > >(tee -a "$LOG") 2>&1

echo "=== $(date -u +%FT%TZ) panns-keras train_step_jax on $(hostname); repo $REPO"
cd "$REPO" || exit 1
git rev-parse HEAD 2>/dev/null && git status --short 2>/dev/null | head -20

# ---------------------------------------------------------------- 1. dependencies
WHEELS=$REPO/benchmarks/wheels
DEPS=$(mktemp -d "${TMPDIR:-/tmp}/panns_keras_deps.XXXXXX")
names=(keras namex optree ml_collections)
"$PY" -c "import yaml" 2>/dev/null || names+=(pyyaml)
"$PY" -c "import typing_extensions" 2>/dev/null || names+=(typing_extensions)
files=()
for n in "${names[@]}"; do
  f=$(ls "$WHEELS"/"$n"-*.whl 2>/dev/null | head -n 1)
  if [ -n "$f" ]; then files+=("$f"); else echo "!!! no wheel for $n in $WHEELS"; fi
done
if KERAS_BACKEND=jax "$PY" -c "import keras, optree, ml_collections" 2>/dev/null; then
  echo "=== keras $(KERAS_BACKEND=jax "$PY" -c 'import keras; print(keras.__version__)') \
already importable: nothing installed"
else
  echo "=== installing into $DEPS: ${files[*]##*/}"
  if ! "$PY" -m pip install --quiet --no-index --no-deps --disable-pip-version-check \
      --target "$DEPS" "${files[@]}"; then
    echo "=== pip failed; unpacking the wheels instead"
    for f in "${files[@]}"; do "$PY" -m zipfile -e "$f" "$DEPS"; done
  fi
fi
# panns_keras as an install lays it out (setup.py maps the top-level configs/ to the package
# panns_keras.configs): a copy of the package with configs/ inside, first on PYTHONPATH.
mkdir -p "$DEPS/src" && cp -r "$REPO/panns_keras" "$DEPS/src/" && \
  cp -r "$REPO/configs" "$DEPS/src/panns_keras/configs"
export PYTHONPATH=$DEPS:$DEPS/src:$REPO${PYTHONPATH:+:$PYTHONPATH}
export KERAS_BACKEND=jax
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.92}

# ---------------------------------------------------------------- 2. the machine
nvidia-smi || echo "(no nvidia-smi)"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit \
  --format=csv 2>/dev/null
nproc; free -g | head -2; df -h "$CACHE" | tail -1; du -sh "$CACHE"
# From $DEPS, so the working directory does not put the repository's folder (without
# configs/) first: the check imports what the runs import.
(cd "$DEPS" && "$PY" -) <<'EOF'
import importlib.metadata as md
import sys

import jax
import keras

import panns_keras
from panns_keras import configs  # noqa: F401  (the packaged recipes the runs read)
from panns_keras.models import tagger  # noqa: F401  (the whole model code)

print("python", sys.version.split()[0], "| jax.devices():", jax.devices())
for name in ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin", "keras", "namex",
             "optree", "ml-collections", "numpy", "h5py", "ml-dtypes", "absl-py", "rich"):
    try:
        print(f"  {name} {md.version(name)}")
    except md.PackageNotFoundError:
        pass
print("keras from", keras.__file__, "backend", keras.backend.backend())
print("panns_keras from", panns_keras.__file__)
print("tensorflow imported:", "tensorflow" in sys.modules)
jax.print_environment_info()
EOF
echo "=== environment check exit status $?"

# ---------------------------------------------------------------- 3. the runs
GROUP=0
run() {  # run SECONDS FLAGS...: one train_step_jax.py process, capped by the deadline
  local limit=$1 left=$((BUDGET - SECONDS))
  shift
  GROUP=$((GROUP + 1))
  if [ "$GROUP" -lt "${BENCH_FIRST_GROUP:-1}" ]; then
    echo "=== group $GROUP skipped (BENCH_FIRST_GROUP=$BENCH_FIRST_GROUP): $*"
    return
  fi
  if [ "$left" -lt 40 ]; then
    echo "=== skipped (${left}s left of ${BUDGET}s): $*"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "=== group $GROUP $(date -u +%T) (t=${SECONDS}s) timeout ${limit}s: $*"
  timeout -k 10 "$limit" "$PY" "$REPO/benchmarks/train_step_jax.py" --out_json="$JSON" \
    --append --steps=10 --cache_dir="$CACHE" "$@" "${EXTRA[@]}"
  local rc=$?
  [ "$rc" -eq 0 ] || echo "=== exit status $rc$([ "$rc" -eq 124 ] && echo ' (timed out)')"
}

if [ -n "${BENCH_GROUPS:-}" ]; then  # "SECONDS:FLAGS;SECONDS:FLAGS..." instead of the default
  IFS=';' read -r -a groups <<< "$BENCH_GROUPS"
  for g in "${groups[@]}"; do
    read -r -a flags <<< "${g#*:}"
    run "${g%%:*}" "${flags[@]}"
  done
else  # session 4 (cold): Cnn14 bf16 compiled in 69 s at batch 128, f32 in 30 s at 32;
  # batch 256, Wavegram and MobileNetV1 did not finish in 190 / 80 / 56 s.
  run 200 --models=cnn14 --precisions=bfloat16 --batch_size=128 --profile_dir="$PROFILE" \
    --profile_steps=5
  run 90 --models=cnn14 --precisions=float32 --batch_size=32
  run 150 --models=mobilenet_v1 --precisions=bfloat16 --batch_size=128
  run 180 --models=wavegram_logmel_cnn14 --precisions=bfloat16 --batch_size=128
  run 150 --models=mobilenet_v1 --precisions=float32 --batch_size=128
  run 180 --models=wavegram_logmel_cnn14 --precisions=float32 --batch_size=64
  run 180 --models=cnn14 --precisions=float32 --batch_size=128
  run 300 --models=cnn14 --precisions=bfloat16 --batch_size=256
fi

echo "=== $(date -u +%T) done in ${SECONDS}s; results in $JSON"
"$PY" - "$JSON" <<'EOF'
import json
import sys

try:
    with open(sys.argv[1]) as f:
        rows = json.load(f)
except (OSError, ValueError) as e:
    sys.exit(f"no results: {e}")
print(f"{'model':22s} {'prec':8s} {'batch':>5s} {'clips/s':>9s} {'ms/step':>9s} "
      f"{'compile s':>9s} {'uncached':>8s} {'peak GB':>8s} {'MFU':>6s} {'MFU xla':>7s}")
for r in rows:
    head = f"{r['model']:22s} {r['precision']:8s} {r['batch']:5d}"
    if "error" in r:
        print(f"{head} FAILED {r['error'][:100]}")
        continue
    mfu = "n/a" if r.get("mfu") is None else f"{100 * r['mfu']:.1f}%"
    mfu_xla = "n/a" if r.get("mfu_xla") is None else f"{100 * r['mfu_xla']:.1f}%"
    hit = " (cache)" if r.get("cache_hit") else ""
    print(f"{head} {r['clips_per_s']:9.1f} {r['step_ms']:9.1f} {r['compile_s']:9.1f} "
          f"{r.get('compile_s_uncached') or float('nan'):8.1f} {r['peak_mem_gb']:8.2f} "
          f"{mfu:>6s} {mfu_xla:>7s}{hit}")
    if r.get("variants"):
        print(f"{'':37s} timed alone: {r['variants']}")
if rows:
    print(f"{rows[0].get('device_kind')}: bfloat16 matmul "
          f"{rows[0].get('matmul_tflops') or float('nan'):.1f} TFLOP/s")
EOF
for f in "$PROFILE"/*.md; do [ -f "$f" ] && { echo "=== $f"; head -n 22 "$f"; }; done
ls -l "$OUTDIR" "$PROFILE" 2>/dev/null; du -sh "$CACHE"
rm -rf "$DEPS"
