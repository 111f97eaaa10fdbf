#!/usr/bin/env bash
# prepare.sh — run HERE (the development machine, which has nvcc but no GPU) before a GPU session:
# builds prunebench with the CUDA backend for sm_90 (H100/H200) into build-gpu and packs what the
# GPU machine lacks into .gpu-carry/ (ignored by git through .git/info/exclude), which the device
# call carries (`carry: [".gpu-carry"]`). bench/gpu/run.sh unpacks it there.
#
#   bench/gpu/prepare.sh [--no-cuda] [--no-build]
#     --no-cuda   configure build-gpu with -DPB_CUDA=OFF (dry runs of run.sh here when the CUDA
#                 sources do not build; useless on the GPU)
#     --no-build  only re-pack .gpu-carry from the existing build-gpu
#   Env: PB_GPU_BUILD (another build folder), PB_SHARED (default ../shared).
#
# .gpu-carry/ holds:
#   payload.tar.xz   bin/      prunebench, pb_dump and the CUDA test programs (stripped)
#                    lib/      every shared library they load that is not glibc's and not CUDA's:
#                              OpenBLAS (openmp), libgomp, libgfortran, cJSON, PCRE2, libyaml, HDF5
#                              and its dependencies (curl, ssl/crypto, ...), libstdc++, libgcc_s
#                              (copied from this Debian machine; run.sh puts them first on the
#                              library path of prunebench's processes only, never python's)
#                    glibc/    this machine's loader, libc, libm, ...: used only when the device's
#                              glibc is older than BUILD_INFO's glibc_needed
#                    cuda-fallback/libcudart.so.13   used only when the device has none
#                    shared/   the files the GPU tests and benchmarks read from ../shared, which
#                              does not travel: stories260K (gguf, greedy ids), WikiText-2 test,
#                              the seven zero-shot task files, the LLaMA tokenizer.model
#   BUILD_INFO       git revision, source hash (run.sh recomputes it there and warns when the
#                    binaries are older than the sources), build flags, glibc symbols needed
# CUDA's own libraries (cudart, cuBLASLt, cuDNN) are NOT carried: the GPU image has CUDA 13 and
# torch's nvidia-* wheels (cuDNN 9 from nvidia-cudnn-cu13); run.sh finds them there.
# The carry limit is 64 MiB for the working tree plus carried paths: this script prints both.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${PB_GPU_BUILD:-$ROOT/build-gpu}
CARRY=$ROOT/.gpu-carry
SHARED=${PB_SHARED:-$ROOT/../shared}
CUDA=ON
DO_BUILD=1
for a in "$@"; do
  case $a in
    --no-cuda) CUDA=OFF ;;
    --no-build) DO_BUILD=0 ;;
    *) echo "usage: $0 [--no-cuda] [--no-build]" >&2; exit 2 ;;
  esac
done
say() { echo "prepare: $*"; }

# ---- build -------------------------------------------------------------------------------------
if [ $DO_BUILD = 1 ]; then
  say "configuring $BUILD (Release, PB_CUDA=$CUDA, sm_90)"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DPB_CUDA=$CUDA -DPB_CUDA_ARCHS=90 >/dev/null
  targets="prunebench pb_dump"
  help=$(cmake --build "$BUILD" --target help)
  for t in cuda_ops cuda_attention; do
    if echo "$help" | grep -q "\.\.\. $t\$"; then targets="$targets $t"; fi
  done
  say "building $targets (2 jobs; the machine is shared)"
  if ! cmake --build "$BUILD" --target $targets -j2 > "$BUILD/prepare-build.log" 2>&1; then
    grep -E "error|Error" "$BUILD/prepare-build.log" | head -20
    say "BUILD FAILED (full log: $BUILD/prepare-build.log)"
    exit 1
  fi
fi
if ldd "$BUILD/prunebench" | grep -q libcudart; then CUDA=ON; else
  CUDA=OFF; say "WARNING: build-gpu/prunebench has no CUDA backend: good for dry runs only"
fi

# ---- stage -------------------------------------------------------------------------------------
STAGE=$(mktemp -d /tmp/pb-gpu-stage.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/lib" "$STAGE/glibc" "$STAGE/cuda-fallback" "$STAGE/shared"
bins="$BUILD/prunebench $BUILD/tests/tools/pb_dump"
for t in cuda_ops cuda_attention; do
  [ -x "$BUILD/tests/cuda/$t" ] && bins="$bins $BUILD/tests/cuda/$t"
done
for b in $bins; do
  cp "$b" "$STAGE/bin/"
  strip --strip-unneeded "$STAGE/bin/$(basename "$b")"
done
"$STAGE/bin/prunebench" --help >/dev/null || { say "the stripped prunebench does not run"; exit 1; }

# runtime libraries: the union of ldd over the programs, minus glibc (it must be the device's
# own, matching its loader) and minus CUDA (the device's driver and toolkit)
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libresolv\.so|libutil\.so|libcuda\.so|libcudart|libcublas|libcudnn|libnvrtc|libnvJitLink)'
for b in $bins; do ldd "$b"; done | awk '/=>/ && $3 ~ /^\// {print $1, $3}' | sort -u | while read -r name path; do
  if echo "$name" | grep -Eq "$skip"; then continue; fi
  cp -L "$path" "$STAGE/lib/$name"
  strip --strip-unneeded "$STAGE/lib/$name" 2>/dev/null || true
