#!/usr/bin/env bash
# run.sh — the one command of a GPU session (issue 7): unpacks .gpu-carry (bench/gpu/prepare.sh,
# run here first), finds the device's CUDA libraries, prints the machine, then runs the parts named:
#
#   tests    the GPU tests: cuda_ops, cuda_attention (C) and cuda_agree (Python), exactly the
#            programs and environment ctest gives them, but with PB_REQUIRE_CUDA=1 (a skip on
#            a GPU machine is a failure) and prunebench/pb_dump behind wrappers that set the
#            library path (ctest's absolute paths of this checkout do not exist on the device)
#   dense    LLaMA-7B-shaped random model: make_model.py, then prunebench (pb_bench.py) and HF
#            transformers (hf_reference.py, with the copy-bandwidth measurement)
#   pruned   the depth-pruned (6 of 32 blocks) and width-pruned (LLM-Pruner, 20%) models, same
#   agree7b  CPU vs CUDA logits and WikiText-2 ppl on a 7B-shaped model already made on this
#            machine (width, else depth, else dense; none: the width model is made first): the
#            issue's acceptance check at full size (agree7b.py)
#   report   report.py over every result so far (also done at exit)
#
#   bash bench/gpu/run.sh tests dense                 # device call 1 (~8 min)
#   bash bench/gpu/run.sh pruned agree7b report       # device call 2 (~8 min)
#   bash bench/gpu/run.sh --dry-run tests dense pruned agree7b report    # here: tiny models, CPU
#
# Everything lands under $OUT (the device tool's folder; $PB_GPU_WORK/out otherwise): log-TAG.txt (this
# output), results-TAG.tar.gz (every JSON and per-step log), report-TAG.md — three files, inside
# the tool's limit of eight. Each phase has its own time budget and the whole stops starting new
# work at PB_GPU_DEADLINE_S (default 560 s) after the start, so that one call fits the tool's
# 600-second limit; results are packed after every phase, so a killed call still returns them.
# Env: PB_GPU_PYTHON (python3; /usr/bin/python3 in --dry-run), PB_GPU_MODELS (/tmp/pb-gpu-models),
#      PB_GPU_WORK (/tmp/pb-gpu), PB_GPU_DEADLINE_S, PB_GPU_FORCE_LOADER=1 (run the programs through
#      the carried glibc even when the device's is new enough: a test of that fallback).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/gpu
DRY=0
PARTS=()
for a in "$@"; do
  case $a in
    --dry-run) DRY=1 ;;
    tests|dense|pruned|agree7b|report) PARTS+=("$a") ;;
    all) PARTS+=(tests dense pruned agree7b report) ;;
    *) echo "usage: $0 [--dry-run] tests|dense|pruned|agree7b|report|all ..." >&2; exit 2 ;;
  esac
done
[ ${#PARTS[@]} -gt 0 ] || { echo "usage: $0 [--dry-run] tests|dense|pruned|agree7b|report|all ..." >&2; exit 2; }
START=$(date +%s)
DEADLINE=${PB_GPU_DEADLINE_S:-560}
TAG=$(IFS=-; echo "${PARTS[*]}")$([ $DRY = 1 ] && echo -dry)
OUTD=${OUT:-${PB_GPU_WORK:-/tmp/pb-gpu}/out}
WORK=${PB_GPU_WORK:-/tmp/pb-gpu}
MODELS=${PB_GPU_MODELS:-/tmp/pb-gpu-models}
RES=$WORK/results
if [ $DRY = 1 ]; then PY=${PB_GPU_PYTHON:-/usr/bin/python3}; else PY=${PB_GPU_PYTHON:-python3}; fi
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
mkdir -p "$OUTD" "$WORK" "$RES" "$MODELS"
exec > >(tee -a "$OUTD/log-$TAG.txt") 2>&1
TEE_PID=$!

elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( DEADLINE - $(elapsed) )); }
say() { printf '[run %4ss] %s\n' "$(elapsed)" "$*"; }
# budget WANTED: the smaller of WANTED and what is left before the deadline (minus a margin)
budget() { local l=$(( $(left) - 10 )); [ "$1" -lt "$l" ] && echo "$1" || echo "$l"; }
pack() {   # python's tarfile: no dependence on the image's tar / gzip
  "$PY" -c "import sys, tarfile; t = tarfile.open(sys.argv[1], 'w:gz'); t.add(sys.argv[2], 'results'); t.close()" \
    "$OUTD/results-$TAG.tar.gz.tmp" "$RES" && mv "$OUTD/results-$TAG.tar.gz.tmp" "$OUTD/results-$TAG.tar.gz"
  "$PY" "$HERE/report.py" "$RES" > "$OUTD/report-$TAG.md" 2> "$RES/report.err" || true
}
trap 'pack; say "end (results in $OUTD: log-$TAG.txt, results-$TAG.tar.gz, report-$TAG.md)"
      exec 1>&- 2>&-; wait $TEE_PID 2>/dev/null' EXIT
