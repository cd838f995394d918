#!/usr/bin/env bash
# Everything a lent GPU machine should run, in one command of about 8 minutes on an H200, on
# that machine's image as it is: its python3 and torch, no venv, no network. Three timed parts,
# each bounded by `timeout` and writing its results under OUT as it goes, so a hang or a kill
# in one still returns the others:
#   (a) the gpu-marked tests (tests/gpu)                                  ~2 min, limit 200 s
#   (b) the speed benchmark (benchmarks/gpu_distill.py)                   ~3 min, limit 220 s
#   (c) full-data Fashion-MNIST accuracy (benchmarks/gpu_accuracy.py)     ~3 min, limit 220 s
# What the image lacks travels in ignored folders (`make gpu-carry` fills them): torch-pruning as
# a wheel in .whl/, installed with `pip install --no-index --no-deps --target`; Fashion-MNIST's
# IDX files in data/fashion-mnist/ (the loader looks in ./data).
# The full suite is left out (it does not fit; CI runs it on the CPU).
#
#   scripts/gpu-check.sh                 # on the GPU machine; results in $OUT (or --out DIR)
#   scripts/gpu-check.sh --dry-run       # the same install path and a tiny size of every part,
#   GPU_CHECK_CPU=1 scripts/gpu-check.sh #   on the CPU (tests/test_gpu_check.py runs it)
set -uo pipefail
cd "$(dirname "$0")/.."

DRY="${GPU_CHECK_CPU:-0}"
DEST="${OUT:-runs/gpu-check}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) DEST="$2"; shift ;;
    *) echo "gpu-check: unknown argument $1 (use --dry-run, --out DIR)" >&2; exit 2 ;;
  esac
  shift
done
PY="${PYTHON:-python3}"
mkdir -p "$DEST"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg

if ls .whl/*.whl >/dev/null 2>&1; then
  SITE="${GPU_CHECK_SITE:-/tmp/compress-site}"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" .whl/*.whl || { echo "gpu-check: installing .whl/ failed" >&2; exit 3; }
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

"$PY" - >"$DEST/environment.txt" 2>&1 <<'PYEOF'
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__,
      "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0))
for name in ("torch_pruning", "onnx", "onnxruntime", "onnxscript", "compress"):
    try:
        module = __import__(name)
        print(name, getattr(module, "__version__", "?"))
    except Exception as exc:  # recorded, not fatal: the part that needs it says so
        print(name, "MISSING:", exc)
PYEOF
cat "$DEST/environment.txt"

if [ "$DRY" = 1 ]; then
  DEVICE=cpu; SMOKE=--smoke; LIMIT_A=120; LIMIT_B=120; LIMIT_C=180
  TESTS=(--collect-only -q tests/gpu)   # the GPU tests skip on a CPU: collect them (imports)
else
  DEVICE=cuda; SMOKE=; LIMIT_A=200; LIMIT_B=220; LIMIT_C=220
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" ||
    { echo "gpu-check: no CUDA GPU visible (use --dry-run on a CPU)" >&2; exit 4; }
  TESTS=(-m gpu -rs tests/gpu)
fi

declare -A RC
part() {  # part NAME LIMIT command...: timed, bounded, logged under DEST
  local name="$1" limit="$2"; shift 2
  local t0=$SECONDS
  echo "== part $name (limit ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$DEST/$name.log"
  RC[$name]=${PIPESTATUS[0]}
  echo "== part $name: exit ${RC[$name]} after $((SECONDS - t0)) s" | tee -a "$DEST/summary.txt"
}

: >"$DEST/summary.txt"
part a-gpu-tests "$LIMIT_A" "$PY" -m pytest -p no:cacheprovider "${TESTS[@]}" \
  --junitxml "$DEST/gpu-tests.xml"
part b-speed "$LIMIT_B" "$PY" benchmarks/gpu_distill.py $SMOKE --device "$DEVICE" --out "$DEST/speed"
part c-accuracy "$LIMIT_C" "$PY" benchmarks/gpu_accuracy.py $SMOKE --device "$DEVICE" --out "$DEST/accuracy"
# what comes back from a lent machine is a few files: the tables, not the runs' folders
rm -rf "$DEST"/speed/data "$DEST"/speed/run* "$DEST"/speed/teacher.safetensors "$DEST"/accuracy/*/ 2>/dev/null
for name in a-gpu-tests b-speed c-accuracy; do
  [ "${RC[$name]}" = 0 ] || { echo "gpu-check: part $name failed (exit ${RC[$name]})"; exit 1; }
done
echo "gpu-check: all parts passed; results in $DEST"