done
missing=$(for b in $bins; do ldd "$b"; done | grep "not found" | sort -u || true)
[ -z "$missing" ] || { say "libraries not found here: $missing"; exit 1; }
# glibc itself, used only when the device's is older than what the carried programs need
# (run.sh then starts them through this loader: ld-linux-x86-64.so.2 --library-path ...)
for b in $bins; do ldd "$b"; done | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i}' | sort -u |
  grep -E '/(ld-linux-x86-64|libc|libm|libdl|libpthread|librt|libresolv|libutil)\.so' | while read -r path; do
  cp -L "$path" "$STAGE/glibc/$(basename "$path")"
done
cudart=$(ldd "$BUILD/prunebench" | awk '/libcudart/ {print $3}')
[ -n "$cudart" ] && cp -L "$cudart" "$STAGE/cuda-fallback/"

# the newest glibc symbol version anything carried needs (the device's glibc must be at least that)
glibc_need=$(for f in "$STAGE"/bin/* "$STAGE"/lib/*; do objdump -T "$f" 2>/dev/null; done |
  grep -o 'GLIBC_[0-9.]*' | sort -t. -k1,1 -k2,2n -k3,3n -u | tail -1)

# shared data the GPU tests and benchmarks read (in place here; ../shared does not travel)
if [ -d "$SHARED" ]; then
  while read -r f; do
    [ -f "$SHARED/$f" ] || { say "missing $SHARED/$f"; exit 1; }
    mkdir -p "$STAGE/shared/$(dirname "$f")"
    cp "$SHARED/$f" "$STAGE/shared/$f"
  done <<'EOF'
models/stories260K/stories260K.gguf
models/stories260K/stories260K.greedy_ids.txt
data/wikitext2/wiki.test.raw
data/tokenizer/tokenizer.model
data/boolq/dev.jsonl
data/piqa/valid.jsonl
data/piqa/valid-labels.lst
data/hellaswag/hellaswag_val.subset1000.jsonl
data/winogrande/dev.jsonl
data/winogrande/dev-labels.lst
data/arc_easy/ARC-Easy-Test.jsonl
data/arc_challenge/ARC-Challenge-Test.jsonl
data/openbookqa/test.jsonl
EOF
else
  say "WARNING: no $SHARED: the GPU tests that need stories260K and the data will not run"
fi

src_hash=$(bash "$ROOT/bench/gpu/srchash.sh" "$ROOT")
mkdir -p "$CARRY"
rm -f "$CARRY"/payload.tar.* "$CARRY/BUILD_INFO"
{
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "git_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "git_dirty_files=$(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l)"
  echo "src_hash=$src_hash"
  echo "cuda=$CUDA"
  echo "cuda_archs=$(grep '^PB_CUDA_ARCHS' "$BUILD/CMakeCache.txt" | cut -d= -f2)"
  echo "nvcc=$(nvcc --version 2>/dev/null | tail -1)"
  echo "cudnn_headers=$(grep -hE '#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) ' /usr/local/cuda/include/cudnn_version.h 2>/dev/null | awk '{print $3}' | paste -sd.)"
  echo "glibc_needed=$glibc_need"
  echo "bins=$(ls "$STAGE/bin" | paste -sd' ')"
} > "$STAGE/BUILD_INFO"
cp "$STAGE/BUILD_INFO" "$CARRY/BUILD_INFO"
say "packing (xz -9, single-threaded: a minute or two)"
tar -C "$STAGE" -cf - bin lib glibc cuda-fallback shared BUILD_INFO | xz -9e -T1 > "$CARRY/payload.tar.xz"

# ---- sizes -------------------------------------------------------------------------------------
raw=$(du -sb "$STAGE" | cut -f1)
packed=$(stat -c %s "$CARRY/payload.tar.xz")
carry=$(du -sb "$CARRY" | cut -f1)
tree=$(cd "$ROOT" && git ls-files -co --exclude-standard -z | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
limit=$((64 * 1024 * 1024))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
dmib() { mib "$(du -sb "$1" | cut -f1)"; }
say "staged $(mib "$raw") (bin $(dmib "$STAGE/bin"), lib $(dmib "$STAGE/lib"), glibc $(dmib "$STAGE/glibc")," \
    "shared $(dmib "$STAGE/shared"))" \
    "-> payload.tar.xz $(mib "$packed")"
say "travels: working tree $(mib "$tree") + .gpu-carry $(mib "$carry") = $(mib $((tree + carry))) of the 64 MiB limit"
say "BUILD_INFO:"; sed 's/^/  /' "$CARRY/BUILD_INFO"
if [ $((tree + carry)) -gt $limit ]; then
  say "OVER THE 64 MiB LIMIT"; exit 1
fi
say "done: carry \".gpu-carry\" with bench/gpu/run.sh (see bench/gpu/README.md)"