FAILS=0
note_fail() {   # PHASE MESSAGE: counted, logged, and listed by report.py
  local m=${2//\\/\\\\}; m=${m//\"/\\\"}; m=$(printf '%s' "$m" | tr '\n\t' '  ')
  FAILS=$((FAILS + 1)); echo "{\"phase\": \"$1\", \"what\": \"$m\"}" >> "$RES/failures.jsonl"; say "FAIL $1: $2"
}

# ---- setup: carried binaries, libraries, data ---------------------------------------------------
say "parts: ${PARTS[*]}$([ $DRY = 1 ] && echo ' (dry run: tiny models on the CPU)'); repository $ROOT"
CARRY=$ROOT/.gpu-carry
if [ -f "$CARRY/payload.tar.xz" ]; then
  if ! cmp -s "$CARRY/BUILD_INFO" "$WORK/carry/BUILD_INFO" 2>/dev/null; then
    rm -rf "$WORK/carry" && mkdir -p "$WORK/carry"
    "$PY" -c "import sys, tarfile; t = tarfile.open(sys.argv[1]); kw = {'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}; t.extractall(sys.argv[2], **kw)" \
      "$CARRY/payload.tar.xz" "$WORK/carry" || { say "cannot unpack $CARRY/payload.tar.xz"; exit 1; }
  fi
  BINDIR=$WORK/carry/bin LIBDIR=$WORK/carry/lib SHARED=$WORK/carry/shared FALLBACK=$WORK/carry/cuda-fallback
  GLIBC=$WORK/carry/glibc
  say "carried build: $(tr '\n' ' ' < "$WORK/carry/BUILD_INFO")"
  want=$(sed -n 's/^src_hash=//p' "$WORK/carry/BUILD_INFO")
  have=$(bash "$HERE/srchash.sh" "$ROOT")
  if [ "$want" != "$have" ]; then
    say "WARNING: STALE BINARIES: built from sources $want, the sources here hash to $have (rerun prepare.sh)"
  fi
else
  say "no $CARRY/payload.tar.xz: using $ROOT/build-gpu and ../shared (a development machine)"
  BINDIR=$WORK/localbin LIBDIR="" SHARED=${PB_SHARED:-$ROOT/../shared} FALLBACK="" GLIBC=""
  mkdir -p "$BINDIR"
  for b in prunebench tests/tools/pb_dump tests/cuda/cuda_ops tests/cuda/cuda_attention; do
    [ -x "$ROOT/build-gpu/$b" ] && ln -sf "$ROOT/build-gpu/$b" "$BINDIR/$(basename "$b")"
  done
fi
DATA=$SHARED/data
TOKENIZER=$DATA/tokenizer/tokenizer.model

# CUDA's libraries on the device: the toolkit's folders first, then every lib folder of the
# nvidia-* wheels next to torch (cuDNN 9 comes from nvidia-cudnn-cu13 there)
CUDA_LP=$("$PY" - <<'EOF'
import glob, os, site
dirs = []
def add(d):
    if os.path.isdir(d) and d not in dirs and glob.glob(os.path.join(d, "lib*.so*")):
        dirs.append(d)
for d in ["/usr/local/cuda/lib64", "/usr/local/cuda/lib", "/usr/local/cuda/targets/x86_64-linux/lib"]:
    add(d)
roots = list(site.getsitepackages())
try:
    import torch
    roots.insert(0, os.path.dirname(os.path.dirname(torch.__file__)))
except Exception:
    pass
for r in roots:
    for d in sorted(glob.glob(os.path.join(r, "nvidia", "**", "lib"), recursive=True) +
                    glob.glob(os.path.join(r, "nvidia", "**", "lib64"), recursive=True)):
        add(d)
import subprocess
try:   # last: the driver's libcuda.so.1, wherever ldconfig knows it (for the carried loader)
    for line in subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout.splitlines():
        if "libcuda.so.1 " in line and "x86-64" in line:
            add(os.path.dirname(line.split("=>")[-1].strip()))
except Exception:
    pass
print(":".join(dirs))
EOF
)
LP=$LIBDIR${CUDA_LP:+:$CUDA_LP}${FALLBACK:+:$FALLBACK}
LP=${LP#:}
# glibc: the device's own when it is new enough for what was carried, else the carried one
# through its loader (the programs then see the carried libc, the device's driver and CUDA)
need=$(sed -n 's/^glibc_needed=GLIBC_//p' "$WORK/carry/BUILD_INFO" 2>/dev/null)
have=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
[ -n "$have" ] || have=$(ldd --version 2>/dev/null | head -1 | awk '{print $NF}')
LOADER=""
if [ -n "$need" ] && [ -n "$GLIBC" ] && { [ "${PB_GPU_FORCE_LOADER:-0}" = 1 ] ||
     [ "$(printf '%s\n%s\n' "$need" "${have:-0}" | sort -V | head -1)" != "$need" ]; }; then
  LOADER="$GLIBC/ld-linux-x86-64.so.2 --library-path $GLIBC:$LP"
  say "glibc $have here, $need needed$([ "${PB_GPU_FORCE_LOADER:-0}" = 1 ] && echo ' (loader forced)'): the carried glibc runs the programs ($LOADER)"
fi
# every carried program behind a wrapper that sets its library path: python and the rest of
# the machine keep theirs (the carried libstdc++, libcrypto, ... are Debian 12's)
mkdir -p "$WORK/bin"
for p in "$BINDIR"/*; do
  b=$(basename "$p")
  if [ -n "$LOADER" ]; then
    printf '#!/bin/sh\nexec %s "%s" "$@"\n' "$LOADER" "$p" > "$WORK/bin/$b"
  else
    printf '#!/bin/sh\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' "$LP" "$p" > "$WORK/bin/$b"
  fi
  chmod +x "$WORK/bin/$b"
done
PB=$WORK/bin/prunebench DUMP=$WORK/bin/pb_dump
say "library path of prunebench's processes: $LP"
for lib in libcudart.so.13 libcublasLt.so.13 libcudnn.so.9 libcudnn_graph.so.9 libnvrtc.so.13; do
  where=$(IFS=:; for d in $LP; do [ -e "$d/$lib" ] && { echo "$d"; break; }; done)
  say "  $lib: ${where:-NOT FOUND}"
done
if [ -n "$LOADER" ]; then
  missing=$(for b in "$BINDIR"/*; do $LOADER --list "$b" 2>&1 | grep "not found"; done | sort -u)
else
  missing=$(for b in "$BINDIR"/*; do LD_LIBRARY_PATH=$LP ldd "$b" 2>&1 | grep "not found"; done | sort -u)
fi
if [ -n "$missing" ]; then
  say "libraries missing for the carried programs:"; echo "$missing"
  note_fail setup "missing libraries: $(echo "$missing" | awk '{print $1}' | paste -sd' ')"
fi
say "glibc here: $(ldd --version 2>&1 | head -1); carried programs need $(sed -n 's/^glibc_needed=//p' "$WORK/carry/BUILD_INFO" 2>/dev/null)"
"$PB" --version || note_fail setup "prunebench does not start"

# ---- the machine ---------------------------------------------------------------------------------
if [ $DRY = 0 ]; then
  nvidia-smi || note_fail setup "nvidia-smi failed"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit --format=csv
fi
nvcc --version 2>/dev/null | tail -2
say "cpu: $(nproc) cores; memory: $(awk '/MemTotal/ {t = $2} /MemAvailable/ {a = $2} END {printf "%.0f GiB, %.0f GiB available", t / 2^20, a / 2^20}' /proc/meminfo); disk $MODELS: $(df -h "$MODELS" | awk 'NR==2 {print $4 " free of " $2}')"
"$PY" - "$RES/env.json" "$DRY" "$WORK/carry/BUILD_INFO" <<'EOF'
import json, os, platform, subprocess, sys, time
env = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "dry_run": sys.argv[2] == "1",
       "host": platform.node(), "python": platform.python_version(), "cpus": os.cpu_count()}
try:
    import torch, transformers
    env.update(torch=torch.__version__, transformers=transformers.__version__, torch_cuda=torch.version.cuda,
               cudnn=torch.backends.cudnn.version() if torch.cuda.is_available() else None)
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, gpu_mem_gib=round(p.total_memory / 2**30, 1), sms=p.multi_processor_count,
                   cc=f"{p.major}.{p.minor}")
except Exception as e:
    env["torch_error"] = str(e)
try:
    q = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,clocks.max.mem", "--format=csv,noheader"],
                       capture_output=True, text=True, timeout=20).stdout.strip()
    env["nvidia_smi"] = q
except Exception:
    pass
if os.path.exists(sys.argv[3]):
    env["build"] = dict(l.strip().split("=", 1) for l in open(sys.argv[3]) if "=" in l)
json.dump(env, open(sys.argv[1], "w"), indent=1)
print("env:", json.dumps({k: v for k, v in env.items() if k != "build"}))
EOF
if [ $DRY = 0 ]; then   # does the backend start? (seconds; the tests below say more)
  printf '1 3\n1 2 3\n' > "$WORK/probe.ids"
  if "$DUMP" "$SHARED/models/stories260K/stories260K.gguf" --device cuda --dtype bf16 \
       --logits "$WORK/probe.ids" "$WORK/probe.f32" > /dev/null 2> "$WORK/probe.err"; then
    say "CUDA backend starts (stories260K, 3 tokens)"
  else
    say "CUDA backend probe FAILED: $(tail -1 "$WORK/probe.err")"; note_fail setup "cuda probe: $(tail -1 "$WORK/probe.err")"
  fi
fi
pack

# ---- sizes of the benchmark runs -------------------------------------------------------------------
if [ $DRY = 1 ]; then
  MM_ARGS=(--tiny --device cpu)
  HF_ARGS=(--device cpu --dtype f32 --attn eager --score-seq 32,128 --score-tokens 2048 --score-batch-tokens 512
           --gen-batch 1,4 --prompt-len 16 --gen-len 8 --reps 1 --warmup 1)
  PB_ARGS=(--device cpu --score-seq 32,128 --score-tokens 2048 --score-batch-tokens 512 --gen-groups "1;4"
           --prompt-len 16 --gen-len 8 --reps 1 --warmup 1)
  A7_ARGS=(--device cpu --dtype f32)
else
  MM_ARGS=(--device cuda)
  HF_ARGS=(--device cuda --dtype bf16 --score-seq 128,2048 --score-tokens 131072 --score-batch-tokens 16384
           --gen-batch 1,64,256 --prompt-len 128 --gen-len 128 --reps 2 --warmup 1)
  PB_ARGS=(--device cuda --dtype bf16 --score-seq 128,2048 --score-tokens 131072 --score-batch-tokens 16384
           --gen-groups "1,64;256" --prompt-len 128 --gen-len 128 --reps 2 --warmup 1)
  A7_ARGS=(--device cuda --dtype bf16)
fi
MODE=$([ $DRY = 1 ] && echo tiny || echo full)

# ---- parts -------------------------------------------------------------------------------------------
run_test() {   # NAME BUDGET CMD... (env already in CMD)
  local name=$1 b; b=$(budget "$2"); shift 2
  if [ "$b" -lt 20 ]; then note_fail tests "$name not run: no time left"; return; fi
  say "test $name (budget ${b}s)"
  local t0=$(date +%s)
  timeout -k 5 "$b" "$@" > "$RES/test-$name.log" 2>&1
  local rc=$? status
  case $rc in
    0) status=passed ;;
    77) if [ $DRY = 1 ]; then status="skipped (dry run: no GPU)"; else status="SKIPPED on a GPU machine"; fi ;;
    124|137) status="TIMED OUT after ${b}s" ;;
    *) status="FAILED (exit $rc)" ;;
  esac
  tail -40 "$RES/test-$name.log"
  echo "{\"test\": \"$name\", \"rc\": $rc, \"status\": \"$status\", \"seconds\": $(( $(date +%s) - t0 ))}" >> "$RES/tests.jsonl"
  say "test $name: $status in $(( $(date +%s) - t0 ))s"
  case $status in passed|skipped*) ;; *) note_fail tests "$name $status" ;; esac
}

part_tests() {
  local envs=(env PB_SHARED="$SHARED" PB_TMP="$WORK/testtmp" PB_BIN="$PB" PB_DUMP="$DUMP" PB_PYTHON="$PY" PB_SRC="$ROOT"
              PB_BUILD="$BINDIR" PB_REQUIRE_CUDA=$((1 - DRY)) PB_AGREE_JSON="$RES/agree.json")
  rm -rf "$WORK/testtmp" && mkdir -p "$WORK/testtmp"
  for t in cuda_ops cuda_attention; do
    if [ -x "$BINDIR/$t" ]; then run_test "$t" 120 "${envs[@]}" "$WORK/bin/$t"
    else note_fail tests "$t was not built (prepare.sh builds it when tests/cuda/test_$t.c exists)"; fi
  done
  run_test cuda_agree 300 "${envs[@]}" "$PY" "$ROOT/tests/cuda/test_cuda_agree.py"
  pack
}

make_models() {   # comma list; reuses models made earlier on this machine with the same recipe
  local todo="" m
  for m in ${1//,/ }; do
    if [ -f "$MODELS/.made-$m" ] && [ "$(cat "$MODELS/.made-$m")" = "$MODE" ]; then say "model $m: reusing $MODELS/$m"
    else todo="$todo${todo:+,}$m"; fi
  done
  [ -z "$todo" ] && return 0
  local b; b=$(budget 150)
  if [ "$b" -lt 30 ]; then note_fail models "$todo not made: ${b}s left"; return 1; fi
  say "making $todo ($MODE shape, budget ${b}s)"
  timeout -k 5 "$b" "$PY" "$HERE/make_model.py" --out "$MODELS" --models "$todo" --tokenizer "$TOKENIZER" "${MM_ARGS[@]}" \
    > "$RES/models-$todo.json.tmp" 2> "$RES/models-$todo.log"
  local rc=$?
  cat "$RES/models-$todo.log"
  if [ $rc -ne 0 ]; then note_fail models "make_model.py $todo: exit $rc"; return 1; fi
  mv "$RES/models-$todo.json.tmp" "$RES/models-${todo//,/-}.json"
  for m in ${todo//,/ }; do echo "$MODE" > "$MODELS/.made-$m"; done
}

bench_model() {   # NAME
  local m=$1 b
  [ -d "$MODELS/$m" ] || { note_fail bench "$m: no model"; return; }
  b=$(budget 150)
  if [ "$b" -ge 40 ]; then
    say "prunebench on $m (budget ${b}s)"
    timeout -k 5 $((b + 5)) "$PY" "$HERE/pb_bench.py" "$MODELS/$m" --bin "$PB" --data-dir "$DATA" --out "$RES/pb.$m.json" \
      --budget-s "$b" "${PB_ARGS[@]}" || note_fail bench "pb_bench.py $m exited $?"
  else note_fail bench "prunebench on $m: no time left"; fi
  pack
  b=$(budget 130)
  if [ "$b" -ge 40 ]; then
    say "HF transformers on $m (budget ${b}s)"
    timeout -k 5 $((b + 20)) "$PY" "$HERE/hf_reference.py" "$MODELS/$m" --out "$RES/hf.$m.json" --budget-s "$b" \
      $([ $DRY = 0 ] && [ ! -f "$RES/bandwidth.done" ] && echo --bandwidth) "${HF_ARGS[@]}" \
      && touch "$RES/bandwidth.done" || note_fail bench "hf_reference.py $m exited $?"
  else note_fail bench "HF on $m: no time left"; fi
  pack
}

part_agree7b() {
  local m="" c
  for c in width depth dense; do
    [ -f "$MODELS/.made-$c" ] && [ "$(cat "$MODELS/.made-$c")" = "$MODE" ] && { m=$c; break; }
  done
  if [ -z "$m" ]; then make_models width && m=width || return; fi
  local b; b=$(budget 150)
  if [ "$b" -lt 60 ]; then note_fail agree7b "not run: ${b}s left"; return; fi
  say "agree7b on $m (budget ${b}s)"
  timeout -k 5 $((b + 5)) "$PY" "$HERE/agree7b.py" "$MODELS/$m" --bin "$PB" --dump "$DUMP" --data-dir "$DATA" \
    --out "$RES/agree7b.$m.json" --budget-s "$b" "${A7_ARGS[@]}" || note_fail agree7b "agree7b.py on $m: exit $?"
  pack
}

for p in "${PARTS[@]}"; do
  case $p in
    tests) part_tests ;;
    dense) make_models dense && bench_model dense ;;
    pruned)
      # the dense model is not needed any more: free its disk when space is short
      if [ -d "$MODELS/dense" ] && [ "$(df -Pk "$MODELS" | awk 'NR==2 {print $4}')" -lt $((30 * 1024 * 1024)) ]; then
        say "freeing $MODELS/dense (disk)"; rm -rf "$MODELS/dense" "$MODELS/.made-dense"
      fi
      make_models depth,width && { bench_model depth; bench_model width; } ;;
    agree7b) part_agree7b ;;
    report) pack; cat "$OUTD/report-$TAG.md" ;;
  esac
done
say "$FAILS failure(s)"
exit $(( FAILS > 0 ))
