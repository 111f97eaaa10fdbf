#!/usr/bin/env bash
# srchash.sh ROOT — one sha256 over the sources that go into the carried binaries (C, CUDA, headers,
# CMake files, the dataset registry), by path and content. prepare.sh records it in BUILD_INFO;
# run.sh recomputes it on the device, where the working tree arrives without .git, to tell
# whether the binaries were built from the sources that travelled with them.
set -euo pipefail
cd "$1"
find CMakeLists.txt core metrics datasets tests/CMakeLists.txt tests/tools tests/cuda tests/pb_test.h \
     tests/pb_test_model.h -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.json' \
     -o -name 'CMakeLists.txt' \) -not -path '*/__pycache__/*' 2>/dev/null |
  LC_ALL=C sort | while read -r f; do printf '%s  %s\n' "$(sha256sum < "$f" | cut -c1-64)" "$f"; done |
  sha256sum | cut -c1-16
